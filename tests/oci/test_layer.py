"""Deterministic layers: same tree, same bytes; the tar and gzip rules that make it so."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from monogres_oci.errors import BuildError
from monogres_oci.oci.layer import (
    LayerEntry,
    Override,
    archive_path,
    layer_bytes,
    layer_file,
    tree_entries,
)

EPOCH = 1_700_000_000
LONG = "d" * 60 + "/" + "f" * 80 + ".sql"  # 145 bytes: needs a GNU long-name entry


def make_tree(root: Path) -> Path:
    (root / "lib" / "bitcode" / "vector").mkdir(parents=True)
    (root / "share" / "extension").mkdir(parents=True)
    (root / "lib-extra").mkdir()
    so = root / "lib" / "vector.so"
    so.write_bytes(b"\x7fELF" + bytes(range(256)) * 40)
    so.chmod(0o700)
    (root / "lib" / "bitcode" / "vector" / "a.bc").write_bytes(b"BC")
    control = root / "share" / "extension" / "vector.control"
    control.write_text("default_version = '0.8.0'\n")
    control.chmod(0o600)
    (root / "share" / "extension" / "vector--0.8.0.sql").write_text("CREATE TYPE vector;\n")
    os.link(control, root / "share" / "extension" / "hardlinked.control")
    (root / "lib" / "vector.so.0").symlink_to("vector.so")
    (root / "lib-extra" / "x").write_text("x")
    long_path = root / LONG
    long_path.parent.mkdir(parents=True)
    long_path.write_text("long")
    return root


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getmembers()


def test_same_tree_gives_same_bytes(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "a")
    first = layer_bytes(tree_entries(tree), epoch=EPOCH)
    second = layer_bytes(tree_entries(tree), epoch=EPOCH)
    assert first == second


def test_disk_metadata_does_not_change_the_digest(tmp_path: Path) -> None:
    a = make_tree(tmp_path / "a")
    data_a, info_a = layer_bytes(tree_entries(a), epoch=EPOCH)
    b = tmp_path / "b"
    shutil.copytree(a, b, symlinks=True)  # no hard link any more: a copy
    for path in [b, *b.rglob("*")]:
        if not path.is_symlink():
            os.utime(path, (12345, 67890))  # other atime and mtime
            os.chown(path, 1234, 4321)  # other owner (ctime changes too)
    (b / "share" / "extension" / "vector.control").chmod(0o640)  # other non-exec mode
    (b / "lib" / "vector.so").chmod(0o755)  # still executable by the owner
    data_b, info_b = layer_bytes(tree_entries(b), epoch=EPOCH)
    assert info_a == info_b
    assert data_a == data_b


def test_epoch_and_content_change_the_digest(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "a")
    _, base = layer_bytes(tree_entries(tree), epoch=EPOCH)
    _, later = layer_bytes(tree_entries(tree), epoch=EPOCH + 1)
    (tree / "lib-extra" / "x").write_text("y")
    _, changed = layer_bytes(tree_entries(tree), epoch=EPOCH)
    assert len({base.digest, later.digest, changed.digest}) == 3


def test_digests_describe_the_bytes(tmp_path: Path) -> None:
    data, info = layer_bytes(tree_entries(make_tree(tmp_path / "a")), epoch=EPOCH)
    assert info.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert info.size == len(data)
    assert info.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest()
    desc = info.descriptor(info.oras_annotations())
    assert desc.annotations == {
        "io.deis.oras.content.digest": info.diff_id,
        "io.deis.oras.content.unpack": "true",
        "org.opencontainers.image.title": ".",
    }


def test_gzip_header_is_fixed(tmp_path: Path) -> None:
    data, _ = layer_bytes(tree_entries(make_tree(tmp_path / "a")), epoch=EPOCH)
    # magic, deflate, no flags (so no file name), mtime 0, no extra flags, OS unknown
    assert data[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def test_tar_ends_with_two_zero_blocks_and_no_padding(tmp_path: Path) -> None:
    data, _ = layer_bytes(tree_entries(make_tree(tmp_path / "a")), epoch=EPOCH)
    tar = gzip.decompress(data)
    assert len(tar) % 512 == 0
    assert tar.endswith(b"\0" * 1024)
    # The last member's data block precedes the trailer directly: no record padding.
    assert tar[-1536:-1024] != b"\0" * 512


def test_members_follow_the_rules(tmp_path: Path) -> None:
    data, _ = layer_bytes(tree_entries(make_tree(tmp_path / "a")), epoch=EPOCH)
    infos = members(data)
    names = [m.name for m in infos]
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert names[:3] == ["d" * 60, LONG, "lib"]
    assert names.index("lib-extra") > names.index("lib/vector.so.0")
    for member in infos:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == EPOCH
        assert not member.pax_headers
        parent = member.name.rpartition("/")[0]
        assert not parent or parent in names[: names.index(member.name)]
    by_name = {m.name: m for m in infos}
    assert by_name["lib"].isdir() and by_name["lib"].mode == 0o755
    assert by_name["lib/vector.so"].mode == 0o755
    assert by_name["share/extension/vector.control"].mode == 0o644
    assert by_name["lib/vector.so.0"].issym() and by_name["lib/vector.so.0"].linkname == "vector.so"
    hard = by_name["share/extension/hardlinked.control"]
    assert hard.isreg() and hard.size == by_name["share/extension/vector.control"].size
    assert b"PaxHeader" not in gzip.decompress(data)
    assert b"././@LongLink" in gzip.decompress(data)


def test_prefix_and_overrides(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "a")
    entries = tree_entries(tree, "usr/lib/postgresql/18")
    entries.append(LayerEntry("var/run/postgresql"))
    overrides = {
        "var/run/postgresql": Override(uid=26, gid=26, mode=0o2775),
        "usr/lib/postgresql/18/lib/vector.so": Override(mode=0o555),
    }
    data, _ = layer_bytes(entries, epoch=EPOCH, overrides=overrides)
    by_name = {m.name: m for m in members(data)}
    for parent in (
        "usr",
        "usr/lib",
        "usr/lib/postgresql",
        "usr/lib/postgresql/18",
        "var",
        "var/run",
    ):
        assert by_name[parent].isdir() and by_name[parent].mode == 0o755
    run = by_name["var/run/postgresql"]
    assert (run.uid, run.gid, run.mode) == (26, 26, 0o2775)
    assert by_name["usr/lib/postgresql/18/lib/vector.so"].mode == 0o555


def test_entry_list_with_sources(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("content")
    entries = [LayerEntry("./a/b/file", tmp_path / "f"), LayerEntry("a", None), LayerEntry("a/")]
    data, _ = layer_bytes(entries, epoch=0)
    assert [m.name for m in members(data)] == ["a", "a/b", "a/b/file"]


def test_layer_file_matches_layer_bytes(tmp_path: Path) -> None:
    entries = tree_entries(make_tree(tmp_path / "a"))
    data, info = layer_bytes(entries, epoch=EPOCH)
    out = tmp_path / "out" / "layer.tar.gz"
    assert layer_file(entries, out, epoch=EPOCH) == info
    assert out.read_bytes() == data
    assert [p.name for p in out.parent.iterdir()] == ["layer.tar.gz"]


def test_refuses_special_files_and_duplicates(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    os.mkfifo(tree / "fifo")
    with pytest.raises(BuildError, match="FIFO"):
        layer_bytes(tree_entries(tree), epoch=0)
    (tmp_path / "f").write_text("x")
    with pytest.raises(BuildError, match="twice"):
        layer_bytes([LayerEntry("x", tmp_path / "f"), LayerEntry("./x", tmp_path / "f")], epoch=0)


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "a/../../x", "", "."])
def test_archive_paths_stay_inside(bad: str) -> None:
    with pytest.raises(ValueError):
        archive_path(bad)


def test_negative_epoch_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        layer_bytes([], epoch=-1)
