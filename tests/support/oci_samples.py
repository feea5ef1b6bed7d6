"""Small OCI layouts for tests: a two-platform extension-like image and a single-platform one.

``sample_layout(root)`` writes, with one fixed epoch:

* ``hello:1.0-bookworm`` and ``hello:1-bookworm``: one index over linux/amd64 and linux/arm64
  manifests, each with a config and one tar+gzip layer (``lib/``, ``share/extension/``)
  annotated for ``oras pull``;
* ``world:2.0``: a single image manifest whose layer is the amd64 layer of ``hello``, so the
  blob is shared between two repositories.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from monogres_oci.attest.attach import INTOTO_TYPE, PREDICATE_ANNOTATION, SPDX_TYPE, attach
from monogres_oci.oci.layer import LayerEntry, LayerInfo, tree_entries, write_layer
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import (
    ANNOTATION_CREATED,
    Blob,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    rfc3339,
)

EPOCH = 1_750_000_000
PLATFORMS = (Platform("amd64"), Platform("arm64", variant="v8"))


def write_tree(root: Path, arch: str) -> Path:
    """Create a small install-like tree whose contents depend on ``arch``."""
    (root / "lib" / "bitcode").mkdir(parents=True, exist_ok=True)
    (root / "share" / "extension").mkdir(parents=True, exist_ok=True)
    so = root / "lib" / "hello.so"
    so.write_bytes(b"\x7fELF" + arch.encode() * 100)
    so.chmod(0o755)
    (root / "share" / "extension" / "hello.control").write_text(
        "comment = 'hello'\ndefault_version = '1.0'\nmodule_pathname = '$libdir/hello'\n"
    )
    (root / "share" / "extension" / "hello--1.0.sql").write_text("SELECT 1;\n")
    return root


@dataclass(frozen=True)
class SampleImage:
    """What was written for one platform."""

    platform: Platform
    manifest: Descriptor
    layer: LayerInfo
    tree: Path


def add_image(layout: Layout, tree: Path, platform: Platform,
              extra_labels: dict[str, str] | None = None) -> SampleImage:
    """Package ``tree`` as a one-layer image for ``platform`` into ``layout``."""
    _, _, info = layout.add_streamed(lambda out: write_layer(tree_entries(tree), out, epoch=EPOCH))
    labels = {ANNOTATION_CREATED: rfc3339(EPOCH), "org.opencontainers.image.title": "hello",
              **(extra_labels or {})}
    config = ImageConfig(
        architecture=platform.architecture,
        variant=platform.variant,
        created=rfc3339(EPOCH),
        labels=labels,
        diff_ids=(info.diff_id,),
    )
    manifest = Manifest(
        config=layout.add_config(config),
        layers=(info.descriptor(info.oras_annotations()),),
        annotations=labels,
    )
    desc = layout.add_manifest(manifest).with_platform(platform)
    return SampleImage(platform, desc, info, tree)


def sample_layout(root: Path, work: Path) -> tuple[Layout, list[SampleImage]]:
    """Write the sample layout at ``root`` (trees go under ``work``); see the module docstring."""
    layout = Layout.create(root)
    images = [
        add_image(layout, write_tree(work / p.architecture, p.architecture), p) for p in PLATFORMS
    ]
    index = Index(
        manifests=tuple(image.manifest for image in images),
        annotations={ANNOTATION_CREATED: rfc3339(EPOCH)},
    )
    index_desc = layout.add_manifest(index)
    layout.set_ref("hello:1.0-bookworm", index_desc)
    layout.set_ref("hello:1-bookworm", index_desc)
    world = Manifest(
        config=layout.add_config(
            ImageConfig(architecture="amd64", diff_ids=(images[0].layer.diff_id,))
        ),
        layers=(images[0].layer.descriptor(),),
    )
    layout.set_ref("world:2.0", layout.add_manifest(world))
    return layout, images


def many_images(layout: Layout, work: Path, count: int, size: int = 4096) -> list[str]:
    """``count`` single-layer images ``extN:1.0`` of ``size`` random bytes each, each with an
    SBOM and a provenance attached as `build` attaches them (for benches)."""
    names = []
    for n in range(count):
        src = work / f"src{n}"
        (src / "lib").mkdir(parents=True)
        (src / "lib" / f"ext{n}.so").write_bytes(os.urandom(size))
        entries = [LayerEntry("lib"), LayerEntry(f"lib/ext{n}.so", src / "lib" / f"ext{n}.so")]
        _, _, info = layout.add_streamed(lambda out, e=entries: write_layer(e, out, epoch=0))
        assert isinstance(info, LayerInfo)
        layer = info.descriptor()
        config = ImageConfig(architecture="amd64", diff_ids=(info.diff_id,))
        manifest = Manifest(config=layout.add_config(config), layers=(layer,))
        desc = layout.add_manifest(manifest).with_platform(Platform("amd64"))
        sbom = {"spdxVersion": "SPDX-2.3", "name": f"ext{n}", "files": [f"lib/ext{n}.so"]}
        attach(layout, desc, SPDX_TYPE, Blob(json.dumps(sbom).encode(), SPDX_TYPE),
               {PREDICATE_ANNOTATION: "https://spdx.dev/Document"})
        stmt = {"_type": "https://in-toto.io/Statement/v1", "subject": [],
                "predicateType": "https://slsa.dev/provenance/v1",
                "predicate": {"buildDefinition": {"buildType": "bench"}}}
        attach(layout, desc, INTOTO_TYPE, Blob(json.dumps(stmt).encode(), INTOTO_TYPE),
               {PREDICATE_ANNOTATION: "https://slsa.dev/provenance/v1"})
        index = layout.add_manifest(Index(manifests=(desc,)))
        layout.set_ref(f"ext{n}:1.0", index)
        names.append(f"ext{n}")
    return names
