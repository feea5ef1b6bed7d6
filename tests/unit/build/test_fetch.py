"""Fetching uses the cache, the distdir, then origins in order, and never admits a wrong sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from monogres_oci.build.fetch import Fetcher
from monogres_oci.catalog.model import Origin, Source
from monogres_oci.debian.archive import PrivateApt, SourceFileURI, pool_path
from monogres_oci.errors import ChecksumError, FetchError
from tests.support.sources import http_server


def _source(tmp_path: Path, content: bytes, origins: tuple[Origin, ...]) -> Source:
    return Source(file="thing-1.0.tar.gz", sha256=hashlib.sha256(content).hexdigest(), origins=origins)


def test_origins_are_tried_in_order_and_result_is_cached(tmp_path: Path) -> None:
    served = tmp_path / "www"
    served.mkdir()
    (served / "thing.tar.gz").write_bytes(b"payload")
    with http_server(served) as base:
        src = _source(tmp_path, b"payload", (
            Origin(url=f"{base}/missing.tar.gz"),  # 404: skipped
            Origin(url=f"{base}/thing.tar.gz"),
        ))
        fetcher = Fetcher(tmp_path / "cache")
        path = fetcher.fetch(src)
    assert path.read_bytes() == b"payload"
    assert path == tmp_path / "cache" / "sources" / "sha256" / src.sha256
    # the server is gone; the cache answers
    assert Fetcher(tmp_path / "cache").fetch(src) == path


def test_checksum_mismatch_stops_with_expected_and_got(tmp_path: Path) -> None:
    served = tmp_path / "www"
    served.mkdir()
    (served / "thing.tar.gz").write_bytes(b"tampered")
    (served / "good.tar.gz").write_bytes(b"payload")
    with http_server(served) as base:
        src = _source(tmp_path, b"payload", (
            Origin(url=f"{base}/thing.tar.gz"),
            Origin(url=f"{base}/good.tar.gz"),  # never reached: a mismatch is not a fallback
        ))
        with pytest.raises(ChecksumError) as err:
            Fetcher(tmp_path / "cache").fetch(src)
    msg = str(err.value)
    assert src.sha256 in msg
    assert hashlib.sha256(b"tampered").hexdigest() in msg
    assert "thing.tar.gz" in msg
    assert not any((tmp_path / "cache" / "sources" / "sha256").iterdir())


def test_distdir_is_used_offline_and_verified(tmp_path: Path) -> None:
    distdir = tmp_path / "dist"
    distdir.mkdir()
    (distdir / "thing-1.0.tar.gz").write_bytes(b"payload")
    src = _source(tmp_path, b"payload", (Origin(url="http://127.0.0.1:9/unreachable"),))
    assert Fetcher(tmp_path / "c1", distdir=distdir).fetch(src).read_bytes() == b"payload"
    (distdir / "thing-1.0.tar.gz").write_bytes(b"other")
    with pytest.raises(ChecksumError):
        Fetcher(tmp_path / "c2", distdir=distdir).fetch(src)


def test_all_origins_unreachable(tmp_path: Path) -> None:
    src = _source(tmp_path, b"x", (Origin(url="http://127.0.0.1:9/a.tar.gz"),
                                   Origin(url="file:///nonexistent/a.tar.gz")))
    with pytest.raises(FetchError) as err:
        Fetcher(tmp_path / "cache").fetch(src)
    assert "http://127.0.0.1:9/a.tar.gz" in str(err.value)
    assert "file:///nonexistent/a.tar.gz" in str(err.value)
    assert "--distdir" in str(err.value)


class _IndexWithout(PrivateApt):
    """The archive's index as apt sees it once a suite has moved on: the pinned version is gone
    (apt-get source answers as it does then); the pool is a real HTTP server."""

    def source_uris(self, package: str) -> list[SourceFileURI]:
        raise FetchError(f"Debian source package {package} is not in the archive (E: Can not "
                         "find version)")


def test_pool_path_follows_debians_layout() -> None:
    assert pool_path("postgresql-17=17.11-0+deb13u1", "postgresql-17_17.11.orig.tar.bz2") == \
        "pool/main/p/postgresql-17/postgresql-17_17.11.orig.tar.bz2"
    assert pool_path("libh3", "libh3_4.2.1.orig.tar.gz") == "pool/main/libh/libh3/libh3_4.2.1.orig.tar.gz"
    assert pool_path("lib", "lib_1.orig.tar.gz") == "pool/main/l/lib/lib_1.orig.tar.gz"


def test_a_version_the_index_has_dropped_is_fetched_from_the_pool(tmp_path: Path) -> None:
    """A release pinned when it was current still builds after the archive moved on: its file is
    taken from the pool path and admitted only with the pinned sha256."""
    mirror = tmp_path / "mirror"
    pooled = mirror / "pool/main/p/pg-thing/pg-thing_1.0.orig.tar.gz"
    pooled.parent.mkdir(parents=True)
    pooled.write_bytes(b"payload")
    origin = Origin(debian_package="pg-thing=1.0-1", debian_file="pg-thing_1.0.orig.tar.gz")
    lines: list[str] = []
    with http_server(mirror) as base:
        apt = _IndexWithout(tmp_path / "apt", mirror=base)
        path = Fetcher(tmp_path / "cache", progress=lines.append, apt=apt).fetch(
            _source(tmp_path, b"payload", (origin,)))
        assert path.read_bytes() == b"payload"
        assert any("no longer lists pg-thing=1.0-1; trying its pool path" in line for line in lines), lines
        # The pool serving other bytes is refused like any origin.
        pooled.write_bytes(b"tampered")
        with pytest.raises(ChecksumError):
            Fetcher(tmp_path / "cache2", apt=apt).fetch(_source(tmp_path, b"payload", (origin,)))
        # Gone from the pool too: the error says where it looked.
        pooled.unlink()
        with pytest.raises(FetchError) as err:
            Fetcher(tmp_path / "cache3", apt=apt).fetch(_source(tmp_path, b"payload", (origin,)))
    assert f"{base}/pool/main/p/pg-thing/pg-thing_1.0.orig.tar.gz" in str(err.value)
    assert "404" in str(err.value)
