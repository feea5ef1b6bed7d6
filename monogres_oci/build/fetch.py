"""Fetch sources into a content-addressed cache, verifying sha256 before anything uses them.

Every tarball is read through once before it is used (see :mod:`monogres_oci.build.source_safety`).
Order of look-up: the cache (``CACHE/sources/sha256/<hex>``), then an offline ``--distdir`` of
pre-downloaded files (by file name, as Bazel's --distdir), then each origin in catalog order. An
origin that cannot be reached is skipped; an origin that serves the wrong bytes stops everything:
a pinned checksum that does not match is a supply-chain event, not a network hiccup.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from monogres_oci.build.source_safety import check_tarball
from monogres_oci.catalog.model import Origin, Source
from monogres_oci.debian.archive import PrivateApt
from monogres_oci.errors import ChecksumError, FetchError
from monogres_oci.progress import TransferMeter

CHUNK = 1 << 20
TIMEOUT = 30.0


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Fetcher:
    """Gets pinned source files, from cache, distdir or origins, verified."""

    def __init__(
        self,
        cache_dir: Path,
        distdir: Path | None = None,
        progress: Callable[[str], None] = lambda _: None,
        apt: PrivateApt | None = None,
    ) -> None:
        self.store = cache_dir / "sources" / "sha256"
        self.distdir = distdir
        self.progress = progress
        self._apt = apt or PrivateApt(cache_dir / "apt")

    def cached_path(self, source: Source) -> Path:
        return self.store / source.sha256

    def is_cached(self, source: Source) -> bool:
        return self.cached_path(source).is_file()

    def fetch(self, source: Source) -> Path:
        """Return the path of the verified file, downloading it if needed; a tarball is read
        through once (then marked) to refuse members that would leave the build tree."""
        target = self._obtain(source)
        marker = target.with_name(f"{target.name}.safe")
        if not marker.is_file():
            members = check_tarball(target, source.file)
            marker.write_text(f"{members} members checked\n")
        return target

    def _obtain(self, source: Source) -> Path:
        target = self.cached_path(source)
        if target.is_file():
            return target
        self.store.mkdir(parents=True, exist_ok=True)
        if self.distdir is not None:
            candidate = self.distdir / source.file
            if candidate.is_file():
                self._admit(candidate, source, f"distdir {candidate}", copy=True)
                self.progress(f"fetch {source.file}: from distdir")
                return target
        failures: list[str] = []
        for origin in source.origins:
            self.progress(f"fetch {source.file}: trying {origin.describe()}")
            url = ""
            try:
                url = self._resolve(origin)
                tmp = self._download(url, source.file)
            except FetchError as exc:
                where = f" at {url}" if url and url != origin.url else ""
                failures.append(f"{origin.describe()}: {exc}{where}")
                continue
            self._admit(tmp, source, origin.describe(), copy=False)
            return target
        tried = "\n".join(f"  - {f}" for f in failures)
        hint = f" or put {source.file} in --distdir" if self.distdir is None else \
            f" or put {source.file} in {self.distdir}"
        raise FetchError(f"could not fetch {source.file} from any origin:\n{tried}\n"
                         f"  check the network or the origins in the catalog{hint}")

    def _resolve(self, origin: Origin) -> str:
        if origin.url:
            return origin.url
        try:
            return self._apt.source_file_uri(origin.debian_package, origin.debian_file)
        except FetchError:
            # The index lists the newest version of a suite only, so a pinned older one drops
            # out of it (17.11 when 17.12 came); its file usually stays in the pool for a while.
            # Safe to try: the sha256 pinned from the signed index is checked on arrival.
            uri = self._apt.pool_uri(origin.debian_package, origin.debian_file)
            self.progress(f"fetch {origin.debian_file}: the archive's index no longer lists "
                          f"{origin.debian_package}; trying its pool path {uri}")
            return uri

    def _download(self, url: str, name_shown: str) -> Path:
        fd, name = tempfile.mkstemp(dir=self.store, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
                length = resp.headers.get("Content-Length", "")
                meter = TransferMeter(self.progress, f"fetch {name_shown}",
                                      int(length) if length.isdigit() else None)
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    meter.add(len(chunk))
                meter.finish()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            Path(name).unlink(missing_ok=True)
            if isinstance(exc, urllib.error.HTTPError):
                raise FetchError(f"HTTP {exc.code} {exc.reason}") from None
            reason = getattr(exc, "reason", None) or exc
            raise FetchError(str(reason)) from None
        return Path(name)

    def _admit(self, path: Path, source: Source, origin: str, *, copy: bool) -> None:
        """Move (or copy) a file into the store only if its sha256 is the pinned one."""
        got = sha256_file(path)
        if got != source.sha256:
            if not copy:
                path.unlink(missing_ok=True)
            raise ChecksumError(source.file, origin, source.sha256, got)
        target = self.cached_path(source)
        if copy:
            fd, tmp = tempfile.mkstemp(dir=self.store, prefix=".part-")
            os.close(fd)
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        else:
            os.replace(path, target)
