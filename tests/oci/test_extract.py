"""Safe extraction: verified while streaming, nothing outside the destination, ever."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from monogres_oci.errors import VerifyError
from monogres_oci.oci.extract import extract_layer
from monogres_oci.oci.layer import layer_bytes, tree_entries
from tests.oci.test_layer import EPOCH, make_tree


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def evil_layer(*members: tuple[str, bytes, str]) -> bytes:
    """Build a tar+gzip by hand: (kind, name, payload) with kind file/dir/sym/lnk/chr/fifo."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, payload, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "sym": tarfile.SYMTYPE,
                "lnk": tarfile.LNKTYPE,
                "chr": tarfile.CHRTYPE,
                "fifo": tarfile.FIFOTYPE,
            }[kind]
            info.linkname = payload.decode()
            tar.addfile(info)
    return gzip.compress(raw.getvalue(), mtime=0)


def snapshot(root: Path) -> dict[str, tuple[int, bytes | str | None]]:
    out: dict[str, tuple[int, bytes | str | None]] = {}
    for path in sorted(root.rglob("*")):
        st = os.lstat(path)
        rel = str(path.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            out[rel] = (0o777, os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = (stat.S_IMODE(st.st_mode), None)
        else:
            out[rel] = (stat.S_IMODE(st.st_mode), path.read_bytes())
    return out


def test_round_trip(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    for path in [tree, *tree.rglob("*")]:  # normalise the source the way the layer does
        if path.is_symlink():
            continue
        mode = 0o755 if path.is_dir() or os.stat(path).st_mode & stat.S_IXUSR else 0o644
        path.chmod(mode)
    data, info = layer_bytes(tree_entries(tree), epoch=EPOCH)
    dest = tmp_path / "dest"
    paths = extract_layer(
        io.BytesIO(data), dest, digest=info.digest, size=info.size, diff_id=info.diff_id
    )
    assert "lib/vector.so" in paths
    assert snapshot(dest) == snapshot(tree)
    assert os.stat(dest / "lib" / "vector.so").st_mtime == EPOCH
    assert os.stat(dest / "lib").st_mtime == EPOCH


def test_merges_into_an_existing_directory(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    data, info = layer_bytes(tree_entries(tree, "usr/lib/postgresql/18"), epoch=EPOCH)
    dest = tmp_path / "root"
    (dest / "usr" / "lib" / "other").mkdir(parents=True)
    (dest / "usr" / "lib" / "other" / "keep").write_text("keep")
    (dest / "usr" / "lib" / "postgresql" / "18" / "lib").mkdir(parents=True)
    (dest / "usr" / "lib" / "postgresql" / "18" / "lib" / "vector.so").write_text("old")
    extract_layer(io.BytesIO(data), dest, digest=info.digest)
    assert (dest / "usr" / "lib" / "other" / "keep").read_text() == "keep"
    assert (dest / "usr/lib/postgresql/18/lib/vector.so").read_bytes().startswith(b"\x7fELF")
    assert not [p for p in dest.iterdir() if p.name.startswith(".monogres-extract")]


def test_digest_mismatch_leaves_destination_untouched(tmp_path: Path) -> None:
    data, info = layer_bytes(tree_entries(make_tree(tmp_path / "tree")), epoch=EPOCH)
    dest = tmp_path / "dest"
    with pytest.raises(VerifyError, match="digest mismatch"):
        extract_layer(io.BytesIO(data), dest, digest="sha256:" + "0" * 64)
    assert list(dest.iterdir()) == []
    with pytest.raises(VerifyError, match="diff_id mismatch"):
        extract_layer(io.BytesIO(data), dest, digest=info.digest, diff_id="sha256:" + "0" * 64)
    assert list(dest.iterdir()) == []
    with pytest.raises(VerifyError, match="expected .* bytes"):
        extract_layer(io.BytesIO(data), dest, digest=info.digest, size=info.size + 1)
    assert list(dest.iterdir()) == []


def test_not_a_layer(tmp_path: Path) -> None:
    with pytest.raises(VerifyError, match="not a valid tar"):
        extract_layer(io.BytesIO(b"plain text, not gzip"), tmp_path / "dest")
    with pytest.raises(VerifyError, match="not a valid tar"):
        extract_layer(io.BytesIO(gzip.compress(b"x" * 700)), tmp_path / "dest")


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([("../evil", b"x", "file")], "climbs out"),
        ([("a/../../evil", b"x", "file")], "climbs out"),
        ([("/tmp/evil", b"x", "file")], "absolute"),
        ([("link", b"../../outside", "sym")], "points outside"),
        ([("link", b"/etc/passwd", "sym")], "points outside"),
        ([("a/link", b"../..", "sym")], "points outside"),
        ([("d", b"", "dir"), ("link", b"d", "sym"), ("link/evil", b"x", "file")], "symlink"),
        ([("link", b".", "sym"), ("link/evil", b"x", "file")], "symlink"),
        ([("hard", b"/etc/passwd", "lnk")], "absolute"),
        ([("hard", b"missing", "lnk")], "earlier regular file"),
        ([("dev", b"", "chr")], "device"),
        ([("fifo", b"", "fifo")], "FIFO"),
        ([("f", b"x", "file"), ("f/g", b"x", "file")], "under the file"),
    ],
)
def test_unsafe_members_are_refused(
    tmp_path: Path, members: list[tuple[str, bytes, str]], message: str
) -> None:
    data = evil_layer(*members)
    dest = tmp_path / "dest" / "inner"
    with pytest.raises(VerifyError, match=message):
        extract_layer(io.BytesIO(data), dest, digest=_digest(data))
    assert list(dest.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["inner"]
    assert not (tmp_path / "evil").exists() and not Path("/tmp/evil").exists()


def test_safe_links_are_kept(tmp_path: Path) -> None:
    data = evil_layer(
        ("lib/real.so", b"so", "file"),
        ("lib/alias.so", b"real.so", "sym"),
        ("lib/sub/up.so", b"../real.so", "sym"),
        ("lib/hard.so", b"lib/real.so", "lnk"),
    )
    dest = tmp_path / "dest"
    extract_layer(io.BytesIO(data), dest, digest=_digest(data))
    assert (dest / "lib" / "alias.so").read_bytes() == b"so"
    assert (dest / "lib" / "sub" / "up.so").read_bytes() == b"so"
    assert (dest / "lib" / "hard.so").read_bytes() == b"so"


def test_a_root_file_system_keeps_its_absolute_links_and_still_refuses_climbing_out(
        tmp_path: Path) -> None:
    # a runtime overlay: usr/lib/python3.11/sitecustomize.py -> /etc/python3.11/sitecustomize.py
    data = evil_layer(("usr/lib/site.py", b"/etc/site.py", "sym"))
    dest = tmp_path / "root"
    extract_layer(io.BytesIO(data), dest, digest=_digest(data), rooted=True)
    assert os.readlink(dest / "usr/lib/site.py") == "/etc/site.py"  # kept as published
    climbing = evil_layer(("a/link", b"../../../etc", "sym"))
    with pytest.raises(VerifyError, match="points outside"):
        extract_layer(io.BytesIO(climbing), tmp_path / "other", rooted=True)


def test_setuid_bits_are_dropped(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("bin/tool")
        info.mode = 0o4755
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    data = gzip.compress(raw.getvalue())
    extract_layer(io.BytesIO(data), tmp_path / "d", digest=_digest(data))
    assert stat.S_IMODE(os.stat(tmp_path / "d" / "bin" / "tool").st_mode) == 0o755


def test_refuses_directory_over_symlink_in_destination(tmp_path: Path) -> None:
    data = evil_layer(("lib/x", b"x", "file"))
    dest = tmp_path / "dest"
    outside = tmp_path / "outside"
    outside.mkdir()
    dest.mkdir()
    (dest / "lib").symlink_to(outside)
    with pytest.raises(VerifyError, match="not a directory"):
        extract_layer(io.BytesIO(data), dest, digest=_digest(data))
    assert list(outside.iterdir()) == []
