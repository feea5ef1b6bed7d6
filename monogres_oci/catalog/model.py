"""The catalog as immutable values: what the loader produces and the planner reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Origin:
    """One place a source file can be fetched from: a URL or a Debian source package's file."""

    url: str = ""
    debian_package: str = ""  # NAME=VERSION
    debian_file: str = ""

    def describe(self) -> str:
        """A short human description, for progress lines and errors."""
        if self.url:
            return self.url
        return f"debian:{self.debian_package} ({self.debian_file})"


@dataclass(frozen=True)
class Source:
    """A source file pinned by sha256, with the origins to try in order."""

    file: str
    sha256: str
    origins: tuple[Origin, ...]


@dataclass(frozen=True)
class Publisher:
    """Who publishes the artifacts; feeds the org.opencontainers.image.* annotations."""

    vendor: str
    url: str
    source: str
    documentation: str
    revision: str = ""


@dataclass(frozen=True)
class Distro:
    """A base environment: Postgres and its extensions are compiled in the very same one."""

    name: str
    suite: str
    base_image: str  # pinned by digest
    architectures: tuple[str, ...]
    toolchain_packages: tuple[str, ...]


@dataclass(frozen=True)
class OptionSet:
    """A named PostgreSQL build configuration (meson options and the -dev packages they need)."""

    name: str
    description: str
    buildtype: str
    meson_options: tuple[str, ...]
    build_packages: tuple[str, ...]


@dataclass(frozen=True)
class PostgresRelease:
    """One PostgreSQL release and the option sets and distros it is built for."""

    version: str
    source: Source
    option_sets: tuple[str, ...]
    distros: tuple[str, ...]

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def minor(self) -> int:
        return int(self.version.split(".")[1])

    @property
    def version_num(self) -> int:
        """PG_VERSION_NUM as server_version_num reports it (18.6 -> 180006)."""
        return self.major * 10000 + self.minor


@dataclass(frozen=True)
class ExtensionVersion:
    """One version of an extension and the Postgres majors it builds against."""

    version: str
    sql_version: str
    source: Source
    postgres_majors: tuple[int, ...]


@dataclass(frozen=True)
class Extension:
    """An extension: how to build it and what a client needs to know to load it."""

    name: str
    sql_name: str
    description: str
    homepage: str
    license: str
    shared_preload_libraries: tuple[str, ...]
    build_system: str
    build_packages: tuple[str, ...]
    make_flags: tuple[str, ...]
    versions: tuple[ExtensionVersion, ...]


@dataclass(frozen=True)
class Catalog:
    """A whole validated catalog."""

    path: str
    publisher: Publisher
    distros: tuple[Distro, ...]
    option_sets: tuple[OptionSet, ...]
    postgres: tuple[PostgresRelease, ...]
    extensions: tuple[Extension, ...]

    def distro(self, name: str) -> Distro:
        return next(d for d in self.distros if d.name == name)

    def option_set(self, name: str) -> OptionSet:
        return next(o for o in self.option_sets if o.name == name)

    def extension(self, name: str) -> Extension:
        return next(e for e in self.extensions if e.name == name)
