"""Source tarballs that would write outside their tree or carry privileges are refused before
any build, naming the file and the member; ordinary trees pass."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from monogres_oci.build.fetch import Fetcher
from monogres_oci.build.source_safety import UnsafeSourceError, check_tarball
from monogres_oci.catalog.model import Origin, Source
from monogres_oci.errors import FetchError


def tarball(path: Path, *members: tarfile.TarInfo, mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for member in members:
            data = b"x" * member.size if member.isfile() else None
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


def entry(name: str, kind: bytes = tarfile.REGTYPE, *, link: str = "", mode: int = 0o644,
          size: int = 1) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    info.size = size if kind == tarfile.REGTYPE else 0
    return info


GOOD = (entry("pkg-1.0", tarfile.DIRTYPE, mode=0o755), entry("pkg-1.0/configure", mode=0o755),
        entry("pkg-1.0/src/a.c"), entry("pkg-1.0/src/b.c", tarfile.SYMTYPE, link="a.c"),
        entry("pkg-1.0/COPYING", tarfile.SYMTYPE, link="src/../src/a.c"),
        entry("pkg-1.0/c.c", tarfile.LNKTYPE, link="pkg-1.0/src/a.c"))

BAD = {
    "absolute": (entry("/etc/cron.d/evil"), "has an absolute path"),
    "dotdot": (entry("pkg-1.0/../../root/.bashrc"), "climbs out of the tree"),
    "symlink-absolute": (entry("pkg-1.0/x", tarfile.SYMTYPE, link="/etc/shadow"),
                         "symbolic link to the absolute path '/etc/shadow'"),
    "symlink-out": (entry("pkg-1.0/x", tarfile.SYMTYPE, link="../../etc"), "outside the tree"),
    "hardlink-out": (entry("pkg-1.0/x", tarfile.LNKTYPE, link="../etc/passwd"),
                     "hard link to '../etc/passwd'"),
    "device": (entry("pkg-1.0/sda", tarfile.BLKTYPE), "device node or FIFO"),
    "chardev": (entry("pkg-1.0/mem", tarfile.CHRTYPE), "device node or FIFO"),
    "fifo": (entry("pkg-1.0/pipe", tarfile.FIFOTYPE), "device node or FIFO"),
    "setuid": (entry("pkg-1.0/su", mode=0o4755), "setuid, setgid or sticky bits (mode 4755)"),
    "setgid": (entry("pkg-1.0/sg", mode=0o2755), "setuid, setgid or sticky bits"),
}


@pytest.mark.parametrize("compression", ["w:gz", "w:bz2", "w:xz", "w"])
def test_an_ordinary_tree_passes_in_any_compression(tmp_path: Path, compression: str) -> None:
    assert check_tarball(tarball(tmp_path / "ok.tar", *GOOD, mode=compression), "ok.tar") == len(GOOD)


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_kind_of_bad_member_is_refused_by_name(tmp_path: Path, case: str) -> None:
    member, problem = BAD[case]
    path = tarball(tmp_path / "pkg-1.0.tar.gz", *GOOD, member)
    with pytest.raises(UnsafeSourceError) as err:
        check_tarball(path, "pkg-1.0.tar.gz")
    assert err.value.member == member.name
    assert "source pkg-1.0.tar.gz refused before any build" in str(err.value)
    assert problem in str(err.value)


def test_fetch_refuses_an_unsafe_tarball_even_with_the_pinned_sha256(tmp_path: Path) -> None:
    distdir = tmp_path / "dist"
    distdir.mkdir()
    path = tarball(distdir / "pkg-1.0.tar.gz", *GOOD, BAD["setuid"][0])
    source = Source("pkg-1.0.tar.gz", hashlib.sha256(path.read_bytes()).hexdigest(),
                    (Origin(url="http://127.0.0.1:9/unreachable"),))
    with pytest.raises(UnsafeSourceError, match="pkg-1.0/su"):
        Fetcher(tmp_path / "cache", distdir=distdir).fetch(source)
    # Asked again (the file is in the cache now): still refused, never marked safe.
    with pytest.raises(UnsafeSourceError):
        Fetcher(tmp_path / "cache", distdir=distdir).fetch(source)


def test_a_safe_tarball_is_read_once(tmp_path: Path) -> None:
    distdir = tmp_path / "dist"
    distdir.mkdir()
    path = tarball(distdir / "pkg-1.0.tar.gz", *GOOD)
    source = Source("pkg-1.0.tar.gz", hashlib.sha256(path.read_bytes()).hexdigest(), ())
    fetched = Fetcher(tmp_path / "cache", distdir=distdir).fetch(source)
    marker = fetched.with_name(fetched.name + ".safe")
    assert marker.read_text() == f"{len(GOOD)} members checked\n"
    marker.write_text("kept\n")
    Fetcher(tmp_path / "cache", distdir=distdir).fetch(source)
    assert marker.read_text() == "kept\n"


def test_a_corrupt_tarball_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    good = tarball(tmp_path / "pkg.tar.gz", *GOOD).read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(FetchError, match="not a readable tarball"):
        check_tarball(cut, "cut.tar.gz")
