"""Comparing a published layer with a rebuilt one names exactly the files that differ."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from monogres_oci.consume.rebuild import diff_layers
from monogres_oci.oci.layer import tree_entries, write_layer


def _layer(root: Path, dest: Path, epoch: int = 1_700_000_000) -> Path:
    with dest.open("wb") as out:
        write_layer(tree_entries(root), out, epoch=epoch)
    return dest


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_identical_trees_have_no_differences(tmp_path: Path) -> None:
    files = {"lib/a.so": "same", "share/a.control": "x"}
    a = _layer(_tree(tmp_path / "a", files), tmp_path / "a.tar.gz")
    b = _layer(_tree(tmp_path / "b", files), tmp_path / "b.tar.gz")
    assert a.read_bytes() == b.read_bytes()
    assert diff_layers("layer 1/1", a, b, tmp_path / "scratch", diffoscope=False) == []


def test_content_added_removed_and_metadata(tmp_path: Path) -> None:
    a = _layer(_tree(tmp_path / "a", {"lib/x.so": "nonce 1111", "share/old.sql": "",
                                      "share/same.sql": "s"}), tmp_path / "a.tar.gz")
    b_root = _tree(tmp_path / "b", {"lib/x.so": "nonce 2222", "share/new.sql": "",
                                    "share/same.sql": "s"})
    (b_root / "share/same.sql").chmod(0o755)  # the exec bit is kept in the layer
    b = _layer(b_root, tmp_path / "b.tar.gz")
    found = {(d.path, d.change) for d in diff_layers("L", a, b, tmp_path / "s", diffoscope=False)}
    assert found == {("lib/x.so", "content"), ("share/old.sql", "only in published"),
                     ("share/new.sql", "only in rebuilt"), ("share/same.sql", "metadata")}


def test_mtime_only_difference_is_metadata(tmp_path: Path) -> None:
    files = {"lib/a.so": "same"}
    a = _layer(_tree(tmp_path / "a", files), tmp_path / "a.tar.gz", epoch=1)
    b = _layer(_tree(tmp_path / "b", files), tmp_path / "b.tar.gz", epoch=2)
    (diff,) = [d for d in diff_layers("L", a, b, tmp_path / "s", diffoscope=False)
               if d.path == "lib/a.so"]
    assert diff.change == "metadata" and "mtime 1 vs 2" in diff.detail


@pytest.mark.skipif(shutil.which("diffoscope") is None, reason="diffoscope is not installed")
def test_diffoscope_explains_a_content_difference(tmp_path: Path) -> None:
    a = _layer(_tree(tmp_path / "a", {"share/v.txt": "line one\nnonce 1111\n"}), tmp_path / "a.gz")
    b = _layer(_tree(tmp_path / "b", {"share/v.txt": "line one\nnonce 2222\n"}), tmp_path / "b.gz")
    (diff,) = diff_layers("L", a, b, tmp_path / "s")
    assert "-nonce 1111" in diff.diffoscope and "+nonce 2222" in diff.diffoscope
