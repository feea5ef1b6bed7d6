"""status: what the build cache, the outcome records and a registry say of every target."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from monogres_oci.build.extension_stage import Compiled
from monogres_oci.build.run import _compiled_in_order, requires_first
from monogres_oci.build.state import BuildCache, Outcome, Outcomes
from monogres_oci.catalog import Catalog, load_catalog
from monogres_oci.errors import BuildError
from monogres_oci.plan.published import InRegistry
from monogres_oci.plan.status import collect, counts, to_markdown
from monogres_oci.plan.targets import ExtensionTarget, Plan, Selection, expand

CATALOG = Path(__file__).resolve().parents[3] / "extensions.yaml"
RECIPES = {"postgres": "p" * 64, "extension": "e" * 64}


def _plan(**fields: Any) -> tuple[Catalog, Plan, Selection]:
    catalog = load_catalog(CATALOG)
    selection = Selection(option_sets=("regular",), archs=("amd64",), **fields)
    return catalog, expand(catalog, selection, base_overrides={},
                           recipe_digests=RECIPES), selection


def _done(cache: BuildCache, key: str) -> None:
    cache.dir(key).mkdir(parents=True)
    (cache.dir(key) / ".done").write_text("")


def test_each_state_comes_from_the_cache_and_the_outcome_records(tmp_path: Path) -> None:
    catalog, plan, selection = _plan(
        postgres=("18.6",), distros=("bookworm",),
        extensions=("pgaudit", "rum", "pgtap", "unit", "h3-pg", "pgvector"))
    cache, outcomes = BuildCache(tmp_path), Outcomes(tmp_path)
    by_name = {t.extension.name: t for t in plan.extensions}
    _done(cache, plan.postgres[0].key)
    _done(cache, by_name["pgaudit"].key)
    outcomes.record(by_name["pgaudit"].key, Outcome("x", "gate", ok=True, summary="PASSED: 5/5",
                                                    tests_passed=5, tests_total=5))
    _done(cache, by_name["rum"].key)  # compiled, never gated (--no-gate or interrupted)
    outcomes.record(by_name["pgtap"].key, Outcome("x", "compile", ok=False,
                                                  summary="make: *** [all] Error 2"))
    rows = {r.name: r for r in collect(catalog, plan, cache, outcomes, selection=selection)}
    assert (rows["pgaudit"].state, rows["pgaudit"].tests) == ("tested", "5/5")
    assert rows["rum"].state == "built"
    assert (rows["pgtap"].state, rows["pgtap"].detail) == ("failed",
                                                           "compile: make: *** [all] Error 2")
    assert rows["unit"].state == "not built"
    assert rows["postgresql"].state == "built"
    assert rows["h3-pg"].state == "disabled" and "libh3" in rows["h3-pg"].detail
    # pgvector 0.8.0 is for PostgreSQL <18: a row that says so, not a silent gap
    assert rows["pgvector"].state == "no release" and "<18" in rows["pgvector"].detail
    assert counts(rows.values()) == {"tested": 1, "built": 2, "failed": 1, "not built": 1,
                                     "disabled": 1, "no release": 1}
    # A later success replaces the failure: status never shows a stale one.
    outcomes.record(by_name["pgtap"].key, Outcome("x", "gate", ok=True, summary="ok",
                                                  tests_passed=2, tests_total=3))
    _done(cache, by_name["pgtap"].key)
    again = {r.name: r for r in collect(catalog, plan, cache, outcomes, selection=selection)}
    assert (again["pgtap"].state, again["pgtap"].tests) == ("tested", "2/3")


def test_a_target_not_built_from_its_inputs_says_what_it_came_to_before(tmp_path: Path) -> None:
    """After a recipe change every target is new: the row is `not built`, and says what the
    newest record of the same target, from other inputs, came to."""
    catalog, plan, selection = _plan(postgres=("18.6",), distros=("bookworm",),
                                     extensions=("pgaudit", "rum", "unit"))
    cache, outcomes = BuildCache(tmp_path), Outcomes(tmp_path)
    by_name = {t.extension.name: t for t in plan.extensions}
    old, older = "1" * 64, "2" * 64  # the keys the same targets had before
    outcomes.record(older, Outcome(by_name["pgaudit"].name, "compile", ok=False, summary="x"))
    outcomes.record(old, Outcome(by_name["pgaudit"].name, "gate", ok=True, summary="PASSED",
                                 tests_passed=5, tests_total=5))
    # The newer of two records counts, whatever their names sort as.
    now = time.time()
    os.utime(outcomes.root / f"{older}.json", (now - 60, now - 60))
    outcomes.record("3" * 64, Outcome(by_name["rum"].name, "gate", ok=False, summary="y"))
    rows = {r.name: r for r in collect(catalog, plan, cache, outcomes, selection=selection)}
    assert (rows["pgaudit"].state, rows["pgaudit"].before) == ("not built", "passed 5/5")
    assert (rows["rum"].state, rows["rum"].before) == ("not built", "FAILED")
    assert (rows["unit"].state, rows["unit"].before) == ("not built", "")  # never built
    assert rows["postgresql"].before == ""
    pgaudit = next(line for line in to_markdown(list(rows.values())).splitlines()
                   if line.startswith("| pgaudit |"))
    assert "· (before: passed 5/5)" in pgaudit
    # Built from its current inputs: that is the row, and nothing is said of before.
    key = by_name["pgaudit"].key
    _done(cache, key)
    outcomes.record(key, Outcome(by_name["pgaudit"].name, "gate", ok=True, summary="PASSED",
                                 tests_passed=6, tests_total=6))
    again = {r.name: r for r in collect(catalog, plan, cache, outcomes, selection=selection)}
    assert (again["pgaudit"].state, again["pgaudit"].tests, again["pgaudit"].before) == (
        "tested", "6/6", "")


def test_published_only_when_the_registry_holds_the_same_inputs(tmp_path: Path) -> None:
    catalog, plan, _ = _plan(postgres=("18.6",), distros=("bookworm",), extensions=("pgaudit",))
    cache, outcomes = BuildCache(tmp_path), Outcomes(tmp_path)
    ext, pg = plan.extensions[0], plan.postgres[0]
    registry = {  # what registry_state.published_states found (tests/oci read a real registry)
        ext.key: InRegistry("current", "pgaudit:18.6-18.0-bookworm"),
        pg.key: InRegistry("stale", "postgresql-dist:18.6-regular-bookworm", ("base_image",),
                           "sha256:" + "0" * 64)}
    rows = {r.name: r for r in collect(catalog, plan, cache, outcomes, registry)}
    assert rows["pgaudit"].state == "published"
    assert rows["pgaudit"].detail == "pgaudit:18.6-18.0-bookworm"
    # Published from other inputs: not this target, and the row says what is out there.
    assert rows["postgresql"].state == "not built"
    assert rows["postgresql"].detail == (
        "postgresql-dist:18.6-regular-bookworm is published from other inputs "
        "(sha256:000000000000; changed: base_image)")


def test_markdown_is_a_matrix_with_reasons_as_footnotes(tmp_path: Path) -> None:
    catalog, plan, selection = _plan(extensions=("h3-pg", "pgvector", "rum"))
    rows = collect(catalog, plan, BuildCache(tmp_path), Outcomes(tmp_path), selection=selection)
    table = to_markdown(rows)
    header = table.splitlines()[0]
    assert header.startswith("| artifact | version | 18.6 bookworm amd64 | 18.6 trixie amd64 |")
    h3 = next(line for line in table.splitlines() if line.startswith("| h3-pg |"))
    assert h3.count("disabled [1]") == 2 and h3.count("·") == 2  # bookworm x 2 releases; trixie
    assert "\n1. libh3 is packaged in trixie" in table
    # every line has as many cells as the header
    widths = {line.count("|") for line in table.splitlines() if line.startswith("|")}
    assert len(widths) == 1


def test_outcome_records_are_whole_or_absent(tmp_path: Path) -> None:
    outcomes = Outcomes(tmp_path)
    assert outcomes.get("a" * 64) is None
    outcomes.record("a" * 64, Outcome("t", "gate", ok=True, tests_passed=1, tests_total=1))
    assert outcomes.get("a" * 64) == Outcome("t", "gate", ok=True, tests_passed=1, tests_total=1)
    (tmp_path / "outcomes" / f"{'b' * 64}.json").write_text('{"target": "t", "stage": ')
    assert outcomes.get("b" * 64) is None  # torn or foreign: as if never attempted
    assert not list((tmp_path / "outcomes").glob(".*"))  # no temporary file left
    assert json.loads((tmp_path / "outcomes" / f"{'a' * 64}.json").read_text())["ok"] is True


@pytest.mark.parametrize("jobs", [1, 3])
def test_compiles_come_back_in_plan_order_with_failures_in_place(jobs: int) -> None:
    _, plan, _ = _plan(postgres=("18.6",), distros=("bookworm",))
    targets = requires_first(plan.extensions)
    running, peak, lock = [0], [0], threading.Lock()

    def compile_one(t: ExtensionTarget, needed: Sequence[Compiled]) -> Compiled:
        assert len(needed) == len(t.needs)  # mobilitydb gets postgis's
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05 if t is targets[0] else 0.01)  # the first finishes last
        with lock:
            running[0] -= 1
        if t.extension.name == "rum":
            raise BuildError("rum: does not compile")
        return Compiled(None, None, False, 0)  # type: ignore[arg-type]

    got = list(_compiled_in_order(targets, compile_one, jobs))
    assert [t for t, _ in got] == targets
    errors = {t.extension.name: str(r) for t, r in got if isinstance(r, BuildError)}
    assert errors == {"rum": "rum: does not compile"}
    assert peak[0] == min(jobs, len(targets))


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_compile_gets_the_outputs_of_those_it_is_built_against(jobs: int) -> None:
    _, plan, _ = _plan(postgres=("18.6",), distros=("bookworm",))
    first, second, third, *_ = plan.extensions
    # third is built against second and first (in the order build.requires names them);
    # second is slow, so with 2 jobs third's compile starts first and must wait for it
    third = replace(third, needs=(second, first))
    got_needed: list[Sequence[Compiled]] = []

    def compile_one(t: ExtensionTarget, needed: Sequence[Compiled]) -> Compiled:
        if t is second:
            time.sleep(0.2)
        if t is third:
            got_needed.append(needed)
        return Compiled(None, None, False, int(t.key[:6], 16))  # type: ignore[arg-type]

    got = dict((t.key, r) for t, r in _compiled_in_order([first, second, third], compile_one, jobs))
    assert [c.epoch for c in got_needed[0]] == [got[second.key].epoch,  # type: ignore[union-attr]
                                                 got[first.key].epoch]  # type: ignore[union-attr]

    def failing(t: ExtensionTarget, needed: Sequence[Compiled]) -> Compiled:
        if t is second:
            raise BuildError("second: does not compile")
        return Compiled(None, None, False, 0)  # type: ignore[arg-type]

    ended = list(_compiled_in_order([first, second, third], failing, jobs))
    error = ended[2][1]
    assert isinstance(error, BuildError)
    assert f"not built: {second.name}, which it is built against (build.requires), failed" in str(
        error)


def test_a_failed_compile_is_summed_up_by_the_compilers_own_words() -> None:
    from monogres_oci.build.state import error_summary as _first

    # The shape buildkit.buildx_build gives a failed build (lines from pgfincore 1.3.1 on 18.6).
    exc = BuildError(
        "build of extension pgfincore_1.3.1.orig.tar.gz for PostgreSQL 18 (linux/amd64) failed "
        "(exit 1) (full log: /cache/builds/.k.partial/build.log); last lines of the build log:\n"
        "#31 0.366 cc -fno-strict-aliasing -c -o pgfincore.o pgfincore.c\n"
        "#31 1.618 /usr/lib/postgresql/18/include/server/common/relpath.h:143:9: error: "
        "incompatible types when assigning to type 'char *' from type 'RelPathStr'\n"
        "#31 1.862 make: *** [Makefile.global:973: pgfincore.o] Error 1\n")
    summary = _first(exc)
    assert summary.startswith("/usr/lib/postgresql/18/include/server/common/relpath.h:143:9: "
                              "error: incompatible types")
    assert "(full log: /cache/builds/.k.partial/build.log)" in summary
    assert _first(BuildError("rum: the install step put nothing under usr/lib/postgresql/18")) \
        == "rum: the install step put nothing under usr/lib/postgresql/18"
