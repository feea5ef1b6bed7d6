"""The catalog as immutable values: what the loader produces and the planner reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from monogres_oci.catalog.ranges import ANY, VersionRange


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
class Conditional:
    """A catalog value that applies only to the Postgres releases its range admits."""

    value: str
    postgres: VersionRange = ANY


@dataclass(frozen=True)
class OptionSet:
    """A named PostgreSQL build configuration (meson options and the -dev packages they need).

    ``meson_options`` and ``build_packages`` are already merged with those of the set it extends
    (base first); each may be limited to a range of Postgres versions, so that one option set
    serves releases whose build systems know different features.
    """

    name: str
    description: str
    buildtype: str
    meson_options: tuple[Conditional, ...]
    build_packages: tuple[Conditional, ...]
    extends: str = ""
    emulate: str = ""  # why it cannot be cross-compiled; empty: it can

    def meson_options_for(self, version: str) -> tuple[str, ...]:
        """``--buildtype`` and the options for ``version``; of two settings of one option the
        later wins (a set may override the one it extends), so each option appears once."""
        chosen: dict[str, str] = {}
        for option in (f"--buildtype={self.buildtype}",
                       *(c.value for c in self.meson_options if c.postgres.admits(version))):
            name = option.partition("=")[0]
            chosen.pop(name, None)
            chosen[name] = option
        return tuple(chosen.values())

    def build_packages_for(self, version: str) -> tuple[str, ...]:
        return tuple(c.value for c in self.build_packages if c.postgres.admits(version))


@dataclass(frozen=True)
class Patch:
    """A build-system patch for reproducibility, applied to the Postgres releases it admits."""

    file: str  # relative to the catalog's directory
    sha256: str
    postgres: VersionRange
    reason: str


@dataclass(frozen=True)
class PostgresRelease:
    """One PostgreSQL release and the option sets and distros it is built for."""

    version: str
    source: Source
    option_sets: tuple[str, ...]  # the first is the default: extensions are built against it
    distros: tuple[str, ...]
    source_date_epoch: int | None = None  # None: the newest mtime inside the source tarball

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
class Disabled:
    """Targets that cannot be built, kept in the catalog with the reason so status shows them.

    Each empty scope matches everything: a rule with only a reason disables every target.
    """

    reason: str
    postgres: VersionRange = ANY
    distro: str = ""
    arch: str = ""

    def matches(self, version: str, distro: str, arch: str) -> bool:
        return ((not self.distro or self.distro == distro) and (not self.arch or self.arch == arch)
                and self.postgres.admits(version))


def disabled_reason(rules: tuple[Disabled, ...], version: str, distro: str, arch: str) -> str:
    """The reason of the first rule that matches the target; empty when none does."""
    return next((r.reason for r in rules if r.matches(version, distro, arch)), "")


@dataclass(frozen=True)
class ExtensionVersion:
    """One version of an extension and the Postgres versions it builds against."""

    version: str
    sql_version: str
    source: Source
    postgres: VersionRange
    source_date_epoch: int | None = None
    disabled: tuple[Disabled, ...] = ()


@dataclass(frozen=True)
class ExtensionPatch:
    """A build-system patch of an extension's source, applied before it is configured."""

    file: str  # relative to the catalog's directory
    sha256: str
    reason: str


@dataclass(frozen=True)
class DataDir:
    """A directory of the build container that a bundled library reads at run time."""

    source: str  # absolute path in the build container, e.g. /usr/share/proj
    dest: str  # under share/ in the image, e.g. proj


@dataclass(frozen=True)
class BuildRecipe:
    """How an extension is compiled: its build system and every argument it is given.

    Lists, never shell strings: each item is one argument.
    """

    system: str  # pgxs | cmake | configure | autoreconf
    packages: tuple[str, ...] = ()
    subdir: str = "."  # where the build system is, relative to the source root
    configure_flags: tuple[str, ...] = ()
    cmake_options: tuple[str, ...] = ()
    make_flags: tuple[str, ...] = ()
    cflags: tuple[str, ...] = ()
    patches: tuple[ExtensionPatch, ...] = ()
    data: tuple[DataDir, ...] = ()
    keep_paths: tuple[tuple[str, str], ...] = ()  # file glob -> why its paths stay as built
    dlopen: tuple[tuple[str, str], ...] = ()  # library name it dlopen()s -> why
    requires: tuple[str, ...] = ()  # catalog extensions in the Postgres tree it compiles against
    emulate: str = ""  # why it cannot be cross-compiled; empty: it can


@dataclass(frozen=True)
class Runtime:
    """What an extension needs at run time, beyond its files (CloudNativePG's contract).

    ``ld_library_path`` and ``bin_path`` are not here: they follow from what the image holds
    (``system/``, ``bin/``), so they cannot disagree with it.
    """

    shared_preload_libraries: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()  # catalog extensions that must be mounted too (CASCADE)
    env: tuple[tuple[str, str], ...] = ()  # values may use ${image_root}
    modules: tuple[str, ...] = ()  # libraries without a control file (LOAD, preload)


# Server settings the gate derives from the runtime contract and its own wiring: a suite's
# test.server_settings cannot override them.
GATE_MANAGED_SETTINGS = frozenset({"shared_preload_libraries", "extension_control_path",
                                   "dynamic_library_path", "port", "listen_addresses",
                                   "unix_socket_directories"})

DEFAULT_RESULT_PATTERN = r"^(?P<status>ok|not ok)\s+\d+\s+[-+]\s+(?P<name>\S+)"


@dataclass(frozen=True)
class KnownFailure:
    """A test known to fail, with why; only where its conditions hold (none: everywhere)."""

    test: str
    reason: str
    postgres: VersionRange = ANY  # the releases it fails on
    emulated: bool = False  # only when the suite runs under QEMU (a foreign architecture)

    def applies(self, postgres: str, emulated: bool) -> bool:
        return self.postgres.admits(postgres) and (emulated or not self.emulated)


@dataclass(frozen=True)
class UpstreamSuite:
    """How the gate runs an extension's own upstream regression suite against its image."""

    command: tuple[str, ...] = ()  # argv in the build tree; default PGXS `make installcheck`
    regress: tuple[str, ...] = ()  # or: these pg_regress tests, from inputdir
    inputdir: str = "."
    options: tuple[str, ...] = ()  # extra pg_regress arguments with ``regress``
    result_pattern: str = DEFAULT_RESULT_PATTERN  # a regex with groups 'name' and 'status'
    passed: str = "ok"  # the status that means passed; any other is a failure
    known_failures: tuple[KnownFailure, ...] = ()
    server_dirs: tuple[str, ...] = ()  # directories the suite expects on the server
    shared_dirs: tuple[str, ...] = ()  # directories the client and the server share
    tree_on_server: tuple[str, ...] = ()  # build tree directories the server reads
    setup: tuple[str, ...] = ()  # SQL run as the superuser before the suite
    server_settings: tuple[tuple[str, str], ...] = ()  # -c name=value for the gate's server
    skip: str = ""  # why the suite cannot run against an image (CREATE EXTENSION still does)
    alone: str = ""  # why its gate must run with no other gate beside it (timing)

    def failures_for(self, postgres: str, emulated: bool) -> dict[str, str]:
        """The known failures (test name -> why) of a gate of ``postgres`` (a release's
        version), its suite run under QEMU or not."""
        return {f.test: f.reason for f in self.known_failures if f.applies(postgres, emulated)}


@dataclass(frozen=True)
class Extension:
    """An extension: how to build it and what a client needs to know to load it."""

    name: str
    sql_names: tuple[str, ...]  # CREATE EXTENSION names, the main one first; none: modules only
    description: str
    homepage: str
    license: str
    build: BuildRecipe
    versions: tuple[ExtensionVersion, ...]
    runtime: Runtime = Runtime()
    test: UpstreamSuite = UpstreamSuite()
    disabled: tuple[Disabled, ...] = ()

    def disabled_for(self, version: ExtensionVersion, pg_version: str, distro: str,
                     arch: str) -> str:
        """Why this version cannot be built for the target; empty when it can."""
        return (disabled_reason(version.disabled, pg_version, distro, arch)
                or disabled_reason(self.disabled, pg_version, distro, arch))

    @property
    def shared_preload_libraries(self) -> tuple[str, ...]:
        return self.runtime.shared_preload_libraries

    @property
    def emulate(self) -> str:
        return self.build.emulate


@dataclass(frozen=True)
class Catalog:
    """A whole validated catalog."""

    path: str
    publisher: Publisher
    distros: tuple[Distro, ...]
    option_sets: tuple[OptionSet, ...]
    postgres: tuple[PostgresRelease, ...]
    extensions: tuple[Extension, ...]
    patches: tuple[Patch, ...] = ()

    def patches_for(self, version: str) -> tuple[Patch, ...]:
        return tuple(p for p in self.patches if p.postgres.admits(version))

    def distro(self, name: str) -> Distro:
        return next(d for d in self.distros if d.name == name)

    def option_set(self, name: str) -> OptionSet:
        return next(o for o in self.option_sets if o.name == name)

    def extension(self, name: str) -> Extension:
        return next(e for e in self.extensions if e.name == name)


class BuildCycle(Exception):
    """Extensions built against each other in a cycle (the names, the first again at the end)."""

    def __init__(self, cycle: tuple[str, ...]) -> None:
        super().__init__(" -> ".join(cycle))
        self.cycle = cycle


def build_order(extensions: Sequence[Extension]) -> dict[str, int]:
    """Each extension's place in an order where it comes after those it is built against
    (``build.requires``); a cycle raises BuildCycle."""
    needs = {e.name: e.build.requires for e in extensions}
    order: dict[str, int] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in chain:
            raise BuildCycle((*chain[chain.index(name):], name))
        for required in needs.get(name, ()):
            visit(required, (*chain, name))
        order[name] = len(order)

    for name in needs:
        visit(name, ())
    return order


def required_closure(names: Sequence[str], requires: Mapping[str, Sequence[str]]) -> list[str]:
    """``names`` and, transitively, what each requires (``requires``: name -> its requires),
    each once and after what it requires."""
    out: list[str] = []

    def add(name: str) -> None:
        if name not in out:
            for required in requires.get(name, ()):
                add(required)
            out.append(name)

    for name in names:
        add(name)
    return out
