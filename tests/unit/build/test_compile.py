"""compile, buildkit and aptsources without an engine: inputs checked, cache honoured, failures kept apart."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from monogres_oci.build import buildkit, compile
from monogres_oci.catalog.model import BuildRecipe, DataDir, ExtensionPatch
from monogres_oci.debian.sources import system_mirror
from monogres_oci.errors import BuildError

BASE = "127.0.0.1:5000/base@sha256:" + "a" * 64


def fake_build(files: Mapping[str, str]) -> Any:
    """A buildx_build stand-in that writes ``files`` into the local output directory."""
    calls: list[dict[str, Any]] = []

    def build(**kwargs: Any) -> list[str]:
        calls.append(kwargs)
        dest = Path(kwargs["output"]["dest"])
        for rel, text in files.items():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_text(text)
        kwargs["progress"]("#1 DONE")
        return ["#1 DONE"]

    build.calls = calls  # type: ignore[attr-defined]
    return build


# The first 20 bytes of an x86-64 ELF file: enough for the architecture check.
X86_64_ELF = "\x7fELF\x02\x01\x01" + "\x00" * 11 + "\x3e\x00"

PG_FILES = {
    "install/usr/lib/postgresql/18/bin/postgres": X86_64_ELF,
    "install/usr/lib/postgresql/18/bin/pg_config": "ELF",
    "runtime/etc/passwd": "postgres:x:26:26::/var/lib/postgresql:/bin/bash\n",
    "meta/meson-setup.log": "Project version: 18.6\n",
}


def pg_kwargs(tmp_path: Path, **over: Any) -> dict[str, Any]:
    tarball = tmp_path / "postgresql-18.6.tar.bz2"
    tarball.write_bytes(b"source")
    lines: list[str] = []
    kwargs: dict[str, Any] = dict(
        base_image=BASE, pg_version="18.6", pg_major=18, source_tarball=tarball,
        meson_options=["-Dicu=enabled"], build_packages=["libicu-dev"], platform="linux/amd64",
        source_date_epoch=1700000000, out_dir=tmp_path / "out", progress=lines.append,
    )
    kwargs.update(over)
    return kwargs


def test_a_binary_for_another_architecture_fails_the_build(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cross build that silently used the native compiler must not pass for arm64."""
    monkeypatch.setattr(buildkit, "buildx_build", fake_build(PG_FILES))
    with pytest.raises(BuildError, match="postgres is ELF machine 62, not 183"):
        compile.compile_postgres(**pg_kwargs(tmp_path, platform="linux/arm64"))
    assert not (tmp_path / "out/.done").exists()


def test_postgres_build_args_output_and_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = fake_build(PG_FILES)
    monkeypatch.setattr(buildkit, "buildx_build", build)
    out = compile.compile_postgres(**pg_kwargs(tmp_path), cache_key="k1")
    assert out.prefix == tmp_path / "out/install/usr/lib/postgresql/18"
    assert (out.prefix / "bin/postgres").is_file()
    assert out.runtime_root == tmp_path / "out/runtime"
    assert json.loads((tmp_path / "out/.done").read_text())["cache_key"] == "k1"
    (call,) = build.calls
    assert call["target"] == "export" and call["platform"] == "linux/amd64"
    assert call["build_args"]["PG_TARBALL"] == "postgresql-18.6.tar.bz2"
    assert call["build_args"]["MESON_OPTIONS"] == "-Dicu=enabled"
    assert call["build_args"]["SOURCE_DATE_EPOCH"] == "1700000000"
    assert call["dockerfile_path"].name == "postgres.Dockerfile"
    assert not list(tmp_path.glob(".out.partial"))


def test_postgres_cached_result_is_not_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buildkit, "buildx_build", fake_build(PG_FILES))
    compile.compile_postgres(**pg_kwargs(tmp_path), cache_key="k1")
    again = fake_build(PG_FILES)
    monkeypatch.setattr(buildkit, "buildx_build", again)
    compile.compile_postgres(**pg_kwargs(tmp_path), cache_key="k1")
    assert again.calls == []
    compile.compile_postgres(**pg_kwargs(tmp_path), cache_key="k2")
    assert len(again.calls) == 1


def test_default_key_follows_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = fake_build(PG_FILES)
    monkeypatch.setattr(buildkit, "buildx_build", build)
    compile.compile_postgres(**pg_kwargs(tmp_path))
    compile.compile_postgres(**pg_kwargs(tmp_path))
    assert len(build.calls) == 1
    compile.compile_postgres(**pg_kwargs(tmp_path, meson_options=["-Dicu=disabled"]))
    assert len(build.calls) == 2


def test_failed_build_keeps_previous_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buildkit, "buildx_build", fake_build(PG_FILES))
    compile.compile_postgres(**pg_kwargs(tmp_path), cache_key="k1")

    def failing(**kwargs: Any) -> list[str]:
        raise BuildError("build of PostgreSQL failed; last lines of the build log:\nerror: boom")

    monkeypatch.setattr(buildkit, "buildx_build", failing)
    with pytest.raises(BuildError, match="boom"):
        compile.compile_postgres(**pg_kwargs(tmp_path), cache_key="k2")
    assert json.loads((tmp_path / "out/.done").read_text())["cache_key"] == "k1"


def test_wrong_version_tarball_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buildkit, "buildx_build", fake_build(PG_FILES))
    with pytest.raises(BuildError, match="not version 18.7"):
        compile.compile_postgres(**pg_kwargs(tmp_path, pg_version="18.7"))


def test_base_must_be_pinned(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="pinned by digest"):
        compile.compile_postgres(**pg_kwargs(tmp_path, base_image="127.0.0.1:5000/base:bookworm"))


@pytest.mark.parametrize("word", ["", "a b", "-Dx='y'", "$(id)", "a\\b"])
def test_shell_words_rejects_what_would_split_or_expand(word: str) -> None:
    with pytest.raises(BuildError):
        buildkit.shell_words(["ok", word])


def test_extension_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buildkit, "buildx_build", fake_build({
        **PG_FILES,
        "install/usr/lib/postgresql/18/lib/libpq.so.5": X86_64_ELF,
        "runtime/usr/lib/x86_64-linux-gnu/libicuuc.so.72": X86_64_ELF,
    }))
    pg = compile.compile_postgres(**pg_kwargs(tmp_path), cache_key="pg")
    build = fake_build({
        "install/usr/lib/postgresql/18/lib/ext.so": X86_64_ELF,
        "install/usr/lib/postgresql/18/share/extension/ext.control": "",
        "licenses/LICENSE": "MIT",
        "meta/compiler.txt": "cc",
    })
    monkeypatch.setattr(buildkit, "buildx_build", build)
    tarball = tmp_path / "ext-1.0.tar.gz"
    tarball.write_bytes(b"ext")
    patch = tmp_path / "build.patch"
    patch.write_text("--- a\n+++ b\n")
    recipe = BuildRecipe(system="cmake", packages=("libcurl4-openssl-dev",),
                         cmake_options=("-DFOO=ON",), cflags=("-I/usr/include/h3",),
                         patches=(ExtensionPatch("build.patch", "0" * 64, "why"),),
                         data=(DataDir("/usr/share/proj", "proj"),),
                         dlopen=(("libmysqlclient.so", "why"), ("libfoo.so.2", "why")))
    invocation = compile.extension_invocation(
        base_image=BASE, postgres=pg, pg_major=18, source_tarball=tarball, patches=[patch],
        build_packages=["libicu-dev"], recipe=recipe, platform="linux/amd64",
        source_date_epoch=1)
    out = compile.compile_extension(invocation, out_dir=tmp_path / "ext", progress=lambda _: None)
    assert (out.licenses_dir / "LICENSE").read_text() == "MIT"
    (call,) = build.calls
    args = call["build_args"]
    # the Postgres tree under a name of its content, which the Dockerfile is told
    assert call["build_contexts"] == {args["POSTGRES_TREE"]: pg.install_root}
    assert args["POSTGRES_TREE"] == compile.content_name("postgres", pg.install_root)
    assert args["CONTEXT_DIGEST"] == invocation.context_digest()
    assert "REQUIRES_TREE" not in args  # the Dockerfile's empty default
    assert (args["BUILD_SYSTEM"], args["EXTRA_PACKAGES"], args["CMAKE_OPTIONS"]) == (
        "cmake", "libcurl4-openssl-dev", "-DFOO=ON")
    assert (args["EXTRA_CFLAGS"], args["EXT_PATCHES"], args["DATA_DIRS"]) == (
        "-I/usr/include/h3", "build.patch", "/usr/share/proj=proj")
    assert args["DLOPEN"] == "libmysqlclient.so libfoo.so.2"  # the names; the reasons are prose
    # What the runnable image already has is never bundled: Postgres's tree and the overlay.
    assert invocation.context_text()["provided-libs.txt"].split() == ["libicuuc.so.72", "libpq.so.5"]
    with pytest.raises(BuildError, match="Postgres 17"):
        compile.extension_invocation(
            base_image=BASE, postgres=pg, pg_major=17, source_tarball=tarball, patches=[],
            build_packages=[], recipe=recipe, platform="linux/amd64", source_date_epoch=1)


def test_build_tree_image_reuses_the_build_arguments(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # The suite must run in the tree the compile made: the same arguments (so BuildKit's cached
    # build stage), the build stage exported as an image.
    monkeypatch.setattr(buildkit, "buildx_build", fake_build(PG_FILES))
    pg = compile.compile_postgres(**pg_kwargs(tmp_path), cache_key="pg")
    calls: list[dict[str, Any]] = []

    def record(**kwargs: Any) -> list[str]:
        calls.append(kwargs)
        return []

    monkeypatch.setattr(buildkit, "buildx_build", record)
    tarball = tmp_path / "ext-1.0.tar.gz"
    tarball.write_bytes(b"ext")
    invocation = compile.extension_invocation(
        base_image=BASE, postgres=pg, pg_major=18, source_tarball=tarball, patches=[],
        build_packages=[], recipe=BuildRecipe(system="pgxs"), platform="linux/amd64",
        source_date_epoch=1)
    compile.export_build_image(invocation, "monogres-gate/build:x", progress=lambda _: None)
    (call,) = calls
    assert (call["target"], call["output"]["type"], call["output"]["name"]) == (
        "build", "image", "monogres-gate/build:x")
    args, contexts = invocation.buildkit_inputs()
    assert call["build_args"] == args and args.items() >= invocation.build_args.items()
    assert call["build_contexts"] == contexts == {args["POSTGRES_TREE"]: pg.install_root}


def test_what_a_build_is_given_is_named_by_its_bytes_not_its_metadata(tmp_path: Path) -> None:
    # Two trees (or patches) that differ only in a file's bytes (same paths, sizes, mtimes) get
    # two names; the same bytes in two places, one. BuildKit's own keys can miss such a change.
    trees = []
    for i, text in enumerate(("v = '1.0'\n", "v = '1.9'\n", "v = '1.0'\n")):
        tree = tmp_path / str(i) / "install"
        (tree / "share").mkdir(parents=True)
        (tree / "share/greet.control").write_text(text)
        os.utime(tree / "share/greet.control", (1700000000, 1700000000))
        trees.append(tree)
    names = [compile.content_name("requires", t) for t in trees]
    assert names[0] != names[1] and names[0] == names[2], names
    assert re.fullmatch(r"requires-[0-9a-f]{24}", names[0]), names[0]
    digests = []
    for tree in trees:
        patch = tree.parent / "fix.patch"
        patch.write_text((tree / "share/greet.control").read_text())
        os.utime(patch, (1700000000, 1700000000))
        invocation = compile.ExtensionInvocation(
            what="x", platform="linux/amd64", build_args={}, context_files=(patch,),
            postgres_install=tree, provided=("libpq.so.5",))
        digests.append(invocation.buildkit_inputs()[0]["CONTEXT_DIGEST"])
    assert digests[0] != digests[1] and digests[0] == digests[2], digests


def test_dockerfiles_use_only_the_builtin_frontend() -> None:
    for name in ("base.Dockerfile", "postgres.Dockerfile", "extension.Dockerfile"):
        lines = buildkit.dockerfile(name).read_text().splitlines()
        code = [line for line in lines if not line.lstrip().startswith("#")]
        assert not any(line.startswith("# syntax=") for line in lines)
        assert not any("-march=native" in line for line in code)


def test_extension_builds_share_the_postgres_toolchain_stage() -> None:
    # BuildKit reuses the toolchain layers of the Postgres build for its extensions only when the
    # two Dockerfiles spell every instruction up to that stage identically.
    def toolchain(name: str) -> str:
        text = buildkit.dockerfile(name).read_text()
        start = text.index("ARG BASE_IMAGE\n")
        chunk = text[start:text.index("\nFROM ", text.index("AS toolchain\n", start)) + 1]
        return re.sub(r"(\n#[^\n]*)+\n$", "\n", chunk)  # without the next stage's comment
    shared = toolchain("postgres.Dockerfile")
    assert "FROM compile-on-${COMPILE_ON} AS toolchain" in shared
    assert toolchain("extension.Dockerfile") == shared


def test_platform_arch() -> None:
    assert buildkit.platform_arch("linux/arm64") == "arm64"
    with pytest.raises(BuildError, match="unsupported platform"):
        buildkit.platform_arch("linux/s390x")


def test_system_mirror_reads_deb822_and_one_line(tmp_path: Path) -> None:
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.invalid/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "Types: deb deb-src\nURIs: http://mirror.invalid/debian/\nSuites: bookworm\n"
        "Components: main\n"
    )
    assert system_mirror(tmp_path) == "http://mirror.invalid/debian"
    (parts / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text(
        "# deb http://old.invalid/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.invalid/debian bookworm main\n"
    )
    assert system_mirror(tmp_path) == "http://one.invalid/debian"
    (tmp_path / "sources.list").unlink()
    with pytest.raises(BuildError, match="cannot choose a mirror"):
        system_mirror(tmp_path)


def test_log_tail_keeps_the_error_and_leaves_out_the_dockerfile_excerpt() -> None:
    # The end of a real failed log: the compiler's error, BuildKit's summary, then its excerpt of
    # the Dockerfile (a long heredoc would fill the whole tail).
    log = ["#28 0.124 broken.c:3:2: error: #error \"broken on purpose\"",
           "#28 0.124     3 | #error \"broken on purpose\"",
           "#28 ERROR: process \"/bin/sh -c /dev/pipes/SCRIPT\" did not complete successfully",
           "------", "extension.Dockerfile:268", "-" * 20,
           " 267 |     # stand-in pg_config", " 268 | >>> RUN <<'SCRIPT'",
           *[f" {n} | >>>     make install" for n in range(269, 340)],
           " 340 |", "-" * 20,
           "ERROR: failed to build: failed to solve: exit code: 2"]
    tail = buildkit.log_tail(log)
    assert tail[0] == log[0] and tail[1] == log[1]  # the source excerpt of the compiler stays
    assert not any(">>>" in line for line in tail)
    assert tail[-1].startswith("ERROR: failed to build")
    assert len(buildkit.log_tail([f"line {n}" for n in range(100)])) == buildkit.LOG_TAIL_LINES


def test_a_second_process_building_the_same_key_waits_and_reuses_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two builds of one key into one cache (a build and the tests, on one machine): the second
    waits on the key's lock and takes the first's result; before, it removed the first's
    staging directory under it (seen: FileNotFoundError on .partial/export)."""
    build = fake_build(PG_FILES)
    monkeypatch.setattr(buildkit, "buildx_build", build)
    other = tmp_path / "other"
    other.mkdir()
    compile.compile_postgres(**pg_kwargs(other), cache_key="k1")  # what the other one builds
    lock = (tmp_path / ".out.lock").open("w")  # noqa: SIM115 - held across the steps below
    fcntl.flock(lock, fcntl.LOCK_EX)  # as the other process holds it
    seen: list[str] = []
    result: list[Any] = []

    def second() -> None:
        try:
            result.append(compile.compile_postgres(**{**pg_kwargs(tmp_path),
                                                      "progress": seen.append}, cache_key="k1"))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            result.append(exc)

    waiter = threading.Thread(target=second)
    waiter.start()
    deadline = time.monotonic() + 10
    while not any("waiting for it" in s for s in seen) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any("another process is building it" in s for s in seen), seen
    shutil.copytree(other / "out", tmp_path / "out")  # the other process finishes
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()
    waiter.join(10)
    assert not waiter.is_alive() and len(result) == 1
    assert not isinstance(result[0], Exception), result[0]
    assert (result[0].prefix / "bin/postgres").is_file()
    assert len(build.calls) == 1  # built once, by the other


def test_what_an_extension_is_built_against_is_merged_once_and_never_overlaps(
        tmp_path: Path) -> None:
    def tree(key: str, files: dict[str, str]) -> Path:
        root = tmp_path / "cache" / "builds" / key / "install"
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        return root

    a = tree("a", {"usr/lib/postgresql/18/lib/a.so": "a"})
    b = tree("b", {"usr/lib/postgresql/18/share/extension/b.control": "b"})
    assert compile.merged_trees([]) is None
    assert compile.merged_trees([a]) == a  # one tree is given as it is
    merged = compile.merged_trees([a, b])
    assert merged is not None and merged.parent == tmp_path / "cache" / "built-against"
    assert sorted(str(p.relative_to(merged)) for p in merged.rglob("*") if p.is_file()) == [
        "usr/lib/postgresql/18/lib/a.so", "usr/lib/postgresql/18/share/extension/b.control"]
    assert (merged / "usr/lib/postgresql/18/lib/a.so").stat().st_ino == (
        a / "usr/lib/postgresql/18/lib/a.so").stat().st_ino  # linked, not copied
    assert compile.merged_trees([a, b]) == merged  # made once
    c = tree("c", {"usr/lib/postgresql/18/lib/a.so": "another a"})
    with pytest.raises(BuildError, match=r"usr/lib/postgresql/18/lib/a.so is in the install "
                                         "trees of two"):
        compile.merged_trees([a, c])
    assert [p.name for p in (tmp_path / "cache" / "built-against").iterdir()] == [merged.name]
    # a symbolic link in both (copytree makes those itself) is the same clash
    for key in ("d", "e"):
        link = tmp_path / "cache" / "builds" / key / "install" / "usr/lib/postgresql/18/lib/x.so"
        link.parent.mkdir(parents=True)
        link.symlink_to("x.so.1")
    with pytest.raises(BuildError, match=r"usr/lib/postgresql/18/lib/x.so is in the install"):
        compile.merged_trees([tmp_path / "cache/builds/d/install", tmp_path / "cache/builds/e/install"])
    assert [p.name for p in (tmp_path / "cache" / "built-against").iterdir()] == [merged.name]


def test_a_tree_it_is_built_against_that_is_gone_is_named(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buildkit, "buildx_build", fake_build(PG_FILES))
    pg = compile.compile_postgres(**pg_kwargs(tmp_path), cache_key="pg")
    tarball = tmp_path / "atop-1.0.tar.gz"
    tarball.write_bytes(b"atop")
    greet = tmp_path / "greet" / "install"
    greet.mkdir(parents=True)
    invocation = compile.extension_invocation(
        base_image=BASE, postgres=pg, pg_major=18, source_tarball=tarball, patches=[],
        build_packages=[], recipe=BuildRecipe(system="pgxs"), platform="linux/amd64",
        source_date_epoch=1, built_against=[greet])
    with pytest.raises(BuildError, match=f"its requires tree {greet} is missing or empty"):
        compile.export_build_image(invocation, "monogres-gate/build:x", progress=lambda _: None)
