"""What the gate found for one extension image, and the attestation that records it.

The suite's harness prints one line per test; the catalog's ``result_pattern`` (pg_regress's TAP
lines by default) finds them. A test that did not pass is a failure unless the catalog lists it
as a known failure with its reason (then it is a warning). An image passes when every
``CREATE EXTENSION`` succeeded and no test failed; a harness that exits non-zero without naming a
failed test fails too (it broke before it could report).

The record is an in-toto Statement v1 with the test-result predicate: the result, the tests
passed, warned and failed, and the configuration that ran them. It names no time and no machine,
so the same image and results give the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monogres_oci.attest.sign import statement
from monogres_oci.catalog.model import UpstreamSuite

TEST_RESULT_PREDICATE = "https://in-toto.io/attestation/test-result/v0.1"
OUTPUT_TAIL = 60


@dataclass(frozen=True)
class SuiteCase:
    """One test of the upstream suite and how it ended."""

    name: str
    status: str
    passed: bool
    known_failure: str = ""  # the catalog's reason, when it is expected to fail


@dataclass(frozen=True)
class Created:
    """One statement that loads the image's code: CREATE EXTENSION ... CASCADE, or LOAD of a
    module without a control file (``sql_name`` is then the library's name)."""

    sql_name: str
    ok: bool
    error: str = ""
    module: bool = False

    @property
    def statement(self) -> str:
        return f"LOAD '{self.sql_name}'" if self.module else f"CREATE EXTENSION {self.sql_name}"


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict on one platform image of an extension."""

    extension: str
    version: str
    platform: str
    image_digest: str  # the platform manifest that was tested
    postgres_image: str  # the runnable image it ran in (manifest digest)
    created: tuple[Created, ...]
    cases: tuple[SuiteCase, ...] = ()
    command: tuple[str, ...] = ()  # the harness's argv in the build tree
    exit_code: int = 0
    skipped: str = ""  # why the upstream suite did not run
    output_tail: str = field(default="", compare=False)

    @property
    def failed(self) -> tuple[SuiteCase, ...]:
        return tuple(c for c in self.cases if not c.passed and not c.known_failure)

    @property
    def warned(self) -> tuple[SuiteCase, ...]:
        return tuple(c for c in self.cases if not c.passed and c.known_failure)

    @property
    def passed_cases(self) -> tuple[SuiteCase, ...]:
        return tuple(c for c in self.cases if c.passed)

    @property
    def harness_broke(self) -> bool:
        return self.exit_code != 0 and not any(not c.passed for c in self.cases)

    @property
    def ok(self) -> bool:
        return (all(c.ok for c in self.created) and not self.failed
                and not self.harness_broke)

    @property
    def verdict(self) -> str:
        if not self.ok:
            return "FAILED"
        return "WARNED" if self.warned else "PASSED"

    def summary(self) -> str:
        """One line for progress output and the build report."""
        bad = [c.statement for c in self.created if not c.ok]
        if bad:
            return f"{self.verdict}: {', '.join(bad)} failed"
        if self.skipped:
            done = "LOAD" if all(c.module for c in self.created) else "CREATE EXTENSION"
            return f"{self.verdict}: {done} ok; upstream suite not run ({self.skipped})"
        if not self.cases and not self.harness_broke:
            # e.g. an installcheck target that is one shell test: its exit status is the result
            return f"{self.verdict}: upstream suite passed (its harness exited 0, naming no tests)"
        text = (f"{self.verdict}: upstream suite {len(self.passed_cases)}/{len(self.cases)} "
                "passed")
        if self.warned:
            text += f", {len(self.warned)} known failure(s)"
        if self.failed:
            text += f", failed: {', '.join(c.name for c in self.failed[:10])}"
        if self.harness_broke:
            text += f"; the harness exited {self.exit_code} without naming a failed test"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "extension": self.extension, "version": self.version, "platform": self.platform,
            "image": self.image_digest, "postgres_image": self.postgres_image,
            "verdict": self.verdict,
            "create_extension": [{"sql_name": c.sql_name, "ok": c.ok, "error": c.error}
                                 for c in self.created if not c.module],
            "load": [{"module": c.sql_name, "ok": c.ok, "error": c.error}
                     for c in self.created if c.module],
            "suite": {"command": list(self.command), "exit_code": self.exit_code,
                      "skipped": self.skipped, "total": len(self.cases),
                      "passed": len(self.passed_cases), "failed": len(self.failed),
                      "known_failures": len(self.warned),
                      "tests": [{"name": c.name, "status": c.status, "passed": c.passed,
                                 **({"known_failure": c.known_failure} if c.known_failure
                                    else {})} for c in self.cases]},
        }


def parse_cases(output: str, suite: UpstreamSuite,
                known: Mapping[str, str]) -> tuple[SuiteCase, ...]:
    """The test lines the harness printed, in order (a test named twice keeps its last line);
    ``known``: the suite's known failures where it ran (test name -> why)."""
    pattern = re.compile(suite.result_pattern, re.MULTILINE)
    cases: dict[str, SuiteCase] = {}
    for match in pattern.finditer(output):
        name, status = match.group("name"), match.group("status")
        passed = status == suite.passed
        cases.pop(name, None)
        cases[name] = SuiteCase(name, status, passed, "" if passed else known.get(name, ""))
    return tuple(cases.values())


def result_statement(result: GateResult, configuration: list[dict[str, Any]]) -> dict[str, Any]:
    """The in-toto Statement (test-result predicate) whose subject is the tested image."""
    predicate = {
        "result": result.verdict,
        "configuration": configuration,
        "passedTests": [c.name for c in result.passed_cases],
        "warnedTests": [f"{c.name}: {c.known_failure}" for c in result.warned],
        "failedTests": [c.name for c in result.failed]
        + [c.statement for c in result.created if not c.ok],
        # Beyond the predicate's own fields (it allows none): kept under one extension key.
        "monogres": result.to_json(),
    }
    return statement(result.extension, result.image_digest, TEST_RESULT_PREDICATE, predicate)
