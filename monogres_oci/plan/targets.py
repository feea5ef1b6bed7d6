"""Expand a catalog into build targets, each with an input digest that names all it depends on.

Planning is pure and cheap: no network, no Docker. The input digest of a target is the sha256 of
the canonical JSON of everything that can change its output (sources, base image, packages,
options, the build recipes' digests, the architecture); a target whose digest has a finished build
in the cache is skipped. An extension's digest includes the digest of the Postgres build it is
compiled against, so a new Postgres build rebuilds its extensions; what its targets share is
digested once per version and named by that digest (a million targets plan in seconds).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from monogres_oci.catalog.model import (
    BuildRecipe,
    Catalog,
    Distro,
    Extension,
    ExtensionVersion,
    OptionSet,
    Patch,
    PostgresRelease,
)
from monogres_oci.catalog.ranges import VersionRange
from monogres_oci.errors import UsageError
from monogres_oci.heap import collector_paused
from monogres_oci.machine import machine_arch

Method = Literal["native", "cross", "emulated"]

def _method(arch: str, build_arch: str, emulate: bool) -> Method:
    if arch == build_arch:
        return "native"
    return "emulated" if emulate else "cross"


def _recipe_json(recipe: BuildRecipe) -> dict[str, object]:
    doc = dataclasses.asdict(recipe)
    doc.pop("emulate")  # the method (below) is what it changes
    doc["keep_paths"] = [glob for glob, _ in recipe.keep_paths]  # the reasons change nothing
    doc["dlopen"] = [name for name, _ in recipe.dlopen]
    # A patch is named by its content; where the file lies and why are not inputs.
    doc["patches"] = [p.sha256 for p in recipe.patches]
    return doc


_PART = 12  # hex digits of a part's digest: enough to tell two values apart


def key_parts(doc: Mapping[str, object]) -> dict[str, str]:
    """Each value of a key document digested apart (``kind`` says nothing that can change)."""
    return {name: hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"))
                                 .encode()).hexdigest()[:_PART]
            for name, value in doc.items() if name != "kind"}


def _digest(doc: Mapping[str, object]) -> str:
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class VersionInputs:
    """The digest of what an extension version's targets share (its source, recipe, runtime
    contract, the extension recipe's digest): computed once per version, so a target's own
    digest hashes only that, its method and its Postgres build's key."""

    extension: Extension  # what it was made from: a target made by replace() is checked
    version: ExtensionVersion
    recipe_digest: str
    digest: str

    @classmethod
    def of(cls, extension: Extension, version: ExtensionVersion, recipe_digest: str,
           shared: Mapping[str, object] | None = None) -> VersionInputs:
        """``shared``: the extension's part of the document (extension_document), when the
        caller digests several versions of it."""
        return cls(extension, version, recipe_digest,
                   _digest(extension_key_document(extension, version, recipe_digest, shared)))

    def made_for(self, extension: Extension, version: ExtensionVersion,
                 recipe_digest: str) -> bool:
        return (self.extension is extension and self.version is version
                and self.recipe_digest == recipe_digest)

    @cached_property
    def _started(self) -> dict[str, hashlib._Hash]:
        return {}

    def target_key(self, method: str, postgres_key: str) -> str:
        # _digest({"inputs": ..., "kind": "extension", "method": ..., "postgres": ...}) written
        # out: every value is a hex digest or a method name, which JSON writes as they are. The
        # hash of what precedes the Postgres key is taken once per method and copied.
        started = self._started.get(method)
        if started is None:
            started = self._started[method] = hashlib.sha256(
                f'{{"inputs":"{self.digest}","kind":"extension","method":"{method}",'
                '"postgres":"'.encode())
        h = started.copy()
        h.update(f'{postgres_key}"}}'.encode())
        return h.hexdigest()


@dataclass(frozen=True)
class PostgresTarget:
    """One Postgres build: release x option set x distro x architecture."""

    release: PostgresRelease
    option_set: OptionSet
    distro: Distro
    arch: str
    base_image: str
    default_option_set: bool
    recipe_digest: str = field(repr=False)
    patches: tuple[Patch, ...] = ()
    build_arch: str = "amd64"  # the build machine's architecture
    force_emulation: bool = False

    # Cached: every extension target built against this one asks for them (a frozen dataclass
    # without slots keeps them in its __dict__; they are not fields, so equality ignores them).
    @cached_property
    def name(self) -> str:
        return f"postgres-{self.release.version}-{self.option_set.name}-{self.distro.name}-{self.arch}"

    @cached_property
    def method(self) -> Method:
        """How it compiles: natively, with a cross compiler, or emulated by QEMU."""
        return _method(self.arch, self.build_arch,
                       self.force_emulation or bool(self.option_set.emulate))

    @property
    def compile_on(self) -> str:
        """The Dockerfiles' COMPILE_ON: the build machine's platform, or the target's."""
        return "target" if self.method == "emulated" else "build"

    @property
    def platform(self) -> str:
        return f"linux/{self.arch}"

    @property
    def build_packages(self) -> tuple[str, ...]:
        own = self.option_set.build_packages_for(self.release.version)
        return self.distro.toolchain_packages + tuple(
            p for p in own if p not in self.distro.toolchain_packages)

    @property
    def meson_options(self) -> tuple[str, ...]:
        return self.option_set.meson_options_for(self.release.version)

    @cached_property
    def key(self) -> str:
        return _digest(self._key_document())

    def key_parts(self) -> dict[str, str]:
        """Each input of the key, digested apart: what a published image records, so that
        one built from other inputs can say which changed."""
        return key_parts(self._key_document())

    def _key_document(self) -> dict[str, object]:
        return {
            "kind": "postgres",
            "version": self.release.version,
            "source": self.release.source.sha256,
            "option_set": self.option_set.name,
            "meson_options": list(self.meson_options),
            "packages": list(self.build_packages),
            "patches": [p.sha256 for p in self.patches],
            "suite": self.distro.suite,
            # The digest names the content; where it is served from (a registry host) does not.
            "base_image": self.base_image.rpartition("@")[2],
            "arch": self.arch,
            # A cross compiler is another compiler: its output is another build.
            "method": self.method if self.method != "cross" else f"cross from {self.build_arch}",
            "recipe": self.recipe_digest,
        }


@dataclass(frozen=True)
class ExtensionTarget:
    """One extension version compiled against one Postgres build."""

    extension: Extension
    version: ExtensionVersion
    postgres: PostgresTarget
    recipe_digest: str = field(repr=False)
    # Shared by every target of the version (expand makes one); derived, so not compared.
    inputs: VersionInputs | None = field(default=None, repr=False, compare=False)
    # The targets of its build.requires for the same Postgres build, whose install trees it
    # compiles against (expand finds them): their keys are inputs of its key.
    needs: tuple[ExtensionTarget, ...] = field(default=(), repr=False, compare=False)
    # Derived from the fields above when the target is made (replace() makes them again):
    # every use of a target asks for its key, and a plan may hold a million targets.
    method: Method = field(init=False, repr=False, compare=False)
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pg = self.postgres
        # Emulated when its Postgres was (the same toolchain) or its build system needs it.
        method: Method = pg.method
        if method == "cross" and self.extension.emulate:
            method = "emulated"
        inputs = self.inputs
        if inputs is None or not inputs.made_for(self.extension, self.version,
                                                 self.recipe_digest):
            inputs = VersionInputs.of(self.extension, self.version, self.recipe_digest)
        key = inputs.target_key(method, pg.key)
        if self.needs:
            key = _digest({"target": key, "build_requires": [n.key for n in self.needs]})
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "key", key)

    @property
    def name(self) -> str:
        pg = self.postgres
        return (f"{self.extension.name}-{self.version.version}-pg{pg.release.version}-"
                f"{pg.option_set.name}-{pg.distro.name}-{pg.arch}")

    @property
    def compile_on(self) -> str:
        return "target" if self.method == "emulated" else "build"

    def key_parts(self) -> dict[str, str]:
        """Each input of the key, digested apart (see PostgresTarget.key_parts)."""
        doc = extension_key_document(self.extension, self.version, self.recipe_digest)
        parts = {**key_parts(doc), **key_parts({"method": self.method}),
                 "postgres": self.postgres.key[:_PART]}
        if self.needs:
            parts.update(key_parts({"build_requires": [n.key for n in self.needs]}))
        return parts


def extension_document(extension: Extension) -> dict[str, object]:
    """What every version of an extension puts in its key document: made once per extension
    (serializing the recipe is most of the work of a version's digest)."""
    return {
        # Every argument of the build and what the annotations say of the runtime contract.
        "build": _recipe_json(extension.build),
        "runtime": dataclasses.asdict(extension.runtime),
        "sql_names": list(extension.sql_names),
    }


def extension_key_document(extension: Extension, version: ExtensionVersion,
                           recipe_digest: str,
                           shared: Mapping[str, object] | None = None) -> dict[str, object]:
    """What an extension target's key names but its method and Postgres build: the document
    whose digest is VersionInputs.digest (``shared``: extension_document's, if made already)."""
    if shared is None:
        shared = extension_document(extension)
    return {
        "kind": "extension",
        "name": extension.name,
        "version": version.version,
        "source": version.source.sha256,
        "build": shared["build"],
        "runtime": shared["runtime"],
        "sql_names": shared["sql_names"],
        "recipe": recipe_digest,
    }


@dataclass(frozen=True)
class Selection:
    """What the command line narrowed the catalog to; empty tuples mean 'all'."""

    postgres: tuple[str, ...] = ()  # versions ("18.6") or majors ("18")
    option_sets: tuple[str, ...] = ()
    distros: tuple[str, ...] = ()
    archs: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()  # names, or NAME=VERSION
    postgres_only: bool = False
    emulate: bool = False  # build foreign architectures under QEMU even where cross works


@dataclass(frozen=True)
class DisabledTarget:
    """A target the catalog says cannot be built, and why; it is planned but never built."""

    target: ExtensionTarget
    reason: str


@dataclass(frozen=True)
class Plan:
    """The targets to build, Postgres builds first, and those the catalog disables."""

    postgres: tuple[PostgresTarget, ...]
    extensions: tuple[ExtensionTarget, ...]
    disabled: tuple[DisabledTarget, ...] = ()

    def extensions_of(self, pg: PostgresTarget) -> tuple[ExtensionTarget, ...]:
        return tuple(e for e in self.extensions if e.postgres.key == pg.key)


def expand(
    catalog: Catalog,
    selection: Selection,
    *,
    base_overrides: Mapping[str, str],
    recipe_digests: Mapping[str, str],
    build_arch: str | None = None,
) -> Plan:
    """Expand the catalog into targets; unknown names in the selection are usage errors."""
    with collector_paused():  # a million targets, no cycle among them
        return _expand(catalog, selection, base_overrides, recipe_digests, build_arch)


def _expand(catalog: Catalog, selection: Selection, base_overrides: Mapping[str, str],
            recipe_digests: Mapping[str, str], build_arch: str | None) -> Plan:
    _check_selection(catalog, selection)
    build_arch = build_arch or machine_arch()  # BuildKit runs build-machine stages here
    pg_targets: list[PostgresTarget] = []
    for release in catalog.postgres:
        if selection.postgres and not any(
            s in (release.version, str(release.major)) for s in selection.postgres
        ):
            continue
        for os_index, os_name in enumerate(release.option_sets):
            if selection.option_sets and os_name not in selection.option_sets:
                continue
            for distro_name in release.distros:
                if selection.distros and distro_name not in selection.distros:
                    continue
                distro = catalog.distro(distro_name)
                for arch in distro.architectures:
                    if selection.archs and arch not in selection.archs:
                        continue
                    pg_targets.append(PostgresTarget(
                        release=release,
                        option_set=catalog.option_set(os_name),
                        distro=distro,
                        arch=arch,
                        base_image=base_overrides.get(distro_name, distro.base_image),
                        default_option_set=os_index == 0,
                        recipe_digest=recipe_digests["postgres"],
                        patches=catalog.patches_for(release.version),
                        build_arch=build_arch,
                        force_emulation=selection.emulate,
                    ))
    ext_targets: list[ExtensionTarget] = []
    disabled: list[DisabledTarget] = []
    if not selection.postgres_only:
        wanted = _wanted_extensions(selection.extensions)
        if wanted:  # and what they are built against, which must be built first
            from monogres_oci.plan.requires import with_what_they_are_built_against

            wanted = with_what_they_are_built_against(catalog, wanted)
        # Extensions go with the default option set unless option sets were asked for.
        hosts = [pg for pg in pg_targets if pg.default_option_set or selection.option_sets]
        recipe = recipe_digests["extension"]
        # Versions share a few ranges (">=15"): each range is matched against the builds once.
        admitted_by: dict[VersionRange, list[PostgresTarget]] = {}
        for ext in catalog.extensions:
            if wanted and ext.name not in wanted:
                continue
            shared = extension_document(ext)
            for version in ext.versions:
                if wanted.get(ext.name) and version.version != wanted[ext.name]:
                    continue
                admitted = admitted_by.get(version.postgres)
                if admitted is None:
                    admitted = admitted_by[version.postgres] = [
                        pg for pg in hosts if version.postgres.admits(pg.release.version)]
                inputs = VersionInputs.of(ext, version, recipe, shared)
                may_be_disabled = bool(ext.disabled or version.disabled)
                for pg in admitted:
                    target = ExtensionTarget(ext, version, pg, recipe, inputs)
                    reason = ext.disabled_for(version, pg.release.version, pg.distro.name,
                                              pg.arch) if may_be_disabled else ""
                    if reason:
                        disabled.append(DisabledTarget(target, reason))
                    else:
                        ext_targets.append(target)
    if not pg_targets:
        raise UsageError("the selection matches no Postgres build; `monogres-oci plan` lists them")
    from monogres_oci.plan.requires import with_build_requires

    if any(t.extension.build.requires for t in (*ext_targets, *(d.target for d in disabled))):
        ext_targets, disabled = with_build_requires(catalog, ext_targets, disabled)
    return Plan(postgres=tuple(pg_targets), extensions=tuple(ext_targets),
                disabled=tuple(disabled))


def _wanted_extensions(items: Sequence[str]) -> dict[str, str]:
    wanted: dict[str, str] = {}
    for item in items:
        name, _, version = item.partition("=")
        wanted[name] = version
    return wanted


def _check_selection(catalog: Catalog, selection: Selection) -> None:
    def check(kind: str, asked: Sequence[str], known: Sequence[str]) -> None:
        for item in asked:
            if item not in known:
                raise UsageError(f"unknown {kind} {item!r} in {catalog.path}; "
                                 f"known: {', '.join(sorted(set(known)))}")

    check("Postgres version", selection.postgres,
          [p.version for p in catalog.postgres] + [str(p.major) for p in catalog.postgres])
    check("option set", selection.option_sets, [o.name for o in catalog.option_sets])
    check("distro", selection.distros, [d.name for d in catalog.distros])
    check("architecture", selection.archs, ["amd64", "arm64"])
    exts = {e.name: [v.version for v in e.versions] for e in catalog.extensions}
    for item in selection.extensions:
        name, _, version = item.partition("=")
        check("extension", [name], list(exts))
        if version:
            check(f"version of {name}", [version], exts[name])
