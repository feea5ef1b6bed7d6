"""The registry as the shared build cache, and a build cut into shards that depend only on it.

Two "machines" and one registry, as the release workflow's jobs: the first is the shared build
(PostgreSQL 18.6 regular, pgaudit, rum, hello), published by digest and merged (its tags are the
Postgres build the second stage takes). The second has a cache with sources only and builds greet
with `--registry --registry-key`: it compiles no PostgreSQL. Its layout is published by digest,
and both parts merged: every index is byte for byte what single invocations published (the
shared build's own publication; greet as the kinds build made it against a locally compiled
PostgreSQL). Everything is real: the registry, BuildKit, the gate, the signatures.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monogres_oci.oci.layout import Layout
from tests.e2e.conftest import (
    Built,
    Keys,
    Published,
    build_args,
    cli,
    fresh_cache,
    make_keys,
)
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.e2e

TAGS = {"postgresql-dist": "postgresql-dist:18.6-regular-bookworm",
        "postgresql": "postgresql:18.6-regular-bookworm",
        "pgaudit": "pgaudit:18.6-18.0-bookworm", "rum": "rum:18.6-1.3.15-bookworm",
        "hello": "hello:18.6-1.0-bookworm", "greet": "greet:18.6-1.0-bookworm"}


@dataclass(frozen=True)
class Shards:
    target: str  # HOST/NAMESPACE
    second: subprocess.CompletedProcess[str]  # the second machine's build
    layout: Path  # its layout
    merged: dict[str, Any]  # merge --json of both parts


def _second_machine(built: Built, target: str, key: Path, work: Path,
                    extension: str = "greet") -> tuple[Path, list[str]]:
    """build an extension with an empty build cache, Postgres builds taken from ``target``."""
    out = work / "oci"
    args = build_args(built.catalog, built.base_image, out, extension)
    args[args.index("--cache-dir") + 1] = str(fresh_cache(work))
    return out, [*args, "--registry", target, "--registry-key", str(key)]


def _by_digest(layout: Path, target: str, keys: Keys, out: Path) -> str:
    out.write_text(cli("publish", "--by-digest", "--registry", target, "--layout", str(layout),
                       "--sign-key", str(keys.private), "--json").stdout)
    return str(out)


@pytest.fixture(scope="module")
def shards(built: Built, published: Published, registry: RunningRegistry, keys: Keys,
           tmp_path_factory: pytest.TempPathFactory) -> Shards:
    work = tmp_path_factory.mktemp("shards")
    target = f"{registry.host}/shards"
    first = _by_digest(built.layout, target, keys, work / "first.json")
    cli("merge", "--registry", target, "--sign-key", str(keys.private), first)
    out, args = _second_machine(built, target, keys.public, work / "second")
    second = cli(*args)
    part = _by_digest(out, target, keys, work / "second.json")
    merged = json.loads(cli("merge", "--registry", target, "--sign-key", str(keys.private),
                            "--json", first, part).stdout)
    return Shards(target, second, out, merged)


def test_the_second_shard_takes_the_postgres_build_from_the_registry_and_compiles_none(
        shards: Shards) -> None:
    report = json.loads(shards.second.stdout)
    assert all(t["ok"] for t in report["targets"]), report
    assert "taken from the registry, signatures and digests verified; not compiled" \
        in shards.second.stderr
    assert "PostgreSQL 18.6 (linux/amd64): building into" not in shards.second.stderr
    greet = next(t for t in report["targets"] if t["name"].startswith("greet-"))
    assert greet["gate"]["verdict"] == "PASSED"


def test_merged_shards_give_the_indexes_of_single_invocations(
        shards: Shards, published: Published, kinds: tuple[Built, Published]) -> None:
    by_repo = {i["repository"].rsplit("/", 1)[1]: i["digest"] for i in shards.merged["indexes"]}
    assert set(by_repo) == set(TAGS)
    for repo, tag in TAGS.items():
        one = kinds[1] if repo == "greet" else published  # greet: built against a local build
        assert by_repo[repo] == one.ref(tag).rsplit("@", 1)[1], repo
    # and the second machine packaged the very Postgres images the first one compiled
    layout = Layout.open(shards.layout)
    assert layout.resolve(TAGS["postgresql-dist"]).digest == by_repo["postgresql-dist"]


def test_a_postgres_build_signed_with_another_key_is_refused(
        shards: Shards, built: Built, tmp_path: Path) -> None:
    (tmp_path / "stranger").mkdir()
    stranger = make_keys(tmp_path / "stranger")
    # sour: not published there, so it is to be built, against the Postgres build that is
    _, args = _second_machine(built, shards.target, stranger.public, tmp_path / "refused", "sour")
    proc = cli(*args, check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    (postgres,) = [t for t in json.loads(proc.stdout)["targets"] if t["kind"] == "postgres"]
    assert not postgres["ok"] and "no valid signature" in postgres["error"]
    assert "building into" not in proc.stderr  # neither taken nor compiled in its place
    assert "Traceback" not in proc.stderr
