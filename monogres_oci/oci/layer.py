"""Deterministic ``tar+gzip`` layers: the same files and epoch always give the same digest.

The rules, which are what makes two builds on two machines produce one digest:

* Entries are sorted by archive path compared component by component, in code point order, so a
  directory's whole subtree follows it (``lib``, ``lib/x.so``, then ``lib-x``) and the order
  depends neither on the file system nor on the locale.
* Every parent directory is emitted as a directory entry before its children: ORAS and some
  runtimes create no missing parents.
* Owner uid/gid 0 (unless overridden per path), user and group *names* empty, mtime the given
  SOURCE_DATE_EPOCH; directories 0755, files 0755 if the owner may execute them else 0644,
  symlinks 0777 with their target kept verbatim. Overrides may set another mode.
* Hard links are stored as separate regular files. Whether a build tool hard-links two outputs
  or copies them is an accident of the build; storing contents keeps the digest a function of
  the tree's *contents* only (the cost, some duplicated bytes, is small for install trees).
* Sockets, FIFOs and device files are refused: an install tree never needs them.
* GNU tar format: no PAX records at all (so no atime/ctime), names longer than 100 bytes go in
  ``././@LongLink`` entries whose own header fields are fixed. Names are encoded in UTF-8. The
  archive ends with exactly two zero blocks, without padding to a record size (as Go's
  archive/tar writes it; ORAS relies on that, see END_OF_ARCHIVE).
* gzip with mtime 0, no file name, OS byte "unknown" (255), and compression level 6: zlib's
  default, a good size/speed balance, and what most layer writers use. The stream is deflated
  in independent 1 MiB blocks on every core (``pgzip``): the bytes depend on the input and the
  block size only, never on the number of threads. (Since 2026-12-06; layers written before
  were one deflate stream, so every layer digest changed once then.) The compressed bytes
  depend on the zlib implementation; Debian's zlib has produced the same deflate stream for a
  given level for decades, but a zlib-ng build would differ.

The layer is streamed: files are read in chunks and the compressed output goes straight to the
destination, so a large tree never has to fit in memory.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, cast

from monogres_oci.errors import BuildError
from monogres_oci.oci.digest import CHUNK_SIZE, DigestWriter
from monogres_oci.oci.model import (
    ANNOTATION_TITLE,
    OCI_LAYER_TAR_GZIP,
    ORAS_CONTENT_DIGEST,
    ORAS_UNPACK,
    Descriptor,
)
from monogres_oci.oci.pgzip import ParallelGzipWriter

GZIP_LEVEL = 6
DIR_MODE = 0o755
FILE_MODE = 0o644
EXEC_MODE = 0o755
LINK_MODE = 0o777
# Two zero blocks end a tar archive. Nothing follows them: Python's TarFile would pad the archive
# to 10 KiB records, but ORAS hashes only what its tar reader consumes (up to these blocks) and
# compares that with io.deis.oras.content.digest, so padding would make every pull fail.
END_OF_ARCHIVE = b"\0" * (2 * tarfile.BLOCKSIZE)


@dataclass(frozen=True)
class LayerEntry:
    """One member of a layer: its path inside the archive and the file on disk it comes from.

    ``source`` None makes a directory entry with no counterpart on disk.
    """

    path: str
    source: Path | None = None


@dataclass(frozen=True)
class Override:
    """Owner and mode to record for one archive path instead of the normalised defaults."""

    uid: int = 0
    gid: int = 0
    mode: int | None = None


@dataclass(frozen=True)
class LayerInfo:
    """What identifies a written layer: compressed digest and size, and the uncompressed diff_id."""

    digest: str
    size: int
    diff_id: str
    media_type: str = OCI_LAYER_TAR_GZIP

    def descriptor(self, annotations: Mapping[str, str] | None = None) -> Descriptor:
        """Return the descriptor a manifest lists for this layer."""
        return Descriptor(self.media_type, self.digest, self.size, annotations or {})

    def oras_annotations(self) -> dict[str, str]:
        """Return the annotations that make ``oras pull -o DIR`` unpack this layer at DIR's root.

        ORAS checks the uncompressed tar against ``io.deis.oras.content.digest`` when present,
        so that value must be the diff_id.
        """
        return {ANNOTATION_TITLE: ".", ORAS_UNPACK: "true", ORAS_CONTENT_DIGEST: self.diff_id}


def archive_path(path: str) -> str:
    """Normalise an archive path to ``a/b/c`` form; refuse absolute paths and ``..``."""
    pure = PurePosixPath(path)
    if pure.is_absolute():
        raise ValueError(f"layer path {path!r} is absolute; paths are relative to the layer root")
    parts = [part for part in pure.parts if part != "."]
    if not parts or ".." in parts:
        raise ValueError(f"layer path {path!r} is empty or climbs out of the layer root")
    return "/".join(parts)


def tree_entries(root: Path, prefix: str = "") -> list[LayerEntry]:
    """List every file, directory and symlink under ``root``, placed under ``prefix`` in the layer.

    ``root`` itself is not an entry (the layer root has none) unless ``prefix`` is given, in
    which case ``prefix`` and its parents become directories.
    """
    if not root.is_dir():
        raise BuildError(f"cannot make a layer from {root}: not a directory")
    base = archive_path(prefix) if prefix.strip("/.") else ""
    entries: list[LayerEntry] = []

    def walk(directory: Path, inside: str) -> None:
        with os.scandir(directory) as scan:
            children = sorted(scan, key=lambda item: item.name)
        for child in children:
            name = f"{inside}/{child.name}" if inside else child.name
            entries.append(LayerEntry(name, Path(child.path)))
            if child.is_dir(follow_symlinks=False):
                walk(Path(child.path), name)

    walk(root, base)
    if base:
        entries.append(LayerEntry(base, None))
    return entries


def _sort_key(path: str) -> tuple[str, ...]:
    return tuple(path.split("/"))


def _is_dir(entry: LayerEntry) -> bool:
    return entry.source is None or entry.source.is_dir() and not entry.source.is_symlink()


def _plan(entries: Iterable[LayerEntry]) -> list[LayerEntry]:
    """Normalise paths, add missing parents, refuse duplicates, sort."""
    by_path: dict[str, LayerEntry] = {}
    for entry in entries:
        path = archive_path(entry.path)
        if path in by_path:
            # Two trees placed under one prefix both list that directory: harmless. Anything
            # else listed twice would make the layer depend on which copy wins.
            if _is_dir(by_path[path]) and _is_dir(entry):
                continue
            raise BuildError(f"layer path {path!r} is listed twice")
        by_path[path] = LayerEntry(path, entry.source)
    for path in list(by_path):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            by_path.setdefault(parent, LayerEntry(parent, None))
    return sorted(by_path.values(), key=lambda item: _sort_key(item.path))


def _tarinfo(entry: LayerEntry, epoch: int, override: Override | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.mtime = epoch
    info.uname = info.gname = ""
    info.uid = info.gid = 0
    if entry.source is None:
        info.type, info.mode = tarfile.DIRTYPE, DIR_MODE
    else:
        st = os.lstat(entry.source)
        if stat.S_ISDIR(st.st_mode):
            info.type, info.mode = tarfile.DIRTYPE, DIR_MODE
        elif stat.S_ISREG(st.st_mode):
            info.type = tarfile.REGTYPE
            info.mode = EXEC_MODE if st.st_mode & stat.S_IXUSR else FILE_MODE
            info.size = st.st_size
        elif stat.S_ISLNK(st.st_mode):
            info.type, info.mode = tarfile.SYMTYPE, LINK_MODE
            info.linkname = os.readlink(entry.source)
        else:
            raise BuildError(
                f"cannot put {entry.source} in a layer: not a file, directory or symlink "
                "(sockets, FIFOs and devices have no place in an install tree)"
            )
    if override is not None:
        info.uid, info.gid = override.uid, override.gid
        if override.mode is not None:
            info.mode = override.mode & 0o7777
    return info


def _copy_content(source: Path, size: int, out: DigestWriter) -> None:
    """Copy exactly ``size`` bytes of ``source`` and pad them to a whole tar block."""
    copied = 0
    with open(source, "rb") as content:
        while chunk := content.read(min(CHUNK_SIZE, size - copied)):
            out.write(chunk)
            copied += len(chunk)
    if copied != size:
        raise BuildError(f"{source} changed size while it was being packed; was it still written?")
    remainder = size % tarfile.BLOCKSIZE
    if remainder:
        out.write(b"\0" * (tarfile.BLOCKSIZE - remainder))


def write_layer(
    entries: Iterable[LayerEntry],
    out: BinaryIO,
    *,
    epoch: int,
    overrides: Mapping[str, Override] | None = None,
    threads: int | None = None,
) -> LayerInfo:
    """Write the deterministic tar+gzip of ``entries`` to ``out`` and return its digests.
    ``threads`` (default: every core) compress; the bytes are the same for any number."""
    if epoch < 0:
        raise ValueError(f"SOURCE_DATE_EPOCH must not be negative, got {epoch}")
    fixed = {archive_path(path): value for path, value in (overrides or {}).items()}
    compressed = DigestWriter(out)
    # The digest streams implement only what the gzip writer calls (write, flush).
    with ParallelGzipWriter(cast(BinaryIO, compressed), GZIP_LEVEL, threads=threads) as gz:
        uncompressed = DigestWriter(cast(BinaryIO, gz))
        for entry in _plan(entries):
            info = _tarinfo(entry, epoch, fixed.get(entry.path))
            uncompressed.write(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "strict"))
            if info.type == tarfile.REGTYPE:
                assert entry.source is not None
                _copy_content(entry.source, info.size, uncompressed)
        uncompressed.write(END_OF_ARCHIVE)
    return LayerInfo(compressed.digest, compressed.size, uncompressed.digest)


def layer_bytes(
    entries: Iterable[LayerEntry],
    *,
    epoch: int,
    overrides: Mapping[str, Override] | None = None,
) -> tuple[bytes, LayerInfo]:
    """Build a layer in memory; fine for trees of some tens of megabytes."""
    buffer = io.BytesIO()
    info = write_layer(entries, buffer, epoch=epoch, overrides=overrides)
    return buffer.getvalue(), info


def layer_file(
    entries: Iterable[LayerEntry],
    path: Path,
    *,
    epoch: int,
    overrides: Mapping[str, Override] | None = None,
) -> LayerInfo:
    """Build a layer into the file ``path`` (written beside it first, then renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            info = write_layer(entries, out, epoch=epoch, overrides=overrides)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return info
