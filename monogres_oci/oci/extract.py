"""Safe extraction of a ``tar+gzip`` layer into a directory, verified while it streams.

A layer comes from a registry, so it is untrusted until its digest has been checked, and even a
correctly signed layer must not write outside its destination. Hence:

* The layer is streamed once: the compressed bytes are hashed as they are read (and the
  uncompressed tar too, when a diff_id is given) while members are written into a staging
  directory inside the destination. Only when the whole stream matched its digest are the
  members moved into place; on any failure the staging directory is removed and the destination
  is untouched.
* Members are refused when their path is absolute or contains ``..``, when a symlink's target is
  absolute or climbs out of the root, when a hard link names something that is not an earlier
  regular file of the layer, when a path goes through a symlink of the layer, and when they are
  devices, FIFOs or anything else but files, directories and links.
* Owners are not restored (the files belong to whoever extracts), setuid/setgid/sticky bits are
  dropped, mtimes are restored.
* Merging into a non-empty destination: directories are merged, files and symlinks replace what
  was there, and a directory meeting a non-directory (a symlink to a directory included) is an
  error rather than something to follow.
"""

from __future__ import annotations

import gzip
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import BinaryIO, cast

from monogres_oci.errors import VerifyError
from monogres_oci.oci.digest import DigestReader

_STAGING_PREFIX = ".monogres-extract-"


def _member_path(name: str) -> str:
    """Return the normalised relative path of a member, or raise VerifyError if it escapes."""
    if name.startswith("/") or posixpath.isabs(name):
        raise VerifyError(f"layer member {name!r} has an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise VerifyError(f"layer member {name!r} climbs out of the destination with '..'")
    return "/".join(parts)


def _check_symlink(path: str, target: str, rooted: bool) -> None:
    if posixpath.isabs(target) and not rooted:
        raise VerifyError(f"layer symlink {path!r} -> {target!r} points outside the destination")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved == ".." or resolved.startswith("../"):
        raise VerifyError(f"layer symlink {path!r} -> {target!r} points outside the destination")


class _Extraction:
    """The state of one extraction into a staging directory."""

    def __init__(self, staging: Path, rooted: bool = False) -> None:
        self.staging = staging
        self.rooted = rooted
        self.symlinks: set[str] = set()
        self.files: set[str] = set()
        self.dir_meta: dict[str, tuple[int, int]] = {}
        self.paths: list[str] = []

    def _prepare(self, path: str) -> Path:
        """Create the parents of ``path`` and clear the way for it; return its staging path."""
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in self.symlinks:
                raise VerifyError(f"layer member {path!r} goes through the symlink {parent!r}")
            if parent in self.files:
                raise VerifyError(f"layer member {path!r} is under the file {parent!r}")
        target = self.staging / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            if target.is_dir() and not target.is_symlink():
                raise VerifyError(f"layer member {path!r} replaces a directory of the same layer")
            target.unlink()
            self.symlinks.discard(path)
            self.files.discard(path)
        return target

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        """Create one member in the staging directory."""
        path = _member_path(member.name)
        if not path:
            return  # the root entry: the destination already exists
        mode = member.mode & 0o777
        if member.isdir():
            if path in self.symlinks or path in self.files:
                raise VerifyError(f"layer directory {path!r} replaces a non-directory")
            self._prepare_parents_only(path)
            (self.staging / path).mkdir(exist_ok=True)
            self.dir_meta[path] = (mode, int(member.mtime))
        elif member.isreg():
            target = self._prepare(path)
            source = tar.extractfile(member)
            assert source is not None
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            with os.fdopen(os.open(target, flags, 0o600), "wb") as out:
                shutil.copyfileobj(source, out)
            os.chmod(target, mode)
            os.utime(target, (member.mtime, member.mtime))
            self.files.add(path)
        elif member.issym():
            _check_symlink(path, member.linkname, self.rooted)
            target = self._prepare(path)
            os.symlink(member.linkname, target)
            os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)
            self.symlinks.add(path)
        elif member.islnk():
            linked = _member_path(member.linkname)
            if linked not in self.files:
                raise VerifyError(
                    f"layer hard link {path!r} -> {member.linkname!r} does not name an earlier "
                    "regular file of the layer"
                )
            target = self._prepare(path)
            os.link(self.staging / linked, target)
            self.files.add(path)
        else:
            raise VerifyError(
                f"layer member {path!r} is a device, FIFO or other special file; refused"
            )
        self.paths.append(path)

    def _prepare_parents_only(self, path: str) -> None:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in self.symlinks or parent in self.files:
                raise VerifyError(
                    f"layer member {path!r} goes through the non-directory {parent!r}"
                )
        (self.staging / path).parent.mkdir(parents=True, exist_ok=True)

    def apply_directory_meta(self, dest: Path) -> None:
        """Give the layer's directories their modes and mtimes in ``dest``, deepest first.

        This runs after the merge because moving entries into a directory changes its mtime.
        """
        for path in sorted(self.dir_meta, key=lambda p: p.count("/"), reverse=True):
            mode, mtime = self.dir_meta[path]
            os.chmod(dest / path, mode)
            os.utime(dest / path, (mtime, mtime))


def _merge(source: Path, dest: Path) -> None:
    """Move the staged tree ``source`` into ``dest``, merging directories."""
    for name in sorted(os.listdir(source)):
        src, dst = source / name, dest / name
        src_is_dir = src.is_dir() and not src.is_symlink()
        try:
            dst_stat = os.lstat(dst)
        except FileNotFoundError:
            os.rename(src, dst)
            continue
        if stat.S_ISDIR(dst_stat.st_mode):
            if not src_is_dir:
                raise VerifyError(f"{dst} is a directory, but the layer has a non-directory there")
            _merge(src, dst)
        elif src_is_dir:
            raise VerifyError(
                f"{dst} exists and is not a directory (symlinks are not followed), "
                "but the layer has a directory there"
            )
        else:
            os.replace(src, dst)


def extract_layer(
    source: BinaryIO,
    dest: Path,
    *,
    digest: str | None = None,
    size: int | None = None,
    diff_id: str | None = None,
    rooted: bool = False,
) -> list[str]:
    """Extract the tar+gzip stream ``source`` into ``dest`` after checking it; return member paths.

    ``digest`` (and ``size``) are checked against the compressed bytes, ``diff_id`` against the
    uncompressed tar. Give at least ``digest`` for anything that came over the network. Raises
    VerifyError for a mismatch or an unsafe member; then nothing has been written to ``dest``.
    ``rooted``: ``dest`` stands for the root of an image's file system, where a symlink may name
    an absolute path (``/etc/python3.11/sitecustomize.py``); such links are kept for packaging
    and never followed here.
    """
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=dest))
    try:
        raw = DigestReader(source)
        state = _Extraction(staging, rooted)
        try:
            # The digest streams implement only what gzip and tarfile call (read).
            with gzip.GzipFile(fileobj=cast(BinaryIO, raw), mode="rb") as gz:
                plain = DigestReader(cast(BinaryIO, gz))
                with tarfile.open(
                    fileobj=cast(BinaryIO, plain), mode="r|", encoding="utf-8"
                ) as tar:
                    for member in tar:
                        state.add(tar, member)
                plain.drain()
        except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise VerifyError(f"layer is not a valid tar+gzip stream: {exc}") from exc
        if digest is not None:
            raw.verify(digest, size, what="layer")
        else:
            raw.drain()
        if diff_id is not None and plain.digest != diff_id:
            raise VerifyError(
                f"layer diff_id mismatch:\n  expected {diff_id}\n  got      {plain.digest}"
            )
        _merge(staging, dest)
        state.apply_directory_meta(dest)
        return state.paths
    finally:
        shutil.rmtree(staging, ignore_errors=True)
