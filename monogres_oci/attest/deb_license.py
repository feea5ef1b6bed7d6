"""The licence of a Debian package as an SPDX expression, read from its ``copyright`` file.

A machine-readable ``debian/copyright`` (DEP-5, a ``Format:`` line first) names a licence in the
``License:`` field of each ``Files:`` paragraph, by Debian's short names (``GPL-2+``,
``Expat``, ``BSD-3-clause``). Those are mapped to SPDX identifiers; every paragraph's licence is
joined with AND, since a binary package may hold code under each of them. A name without an SPDX
equivalent becomes ``LicenseRef-<name>``, and a copyright file that is not machine-readable
becomes ``LicenseRef-deb-<package>``: the file itself ships in the image beside the libraries, so
the reference points at the text rather than guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from monogres_oci.debian.deb822 import first_line, paragraphs

# Debian's short names (https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/) and
# the common variants seen in the archive, mapped to SPDX identifiers. Case-insensitive.
_SPDX = {
    "apache-2.0": "Apache-2.0",
    "artistic": "Artistic-1.0-Perl",
    "artistic-2.0": "Artistic-2.0",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "bsd-4-clause": "BSD-4-Clause",
    "2-clause-bsd": "BSD-2-Clause",
    "3-clause-bsd": "BSD-3-Clause",
    "bsd-2": "BSD-2-Clause",
    "bsd-3": "BSD-3-Clause",
    "bsl-1.0": "BSL-1.0",
    "boost": "BSL-1.0",
    "cc0-1.0": "CC0-1.0",
    "cc-by-3.0": "CC-BY-3.0",
    "cc-by-4.0": "CC-BY-4.0",
    "cc-by-sa-3.0": "CC-BY-SA-3.0",
    "cc-by-sa-4.0": "CC-BY-SA-4.0",
    "curl": "curl",
    "expat": "MIT",
    "mit": "MIT",
    "isc": "ISC",
    "ijg": "IJG",
    "libpng": "Libpng",
    "libtiff": "libtiff",
    "mpl-1.1": "MPL-1.1",
    "mpl-2.0": "MPL-2.0",
    "ofl-1.1": "OFL-1.1",
    "openssl": "OpenSSL",
    "postgresql": "PostgreSQL",
    "psf-2": "PSF-2.0",
    "public-domain": "LicenseRef-public-domain",
    "sleepycat": "Sleepycat",
    "x11": "X11",
    "zlib": "Zlib",
    "zpl-2.1": "ZPL-2.1",
    "gfdl-1.2": "GFDL-1.2-only",
    "gfdl-1.3": "GFDL-1.3-only",
    "gfdl-1.3+": "GFDL-1.3-or-later",
}
_GNU = re.compile(r"^(a?gpl|lgpl)-?(\d(?:\.\d)?)(\+)?$", re.IGNORECASE)
_REF_CHARS = re.compile(r"[^A-Za-z0-9.-]+")


@dataclass(frozen=True)
class PackageLicense:
    """What a copyright file says: the SPDX expression, and whether it was machine-readable."""

    expression: str
    machine_readable: bool


def spdx_id(name: str) -> str:
    """One Debian licence short name as an SPDX identifier (or a LicenseRef- of it)."""
    key = name.strip().lower()
    if key in _SPDX:
        return _SPDX[key]
    gnu = _GNU.match(key)
    if gnu:
        family, version, plus = gnu.groups()
        family = {"gpl": "GPL", "lgpl": "LGPL", "agpl": "AGPL"}[family.lower()]
        if "." not in version:
            version += ".0"
        return f"{family}-{version}-{'or-later' if plus else 'only'}"
    return "LicenseRef-" + (_REF_CHARS.sub("-", name.strip()).strip("-") or "unknown")


def _expression(field: str) -> str:
    """A License: field's first line (``GPL-2+ or Artistic``, ``MIT and BSD-3-clause``) in SPDX."""
    words = re.split(r"\s+(or|and)\s+", field.strip(), flags=re.IGNORECASE)
    out: list[str] = []
    for i, word in enumerate(words):
        if i % 2:
            out.append(word.upper())
        else:
            # "GPL-2+ with OpenSSL exception" and the like: the licence is the first word.
            out.append(spdx_id(word.split(",")[0].split()[0]) if word.strip() else "NOASSERTION")
    return " ".join(out)


def _files_licenses(copyright_text: str, skip_packaging: bool) -> list[str] | None:
    """The SPDX expression of each ``Files:`` paragraph's licence, first seen first; None when the
    file is not machine-readable. ``skip_packaging`` leaves out paragraphs that cover only
    ``debian/`` (Debian's packaging, not part of what upstream ships)."""
    pars = list(paragraphs(copyright_text))
    if not copyright_text.lower().startswith("format:") or not pars:
        return None
    expressions: list[str] = []
    for par in pars:
        if "files" not in par or not first_line(par.get("license", "")):
            continue
        if skip_packaging and all(f.startswith("debian/") for f in par["files"].split()):
            continue
        expr = _expression(first_line(par["license"]))
        if expr not in expressions:
            expressions.append(expr)
    return expressions or None


def _joined(expressions: list[str]) -> str:
    parts = [f"({e})" if (" OR " in e or " AND " in e) and len(expressions) > 1 else e
             for e in expressions]
    return " AND ".join(parts)


def package_license(package: str, copyright_text: str) -> PackageLicense:
    """The SPDX expression of a package from the text of its ``copyright`` file."""
    expressions = _files_licenses(copyright_text, skip_packaging=False)
    if not expressions:
        return PackageLicense(f"LicenseRef-deb-{_REF_CHARS.sub('-', package)}", False)
    return PackageLicense(_joined(expressions), True)


def upstream_license(copyright_text: str) -> str | None:
    """The SPDX expression of what upstream ships (every ``Files:`` paragraph but Debian's
    packaging), or None when the file is not machine-readable. A licence name without an SPDX
    equivalent stays a ``LicenseRef-`` for the caller to refuse."""
    expressions = _files_licenses(copyright_text, skip_packaging=True)
    return _joined(expressions) if expressions else None


def license_ids(expression: str) -> set[str]:
    """The licence identifiers an SPDX expression uses."""
    return {token for token in re.split(r"[\s()]+", expression)
            if token and token not in ("AND", "OR", "WITH")}
