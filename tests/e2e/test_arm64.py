"""arm64: cross-compiled artifacts, one index per tag over both architectures, fan-out merges.

PostgreSQL 18.6 in the default option set, regular (LLVM JIT, PL/Python), with pgaudit, rum
(PGXS) and the greet fixture (CMake, through a toolchain file) is built for amd64 and arm64 in
one invocation (the arm64 half cross-compiled: BuildKit runs the compiler on this amd64 machine),
each image gated, published and signed; then checked the ways its users meet it: every ELF file
is aarch64 in the arm64 image, the two hold the same paths and the same bytes under share/, the
arm64 server runs (under QEMU user emulation through binfmt_misc, as docker runs a foreign image)
and its JIT compiles a query, `install --platform` and `oras pull --platform` pick the asked
architecture, docker on amd64 gets amd64. Last, the two architectures are built by separate
invocations (separate work directories), published by digest and merged: the merged indexes must
be the very ones the single invocation published.

The amd64 half's compiles are the shared test build's (same option set, same cache).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    CACHE,
    PG_VERSION,
    Built,
    Keys,
    PublishedLayout,
    cli,
    publish_signed,
)
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.e2e

OPTION_SET = "regular"  # the default: extensions built against it carry no option set in tags
EXTENSIONS = ("pgaudit", "rum", "greet")
ARTIFACTS = ("postgresql-dist", "postgresql", *EXTENSIONS)
ELF_MACHINE = {"amd64": 62, "arm64": 183}  # EM_X86_64, EM_AARCH64
VERSIONS = {"pgaudit": "18.0", "rum": "1.3.15", "greet": "1.0"}


def tag(repo: str) -> str:
    if repo in VERSIONS:
        return f"{repo}:{PG_VERSION}-{VERSIONS[repo]}-bookworm"
    return f"{repo}:{PG_VERSION}-{OPTION_SET}-bookworm"


def build_args(catalog: Path, base_image: str, cache: Path, out: Path, *archs: str) -> list[str]:
    args = ["build", "--catalog", str(catalog), "--postgres", PG_VERSION, "--option-set",
            OPTION_SET, "--base", f"bookworm={base_image}", "--distro", "bookworm", "--cache-dir", str(cache),
            "--out", str(out), "--json"]
    for arch in archs:
        args += ["--arch", arch]
    for ext in EXTENSIONS:
        args += ["--extension", ext]
    return args


@pytest.fixture(scope="session")
def multiarch(tmp_path_factory: pytest.TempPathFactory, catalog: Path, base_image: str,
              registry: RunningRegistry, keys: Keys) -> PublishedLayout:
    """Both architectures in one invocation, compiles cached in the shared test cache (the
    amd64 Postgres is the shared build's)."""
    out = tmp_path_factory.mktemp("multiarch") / "oci"
    cli(*build_args(catalog, base_image, CACHE, out, "amd64", "arm64"))
    return PublishedLayout(out, publish_signed(out, registry, "multi", keys))


def _layout_json(layout: Path, digest: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((layout / "blobs/sha256" / digest.split(":")[1]).read_bytes())
    return data


def _platform_manifests(layout: Path, repo_tag: str) -> dict[str, dict[str, Any]]:
    index_json = json.loads((layout / "index.json").read_text())
    entry = next(m for m in index_json["manifests"]
                 if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == repo_tag)
    index = _layout_json(layout, entry["digest"])
    return {m["platform"]["architecture"]: _layout_json(layout, m["digest"])
            for m in index["manifests"]}


@dataclass(frozen=True)
class LayerFiles:
    """What one platform's artifact layer holds."""

    paths: list[str]
    elf: dict[str, int]  # path -> ELF e_machine, for each ELF regular file
    shared: dict[str, str]  # path -> sha256, for each regular file under share/ (not per arch)


def _layer_files(layout: Path, manifest: dict[str, Any]) -> LayerFiles:
    """Read the manifest's last layer once."""
    layer = manifest["layers"][-1]
    paths, elf, shared = [], {}, {}
    with gzip.open(layout / "blobs/sha256" / layer["digest"].split(":")[1]) as raw, \
            tarfile.open(fileobj=raw, mode="r|") as tar:
        for member in tar:
            paths.append(member.name)
            if not member.isfile():
                continue
            f = tar.extractfile(member)
            assert f is not None
            data = f.read()
            if data[:4] == b"\x7fELF":
                elf[member.name] = int.from_bytes(data[18:20], "little")
            if "/share/" in f"/{member.name}":  # extension layers start at share/
                shared[member.name] = hashlib.sha256(data).hexdigest()
    return LayerFiles(sorted(paths), elf, shared)


def test_plan_cross_compiles_arm64_and_emulates_what_cannot(catalog: Path) -> None:
    """arm64 Postgres and its extensions are cross-compiled, LLVM's option sets included;
    `--emulate` goes through QEMU instead."""
    def methods(*extra: str) -> dict[str, str]:
        out = cli("plan", "--catalog", str(catalog), "--postgres", PG_VERSION, "--extension",
                  "rum", "--json", *extra).stdout
        return {t["name"]: t["method"] for t in json.loads(out)["targets"]}

    plan = methods("--option-set", "barebones", "--option-set", "regular")
    assert plan[f"postgres-{PG_VERSION}-barebones-bookworm-arm64"] == "cross"
    assert plan[f"rum-1.3.15-pg{PG_VERSION}-barebones-bookworm-arm64"] == "cross"
    assert plan[f"postgres-{PG_VERSION}-barebones-bookworm-amd64"] == "native"
    assert plan[f"postgres-{PG_VERSION}-regular-bookworm-arm64"] == "cross"
    assert plan[f"rum-1.3.15-pg{PG_VERSION}-regular-bookworm-arm64"] == "cross"
    forced = methods("--option-set", "barebones", "--emulate")
    assert forced[f"postgres-{PG_VERSION}-barebones-bookworm-arm64"] == "emulated"
    assert forced[f"rum-1.3.15-pg{PG_VERSION}-barebones-bookworm-arm64"] == "emulated"
    assert forced[f"postgres-{PG_VERSION}-barebones-bookworm-amd64"] == "native"


def test_every_elf_file_is_built_for_its_platform(multiarch: PublishedLayout) -> None:
    """Each binary and shared object of Postgres and of the extensions is an aarch64 ELF in the
    arm64 image (x86-64 in the amd64 one), the JIT's llvmjit.so among them; both hold the very
    same paths (the PGXS extensions' LLVM bitcode too), and the same bytes in every file under
    share/ (SQL, time zones, messages: nothing there depends on the machine)."""
    for repo in ("postgresql-dist", *EXTENSIONS):
        manifests = _platform_manifests(multiarch.layout, tag(repo))
        assert sorted(manifests) == ["amd64", "arm64"], repo
        files = {}
        for arch, manifest in manifests.items():
            files[arch] = _layer_files(multiarch.layout, manifest)
            elf = files[arch].elf
            assert elf, f"{repo} {arch}: no ELF file at all"
            wrong = {p: m for p, m in elf.items() if m != ELF_MACHINE[arch]}
            assert not wrong, f"{repo} {arch}: ELF files for another machine: {wrong}"
            if repo == "postgresql-dist":
                names = {p.rsplit("/", 1)[-1] for p in elf}
                assert {"postgres", "initdb", "psql", "pg_ctl"} <= names
                assert any(n.startswith("libpq.so.5.") for n in names)  # (libpq.so.5: a link)
                assert sum(p.endswith(".so") for p in elf) >= 20
                assert any(p.endswith("/lib/llvmjit.so") for p in elf), f"{arch}: no JIT"
            elif repo != "greet":  # PGXS wrote bitcode for the JIT to inline (CMake does not)
                assert any(p.endswith(".bc") for p in files[arch].paths), f"{repo} {arch}"
        assert files["amd64"].paths == files["arm64"].paths, \
            f"{repo}: the two architectures' layers hold different paths"
        assert files["amd64"].shared, f"{repo}: nothing under share/"
        differ = sorted(p for p, digest in files["amd64"].shared.items()
                        if files["arm64"].shared[p] != digest)
        assert not differ, f"{repo}: {len(differ)} files under share/ differ by architecture, " \
            f"e.g. {differ[:3]}"
        notes = [manifests[a]["annotations"]["org.monogres.postgres.meson_options"]
                 for a in ("amd64", "arm64")]
        assert notes[0] == notes[1]


def test_index_lists_both_platforms_with_annotations(multiarch: PublishedLayout) -> None:
    """One index per tag, a platform entry per architecture, annotations on index and manifests
    (read back from the registry with crane)."""
    crane = shutil.which("crane")
    assert crane
    for repo in ARTIFACTS:
        ref = multiarch.published.tag_ref(tag(repo))
        index = json.loads(subprocess.run([crane, "manifest", "--insecure", ref], check=True,
                                          capture_output=True, text=True).stdout)
        assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
        assert [(m["platform"]["os"], m["platform"]["architecture"])
                for m in index["manifests"]] == [("linux", "amd64"), ("linux", "arm64")]
        assert index["annotations"]["org.monogres.postgres.version"] == PG_VERSION
        for entry in index["manifests"]:
            manifest = json.loads(subprocess.run(
                [crane, "manifest", "--insecure", f"{ref.rsplit(':', 1)[0]}@{entry['digest']}"],
                check=True, capture_output=True, text=True).stdout)
            assert manifest["annotations"]["org.monogres.postgres.version"] == PG_VERSION


def test_docker_on_amd64_pulls_amd64(multiarch: PublishedLayout) -> None:
    ref = multiarch.published.tag_ref(tag("postgresql"))
    subprocess.run(["docker", "pull", "-q", ref], check=True, capture_output=True)
    arch = subprocess.run(["docker", "image", "inspect", "-f", "{{.Architecture}}", ref],
                          check=True, capture_output=True, text=True).stdout.strip()
    assert arch == "amd64"
    machine = subprocess.run(["docker", "run", "--rm", ref, "uname", "-m"], check=True,
                             capture_output=True, text=True).stdout.strip()
    assert machine == "x86_64"


@pytest.mark.parametrize("arch", ["arm64", "amd64"])
def test_oras_pull_platform(multiarch: PublishedLayout, tmp_path: Path, arch: str) -> None:
    oras = shutil.which("oras")
    assert oras
    ref = multiarch.published.tag_ref(tag("rum"))
    subprocess.run([oras, "pull", "--plain-http", "--platform", f"linux/{arch}", ref,
                    "-o", str(tmp_path)], check=True, capture_output=True, timeout=300)
    head = (tmp_path / "lib/rum.so").read_bytes()[:20]
    assert int.from_bytes(head[18:20], "little") == ELF_MACHINE[arch]


def run_arm64_server(image: str, extensions_dir: Path, extensions: tuple[str, ...],
                     statements: list[str]) -> list[str]:
    """Start the arm64 image under QEMU with the extensions mounted as CloudNativePG mounts them
    (pgaudit preloaded), run the statements with psql; returns its output lines, `uname -m` first."""
    mounts = []
    for ext in extensions:
        mounts += ["-v", f"{extensions_dir / ext}:/extensions/{ext}:ro"]
    control = ":".join(["$system", *(f"/extensions/{e}/share" for e in extensions)])
    libs = ":".join(["$libdir", *(f"/extensions/{e}/lib" for e in extensions)])
    commands = " ".join(f'-c "{sql}"' for sql in statements)
    script = ("set -e; uname -m; initdb -D /tmp/data -U postgres --no-sync >/dev/null; "
              "postgres -D /tmp/data -c listen_addresses= -c unix_socket_directories=/tmp "
              f"-c extension_control_path='{control}' -c dynamic_library_path='{libs}' "
              "-c shared_preload_libraries=pgaudit > /tmp/log 2>&1 & "
              "for i in $(seq 120); do pg_isready -q -h /tmp && break; sleep 1; done; "
              f"psql -h /tmp -U postgres -X -q -A -t -v ON_ERROR_STOP=1 {commands} "
              "|| { cat /tmp/log; exit 1; }")
    proc = subprocess.run(["docker", "run", "--rm", "--platform", "linux/arm64", *mounts, image,
                           "bash", "-c", script], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "aarch64", proc.stdout
    return lines


@pytest.fixture
def arm64_extensions(multiarch: PublishedLayout, tmp_path: Path) -> Iterator[Path]:
    """The extensions as an arm64 node would mount them: `install --platform linux/arm64`."""
    for ext in EXTENSIONS:
        cli("install", multiarch.published.tag_ref(tag(ext)), "--platform", "linux/arm64",
            "--dest", str(tmp_path), "--key", str(multiarch.published.keys.public))
    yield tmp_path


def test_arm64_postgres_runs_under_qemu(multiarch: PublishedLayout, arm64_extensions: Path) -> None:
    """The published arm64 image, run through QEMU user emulation: initdb, the server started with
    CloudNativePG's extension GUCs (pgaudit preloaded), CREATE EXTENSION, a rum index (its C code)
    answering, the CMake-built greet, PL/Python, and the JIT compiling a query (inlining and
    optimisation forced): the cross-compiled LLVM bitcode is the target's."""
    for ext in EXTENSIONS:
        so = (arm64_extensions / ext / "lib" / f"{ext}.so").read_bytes()[:20]
        assert int.from_bytes(so[18:20], "little") == ELF_MACHINE["arm64"]
    statements = [
        "CREATE EXTENSION pgaudit", "CREATE EXTENSION rum", "CREATE TABLE docs(t tsvector)",
        "INSERT INTO docs SELECT to_tsvector('simple', 'arm volume ' || g) "
        "FROM generate_series(1, 100) g",
        "CREATE INDEX ON docs USING rum (t rum_tsvector_ops)",
        "SET enable_seqscan = off; SELECT count(*) FROM docs WHERE t @@ to_tsquery('simple', 'volume')",
        "SELECT setting FROM pg_settings WHERE name = 'pgaudit.log'",
        "CREATE EXTENSION greet", "SELECT greet('arm', 2)",
        "SELECT pg_jit_available()",
        "CREATE EXTENSION plpython3u",
        "CREATE FUNCTION py_pow(n int) RETURNS int LANGUAGE plpython3u AS 'return 2 ** n'",
        "SELECT py_pow(10)",
        "SET jit_above_cost = 0; SET jit_inline_above_cost = 0; SET jit_optimize_above_cost = 0; "
        "EXPLAIN (ANALYZE, FORMAT JSON) SELECT sum(g * 2) FROM generate_series(1, 10000) g",
    ]
    lines = run_arm64_server(multiarch.published.tag_ref(tag("postgresql")), arm64_extensions,
                             EXTENSIONS, statements)
    assert lines[1:6] == ["100", "none", "hi arm, hi arm", "t", "1024"], lines
    jit = json.loads("\n".join(lines[6:]))[0]["JIT"]
    assert jit["Functions"] > 0, jit
    assert jit["Options"] == {"Inlining": True, "Optimization": True, "Expressions": True,
                              "Deforming": True}, jit
    assert jit["Timing"]["Emission"] > 0, jit


def test_fan_out_builds_merge_into_the_same_indexes(
        multiarch: PublishedLayout, catalog: Path, base_image: str, registry: RunningRegistry,
        keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> None:
    """amd64 and arm64 built by separate invocations, as two CI jobs would, each into its own
    layout, pushed by digest, then merged: every merged index is byte for byte the single
    invocation's. The compiles come from the shared cache: that compiling again gives the same
    bytes is the reproducibility test's subject; this one's is that packaging, publishing and
    merging do."""
    work = tmp_path_factory.mktemp("fanout")
    target = f"{registry.host}/fanout"
    parts = []
    for arch in ("amd64", "arm64"):
        built = cli(*build_args(catalog, base_image, CACHE, work / arch, arch))
        # The same images the single invocation gated: their results are reused.
        assert built.stderr.count("these very images passed before; result reused") == \
            len(EXTENSIONS), built.stderr[-3000:]
        out = cli("publish", "--by-digest", "--registry", target, "--layout", str(work / arch),
                  "--sign-key", str(keys.private), "--json").stdout
        doc = json.loads(out)
        assert doc["by_digest"] is True
        (work / f"{arch}.json").write_text(out)
        parts.append(str(work / f"{arch}.json"))
    crane = shutil.which("crane")
    assert crane
    # Pushed by digest only: no tag exists before the merge.
    listed = subprocess.run([crane, "ls", "--insecure", f"{target}/rum"], capture_output=True,
                            text=True)
    assert not [t for t in listed.stdout.split() if not t.startswith("sha256-")]
    merged = json.loads(cli("merge", "--registry", target, "--sign-key", str(keys.private),
                            "--json", *parts).stdout)
    by_repo = {i["repository"].rsplit("/", 1)[1]: i for i in merged["indexes"]}
    for repo in ARTIFACTS:
        want = multiarch.published.ref(tag(repo)).rsplit("@", 1)[1]
        assert by_repo[repo]["platforms"] == ["linux/amd64", "linux/arm64"], repo
        assert by_repo[repo]["digest"] == want, f"{repo}: merged {by_repo[repo]['digest']}, " \
                                                f"one invocation {want}"
        got = subprocess.run([crane, "digest", "--insecure", f"{target}/{tag(repo)}"],
                             check=True, capture_output=True, text=True).stdout.strip()
        assert got == want
    # The merged tags verify like any publish: index and platform manifests signed, SBOM and
    # provenance attested (the platform parts were signed by each architecture's job).
    for repo in ("postgresql", "rum"):
        cli("verify", f"{target}/{tag(repo)}", "--key", str(keys.public), "--no-blobs")


def test_merge_refuses_two_different_builds_of_one_platform(
        clean_build: PublishedLayout, built: Built, registry: RunningRegistry,
        tmp_path: Path) -> None:
    """Two jobs that built one tag's amd64 image differently (here: rum against two option sets,
    both real indexes in the rum repository) cannot be merged into one index; nothing is tagged."""
    target = f"{registry.host}/conflict"
    parts = []
    for name, layout in (("barebones", clean_build.layout), ("regular", built.layout)):
        doc = json.loads(cli("publish", "--by-digest", "--registry", target, "--layout",
                             str(layout), "--json").stdout)
        rum = [r for r in doc["refs"] if r["repository"].endswith("/rum")][:1]
        # The barebones job claims the regular tag: the same tag, another build.
        doc["refs"] = [{**r, "tag": tag("rum").split(":")[1]} for r in rum]
        (tmp_path / f"{name}.json").write_text(json.dumps(doc))
        parts.append(str(tmp_path / f"{name}.json"))
    proc = cli("merge", "--registry", target, *parts, check=False)
    assert proc.returncode != 0
    assert "linux/amd64 was built twice with different results" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    head = subprocess.run(["crane", "digest", "--insecure", f"{target}/{tag('rum')}"],
                          capture_output=True, text=True)
    assert head.returncode != 0, "a tag was written although the merge failed"
