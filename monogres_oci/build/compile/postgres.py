"""Compile PostgreSQL from its source tarball with meson, in the pinned base image, with BuildKit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from monogres_oci.build import buildkit
from monogres_oci.build.compile.engine import (
    build_into,
    check_base,
    check_machine,
    input_key,
    is_done,
    sha256_file,
    tarball_name,
)
from monogres_oci.errors import BuildError

# What a Postgres build records of itself in meta/ and its build record reads (the packages of
# the build container, the base and the runtime overlay; the compilers): the provenance of the
# postgresql-dist image carries them, so that a build taken from a registry has them too.
RECORD_FILES = ("toolchain-packages.tsv", "base-packages.tsv", "runtime-packages.txt",
                "compiler.txt")


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

    def record_files(self) -> list[tuple[str, bytes]]:
        """(meta/NAME, content) of the RECORD_FILES the build wrote."""
        return [(f"meta/{name}", (self.meta_dir / name).read_bytes()) for name in RECORD_FILES
                if (self.meta_dir / name).is_file()]


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
    check_base(base_image)
    dockerfile = buildkit.dockerfile("postgres.Dockerfile")
    build_args = postgres_build_args(
        base_image=base_image, pg_major=pg_major, tarball=tarball_name(source_tarball),
        meson_options=meson_options, build_packages=build_packages,
        source_date_epoch=source_date_epoch, patches=[p.name for p in patches],
        compile_on=compile_on)
    what = f"PostgreSQL {pg_version} ({platform})"
    key = cache_key or input_key(
        "postgres", dockerfile, source_tarball, platform,
        {**build_args, "PG_VERSION": pg_version, **{f"patch:{p.name}": sha256_file(p) for p in patches}}
    )
    out_dir = out_dir.resolve()
    result = PostgresBuildOutput(
        install_root=out_dir / "install",
        runtime_root=out_dir / "runtime",
        meta_dir=out_dir / "meta",
        pg_major=pg_major,
    )
    if is_done(out_dir, key):
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
        check_machine(prefix / "bin/postgres", platform, what)

    build_into(
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
