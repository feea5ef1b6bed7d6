"""install's checks on what it puts together, on directories laid out as it extracts them."""

from __future__ import annotations

from pathlib import Path

import pytest

from monogres_oci.consume.install import Installed, check_bundled, repoint
from monogres_oci.errors import VerifyError


def _extension(root: Path, name: str, libs: dict[str, bytes]) -> Installed:
    path = root / name
    (path / "system").mkdir(parents=True)
    for soname, data in libs.items():
        (path / "system" / soname).write_bytes(data)
    return Installed(reference=f"reg/{name}:1", digest="sha256:" + "0" * 64,
                     manifest_digest="sha256:" + "1" * 64, kind="extension", name=name,
                     path=path, labels={})


def test_two_extensions_bundling_one_library_alike_go_together(tmp_path: Path) -> None:
    a = _extension(tmp_path, "postgis", {"libproj.so.25": b"proj 9.1.1", "libgeos_c.so.1": b"g"})
    b = _extension(tmp_path, "h3-pg", {"libproj.so.25": b"proj 9.1.1"})
    check_bundled([a, b])


def test_one_soname_with_two_builds_is_refused_naming_both(tmp_path: Path) -> None:
    # The loader keeps the first libproj.so.25 the server loads; the other extension would run
    # against a library it was not built with.
    a = _extension(tmp_path, "postgis", {"libproj.so.25": b"proj 9.1.1"})
    b = _extension(tmp_path, "h3-pg", {"libproj.so.25": b"proj 9.1.0"})
    with pytest.raises(VerifyError) as err:
        check_bundled([a, b])
    assert "libproj.so.25: reg/postgis:1 and reg/h3-pg:1" in str(err.value)


def test_repoint_rewrites_the_mount_point_in_text_files_only(tmp_path: Path) -> None:
    share = tmp_path / "unit" / "share" / "extension"
    share.mkdir(parents=True)
    sql = share / "unit--7.sql"
    sql.write_text("COPY prefixes FROM '/extensions/unit/share/extension/unit_prefixes.data';\n")
    blob = share / "data.bin"
    blob.write_bytes(b"\x00\x01/extensions/unit/share/\x00")
    assert repoint(tmp_path / "unit", "/extensions/unit", "/opt/pg/unit") == 1
    assert "'/opt/pg/unit/share/extension/unit_prefixes.data'" in sql.read_text()
    assert blob.read_bytes() == b"\x00\x01/extensions/unit/share/\x00"
