"""The build record: what went into one target's build, as Debian's ``.buildinfo`` records it.

It is assembled from the plan (the inputs) and the build output's ``meta/`` directory (what
``dpkg-query`` and the compilers reported inside the build container), and feeds the SBOM and the
provenance. It holds nothing about the machine or the time of the build, so the same build outputs
always give the same record.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from monogres_oci.attest.deb_license import package_license
from monogres_oci.build.compile import (
    ExtensionBuildOutput,
    PostgresBuildOutput,
    extension_build_args,
    postgres_build_args,
)
from monogres_oci.catalog.model import Source
from monogres_oci.errors import BuildError
from monogres_oci.package.relocate import Rewrite
from monogres_oci.plan.targets import ExtensionTarget, PostgresTarget

BUILDINFO_FORMAT = "monogres-oci buildinfo 1"


@dataclass(frozen=True)
class DebPackage:
    """One Debian binary package as dpkg-query reported it inside the build container."""

    name: str
    version: str
    arch: str

    def purl(self, suite: str) -> str:
        """The package URL (purl spec, type ``deb``), e.g. ``pkg:deb/debian/libssl3@3.0.20?...``."""
        return (f"pkg:deb/debian/{quote(self.name, safe='')}@{quote(self.version, safe='')}"
                f"?arch={quote(self.arch, safe='')}&distro={quote(suite, safe='')}")


@dataclass(frozen=True)
class BundledPackage:
    """A Debian package whose files an extension image ships (libraries in ``system/``, data
    under ``share/``), exactly as installed in the build, with the .deb's sha256 from the
    archive's index and the licence its copyright file states."""

    name: str
    version: str
    arch: str
    sha256: str
    license: str  # SPDX expression

    @property
    def deb(self) -> DebPackage:
        return DebPackage(self.name, self.version, self.arch)


@dataclass(frozen=True)
class SourceRecord:
    """A pinned source file a target was built from."""

    name: str  # the project: postgresql, pgaudit, ...
    version: str
    file: str
    sha256: str
    download_location: str  # the first URL origin, or "debian:NAME=VERSION/FILE"
    license: str  # SPDX expression


@dataclass(frozen=True)
class BuildRecord:
    """Everything one target's build consumed, machine- and time-independent."""

    kind: str  # "postgres" or "extension"
    target: str  # the plan's target name, e.g. pgaudit-18.0-pg18.6-regular-bookworm-amd64
    input_digest: str  # sha256:<hex>, the plan's key for the target
    platform: str  # linux/amd64
    distro: str  # catalog distro name
    suite: str  # Debian suite (purl distro qualifier)
    base_image: str  # NAME@sha256:...
    recipe: str  # dockerfiles/<kind>.Dockerfile
    recipe_digest: str  # sha256:<hex> of that file
    build_args: tuple[tuple[str, str], ...]
    sources: tuple[SourceRecord, ...]
    toolchain: tuple[DebPackage, ...]  # every package installed in the build container
    compilers: tuple[str, ...]  # version lines: cc, meson, ninja, pg_config
    source_date_epoch: int
    base_packages: tuple[DebPackage, ...] = ()  # in the base image (postgres builds)
    runtime_packages: tuple[DebPackage, ...] = ()  # bundled into the runnable image
    postgres: BuildRecord | None = None  # the Postgres build an extension was compiled against
    bundled: tuple[BundledPackage, ...] = ()  # shipped in an extension image's system/, share/
    rpaths: tuple[tuple[str, str], ...] = ()  # ELF file -> its RPATH, as shipped
    relocations: tuple[Rewrite, ...] = ()  # absolute paths rewritten to the mount point
    kept_paths: tuple[str, ...] = ()  # files shipped as built, as the catalog's keep_paths say
    built_against: tuple[tuple[str, str], ...] = ()  # build.requires: target -> input digest

    def to_json(self) -> dict[str, Any]:
        """A JSON form, stable key order and lists as recorded (sorted by package name)."""
        doc: dict[str, Any] = {
            "format": BUILDINFO_FORMAT,
            "kind": self.kind,
            "target": self.target,
            "input_digest": self.input_digest,
            "platform": self.platform,
            "distro": self.distro,
            "base_image": self.base_image,
            "recipe": {"path": self.recipe, "digest": self.recipe_digest},
            "build_args": dict(self.build_args),
            "sources": [{"name": s.name, "version": s.version, "file": s.file,
                         "sha256": s.sha256, "download_location": s.download_location,
                         "license": s.license} for s in self.sources],
            "compilers": list(self.compilers),
            "source_date_epoch": self.source_date_epoch,
            "installed_build_depends": [_pkg_json(p) for p in self.toolchain],
        }
        if self.runtime_packages:
            doc["runtime_packages"] = [_pkg_json(p) for p in self.runtime_packages]
        if self.postgres is not None:
            doc["postgres"] = {"target": self.postgres.target,
                               "input_digest": self.postgres.input_digest}
        if self.kind == "extension":
            doc["bundled_packages"] = [{**_pkg_json(p.deb), "sha256": p.sha256,
                                        "license": p.license} for p in self.bundled]
            doc["rpaths"] = dict(self.rpaths)
            doc["relocations"] = [dataclasses.asdict(r) for r in self.relocations]
            doc["kept_paths"] = list(self.kept_paths)
            if self.built_against:
                doc["built_against"] = [{"target": t, "input_digest": d}
                                        for t, d in self.built_against]
        return doc


def _pkg_json(p: DebPackage) -> dict[str, str]:
    return {"name": p.name, "version": p.version, "architecture": p.arch}


def read_packages(path: Path, *, required: bool = True) -> tuple[DebPackage, ...]:
    """Read a ``NAME<TAB>VERSION<TAB>ARCH`` list written by dpkg-query in the build container."""
    if not path.is_file():
        if required:
            raise BuildError(f"build record: {path} is missing; rebuild the target (--rebuild)")
        return ()
    packages = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise BuildError(f"build record: {path}:{number}: expected NAME<TAB>VERSION<TAB>ARCH")
        packages.append(DebPackage(*fields))
    return tuple(sorted(packages, key=lambda p: (p.name, p.arch)))


def read_bundled(meta_dir: Path, licenses_dir: Path) -> tuple[BundledPackage, ...]:
    """The bundled packages an extension build recorded (``NAME VERSION ARCH SHA256``), each
    with the licence of the copyright file it copied."""
    path = meta_dir / "bundled-packages.tsv"
    if not path.is_file():
        raise BuildError(f"build record: {path} is missing; rebuild the target (--rebuild)")
    packages = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 4:
            raise BuildError(f"build record: {path}:{number}: expected NAME VERSION ARCH SHA256")
        name, version, arch, sha256 = fields
        copyright_file = licenses_dir / name / "copyright"
        if not copyright_file.is_file():
            raise BuildError(f"build record: {name} is bundled without {copyright_file}")
        text = copyright_file.read_text(encoding="utf-8", errors="replace")
        packages.append(BundledPackage(name, version, arch, sha256,
                                       package_license(name, text).expression))
    return tuple(sorted(packages, key=lambda p: (p.name, p.arch)))


def _rpaths(meta: Path) -> tuple[tuple[str, str], ...]:
    path = meta / "rpaths.tsv"
    if not path.is_file():
        return ()
    pairs = [tuple(line.split("\t", 1)) for line in path.read_text().splitlines() if line]
    return tuple(sorted((a, b) for a, b in pairs))


def _compilers(meta: Path) -> tuple[str, ...]:
    path = meta / "compiler.txt"
    return tuple(line for line in path.read_text().splitlines() if line) if path.is_file() else ()


def _location(source: Source) -> str:
    for origin in source.origins:
        if origin.url:
            return origin.url
    first = source.origins[0]
    return f"debian:{first.debian_package}/{first.debian_file}"


def _sha256(hex_digest: str) -> str:
    return f"sha256:{hex_digest}"


def postgres_record(pg: PostgresTarget, out: PostgresBuildOutput, epoch: int) -> BuildRecord:
    """The build record of a Postgres target from its plan entry and build output."""
    release = pg.release
    args = postgres_build_args(
        base_image=pg.base_image, pg_major=release.major, tarball=release.source.sha256,
        meson_options=pg.meson_options, build_packages=pg.build_packages,
        source_date_epoch=epoch, patches=[Path(p.file).name for p in pg.patches],
        compile_on=pg.compile_on)
    return BuildRecord(
        kind="postgres", target=pg.name, input_digest=_sha256(pg.key), platform=pg.platform,
        distro=pg.distro.name, suite=pg.distro.suite, base_image=pg.base_image,
        recipe="dockerfiles/postgres.Dockerfile", recipe_digest=_sha256(pg.recipe_digest),
        build_args=tuple(sorted(args.items())),
        sources=(SourceRecord("postgresql", release.version, release.source.file,
                              release.source.sha256, _location(release.source), "PostgreSQL"),),
        toolchain=read_packages(out.meta_dir / "toolchain-packages.tsv"),
        compilers=_compilers(out.meta_dir),
        source_date_epoch=epoch,
        base_packages=read_packages(out.meta_dir / "base-packages.tsv", required=False),
        runtime_packages=read_packages(out.meta_dir / "runtime-packages.txt", required=False),
    )


def extension_record(ext: ExtensionTarget, out: ExtensionBuildOutput, epoch: int,
                     postgres: BuildRecord, *, bundled: Sequence[BundledPackage],
                     relocations: Sequence[Rewrite] = (),
                     kept_paths: Sequence[str] = ()) -> BuildRecord:
    """The build record of an extension target, linked to the Postgres build it used."""
    pg = ext.postgres
    source = ext.version.source
    args = extension_build_args(
        base_image=pg.base_image, pg_major=pg.release.major, tarball=source.sha256,
        build_packages=pg.build_packages, recipe=ext.extension.build, source_date_epoch=epoch,
        compile_on=ext.compile_on)
    return BuildRecord(
        kind="extension", target=ext.name, input_digest=_sha256(ext.key), platform=pg.platform,
        distro=pg.distro.name, suite=pg.distro.suite, base_image=pg.base_image,
        recipe="dockerfiles/extension.Dockerfile", recipe_digest=_sha256(ext.recipe_digest),
        build_args=tuple(sorted(args.items())),
        sources=(SourceRecord(ext.extension.name, ext.version.version, source.file,
                              source.sha256, _location(source), ext.extension.license),),
        toolchain=read_packages(out.meta_dir / "toolchain-packages.tsv"),
        compilers=_compilers(out.meta_dir),
        source_date_epoch=epoch,
        postgres=postgres,
        bundled=tuple(bundled),
        rpaths=_rpaths(out.meta_dir),
        relocations=tuple(relocations),
        kept_paths=tuple(kept_paths),
        built_against=tuple((n.name, _sha256(n.key)) for n in ext.needs),
    )


def keep_beside(record: BuildRecord, meta_dir: Path) -> BuildRecord:
    """Keep the build record beside the build output too (like a .buildinfo file)."""
    text = json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n"
    path = meta_dir / "buildinfo.json"
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return record
