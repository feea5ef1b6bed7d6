"""Debian copyright files become SPDX expressions; what cannot be read is referenced, not guessed."""

from __future__ import annotations

from monogres_oci.attest.buildinfo import BundledPackage
from monogres_oci.attest.deb_license import license_ids, package_license, spdx_id
from monogres_oci.attest.sbom import BUNDLED_LICENSE_REF
from monogres_oci.package.image_volume import license_expression

DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: GEOS

Files: *
Copyright: 2001-2009, Vivid Solutions Inc
License: LGPL-2.1+
 This library is free software ...

Files: src/deps/ryu/*
Copyright: 2018 Ulf Adams
License: Apache-2.0 or BSL-1.0

Files: debian/*
Copyright: 2005 Fabio Tranchitella
License: Expat

License: LGPL-2.1+
 On Debian systems, the complete text ...
"""


def test_debian_short_names_map_to_spdx() -> None:
    assert [spdx_id(n) for n in ("GPL-2+", "LGPL-2.1+", "GPL-3", "Expat", "BSD-3-clause",
                                 "Apache-2.0", "public-domain", "Qhull")] == [
        "GPL-2.0-or-later", "LGPL-2.1-or-later", "GPL-3.0-only", "MIT", "BSD-3-Clause",
        "Apache-2.0", "LicenseRef-public-domain", "LicenseRef-Qhull"]


def test_machine_readable_copyright_joins_every_files_paragraph() -> None:
    lic = package_license("libgeos-c1v5", DEP5)
    assert lic.machine_readable
    assert lic.expression == "LGPL-2.1-or-later AND (Apache-2.0 OR BSL-1.0) AND MIT"
    assert license_ids(lic.expression) == {"LGPL-2.1-or-later", "Apache-2.0", "BSL-1.0", "MIT"}


def test_free_form_copyright_is_referenced_not_guessed() -> None:
    lic = package_license("libwebp7", "This package was debianized by ...\nBSD licence\n")
    assert (lic.expression, lic.machine_readable) == ("LicenseRef-deb-libwebp7", False)


def test_image_licence_covers_the_bundled_packages_within_an_annotation() -> None:
    geos = BundledPackage("libgeos-c1v5", "3.11.1-1", "amd64", "a" * 64,
                          "LGPL-2.1-or-later AND MIT")
    assert license_expression("GPL-2.0-or-later", ()) == "GPL-2.0-or-later"
    assert license_expression("GPL-2.0-or-later", (geos,)) == \
        "GPL-2.0-or-later AND LGPL-2.1-or-later AND MIT"
    many = tuple(BundledPackage(f"lib{i}", "1", "amd64", "b" * 64, f"LicenseRef-long-name-{i}")
                 for i in range(40))
    expression = license_expression("Apache-2.0 OR MIT", many)
    assert expression == f"(Apache-2.0 OR MIT) AND {BUNDLED_LICENSE_REF}"
