"""The build record reads what dpkg-query wrote in the build container, and says what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from monogres_oci.attest.buildinfo import DebPackage, read_packages
from monogres_oci.errors import BuildError


def test_packages_are_read_sorted(tmp_path: Path) -> None:
    path = tmp_path / "toolchain-packages.tsv"
    path.write_text("zlib1g\t1:1.2.13.dfsg-1\tamd64\ngcc-12\t12.2.0-14+deb12u1\tamd64\n\n")
    assert read_packages(path) == (DebPackage("gcc-12", "12.2.0-14+deb12u1", "amd64"),
                                   DebPackage("zlib1g", "1:1.2.13.dfsg-1", "amd64"))


def test_a_missing_or_malformed_list_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="--rebuild"):
        read_packages(tmp_path / "toolchain-packages.tsv")
    assert read_packages(tmp_path / "runtime-packages.txt", required=False) == ()
    bad = tmp_path / "bad.tsv"
    bad.write_text("gcc-12 12.2.0\n")
    with pytest.raises(BuildError, match=r"bad.tsv:1: expected NAME<TAB>VERSION<TAB>ARCH"):
        read_packages(bad)


def test_purl_encodes_epochs_and_plus_signs() -> None:
    pkg = DebPackage("libstdc++6", "1:12.2.0-14+deb12u1", "amd64")
    assert pkg.purl("bookworm") == ("pkg:deb/debian/libstdc%2B%2B6@1%3A12.2.0-14%2Bdeb12u1"
                                    "?arch=amd64&distro=bookworm")
