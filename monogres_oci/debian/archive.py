"""Debian source packages as a fetch origin, through a private apt configuration.

The machine's own apt setup is read (never modified): its archive URIs are reused with the suites
and ``deb-src`` lines that source fetching needs, in a state directory of our own. That way no
mirror host is ever written anywhere but in the machine's apt configuration itself.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from monogres_oci.debian.sources import system_mirror
from monogres_oci.errors import BuildError, FetchError
from monogres_oci.runner import run

SUITES = ("sid", "trixie", "bookworm")


def archive_mirror() -> str:
    """This machine's Debian mirror, as fetching sees it: a FetchError when there is none."""
    try:
        return system_mirror()
    except BuildError as exc:
        raise FetchError(str(exc)) from None


def pool_path(package: str, file_name: str, component: str = "main") -> str:
    """Where the archive keeps a source package's file: ``pool/COMPONENT/PREFIX/NAME/FILE``.

    PREFIX is the name's first letter, or its first four for ``lib*`` names (Debian policy's pool
    layout). The path does not depend on the version, and a mirror keeps a file there for a while
    after the index has moved on to a newer version.
    """
    name = package.split("=", 1)[0]
    prefix = name[:4] if name.startswith("lib") and len(name) > 3 else name[:1]
    return f"pool/{component}/{prefix}/{name}/{file_name}"


@dataclass(frozen=True)
class SourceFileURI:
    """One file of a Debian source package as apt would download it."""

    uri: str
    name: str
    size: int


class PrivateApt:
    """apt-get with our own sources list and state, so the host's apt setup is left alone."""

    def __init__(self, state_dir: Path, suites: tuple[str, ...] = SUITES,
                 binary_arch: str = "", mirror: str = "") -> None:
        self.state_dir = state_dir
        self.suites = suites
        self._mirror = mirror  # empty: this machine's, read when first needed
        # With an architecture, the binary package indexes too (the importer reads their
        # descriptions); source fetching needs only the Sources indexes.
        self.binary_arch = binary_arch
        self._updated = False

    def _options(self) -> list[str]:
        d = self.state_dir
        return [
            "-o", f"Dir::Etc::SourceList={d / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={d / 'lists'}",
            "-o", f"Dir::Cache={d / 'cache'}",
            "-o", "Acquire::Check-Valid-Until=false",
            "-o", "APT::Sandbox::User=root",
        ]

    def update(self) -> None:
        """Write the sources list and download the package indexes (once per instance)."""
        if self._updated:
            return
        mirror = self.mirror()
        (self.state_dir / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (self.state_dir / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        lines = [f"deb-src {mirror} {suite} main" for suite in self.suites]
        if self.binary_arch:
            lines += [f"deb [arch={self.binary_arch}] {mirror} {suite} main" for suite in self.suites]
        (self.state_dir / "sources.list").write_text("\n".join(lines) + "\n")
        run(["apt-get", *self._options(), "update"], what="apt-get update (private sources list)")
        self._updated = True

    def mirror(self) -> str:
        """The archive URI the sources list names."""
        if not self._mirror:
            self._mirror = archive_mirror()
        return self._mirror

    def pool_uri(self, package: str, file_name: str) -> str:
        """The file's URI in the archive's pool, which apt would use if the index still listed it."""
        return f"{self.mirror().rstrip('/')}/{pool_path(package, file_name)}"

    def indexes(self, kind: str) -> list[tuple[str, Path]]:
        """(suite, file) of each downloaded index of ``kind`` ("Sources" or "Packages"), in the
        order of the sources list; the files are as apt keeps them (compressed)."""
        self.update()
        listing = run(["apt-get", *self._options(), "indextargets", "--format",
                       "$(CODENAME)\t$(FILENAME)", f"Created-By: {kind}"],
                      what="apt-get indextargets (private sources list)").stdout
        found = []
        for line in listing.splitlines():
            suite, _, name = line.partition("\t")
            if name and Path(name).is_file():
                found.append((suite, Path(name)))
        return found

    def read_index(self, path: Path) -> str:
        """An index file's text, decompressed by apt's own helper (lz4, xz, ...)."""
        return run(["/usr/lib/apt/apt-helper", "cat-file", str(path)],
                   what=f"apt-helper cat-file {path.name}").stdout

    def source_uris(self, package: str) -> list[SourceFileURI]:
        """The files of source package ``NAME=VERSION`` as apt would fetch them."""
        self.update()
        result = run(
            ["apt-get", *self._options(), "source", "--print-uris", "--download-only", package],
            check=False,
        )
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
            raise FetchError(
                f"Debian source package {package} is not in the archive ({'; '.join(tail)}); "
                "check the name and version in the catalog (apt-cache showsrc NAME)"
            )
        files = []
        for line in result.stdout.splitlines():
            if not line.startswith("'"):
                continue
            fields = shlex.split(line)
            if len(fields) >= 3 and re.fullmatch(r"\d+", fields[2]):
                files.append(SourceFileURI(uri=fields[0], name=fields[1], size=int(fields[2])))
        return files

    def source_file_uri(self, package: str, file_name: str) -> str:
        """The download URI of one file of a source package."""
        for f in self.source_uris(package):
            if f.name == file_name:
                return f.uri
        names = ", ".join(f.name for f in self.source_uris(package))
        raise FetchError(f"Debian source package {package} has no file {file_name} (it has: {names})")
