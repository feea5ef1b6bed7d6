"""What the Debian archive's signed indexes say about source and binary packages.

apt has checked each index against the suite's signed ``InRelease``, so a version and the sha256
of its files are pinned from here without downloading them. Paragraphs are filtered by plain
text before they are parsed: the Sources index of one suite is some 60 MB.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from monogres_oci.catalog.model import Origin, Source
from monogres_oci.debian.archive import archive_mirror
from monogres_oci.debian.deb822 import first_line, paragraphs
from monogres_oci.importer.versions import DebianVersion

# A source package builds a PostgreSQL extension when it build-depends on one of these (Debian's
# postgresql-common builds extensions for every supported release through them).
POSTGRES_BUILD_DEPENDS = ("postgresql-server-dev-all", "postgresql-all")


@dataclass(frozen=True)
class SourceFile:
    """One file of a source package, as the index lists it."""

    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class SourceRecord:
    """One version of a source package in one suite."""

    package: str
    version: str
    suite: str
    directory: str
    files: tuple[SourceFile, ...]
    build_depends: str
    homepage: str
    binaries: tuple[str, ...]
    vcs_browser: str

    @property
    def orig(self) -> SourceFile | None:
        """The upstream tarball (``.orig.tar.*``); None for a native package."""
        return next((f for f in self.files if re.search(r"\.orig\.tar\.[a-z0-9]+$", f.name)),
                    None)

    @property
    def debian_tarball(self) -> SourceFile | None:
        return next((f for f in self.files if f.name.endswith((".debian.tar.xz", ".debian.tar.gz"))),
                    None)

    @property
    def builds_extension(self) -> bool:
        return any(package_name(a) in POSTGRES_BUILD_DEPENDS
                   for a in first_alternatives(self.build_depends))

    def uri(self, mirror: str, file: SourceFile) -> str:
        return f"{mirror}/{self.directory}/{file.name}"


def first_alternatives(depends: str) -> list[str]:
    """The first alternative of each item of a Depends-like field, with its version, architecture
    and profile restrictions (``libh3-dev (>= 4) <!nocheck>``)."""
    items = (item.split("|", 1)[0].strip() for item in depends.replace("\n", " ").split(","))
    return [item for item in items if item]


def package_name(alternative: str) -> str:
    """The package an alternative names, without its restrictions."""
    return re.split(r"[\s(\[<:]", alternative, maxsplit=1)[0]


def _record(par: dict[str, str], suite: str) -> SourceRecord:
    files = []
    for line in par.get("checksums-sha256", "").splitlines():
        words = line.split()
        if len(words) == 3:
            files.append(SourceFile(name=words[2], sha256=words[0], size=int(words[1])))
    depends = ", ".join(par[k] for k in ("build-depends", "build-depends-arch",
                                          "build-depends-indep") if par.get(k))
    binaries = tuple(b.strip() for b in par.get("binary", "").replace("\n", " ").split(",")
                     if b.strip())
    return SourceRecord(package=par["package"], version=par["version"], suite=suite,
                        directory=par.get("directory", ""), files=tuple(files),
                        build_depends=depends, homepage=par.get("homepage", ""),
                        binaries=binaries, vcs_browser=par.get("vcs-browser", ""))


class IndexFiles(Protocol):
    """Where the indexes are: the private apt configuration (PrivateApt) in use."""

    def indexes(self, kind: str) -> list[tuple[str, Path]]: ...

    def read_index(self, path: Path) -> str: ...


class Archive:
    """The Sources and Packages indexes of the private apt configuration's suites, each read once
    and indexed by package name (its paragraphs parsed only when asked for)."""

    def __init__(self, apt: IndexFiles) -> None:
        self.apt = apt
        self._by_name: dict[str, dict[str, list[tuple[str, str]]]] = {}

    def _chunks(self, kind: str) -> dict[str, list[tuple[str, str]]]:
        """Package name -> [(suite, paragraph text)] of one kind of index."""
        if kind not in self._by_name:
            index: dict[str, list[tuple[str, str]]] = {}
            for suite, path in self.apt.indexes(kind):
                for chunk in self.apt.read_index(path).split("\n\n"):
                    if chunk.startswith("Package: "):
                        name = chunk[9:chunk.find("\n")] if "\n" in chunk else chunk[9:]
                        index.setdefault(name.strip(), []).append((suite, chunk))
            self._by_name[kind] = index
        return self._by_name[kind]

    def _paragraphs(self, kind: str, package: str) -> Iterator[tuple[str, dict[str, str]]]:
        for suite, chunk in self._chunks(kind).get(package, []):
            for par in paragraphs(chunk):
                yield suite, par

    def sources(self, package: str) -> list[SourceRecord]:
        """Every version of ``package`` in the suites, newest first."""
        found = [_record(par, suite) for suite, par in self._paragraphs("Sources", package)]
        return sorted(found, key=lambda r: DebianVersion(r.version), reverse=True)

    def extension_sources(self) -> list[SourceRecord]:
        """Every version of every source package that builds against PostgreSQL, newest first."""
        found = [_record(par, suite) for name, chunks in self._chunks("Sources").items()
                 for suite, chunk in chunks if any(n in chunk for n in POSTGRES_BUILD_DEPENDS)
                 for par in paragraphs(chunk)]
        return sorted((r for r in found if r.builds_extension),
                      key=lambda r: (r.package, DebianVersion(r.version)), reverse=True)

    def newest_postgres_major(self) -> int:
        """The newest PostgreSQL major the suites hold a server source package of (0: none)."""
        majors = [int(m.group(1)) for name in self._chunks("Sources")
                  if (m := re.fullmatch(r"postgresql-(\d+)", name))]
        return max(majors, default=0)

    def binary(self, package: str) -> Source | None:
        """The newest ``.deb`` of a binary package, as a pinned source (the Packages index's
        SHA256 and the archive's URL); None when no index lists it."""
        best: dict[str, str] | None = None
        for _, par in self._paragraphs("Packages", package):
            if par.get("filename") and par.get("sha256") and (
                    best is None or DebianVersion(par["version"]) > DebianVersion(best["version"])):
                best = par
        if best is None:
            return None
        mirror = archive_mirror()
        name = best["filename"].rsplit("/", 1)[-1]
        return Source(file=name, sha256=best["sha256"],
                      origins=(Origin(url=f"{mirror}/{best['filename']}"),))

    def synopsis(self, binaries: Iterable[str]) -> str:
        """The one-line description of the first of ``binaries`` a Packages index lists."""
        for name in binaries:
            for _, par in self._paragraphs("Packages", name):
                if par.get("description"):
                    return first_line(par["description"])
        return ""
