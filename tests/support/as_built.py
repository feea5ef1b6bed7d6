"""Targets published as `build` + `publish` leave them, content aside: under each target's
rolling tag, an index whose platform manifest records the target's input digest and parts
(for registry-state tests and benches, which need many published targets, not real images)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import EMPTY_BLOB, Index, Manifest, Platform
from monogres_oci.package.images import INPUT_DIGEST
from monogres_oci.package.labels import INPUT_PARTS, format_parts
from monogres_oci.plan.published import Target, published_under


def add_as_built(layout: Layout, targets: Sequence[Target]) -> None:
    """One index per rolling tag over the targets' platform manifests, named in ``layout``."""
    by_tag: dict[str, list[Target]] = defaultdict(list)
    arch_of: dict[str, str] = {}
    for t in targets:
        repository, tag, arch = published_under(t)
        by_tag[f"{repository}:{tag}"].append(t)
        arch_of[t.key] = arch
    layout.add_blob(EMPTY_BLOB)
    for name, items in sorted(by_tag.items()):
        manifests = []
        for t in items:
            manifest = Manifest(config=EMPTY_BLOB.descriptor(), layers=(), annotations={
                INPUT_DIGEST: f"sha256:{t.key}", INPUT_PARTS: format_parts(t.key_parts())})
            manifests.append(layout.add_manifest(manifest).with_platform(
                Platform(architecture=arch_of[t.key], os="linux")))
        layout.set_ref(name, layout.add_manifest(Index(manifests=tuple(manifests))))
