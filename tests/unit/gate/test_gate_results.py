"""The gate's verdict: tests found in the harness output, known failures, a broken harness."""

from __future__ import annotations

from monogres_oci.catalog.model import KnownFailure, UpstreamSuite
from monogres_oci.catalog.ranges import parse_range
from monogres_oci.gate.results import (
    TEST_RESULT_PREDICATE,
    Created,
    GateResult,
    parse_cases,
    result_statement,
)

PG_REGRESS = """# using postmaster on 127.0.0.1, port 40121
ok 1         - extension                                  21 ms
not ok 2     - tables                                     35 ms
# parallel group (2 tests):  binary unit
ok 3         + unit                                       40 ms
not ok 4     + binary                                     12 ms
1..4
# 2 of 4 tests failed.
"""
POSTGIS = """Running tests

 regress/core/affine .. ok in 95 ms
 regress/core/bestsrid ... failed (diff expected obtained: /tmp/x.diff)
 raster/test/regress/rt_gdalwarp .. skipped
"""


def result(cases: tuple, exit_code: int = 1, created: tuple = (Created("unit", True),)) -> GateResult:  # type: ignore[type-arg]
    return GateResult(extension="unit", version="7.10", platform="linux/amd64",
                      image_digest="sha256:" + "1" * 64, postgres_image="sha256:" + "2" * 64,
                      created=created, cases=cases, command=("make", "installcheck"),
                      exit_code=exit_code)


BINARY = KnownFailure("binary", "needs the build tree's data files")


def test_pg_regress_tap_lines_and_known_failures() -> None:
    suite = UpstreamSuite(known_failures=(BINARY,))
    cases = parse_cases(PG_REGRESS, suite, suite.failures_for("18.6", emulated=False))
    assert [(c.name, c.passed) for c in cases] == [
        ("extension", True), ("tables", False), ("unit", True), ("binary", False)]
    r = result(cases)
    assert [c.name for c in r.failed] == ["tables"] and [c.name for c in r.warned] == ["binary"]
    assert r.verdict == "FAILED"
    assert r.summary() == ("FAILED: upstream suite 2/4 passed, 1 known failure(s), failed: tables")
    passing = parse_cases(PG_REGRESS, suite, {"binary": BINARY.reason,
                                              "tables": "another reason given"})
    assert result(passing).verdict == "WARNED"


def test_a_known_failure_holds_only_where_the_catalog_says() -> None:
    suite = UpstreamSuite(known_failures=(
        BINARY,
        KnownFailure("tables", "counts rows that 18 adds", postgres=parse_range(">=18")),
        KnownFailure("unit", "the emulator's mincore() fails", emulated=True)))
    assert suite.failures_for("17.11", emulated=False) == {"binary": BINARY.reason}
    assert set(suite.failures_for("18.6", emulated=False)) == {"binary", "tables"}
    assert set(suite.failures_for("17.11", emulated=True)) == {"binary", "unit"}
    # On 17 the row count is a failure again: the gate fails, not warns.
    on_17 = result(parse_cases(PG_REGRESS, suite, suite.failures_for("17.11", emulated=False)))
    assert on_17.verdict == "FAILED" and [c.name for c in on_17.failed] == ["tables"]
    on_18 = result(parse_cases(PG_REGRESS, suite, suite.failures_for("18.6", emulated=False)))
    assert on_18.verdict == "WARNED"


def test_a_harness_pattern_from_the_catalog() -> None:
    suite = UpstreamSuite(result_pattern=r"^ (?P<name>\S+) \.*\s*(?P<status>ok|failed|skipped)")
    cases = parse_cases(POSTGIS, suite, {})
    assert [(c.name, c.status) for c in cases] == [("regress/core/affine", "ok"),
                                                  ("regress/core/bestsrid", "failed"),
                                                  ("raster/test/regress/rt_gdalwarp", "skipped")]


def test_a_harness_that_breaks_before_reporting_fails_the_gate() -> None:
    cases = parse_cases("ok 1 - extension\n", UpstreamSuite(), {})
    assert result(cases, exit_code=0).verdict == "PASSED"
    broken = result(cases, exit_code=2)
    assert broken.verdict == "FAILED" and "exited 2 without naming a failed test" in broken.summary()
    assert result((), exit_code=0, created=(Created("unit", False, "ERROR: x"),)).verdict == "FAILED"


def test_the_attestation_names_the_image_and_every_test() -> None:
    stmt = result_statement(result(parse_cases(PG_REGRESS, UpstreamSuite(),
                                               {"binary": BINARY.reason})), [])
    assert stmt["predicateType"] == TEST_RESULT_PREDICATE
    assert stmt["subject"][0]["digest"] == {"sha256": "1" * 64}
    predicate = stmt["predicate"]
    assert predicate["result"] == "FAILED"
    assert predicate["passedTests"] == ["extension", "unit"]
    assert predicate["failedTests"] == ["tables"]
    assert predicate["warnedTests"] == ["binary: needs the build tree's data files"]
    assert predicate["monogres"]["suite"]["total"] == 4


def test_a_module_is_loaded_not_created() -> None:
    loaded = (Created("pgextwlist", True, module=True),)
    r = result((), exit_code=0, created=loaded)
    assert r.verdict == "PASSED"
    assert r.summary() == "PASSED: upstream suite passed (its harness exited 0, naming no tests)"
    assert result((), exit_code=2, created=loaded).verdict == "FAILED"
    skipped = GateResult(extension="pgextwlist", version="1.19", platform="linux/amd64",
                         image_digest="sha256:" + "1" * 64, postgres_image="sha256:" + "2" * 64,
                         created=loaded, skipped="no REGRESS in its Makefile")
    assert skipped.summary() == ("PASSED: LOAD ok; upstream suite not run "
                                 "(no REGRESS in its Makefile)")
    doc = skipped.to_json()
    assert doc["create_extension"] == [] and doc["load"] == [
        {"module": "pgextwlist", "ok": True, "error": ""}]
    failed = result((), exit_code=0, created=(Created("pgextwlist", False, "ERROR: x", module=True),))
    assert failed.verdict == "FAILED" and failed.summary() == "FAILED: LOAD 'pgextwlist' failed"
    assert result_statement(failed, [])["predicate"]["failedTests"] == ["LOAD 'pgextwlist'"]
