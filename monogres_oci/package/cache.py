"""Packaged images kept by what they were packaged from, so the same inputs are not packaged twice.

Packaging is deterministic: the same build output, epoch, catalog entry and packaging code give
the same bytes. So each target's packaged result (its platform images with their labels, and
the SBOM and provenance attached to them) is recorded under a key over all of those, with its
blobs in a content-addressed store beside it (hard links to the layout's, so it costs no space
on the same filesystem). A later build with the same key copies them into its layout instead of
compressing the tree again: a build with nothing new touches neither compiler nor packager.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from monogres_oci.atomic import write_atomically
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import Descriptor
from monogres_oci.oci.parse import parse_descriptor

_CODE = Path(__file__).resolve().parents[1]  # the whole package: packaging spans its stages
_LABELS = _CODE.parent / "labels"


@cache
def _packaging_code_digest() -> str:
    """This package's code and the label definitions: any change to them may change the bytes."""
    digest = hashlib.sha256()
    for root in (_CODE, _LABELS):
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in (".py", ".json", ".yaml", ".yml"):
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def packaged_key(target_key: str, epoch: int, inputs: Any) -> str:
    """The key of a target's packaged result: its input digest, its epoch, what else of the
    catalog goes into labels and attestations (``inputs``, JSON-able) and the packaging code."""
    doc = {"target": target_key, "epoch": epoch, "inputs": inputs,
           "code": _packaging_code_digest()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Packaged:
    """A target's packaged images (descriptor with platform, and labels) and their attachments
    (index.json entries of the SBOM and provenance)."""

    images: tuple[tuple[Descriptor, dict[str, str]], ...]
    attachments: tuple[Descriptor, ...]

    def to_json(self) -> dict[str, Any]:
        return {"images": [{"descriptor": d.to_dict(), "labels": labels}
                           for d, labels in self.images],
                "attachments": [d.to_dict() for d in self.attachments]}

    @staticmethod
    def from_json(doc: dict[str, Any]) -> Packaged:
        return Packaged(
            images=tuple((parse_descriptor(i["descriptor"]), dict(i["labels"]))
                         for i in doc["images"]),
            attachments=tuple(parse_descriptor(a) for a in doc["attachments"]))


class PackagedStore:
    """``<cache>/packaged``: records by key, and the blobs they need, as an OCI layout's blobs."""

    def __init__(self, cache_dir: Path) -> None:
        root = cache_dir / "packaged"
        self.blobs = Layout.open(root) if (root / "index.json").exists() else Layout.create(root)
        self.records = root / "records"

    def get(self, key: str) -> Packaged | None:
        try:
            doc = json.loads((self.records / f"{key}.json").read_text())
            packaged = Packaged.from_json(doc)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # never packaged, torn, or another version's: package again
        if not all(self.blobs.has_blob(d.digest, d.size) for d in _descriptors(self.blobs, packaged)):
            return None  # a blob went missing from the store
        return packaged

    def put(self, key: str, packaged: Packaged, layout: Layout) -> None:
        """Keep ``packaged`` (its blobs taken from ``layout``) under ``key``."""
        for desc in _descriptors(layout, packaged):
            _link(layout.blob_path(desc.digest), self.blobs, desc)
        self.records.mkdir(parents=True, exist_ok=True)
        write_atomically(self.records / f"{key}.json",
                         json.dumps(packaged.to_json(), indent=1, sort_keys=True).encode())

    def restore(self, packaged: Packaged, layout: Layout) -> None:
        """Put what ``packaged`` needs into ``layout``: every blob, and its attachments listed."""
        for desc in _descriptors(self.blobs, packaged):
            _link(self.blobs.blob_path(desc.digest), layout, desc)
        for entry in packaged.attachments:
            layout.add_unnamed(entry)


def _descriptors(layout: Layout, packaged: Packaged) -> list[Descriptor]:
    """Every blob of the images and attachments, children first (read from ``layout``)."""
    roots: Sequence[Descriptor] = [*(d for d, _ in packaged.images), *packaged.attachments]
    out: dict[str, Descriptor] = {}
    for root in roots:
        for desc in layout.walk(_bare(root)):
            out.setdefault(desc.digest, desc)
    return list(out.values())


def _bare(desc: Descriptor) -> Descriptor:
    return Descriptor(desc.media_type, desc.digest, desc.size)


def _link(source: Path, into: Layout, desc: Descriptor) -> None:
    """The blob at ``source`` in ``into``: a hard link where the filesystem allows, else a copy."""
    if into.has_blob(desc.digest, desc.size):
        return
    target = into.blob_path(desc.digest)
    tmp = target.with_name(f".link.{os.getpid()}.{target.name}")
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)

