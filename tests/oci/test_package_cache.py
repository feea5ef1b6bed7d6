"""PackagedStore: a packaged image and its attachments kept, and put back into another layout."""

from __future__ import annotations

import os
from pathlib import Path

from monogres_oci.attest.attach import SPDX_TYPE, attach
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import Blob
from monogres_oci.package.cache import Packaged, PackagedStore, packaged_key
from tests.support.oci_samples import SampleImage


def test_a_kept_image_comes_back_whole_in_a_new_layout(
        sample: tuple[Layout, list[SampleImage]], tmp_path: Path) -> None:
    layout, images = sample
    image = images[0].manifest
    sbom = attach(layout, image, SPDX_TYPE, Blob(b'{"spdxVersion": "SPDX-2.3"}', SPDX_TYPE), {})
    store = PackagedStore(tmp_path / "cache")
    key = packaged_key("a" * 64, 1700000000, "inputs")
    assert store.get(key) is None
    store.put(key, Packaged(((image, {"l": "v"}),), (sbom.descriptor,)), layout)
    # hard links, not copies: keeping costs no space on one filesystem
    layer = images[0].layer.descriptor().digest
    assert os.path.samefile(layout.blob_path(layer), store.blobs.blob_path(layer))

    packaged = store.get(key)
    assert packaged is not None and packaged.images == ((image, {"l": "v"}),)
    fresh = Layout.create(tmp_path / "fresh")
    store.restore(packaged, fresh)
    assert fresh.read_manifest(image.digest) == layout.read_manifest(image.digest)
    assert [d.digest for d in fresh.walk(image)] == [d.digest for d in layout.walk(image)]
    assert fresh.read_manifest(sbom.descriptor.digest).subject is not None
    assert [d.digest for d in fresh.index().manifests] == [sbom.descriptor.digest]


def test_a_record_whose_blob_is_gone_is_packaged_again(
        sample: tuple[Layout, list[SampleImage]], tmp_path: Path) -> None:
    layout, images = sample
    store = PackagedStore(tmp_path / "cache")
    key = packaged_key("b" * 64, 1, "inputs")
    store.put(key, Packaged(((images[0].manifest, {}),), ()), layout)
    store.blobs.blob_path(images[0].layer.descriptor().digest).unlink()
    assert store.get(key) is None


def test_the_key_changes_with_each_input() -> None:
    base = packaged_key("a" * 64, 1, "x")
    assert base == packaged_key("a" * 64, 1, "x")
    assert len({base, packaged_key("c" * 64, 1, "x"), packaged_key("a" * 64, 2, "x"),
                packaged_key("a" * 64, 1, "y")}) == 4
