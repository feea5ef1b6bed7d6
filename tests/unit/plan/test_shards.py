"""Shards: every target in exactly one shard of its stage, balanced, and what each shard needs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from monogres_oci.catalog import load_catalog
from monogres_oci.errors import UsageError
from monogres_oci.plan.shards import MAX_SHARDS, Shard, matrix, parse_shard, shard_plan
from monogres_oci.plan.targets import Plan, Selection, expand

REPO = Path(__file__).resolve().parents[3]
RECIPES = {"postgres": "p" * 64, "extension": "e" * 64}


def _plan() -> Plan:
    return expand(load_catalog(REPO / "extensions.yaml"),
                  Selection(postgres=("18.6", "17.11"), option_sets=("regular",),
                            archs=("amd64",)),
                  base_overrides={}, recipe_digests=RECIPES)


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_each_target_is_in_exactly_one_shard_and_the_shards_are_balanced(count: int) -> None:
    plan = _plan()
    parts = [shard_plan(plan, Shard(k, count), postgres_only=False) for k in range(1, count + 1)]
    names = [e.name for part in parts for e in part.extensions]
    assert sorted(set(names)) == sorted(e.name for e in plan.extensions)
    # a target built against another (mobilitydb against postgis) has it in its shard too: only
    # such targets are in two shards
    needed = {n.name for e in plan.extensions for n in e.needs}
    assert needed and {n for n in names if names.count(n) > 1} <= needed
    for part in parts:
        assert {n.key for e in part.extensions for n in e.needs} <= {e.key for e in part.extensions}
    sizes = [len([e for e in part.extensions if e.name not in needed]) for part in parts]
    assert max(sizes) - min(sizes) <= 1 + len(needed)
    for part in parts:  # each shard carries the Postgres builds its extensions need, no other
        assert {p.key for p in part.postgres} == {e.postgres.key for e in part.extensions}
    pg = [shard_plan(plan, Shard(k, 2), postgres_only=True) for k in (1, 2)]
    assert [len(p.postgres) for p in pg] == [2, 2] and not any(p.extensions for p in pg)
    assert {p.key for part in pg for p in part.postgres} == {p.key for p in plan.postgres}


def test_extensions_of_one_postgres_build_stay_together() -> None:
    plan = _plan()
    parts = [shard_plan(plan, Shard(k, 4), postgres_only=False) for k in range(1, 5)]
    # 4 Postgres builds, 4 shards: each shard needs one build, at most two where a slice straddles
    assert all(len(part.postgres) <= 2 for part in parts)
    assert sum(len(part.postgres) for part in parts) <= 7


def test_the_matrix_names_the_shards_build_takes() -> None:
    plan = _plan()
    stages = matrix(plan, 3)
    assert [i["shard"] for i in stages["postgres"]["include"]] == ["1/3", "2/3", "3/3"]
    assert sum(i["targets"] for i in stages["extensions"]["include"]) == len(plan.extensions)
    few = matrix(plan, 100)  # no more shards than targets, none empty
    assert len(few["postgres"]["include"]) == len(plan.postgres) == 4
    assert all(i["targets"] == 1 for i in few["postgres"]["include"])
    with pytest.raises(UsageError, match="256"):
        matrix(plan, MAX_SHARDS + 1)


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/300", "a/b", "1", "1/0"])
def test_a_bad_shard_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="K/N"):
        parse_shard(text)


def test_plan_prints_the_matrix_a_workflow_reads() -> None:
    proc = subprocess.run([sys.executable, "-m", "monogres_oci", "plan", "--postgres", "18.6",
                           "--option-set", "regular", "--arch", "amd64", "--shards", "2"],
                          cwd=REPO, capture_output=True, text=True, check=True)
    stages = json.loads(proc.stdout)
    assert [i["shard"] for i in stages["extensions"]["include"]] == ["1/2", "2/2"]
