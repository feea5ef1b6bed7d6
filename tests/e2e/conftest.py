"""End-to-end fixtures: one real registry, one base image, one Postgres build, shared by all tests.

Everything is real: Debian's docker-registry on a loopback port, BuildKit through the Docker
engine, the monogres-oci CLI run as a subprocess exactly as a user runs it. Compile outputs are
cached (by input digest) under $MONOGRES_TEST_CACHE, so a second run on the same machine only
repackages and republishes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cache import fresh_cache as support_fresh_cache
from tests.support.registry import RunningRegistry, have_registry, start_registry
from tests.support.sources import fixture_tarball, http_server

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MONOGRES_TEST_CACHE", "/var/cache/monogres-oci-tests"))
PG_VERSION = "18.6"
EXTENSIONS = ("pgaudit", "rum", "hello")


def cli(*args: str, env: dict[str, str] | None = None, check: bool = True,
        timeout: float = 3000) -> subprocess.CompletedProcess[str]:
    """Run the real command line, as a user would."""
    proc = subprocess.run([sys.executable, "-m", "monogres_oci", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"monogres-oci {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-6000:]}")
    return proc


def docker_available() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="session", autouse=True)
def _require_engine() -> None:
    if not (docker_available() and have_registry()):
        pytest.fail("end-to-end tests need the Docker engine and docker-registry: "
                    "run `bash scripts/test.sh` (it sets them up)")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()
    remove_pulled_images(reg.host)


def remove_pulled_images(host: str) -> None:
    """Remove from the engine every image named after ``host`` (the base image `base create`
    loaded, the images tests ran with `docker pull` and `docker run`): the registry listens on a
    port of this run's, so no later run names them again, and each is a whole Postgres. By
    name, not ID: an image of the same content under another name stays."""
    listed = subprocess.run(["docker", "image", "ls", "--digests", "--format",
                             "{{.Repository}}|{{.Tag}}|{{.Digest}}"],
                            capture_output=True, text=True)
    names = []
    for line in listed.stdout.splitlines():
        repo, tag, digest = line.split("|")
        if repo.startswith(f"{host}/"):
            names.append(f"{repo}:{tag}" if tag != "<none>" else f"{repo}@{digest}")
    if names:
        subprocess.run(["docker", "image", "rm", *names], capture_output=True)


@pytest.fixture(scope="session")
def base_image(registry: RunningRegistry) -> str:
    out = cli("base", "create", "--distro", "bookworm", "--registry", f"{registry.host}/base",
              "--cache-dir", str(CACHE), "--json")
    ref: str = json.loads(out.stdout)["reference"]
    assert "@sha256:" in ref
    return ref


@pytest.fixture(scope="session")
def source_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The fixture extensions as tarballs on a local HTTP server: fetched like any other source."""
    www = tmp_path_factory.mktemp("www")
    sums = {name: fixture_tarball(name, "1.0", www)[1]
            for name in ("hello", "broken", "unstable", *KIND_FIXTURES)}
    with http_server(www) as url:
        yield url, sums


# Fixtures for the kinds of extension: greet is built with CMake and tested with pg_regress
# tests the catalog names, one of which reads a setting its suite gives the server; sour's own
# suite fails; badpath's SQL names a file nothing ships; roles' CREATE EXTENSION makes a role of the
# cluster that its own suite expects to make; atop is built against greet (build.requires) and
# requires it at run time, and crown requires atop: a chain of two the gate must mount whole.
KIND_FIXTURES = {
    "greet": {"build": {"system": "cmake"},
              "test": {"regress": ["greet"], "inputdir": "test",
                       "server_settings": {"greet.audience": "everyone"}}},
    "sour": {},
    "badpath": {},
    "roles": {},
    "atop": {"build": {"system": "pgxs", "requires": ["greet"]},
             "runtime": {"requires": ["greet"]}},
    "crown": {"runtime": {"requires": ["atop"]}},
}


def fixture_extension(name: str, url: str, sha256: str) -> dict[str, Any]:
    return {
        "sql_name": name,
        "description": f"monogres-oci test fixture {name}",
        "homepage": "https://github.com/monogres/monogres-oci",
        "license": "Apache-2.0",
        "build": {"system": "pgxs"},
        "versions": [{"version": "1.0", "postgres": [18], "source": {
            "file": f"{name}-1.0.tar.gz", "sha256": sha256,
            "origins": [{"url": f"{url}/{name}-1.0.tar.gz"}]}}],
        **KIND_FIXTURES.get(name, {}),
    }


@pytest.fixture(scope="session")
def catalog(tmp_path_factory: pytest.TempPathFactory,
            source_server: tuple[str, dict[str, str]]) -> Path:
    """The shipped catalog plus the fixture extensions served over HTTP."""
    url, sums = source_server
    data = yaml.safe_load((REPO / "extensions.yaml").read_text())
    # Patch files are named relative to the catalog: this copy lives elsewhere.
    for ext in data["extensions"].values():
        for patch in ext["build"].get("patches", []):
            patch["file"] = str(REPO / patch["file"])
    for name, sha in sums.items():
        data["extensions"][name] = fixture_extension(name, url, sha)
    path = tmp_path_factory.mktemp("catalog") / "extensions.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def build_args(catalog: Path, base_image: str, out: Path, *extensions: str) -> list[str]:
    args = ["build", "--catalog", str(catalog), "--postgres", PG_VERSION,
            "--option-set", "regular", "--arch", "amd64", "--base", f"bookworm={base_image}",
            "--distro", "bookworm",
            "--cache-dir", str(CACHE), "--out", str(out), "--json"]
    for ext in extensions:
        args += ["--extension", ext]
    return args


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A directory the unprivileged postgres process can reach (pytest's tmp is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="monogres-bare-metal-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class Built:
    layout: Path
    report: dict[str, Any]
    catalog: Path
    base_image: str


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, catalog: Path, base_image: str) -> Built:
    out = tmp_path_factory.mktemp("layout") / "oci"
    proc = cli(*build_args(catalog, base_image, out, *EXTENSIONS))
    return Built(out, json.loads(proc.stdout), catalog, base_image)


@dataclass(frozen=True)
class Keys:
    private: Path
    public: Path


def make_keys(directory: Path) -> Keys:
    """A key pair made by the real CLI (`monogres-oci keygen`)."""
    private = directory / "monogres.key"
    cli("keygen", "--out", str(private), env={"MONOGRES_SIGNING_PASSWORD": ""})
    return Keys(private, private.with_suffix(".pub"))


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("keys"))


@dataclass(frozen=True)
class Published:
    registry: RunningRegistry
    namespace: str
    refs: dict[str, str]  # "repo:tag" -> "host/ns/repo:tag@sha256:..."
    keys: Keys

    def ref(self, repo_tag: str) -> str:
        return self.refs[repo_tag]

    def tag_ref(self, repo_tag: str) -> str:
        return f"{self.registry.host}/{self.namespace}/{repo_tag}"


@pytest.fixture(scope="session")
def published(built: Built, registry: RunningRegistry, keys: Keys) -> Published:
    return publish_signed(built.layout, registry, "monogres", keys)


def publish_signed(layout: Path, registry: RunningRegistry, ns: str, keys: Keys) -> Published:
    """Sign the layout with ``keys`` and publish it to ``registry``/``ns``."""
    proc = cli("publish", "--registry", f"{registry.host}/{ns}", "--layout", str(layout),
               "--sign-key", str(keys.private), "--json")
    refs = {}
    for item in json.loads(proc.stdout)["refs"]:
        repo = item["repository"].split(f"/{ns}/", 1)[1]
        refs[f"{repo}:{item['tag']}"] = item["reference"]
    return Published(registry, ns, refs, keys)


def rolling(repo: str) -> str:
    """The rolling tag of an artifact of the shared build."""
    versions = {"pgaudit": "18.0", "rum": "1.3.15", "hello": "1.0"}
    if repo in versions:
        return f"{repo}:{PG_VERSION}-{versions[repo]}-bookworm"
    return f"{repo}:{PG_VERSION}-regular-bookworm"


# --- one clean build in unusual conditions, shared by the reproducibility and option-set tests ---

CLEAN_OPTION_SET = "barebones"
CLEAN_EXTENSIONS = ("pgaudit", "rum", "greet", "unstable")


def fresh_cache(root: Path) -> Path:
    """A cache with no builds, its sources linked from the shared test cache."""
    return support_fresh_cache(root, CACHE / "sources")


def monogres_in(args: list[str], *, cwd: Path, tz: str, umask: int,
                tmpdir: Path) -> subprocess.CompletedProcess[str]:
    """The CLI in other surroundings: working directory, time zone, umask and TMPDIR."""
    tmpdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TZ": tz, "TMPDIR": str(tmpdir), "PYTHONPATH": str(REPO)}
    preexec: Callable[[], Any] = lambda: os.umask(umask)  # noqa: E731
    return subprocess.run([sys.executable, "-m", "monogres_oci", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=5400, preexec_fn=preexec)


@dataclass(frozen=True)
class PublishedLayout:
    """A layout `build` wrote, and where `publish` pushed it."""

    layout: Path
    published: Published


@pytest.fixture(scope="session")
def clean_build(tmp_path_factory: pytest.TempPathFactory, catalog: Path, base_image: str,
                registry: RunningRegistry, keys: Keys) -> PublishedLayout:
    """PostgreSQL 18.6 (barebones) and four extensions, packaged with an unusual time zone,
    umask and TMPDIR, then signed and published: the first half of the reproducibility test.

    The compiles come from the shared cache (on a cold machine the arm64 test's amd64 half made
    them, in ordinary conditions): the other half, `rebuild --verify`, compiles everything again
    from nothing in other conditions, so two independent compiles are compared without a third
    one here."""
    one = tmp_path_factory.mktemp("first")
    args = ["build", "--catalog", str(catalog), "--postgres", PG_VERSION,
            "--option-set", CLEAN_OPTION_SET, "--arch", "amd64", "--base", f"bookworm={base_image}",
            "--distro", "bookworm",
            "--cache-dir", str(CACHE), "--out", str(one / "oci"), "--json"]
    for ext in CLEAN_EXTENSIONS:
        args += ["--extension", ext]
    first = monogres_in(args, cwd=one, tz="America/Los_Angeles", umask=0o077, tmpdir=one / "tmp")
    assert first.returncode == 0, first.stderr[-5000:]
    return PublishedLayout(one / "oci", publish_signed(one / "oci", registry, "repro", keys))


# --- every kind of extension (configure, autoreconf, cmake, pgxs; bundled libraries; a client
# program; a relocated data file; a failing suite; a path nothing ships), against the shared
# Postgres build ---

KINDS = ("postgis", "pgpointcloud", "greet", "pg_repack", "mysql_fdw", "unit", "sour", "badpath",
         "roles", "atop", "crown")


@pytest.fixture(scope="session")
def kinds(tmp_path_factory: pytest.TempPathFactory, catalog: Path, base_image: str,
          registry: RunningRegistry, keys: Keys) -> tuple[Built, Published]:
    """One build of KINDS (the failures are expected: build exits 1), signed and published.

    With --jobs 2: two compiles and two gates at a time, pgpointcloud's gate after PostGIS's."""
    out = tmp_path_factory.mktemp("kinds") / "oci"
    proc = cli(*build_args(catalog, base_image, out, *KINDS), "--jobs", "2", check=False,
               timeout=5400)
    assert proc.returncode == 1 and proc.stdout, proc.stderr[-5000:]  # sour and badpath fail
    built = Built(out, json.loads(proc.stdout), catalog, base_image)
    return built, publish_signed(out, registry, "kinds", keys)
