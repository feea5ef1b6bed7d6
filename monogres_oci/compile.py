"""Compile PostgreSQL and its extensions from source tarballs into install trees, with BuildKit.

Each compile is one ``docker buildx build`` of a Dockerfile in this repository's ``dockerfiles/``
whose ``export`` stage is written to a local directory. The build context holds only the source
tarball. A finished result carries a ``.done`` marker naming the key of its inputs; a second call
with the same key returns it without building.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from monogres_oci import buildkit
from monogres_oci.errors import BuildError

DONE_MARKER = ".done"
BUILD_LOG = "build.log"


@dataclass(frozen=True)
class PostgresBuildOutput:
    """A compiled Postgres: the install tree, the runtime overlay and the toolchain record."""

    install_root: Path  # holds usr/lib/postgresql/<major>
    runtime_root: Path  # Debian runtime libraries the base lacks, etc/passwd, etc/group
    meta_dir: Path  # toolchain-packages.tsv, base-packages.tsv, runtime-packages.txt, compiler.txt
    pg_major: int

    @property
    def prefix(self) -> Path:
        """The install prefix inside ``install_root``: ``usr/lib/postgresql/<major>``."""
        return self.install_root / "usr" / "lib" / "postgresql" / str(self.pg_major)


@dataclass(frozen=True)
class ExtensionBuildOutput:
    """A compiled extension: what ``make install`` added, its licenses, the toolchain record."""

    install_root: Path  # holds usr/lib/postgresql/<major>/{lib,share/extension,...}
    licenses_dir: Path  # LICENSE*, LICENCE*, COPYING* of the source root (may be empty)
    meta_dir: Path  # toolchain-packages.tsv, compiler.txt


def postgres_build_args(*, base_image: str, pg_major: int, tarball: str,
                        meson_options: Sequence[str], build_packages: Sequence[str],
                        source_date_epoch: int, patches: Sequence[str] = (),
                        compile_on: str = "build") -> dict[str, str]:
    """The build arguments of postgres.Dockerfile (also what the build record reports)."""
    return {
        "BASE_IMAGE": base_image,
        "COMPILE_ON": compile_on,
        "PG_MAJOR": str(pg_major),
        "PG_TARBALL": buildkit.shell_words([tarball]),
        "PG_PATCHES": buildkit.shell_words(patches),
        "MESON_OPTIONS": buildkit.shell_words(meson_options),
        "BUILD_PACKAGES": buildkit.shell_words(build_packages),
        "SOURCE_DATE_EPOCH": str(int(source_date_epoch)),
    }


def extension_build_args(*, base_image: str, pg_major: int, tarball: str,
                         build_packages: Sequence[str], extra_packages: Sequence[str],
                         make_flags: Sequence[str], source_date_epoch: int,
                         compile_on: str = "build") -> dict[str, str]:
    """The build arguments of extension.Dockerfile (also what the build record reports)."""
    return {
        "BASE_IMAGE": base_image,
        "COMPILE_ON": compile_on,
        "PG_MAJOR": str(pg_major),
        "EXT_TARBALL": buildkit.shell_words([tarball]),
        "BUILD_PACKAGES": buildkit.shell_words(build_packages),
        "EXTRA_PACKAGES": buildkit.shell_words(extra_packages),
        "MAKE_FLAGS": buildkit.shell_words(make_flags),
        "SOURCE_DATE_EPOCH": str(int(source_date_epoch)),
    }


def compile_postgres(
    *,
    base_image: str,
    pg_version: str,
    pg_major: int,
    source_tarball: Path,
    meson_options: Sequence[str],
    build_packages: Sequence[str],
    platform: str,
    source_date_epoch: int,
    out_dir: Path,
    progress: Callable[[str], None],
    cache_key: str | None = None,
    no_cache: bool = False,
    sandbox_hostname: str = "",
    patches: Sequence[Path] = (),
    compile_on: str = "build",
) -> PostgresBuildOutput:
    """Build Postgres from ``source_tarball`` with meson in ``base_image``; result in ``out_dir``.

    ``out_dir`` receives ``install/``, ``runtime/``, ``meta/``, ``build.log`` and ``.done``. With
    ``cache_key`` (or, without one, a key computed from every input) matching the marker of an
    existing result, nothing is built. ``no_cache`` makes BuildKit rebuild every step.
    ``patches`` are applied to the source tree in order (``patch -p1``).
    ``sandbox_hostname`` names the build containers' host (BuildKit's default otherwise): a
    rebuild varies it to show the output does not depend on it, so it is not an input.
    ``compile_on`` is ``build`` (native, or cross-compiled for a foreign ``platform``) or
    ``target`` (native, or emulated by QEMU).
    """
    _check_base(base_image)
    dockerfile = buildkit.dockerfile("postgres.Dockerfile")
    build_args = postgres_build_args(
        base_image=base_image, pg_major=pg_major, tarball=_tarball_name(source_tarball),
        meson_options=meson_options, build_packages=build_packages,
        source_date_epoch=source_date_epoch, patches=[p.name for p in patches],
        compile_on=compile_on)
    what = f"PostgreSQL {pg_version} ({platform})"
    key = cache_key or _input_key(
        "postgres", dockerfile, source_tarball, platform,
        {**build_args, "PG_VERSION": pg_version, **{f"patch:{p.name}": _sha256(p) for p in patches}}
    )
    out_dir = out_dir.resolve()
    result = PostgresBuildOutput(
        install_root=out_dir / "install",
        runtime_root=out_dir / "runtime",
        meta_dir=out_dir / "meta",
        pg_major=pg_major,
    )
    if _is_done(out_dir, key):
        progress(f"{what}: up to date in {out_dir}")
        return result

    def check(staging: Path) -> None:
        prefix = staging / "install/usr/lib/postgresql" / str(pg_major)
        if not (prefix / "bin/postgres").is_file():
            raise BuildError(f"build of {what} produced no {prefix}/bin/postgres")
        setup_log = (staging / "meta/meson-setup.log").read_text(errors="replace")
        if f"Project version: {pg_version}\n" not in setup_log:
            raise BuildError(
                f"build of {what}: the tarball {source_tarball.name} is not version {pg_version} "
                "(meson reports another 'Project version')"
            )
        _check_machine(prefix / "bin/postgres", platform, what)

    _build(
        what=what,
        dockerfile=dockerfile,
        context_files=(source_tarball, *patches),
        platform=platform,
        build_args=build_args,
        build_contexts={},
        out_dir=out_dir,
        key=key,
        progress=progress,
        no_cache=no_cache,
        check=check,
        sandbox_hostname=sandbox_hostname,
    )
    return result


def compile_extension(
    *,
    base_image: str,
    postgres: PostgresBuildOutput,
    pg_major: int,
    source_tarball: Path,
    build_packages: Sequence[str],
    extra_packages: Sequence[str],
    make_flags: Sequence[str],
    platform: str,
    source_date_epoch: int,
    out_dir: Path,
    progress: Callable[[str], None],
    cache_key: str | None = None,
    no_cache: bool = False,
    sandbox_hostname: str = "",
    compile_on: str = "build",
) -> ExtensionBuildOutput:
    """Build an extension with PGXS against ``postgres`` in ``base_image``; result in ``out_dir``.

    ``build_packages`` are the Postgres build's (so the toolchain is the same one), and
    ``extra_packages`` the extension's own. ``out_dir`` receives ``install/``, ``licenses/``,
    ``meta/``, ``build.log`` and ``.done``; caching as in :func:`compile_postgres`.
    """
    _check_base(base_image)
    if postgres.pg_major != pg_major:
        raise BuildError(f"extension for Postgres {pg_major} given a Postgres {postgres.pg_major} tree")
    pg_config = postgres.prefix / "bin/pg_config"
    if not pg_config.is_file():
        raise BuildError(f"no Postgres install tree at {postgres.install_root} ({pg_config} missing)")
    dockerfile = buildkit.dockerfile("extension.Dockerfile")
    build_args = extension_build_args(
        base_image=base_image, pg_major=pg_major, tarball=_tarball_name(source_tarball),
        build_packages=build_packages, extra_packages=extra_packages, make_flags=make_flags,
        source_date_epoch=source_date_epoch, compile_on=compile_on)
    what = f"extension {source_tarball.name} for PostgreSQL {pg_major} ({platform})"
    postgres_marker = postgres.install_root.parent / DONE_MARKER
    postgres_key = (
        json.loads(postgres_marker.read_text()).get("cache_key", "")
        if postgres_marker.is_file()
        else _tree_digest(postgres.install_root)
    )
    key = cache_key or _input_key(
        "extension", dockerfile, source_tarball, platform, {**build_args, "POSTGRES": postgres_key}
    )
    out_dir = out_dir.resolve()
    result = ExtensionBuildOutput(
        install_root=out_dir / "install",
        licenses_dir=out_dir / "licenses",
        meta_dir=out_dir / "meta",
    )
    if _is_done(out_dir, key):
        progress(f"{what}: up to date in {out_dir}")
        return result

    def check(staging: Path) -> None:
        prefix = staging / "install/usr/lib/postgresql" / str(pg_major)
        if not prefix.is_dir() or not any(p.is_file() for p in prefix.rglob("*")):
            raise BuildError(f"build of {what}: make install put nothing under {prefix}")
        for path in sorted(prefix.rglob("*.so")):
            _check_machine(path, platform, what)

    _build(
        what=what,
        dockerfile=dockerfile,
        context_files=(source_tarball,),
        platform=platform,
        build_args=build_args,
        build_contexts={"postgres": postgres.install_root},
        out_dir=out_dir,
        key=key,
        progress=progress,
        no_cache=no_cache,
        check=check,
        sandbox_hostname=sandbox_hostname,
    )
    return result


def _build(
    *,
    what: str,
    dockerfile: Path,
    context_files: Sequence[Path],
    platform: str,
    build_args: Mapping[str, str],
    build_contexts: Mapping[str, Path],
    out_dir: Path,
    key: str,
    progress: Callable[[str], None],
    no_cache: bool,
    check: Callable[[Path], None],
    sandbox_hostname: str = "",
) -> None:
    """Build into a staging directory beside ``out_dir``, check it, then swap it in with a marker."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    started = time.monotonic()
    progress(f"{what}: building into {out_dir}")
    with tempfile.TemporaryDirectory(prefix="monogres-context-") as tmp:
        context = Path(tmp)
        for path in context_files:
            _place(path, context / path.name)
        buildkit.buildx_build(
            what=what,
            context=context,
            dockerfile_path=dockerfile,
            platform=platform,
            target="export",
            output={"type": "local", "dest": str(staging / "export")},
            build_args={**build_args, **(
                {"BUILDKIT_SANDBOX_HOSTNAME": sandbox_hostname} if sandbox_hostname else {})},
            build_contexts=build_contexts,
            cache=not no_cache,
            progress=progress,
            log_file=staging / BUILD_LOG,
        )
    # Exported under staging/export, so that the log beside it is not part of the export.
    for entry in (staging / "export").iterdir():
        entry.rename(staging / entry.name)
    (staging / "export").rmdir()
    check(staging)
    seconds = time.monotonic() - started
    marker = {"cache_key": key, "target": what, "seconds": round(seconds, 1)}
    (staging / DONE_MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    progress(f"{what}: done in {seconds:.0f} s")


# ELF e_machine values (elf.h) of the architectures this project builds for.
_ELF_MACHINES = {"amd64": 62, "arm64": 183}


def elf_machine(path: Path) -> int | None:
    """The ELF e_machine of a file, or None when it is not an ELF file."""
    with path.open("rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def _check_machine(path: Path, platform: str, what: str) -> None:
    """A wrong-architecture binary (a cross build that used the native compiler) is an error."""
    wanted = _ELF_MACHINES.get(buildkit.platform_arch(platform))
    found = elf_machine(path)
    if wanted is not None and found != wanted:
        raise BuildError(f"build of {what}: {path.name} is ELF machine {found}, not {wanted} "
                         f"({platform})")


def _check_base(base_image: str) -> None:
    if "@sha256:" not in base_image:
        raise BuildError(f"base image {base_image!r} must be pinned by digest (NAME@sha256:...)")


def _tarball_name(source_tarball: Path) -> str:
    if not source_tarball.is_file():
        raise BuildError(f"source tarball {source_tarball} does not exist")
    return source_tarball.name


def _place(src: Path, dest: Path) -> None:
    """Hard-link ``src`` into the build context (copy across file systems)."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def _is_done(out_dir: Path, key: str) -> bool:
    marker = out_dir / DONE_MARKER
    if not marker.is_file():
        return False
    try:
        return bool(json.loads(marker.read_text()).get("cache_key") == key)
    except ValueError:
        return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tree_digest(root: Path) -> str:
    """A digest of a file tree's paths and contents (for inputs that carry no marker)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            digest.update(f"L {rel} {os.readlink(path)}\n".encode())
        elif path.is_file():
            digest.update(f"F {rel} {_sha256(path)}\n".encode())
    return digest.hexdigest()


def _input_key(
    kind: str, dockerfile: Path, tarball: Path, platform: str, args: Mapping[str, str]
) -> str:
    """The default cache key: every input that can change the result."""
    inputs = {
        "kind": kind,
        "dockerfile": _sha256(dockerfile),
        "source": _sha256(tarball),
        "platform": platform,
        "args": dict(sorted(args.items())),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
