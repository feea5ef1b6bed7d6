"""The registry as the shared build cache: a build on a machine whose cache holds no builds takes
the Postgres build it compiles extensions against from the registry instead of compiling it.

The first "machine" is the shared build (PostgreSQL 18.6 regular, pgaudit, rum, hello), signed
and published. The second has a cache with sources only and builds greet with `--registry
--registry-key`: it compiles no PostgreSQL, and what it packages is byte for byte what the first
machine's layouts hold (greet as the kinds build made it against a locally compiled PostgreSQL).
Everything is real: the registry, BuildKit, the gate.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monogres_oci.oci.layout import Layout
from tests.e2e.conftest import (
    Built,
    Published,
    build_args,
    cli,
    fresh_cache,
    make_keys,
)

pytestmark = pytest.mark.e2e

PG_DIST = "postgresql-dist:18.6-regular-bookworm"
GREET = "greet:18.6-1.0-bookworm"


def _second_machine(built: Built, published: Published, tmp_path: Path, key: Path,
                    name: str) -> tuple[Path, list[str]]:
    """build greet with an empty build cache, Postgres builds taken from ``published``."""
    out = tmp_path / name / "oci"
    args = build_args(built.catalog, built.base_image, out, "greet")
    args[args.index("--cache-dir") + 1] = str(fresh_cache(tmp_path / name))
    registry = f"{published.registry.host}/{published.namespace}"
    return out, [*args, "--registry", registry, "--registry-key", str(key)]


def _manifest_digest(layout: Path, tag: str) -> str:
    opened = Layout.open(layout)
    return opened.read_index(opened.resolve(tag).digest).manifests[0].digest


def test_an_empty_cache_takes_the_postgres_build_from_the_registry_and_compiles_none(
        built: Built, published: Published, kinds: tuple[Built, Published],
        tmp_path: Path) -> None:
    out, args = _second_machine(built, published, tmp_path, published.keys.public, "shard")
    proc = cli(*args)
    report = json.loads(proc.stdout)
    assert all(t["ok"] for t in report["targets"]), report
    assert "taken from the registry, signatures and digests verified; not compiled" \
        in proc.stderr
    assert "PostgreSQL 18.6 (linux/amd64): building into" not in proc.stderr
    # The same images as the machine that compiled PostgreSQL: its postgresql-dist, and greet as
    # the kinds build made it against that local build.
    assert _manifest_digest(out, PG_DIST) == _manifest_digest(built.layout, PG_DIST)
    assert _manifest_digest(out, GREET) == _manifest_digest(kinds[0].layout, GREET)
    greet = next(t for t in report["targets"] if t["name"].startswith("greet-"))
    assert greet["gate"]["verdict"] == "PASSED"


def test_a_postgres_build_signed_with_another_key_is_refused(
        built: Built, published: Published, tmp_path: Path) -> None:
    (tmp_path / "stranger").mkdir()
    stranger = make_keys(tmp_path / "stranger")
    out, args = _second_machine(built, published, tmp_path, stranger.public, "refused")
    proc = cli(*args, check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    (postgres,) = [t for t in json.loads(proc.stdout)["targets"] if t["kind"] == "postgres"]
    assert not postgres["ok"] and "no valid signature" in postgres["error"]
    assert "building into" not in proc.stderr  # neither taken nor compiled in its place
    assert "Traceback" not in proc.stderr
