"""An OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/sha256/<hex>``) on disk.

The layout is the hand-off between packaging and publishing: everything is written here first,
content-addressed, and a registry push only copies what the layout holds.

Guarantees:

* Blobs are written once (a blob already present with the right size is left alone) and
  atomically: to a temporary file in the same directory, then renamed, so a reader or a crash
  never sees half a blob.
* ``index.json`` names references with the ``org.opencontainers.image.ref.name`` annotation and
  lists them in a fixed order (named entries by name, then unnamed ones by digest), and every
  JSON file is canonical, so writing the same content twice gives a byte-identical layout.
* One writer at a time: ``index.json`` is read, changed and replaced on every update.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar, cast

from monogres_oci.atomic import write_atomically
from monogres_oci.errors import VerifyError
from monogres_oci.oci.digest import CHUNK_SIZE, DigestWriter, encoded, sha256_digest
from monogres_oci.oci.model import (
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    Blob,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    canonical_json,
)
from monogres_oci.oci.parse import parse_index, parse_manifest, parse_manifest_or_index

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
LAYOUT_VERSION = "1.0.0"

T = TypeVar("T")


def _entry_key(desc: Descriptor) -> tuple[int, str, str]:
    name = desc.annotations.get(ANNOTATION_REF_NAME)
    return (0, name, desc.digest) if name is not None else (1, "", desc.digest)


class Layout:
    """An OCI image layout rooted at a directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    def create(cls, root: Path) -> Layout:
        """Open the layout at ``root``, creating an empty one if there is none."""
        layout = cls(root)
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        marker = canonical_json({"imageLayoutVersion": LAYOUT_VERSION})
        marker_path = root / LAYOUT_FILE
        if not marker_path.exists() or marker_path.read_bytes() != marker:
            write_atomically(marker_path, marker)
        if not (root / INDEX_FILE).exists():
            layout._write_index([])
        return layout

    @classmethod
    def open(cls, root: Path) -> Layout:
        """Open an existing layout; raise VerifyError if ``root`` is not one."""
        marker_path = root / LAYOUT_FILE
        if not marker_path.is_file() or not (root / INDEX_FILE).is_file():
            raise VerifyError(f"{root} is not an OCI image layout (no {LAYOUT_FILE}/{INDEX_FILE})")
        return cls(root)

    # --- blobs -----------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """Return where the blob ``digest`` lives (whether or not it exists)."""
        return self.root / "blobs" / "sha256" / encoded(digest)

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        """Tell whether the blob is present (and has ``size`` bytes, when given)."""
        try:
            actual = self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            return False
        return size is None or actual == size

    def add_bytes(self, data: bytes) -> str:
        """Store ``data`` as a blob unless already there; return its digest."""
        digest = sha256_digest(data)
        if not self.has_blob(digest, len(data)):
            write_atomically(self.blob_path(digest), data)
        return digest

    def add_blob(self, blob: Blob) -> Descriptor:
        """Store a blob and return its descriptor."""
        self.add_bytes(blob.data)
        return blob.descriptor()

    def add_streamed(self, write: Callable[[BinaryIO], T]) -> tuple[str, int, T]:
        """Store what ``write`` writes to the stream it is given; return (digest, size, result).

        For big content (layers): it goes straight to a temporary file in the blob directory
        and is renamed to its digest, never held in memory.
        """
        directory = self.root / "blobs" / "sha256"
        fd, temp = tempfile.mkstemp(prefix=".blob.", suffix=".partial", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                counter = DigestWriter(out)
                result = write(cast(BinaryIO, counter))  # DigestWriter has all that writers use
            path = self.blob_path(counter.digest)
            if self.has_blob(counter.digest, counter.size):
                os.unlink(temp)
            else:
                os.chmod(temp, 0o644)
                os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return counter.digest, counter.size, result

    def add_file(self, source: Path) -> tuple[str, int]:
        """Copy the file ``source`` in as a blob; return (digest, size)."""

        def copy(out: BinaryIO) -> None:
            with open(source, "rb") as src:
                shutil.copyfileobj(src, out, CHUNK_SIZE)

        digest, size, _ = self.add_streamed(copy)
        return digest, size

    def open_blob(self, digest: str) -> BinaryIO:
        """Open a blob for reading (unverified: callers that need trust use read_blob)."""
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError as exc:
            raise VerifyError(f"layout {self.root} has no blob {digest}") from exc

    def read_blob(self, digest: str) -> bytes:
        """Return a blob's bytes after checking them against their digest."""
        with self.open_blob(digest) as blob:
            data = blob.read()
        if sha256_digest(data) != digest:
            raise VerifyError(f"layout {self.root}: blob {digest} is corrupt (digest mismatch)")
        return data

    # --- manifests, indexes, configs -------------------------------------------------------

    def add_config(self, config: ImageConfig) -> Descriptor:
        """Store an image config; return its descriptor."""
        return self.add_blob(config.blob)

    def add_manifest(self, manifest: Manifest | Index) -> Descriptor:
        """Store an image manifest or index; return its descriptor (no platform, no ref)."""
        self.add_bytes(manifest.to_json())
        return manifest.descriptor()

    def read_manifest(self, digest: str) -> Manifest:
        """Read and parse the image manifest ``digest``."""
        return parse_manifest(self.read_blob(digest))

    def read_index(self, digest: str) -> Index:
        """Read and parse the image index ``digest``."""
        return parse_index(self.read_blob(digest))

    def read_node(self, desc: Descriptor) -> Manifest | Index:
        """Read the manifest or index a descriptor points to."""
        return parse_manifest_or_index(self.read_blob(desc.digest), desc.media_type)

    def children(self, desc: Descriptor) -> list[Descriptor]:
        """Return what ``desc`` references: config and layers, or an index's manifests."""
        if desc.media_type in INDEX_TYPES:
            return list(self.read_index(desc.digest).manifests)
        if desc.media_type in MANIFEST_TYPES:
            manifest = self.read_manifest(desc.digest)
            return [manifest.config, *manifest.layers]
        return []

    def walk(self, desc: Descriptor) -> Iterator[Descriptor]:
        """Yield every descriptor reachable from ``desc``, children before parents, once each."""
        seen: set[str] = set()

        def visit(node: Descriptor) -> Iterator[Descriptor]:
            if node.digest in seen:
                return
            seen.add(node.digest)
            for child in self.children(node):
                yield from visit(child)
            yield node

        yield from visit(desc)

    # --- index.json --------------------------------------------------------------------------

    def index(self) -> Index:
        """Return the layout's top-level index (index.json)."""
        path = self.root / INDEX_FILE
        try:
            return parse_index(path.read_bytes(), OCI_INDEX)
        except FileNotFoundError as exc:
            raise VerifyError(f"{self.root} is not an OCI image layout (no {INDEX_FILE})") from exc

    def _write_index(self, entries: list[Descriptor]) -> None:
        index = Index(tuple(sorted(entries, key=_entry_key)))
        write_atomically(self.root / INDEX_FILE, index.to_json())

    def set_ref(self, name: str, desc: Descriptor) -> Descriptor:
        """Point the reference ``name`` at ``desc`` in index.json (replacing any previous target).

        The content must already be in the layout. Returns the entry as recorded.
        """
        if not self.has_blob(desc.digest, desc.size):
            raise VerifyError(f"cannot name {desc.digest} {name!r}: it is not in the layout")
        entry = desc.with_annotations({ANNOTATION_REF_NAME: name})
        others = [
            d for d in self.index().manifests if d.annotations.get(ANNOTATION_REF_NAME) != name
        ]
        self._write_index([*others, entry])
        return entry

    def add_unnamed(self, desc: Descriptor) -> None:
        """List ``desc`` once in index.json without a name (e.g. a referrer to publish)."""
        entries = list(self.index().manifests)
        if not any(
            d.digest == desc.digest and ANNOTATION_REF_NAME not in d.annotations for d in entries
        ):
            self._write_index([*entries, desc])

    def remove_ref(self, name: str) -> None:
        """Drop the reference ``name`` from index.json (its blobs stay)."""
        entries = [
            d for d in self.index().manifests if d.annotations.get(ANNOTATION_REF_NAME) != name
        ]
        self._write_index(entries)

    def refs(self) -> dict[str, Descriptor]:
        """Return the named references of index.json, by name in sorted order."""
        out: dict[str, Descriptor] = {}
        for desc in self.index().manifests:
            name = desc.annotations.get(ANNOTATION_REF_NAME)
            if name is not None:
                out[name] = desc
        return dict(sorted(out.items()))

    def resolve(self, name: str) -> Descriptor:
        """Return the descriptor named ``name``; raise VerifyError listing the names there are."""
        refs = self.refs()
        if name not in refs:
            known = ", ".join(refs) or "none"
            raise VerifyError(f"layout {self.root} has no reference {name!r} (it has: {known})")
        return refs[name]
