"""Compile an extension against one Postgres build, and hand the gate the tree it was built in.

Both are invocations of ``dockerfiles/extension.Dockerfile`` with the same arguments: the compile
exports the ``export`` stage to a directory; the gate asks for the ``build`` stage as an image
(BuildKit has it cached), so the upstream suite runs in the very tree that was compiled.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monogres_oci.build import buildkit
from monogres_oci.build.compile.engine import (
    build_into,
    check_base,
    check_machine,
    content_name,
    done_key,
    input_key,
    invoke,
    is_done,
    sha256_file,
    tarball_name,
    tree_digest,
)
from monogres_oci.build.compile.postgres import PostgresBuildOutput
from monogres_oci.catalog.model import BuildRecipe
from monogres_oci.errors import BuildError

PROVIDED_LIBS = "provided-libs.txt"


@dataclass(frozen=True)
class ExtensionBuildOutput:
    """A compiled extension: what its install step added, the libraries and data it bundles,
    the licenses, and the toolchain record."""

    install_root: Path  # holds usr/lib/postgresql/<major>/{lib,share,bin,...}
    licenses_dir: Path  # LICENSE*, LICENCE*, COPYING* of the source root (may be empty)
    meta_dir: Path  # toolchain-packages.tsv, compiler.txt, bundled-packages.tsv, rpaths.tsv
    system_dir: Path  # bundled shared libraries, by soname (may be empty)
    data_dir: Path  # the catalog's data directories, by their name under share/ (may be empty)
    system_licenses_dir: Path  # <package>/copyright of every bundled Debian package


def extension_build_args(*, base_image: str, pg_major: int, tarball: str,
                         build_packages: Sequence[str], recipe: BuildRecipe,
                         source_date_epoch: int, compile_on: str = "build") -> dict[str, str]:
    """The build arguments of extension.Dockerfile (also what the build record reports)."""
    return {
        "BASE_IMAGE": base_image,
        "COMPILE_ON": compile_on,
        "PG_MAJOR": str(pg_major),
        "EXT_TARBALL": buildkit.shell_words([tarball]),
        "EXT_PATCHES": buildkit.shell_words([Path(p.file).name for p in recipe.patches]),
        "BUILD_SYSTEM": recipe.system,
        "SUBDIR": recipe.subdir,
        "BUILD_PACKAGES": buildkit.shell_words(build_packages),
        "EXTRA_PACKAGES": buildkit.shell_words(recipe.packages),
        "CONFIGURE_FLAGS": buildkit.shell_words(recipe.configure_flags),
        "CMAKE_OPTIONS": buildkit.shell_words(recipe.cmake_options),
        "MAKE_FLAGS": buildkit.shell_words(recipe.make_flags),
        "EXTRA_CFLAGS": buildkit.shell_words(recipe.cflags),
        "DATA_DIRS": buildkit.shell_words([f"{d.source}={d.dest}" for d in recipe.data]),
        "DLOPEN": buildkit.shell_words([name for name, _ in recipe.dlopen]),
        "SOURCE_DATE_EPOCH": str(int(source_date_epoch)),
    }


def provided_sonames(postgres: PostgresBuildOutput) -> list[str]:
    """The shared library names the runnable Postgres image has beyond its base: Postgres's own
    and the runtime overlay's. An extension never bundles these."""
    names: set[str] = set()
    for root in (postgres.prefix / "lib", postgres.runtime_root):
        if root.is_dir():
            names.update(p.name for p in root.rglob("*.so*")
                         if (p.is_file() or p.is_symlink()) and ".so" in p.name)
    return sorted(names)


@dataclass(frozen=True)
class ExtensionInvocation:
    """One extension build as extension.Dockerfile is invoked for it: the compile and its suite."""

    what: str
    platform: str
    build_args: Mapping[str, str]
    context_files: tuple[Path, ...]
    postgres_install: Path
    provided: tuple[str, ...] = field(repr=False)
    # The install trees of the extensions it is built against (build.requires), merged.
    built_against: Path | None = None

    def context_text(self) -> dict[str, str]:
        return {PROVIDED_LIBS: "".join(f"{name}\n" for name in self.provided)}

    def buildkit_inputs(self) -> tuple[dict[str, str], dict[str, Path]]:
        """The build args, with those that name what BuildKit is given, and the named contexts
        (the compile and the build-tree image pass the same, so one is the other's cache): the
        Postgres tree and what it is built against (without it, REQUIRES_TREE keeps its empty
        default), each named after its bytes (:func:`content_name`), and CONTEXT_DIGEST, the
        bytes of the build context. The Dockerfile keys its build steps by these (BuildKit's
        own checksums missed a one-byte change here). Each tree must hold files: an empty one
        would be sent as it is, and the build fail far from the cause."""
        trees = {"POSTGRES_TREE": ("postgres", self.postgres_install)}
        if self.built_against is not None:
            trees["REQUIRES_TREE"] = ("requires", self.built_against)
        for prefix, tree in trees.values():
            if not tree.is_dir() or next(tree.iterdir(), None) is None:
                raise BuildError(f"build of {self.what}: its {prefix} tree {tree} is missing or "
                                 "empty (a build cache emptied while it ran?)")
        names = {arg: content_name(prefix, tree) for arg, (prefix, tree) in trees.items()}
        return ({**self.build_args, **names, "CONTEXT_DIGEST": self.context_digest()},
                {names[arg]: tree for arg, (_, tree) in trees.items()})

    def context_digest(self) -> str:
        """A digest of the build context's names and bytes (sources, patches, texts)."""
        digest = hashlib.sha256()
        for path in self.context_files:
            digest.update(f"F {path.name} {sha256_file(path)}\n".encode())
        for name, text in sorted(self.context_text().items()):
            digest.update(f"T {name} {hashlib.sha256(text.encode()).hexdigest()}\n".encode())
        return digest.hexdigest()


def merged_trees(trees: Sequence[Path]) -> Path | None:
    """One directory holding the files of ``trees`` (``builds/<key>/install`` of finished
    builds): the tree itself when there is one, else hard links in ``built-against/`` beside
    ``builds/``, named by the trees, made once. Two trees with the same file are an error: which
    one would win?"""
    if len(trees) <= 1:
        return trees[0] if trees else None
    name = hashlib.sha256("\n".join(str(t.resolve()) for t in trees).encode()).hexdigest()[:16]
    merged = trees[0].resolve().parents[2] / "built-against" / name
    if merged.is_dir():
        return merged
    merged.parent.mkdir(parents=True, exist_ok=True)
    staging = merged.with_name(f"{name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)

    def clash(path: str) -> BuildError:
        return BuildError(f"build.requires: {Path(path).relative_to(staging)} is in the install "
                          "trees of two of the extensions it is built against")

    def link(src: str, dst: str) -> None:
        if os.path.lexists(dst):
            raise clash(dst)
        os.link(src, dst, follow_symlinks=False)

    try:
        for tree in trees:
            shutil.copytree(tree, staging, symlinks=True, copy_function=link, dirs_exist_ok=True)
    except shutil.Error as exc:  # a symbolic link in both (copytree makes those itself)
        shutil.rmtree(staging, ignore_errors=True)
        raise clash(exc.args[0][0][1]) from None
    except BuildError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    staging.rename(merged)
    return merged


def extension_invocation(*, base_image: str, postgres: PostgresBuildOutput, pg_major: int,
                         source_tarball: Path, patches: Sequence[Path],
                         build_packages: Sequence[str], recipe: BuildRecipe, platform: str,
                         source_date_epoch: int, compile_on: str = "build",
                         built_against: Sequence[Path] = ()) -> ExtensionInvocation:
    """Check the inputs of an extension build and describe how the Dockerfile is invoked.

    ``built_against``: the install trees of the extensions it compiles against, put in the
    Postgres tree of the build (not in its output)."""
    check_base(base_image)
    if postgres.pg_major != pg_major:
        raise BuildError(f"extension for Postgres {pg_major} given a Postgres {postgres.pg_major} tree")
    pg_config = postgres.prefix / "bin/pg_config"
    if not pg_config.is_file():
        raise BuildError(f"no Postgres install tree at {postgres.install_root} ({pg_config} missing)")
    for patch in patches:
        if not patch.is_file():
            raise BuildError(f"patch {patch} does not exist")
    build_args = extension_build_args(
        base_image=base_image, pg_major=pg_major, tarball=tarball_name(source_tarball),
        build_packages=build_packages, recipe=recipe, source_date_epoch=source_date_epoch,
        compile_on=compile_on)
    return ExtensionInvocation(
        what=f"extension {source_tarball.name} for PostgreSQL {pg_major} ({platform})",
        platform=platform, build_args=build_args,
        context_files=(source_tarball, *patches), postgres_install=postgres.install_root,
        provided=tuple(provided_sonames(postgres)), built_against=merged_trees(built_against))


def tree_key(install: Path) -> str:
    """What names an install tree's content: its build's input digest, when a finished build
    recorded one, else the digest of its files."""
    return done_key(install.parent) or tree_digest(install)


def compile_extension(
    build: ExtensionInvocation,
    *,
    out_dir: Path,
    progress: Callable[[str], None],
    cache_key: str | None = None,
    no_cache: bool = False,
    sandbox_hostname: str = "",
) -> ExtensionBuildOutput:
    """Build an extension against its Postgres in its base image; result in ``out_dir``.

    ``out_dir`` receives ``install/``, ``system/``, ``data/``, ``licenses/``,
    ``licenses-system/``, ``meta/``, ``build.log`` and ``.done``; caching as in
    :func:`compile_postgres`.
    """
    dockerfile = buildkit.dockerfile("extension.Dockerfile")
    against = {"REQUIRES": tree_key(build.built_against)} if build.built_against else {}
    key = cache_key or input_key(
        "extension", dockerfile, build.context_files[0], build.platform,
        {**build.build_args, "POSTGRES": tree_key(build.postgres_install),
         "PROVIDED": ",".join(build.provided), **against}
    )
    out_dir = out_dir.resolve()
    result = ExtensionBuildOutput(
        install_root=out_dir / "install",
        licenses_dir=out_dir / "licenses",
        meta_dir=out_dir / "meta",
        system_dir=out_dir / "system",
        data_dir=out_dir / "data",
        system_licenses_dir=out_dir / "licenses-system",
    )
    if is_done(out_dir, key):
        progress(f"{build.what}: up to date in {out_dir}")
        return result
    pg_major = build.build_args["PG_MAJOR"]

    def check(staging: Path) -> None:
        prefix = staging / "install/usr/lib/postgresql" / pg_major
        if not prefix.is_dir() or not any(p.is_file() for p in prefix.rglob("*")):
            raise BuildError(f"build of {build.what}: the install step put nothing under {prefix}")
        for path in sorted(prefix.rglob("*.so")):
            check_machine(path, build.platform, build.what)

    build_args, contexts = build.buildkit_inputs()
    build_into(
        what=build.what,
        dockerfile=dockerfile,
        context_files=build.context_files,
        context_text=build.context_text(),
        platform=build.platform,
        build_args=build_args,
        build_contexts=contexts,
        out_dir=out_dir,
        key=key,
        progress=progress,
        no_cache=no_cache,
        check=check,
        sandbox_hostname=sandbox_hostname,
    )
    return result


def export_build_image(build: ExtensionInvocation, name: str,
                       progress: Callable[[str], None]) -> None:
    """Export the ``build`` stage of ``build`` (the compiled tree, its toolchain and the suite
    script) as image ``name`` in the engine's image store, for the gate to run the suite in.

    The same arguments as the compile, so BuildKit takes every step from its cache (or, if it
    has lost them, repeats the very same build). Layers are stored uncompressed: the image
    never leaves this machine, and compressing a toolchain costs a minute.
    """
    build_args, contexts = build.buildkit_inputs()
    invoke(what=f"the build tree of {build.what}",
           dockerfile=buildkit.dockerfile("extension.Dockerfile"),
           context_files=build.context_files, context_text=build.context_text(),
           platform=build.platform, build_args=build_args, build_contexts=contexts,
           target="build",
           output={"type": "image", "name": name, "compression": "uncompressed"},
           progress=progress)
