"""OCI image layouts: byte-identical rewrites, refs in index.json, schema conformance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monogres_oci.errors import VerifyError
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import (
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_CONFIG,
    Blob,
    Index,
)
from tests.support.oci_samples import SampleImage, sample_layout
from tests.support.oci_schemas import validate


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_content_gives_identical_layouts(tmp_path: Path) -> None:
    sample_layout(tmp_path / "one", tmp_path / "trees-one")
    sample_layout(tmp_path / "two", tmp_path / "trees-two")
    assert files(tmp_path / "one") == files(tmp_path / "two")
    before = files(tmp_path / "one")
    sample_layout(tmp_path / "one", tmp_path / "trees-three")  # written again over itself
    assert files(tmp_path / "one") == before
    assert not [name for name in before if name.endswith(".partial")]


def test_every_file_conforms(sample: tuple[Layout, list[SampleImage]]) -> None:
    layout, _ = sample
    validate("layout", (layout.root / "oci-layout").read_bytes())
    validate("index", (layout.root / "index.json").read_bytes())
    seen = 0
    for ref in layout.refs().values():
        for desc in layout.walk(ref):
            data = layout.read_blob(desc.digest)
            if desc.media_type in MANIFEST_TYPES:
                validate("manifest", data)
                manifest = layout.read_manifest(desc.digest)
                assert manifest.config.media_type == OCI_CONFIG
                validate("config", layout.read_blob(manifest.config.digest))
            elif desc.media_type in INDEX_TYPES:
                validate("index", data)
            seen += 1
    assert seen >= 8


def test_index_json_lists_refs_in_order(sample: tuple[Layout, list[SampleImage]]) -> None:
    layout, _ = sample
    index = json.loads((layout.root / "index.json").read_bytes())
    names = [d["annotations"][ANNOTATION_REF_NAME] for d in index["manifests"]]
    assert names == ["hello:1-bookworm", "hello:1.0-bookworm", "world:2.0"]
    assert list(layout.refs()) == names


def test_set_ref_replaces_and_remove_ref(sample: tuple[Layout, list[SampleImage]]) -> None:
    layout, images = sample
    layout.set_ref("hello:1-bookworm", images[0].manifest)
    assert layout.resolve("hello:1-bookworm").digest == images[0].manifest.digest
    assert len(layout.index().manifests) == 3
    layout.remove_ref("hello:1-bookworm")
    assert "hello:1-bookworm" not in layout.refs()
    with pytest.raises(VerifyError, match="hello:1.0-bookworm"):
        layout.resolve("nope:1")


def test_unnamed_entries_sort_after_named(sample: tuple[Layout, list[SampleImage]]) -> None:
    layout, images = sample
    layout.add_unnamed(images[1].manifest)
    layout.add_unnamed(images[1].manifest)
    entries = layout.index().manifests
    assert len(entries) == 4 and ANNOTATION_REF_NAME not in entries[-1].annotations


def test_set_ref_needs_the_content(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "l")
    missing = Index(()).descriptor()
    with pytest.raises(VerifyError, match="not in the layout"):
        layout.set_ref("x:1", missing)


def test_blobs_are_idempotent_and_checked(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "l")
    desc = layout.add_blob(Blob(b"hello", "text/plain"))
    assert layout.add_bytes(b"hello") == desc.digest
    path = layout.blob_path(desc.digest)
    assert path.read_bytes() == b"hello" and oct(path.stat().st_mode & 0o777) == "0o644"
    (tmp_path / "src").write_bytes(b"from a file")
    digest, size = layout.add_file(tmp_path / "src")
    assert layout.read_blob(digest) == b"from a file" and size == 11
    path.write_bytes(b"HELLO")  # corrupt it
    with pytest.raises(VerifyError, match="corrupt"):
        layout.read_blob(desc.digest)
    assert not list((tmp_path / "l" / "blobs" / "sha256").glob(".*"))


def test_walk_yields_children_first(sample: tuple[Layout, list[SampleImage]]) -> None:
    layout, images = sample
    order = [d.digest for d in layout.walk(layout.resolve("hello:1.0-bookworm"))]
    assert order[-1] == layout.resolve("hello:1.0-bookworm").digest
    for image in images:
        manifest = layout.read_manifest(image.manifest.digest)
        assert order.index(manifest.config.digest) < order.index(image.manifest.digest)
        assert order.index(image.layer.digest) < order.index(image.manifest.digest)


def test_open_refuses_other_directories(tmp_path: Path) -> None:
    with pytest.raises(VerifyError, match="not an OCI image layout"):
        Layout.open(tmp_path)
    Layout.create(tmp_path / "l")
    assert Layout.open(tmp_path / "l").refs() == {}
