"""The whole catalog's state, one row per target: disabled, not built, failed, built, tested,
published.

Read, never computed anew: the plan names the targets, the build cache and its outcome records
say what the last build of each did, and (when asked) the registry says what is published and
whether it was built from the same inputs. Extension versions that no release of the catalog
admits are rows too, so the table shows everything the catalog holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Literal

from monogres_oci.build.state import BuildCache, Outcome, Outcomes
from monogres_oci.catalog import Catalog
from monogres_oci.plan.published import InRegistry
from monogres_oci.plan.targets import ExtensionTarget, Plan, PostgresTarget, Selection

State = Literal["disabled", "no release", "not built", "failed", "built", "tested", "published"]
STATES: tuple[State, ...] = ("published", "tested", "built", "failed", "not built", "disabled",
                             "no release")

# (repository, rolling tag, architecture) -> the input digest the published manifest records


_EVERYTHING = Selection()


@dataclass(frozen=True)
class Row:
    """One target and what is known of it."""

    kind: str  # postgres | extension
    name: str  # "postgresql" or the extension's catalog name
    version: str  # the extension's version, or the release for Postgres
    postgres: str  # release version; "" when no release admits it
    option_set: str
    distro: str
    arch: str
    state: State
    detail: str = ""  # why disabled or failed, the suite's result, the published digest
    tests: str = ""  # "passed/total" when the upstream suite ran
    input_digest: str = ""
    # Not built from these inputs: what the last build of the same target, from other inputs
    # (an earlier recipe, source or catalog entry), came to ("passed 29/29", "FAILED", "built").
    before: str = ""

    @property
    def column(self) -> str:
        return f"{self.postgres} {self.distro} {self.arch}".strip()


def collect(catalog: Catalog, plan: Plan, cache: BuildCache, outcomes: Outcomes,
            published: Mapping[str, InRegistry] | None = None,
            selection: Selection = _EVERYTHING) -> list[Row]:
    """Every target of the plan, and every selected extension version it has no target for."""
    # One listing of each directory, not a file lookup per target: a plan may hold millions.
    known = _Known(cache.finished(), outcomes.recorded(), outcomes)
    rows = [_postgres_row(pg, known, published) for pg in plan.postgres]
    rows += [_extension_row(t, known, published) for t in plan.extensions]
    rows += [_row(d.target, "disabled", detail=d.reason) for d in plan.disabled]
    planned = {(t.extension.name, t.version.version) for t in plan.extensions}
    planned |= {(d.target.extension.name, d.target.version.version) for d in plan.disabled}
    releases = sorted({pg.release.version for pg in plan.postgres}, key=_numeric)
    wanted = {e.partition("=")[0] for e in selection.extensions}
    for ext in catalog.extensions:
        if selection.postgres_only or (wanted and ext.name not in wanted):
            continue
        for v in ext.versions:
            if (ext.name, v.version) in planned:
                continue
            if any(v.postgres.admits(r) for r in releases):
                continue  # admitted, but only by targets the selection left out
            rows.append(Row("extension", ext.name, v.version, "", "", "", "", "no release",
                            detail=f"needs PostgreSQL {v.postgres}; the plan has "
                                   f"{', '.join(releases)}"))
    return sorted(rows, key=_order)


def _order(r: Row) -> tuple[object, ...]:
    """Postgres first, then by name and version; newest release first; then distro, arch."""
    return (r.kind != "postgres", r.name, _numeric(r.version),
            tuple(-n for n in _numeric(r.postgres)), r.option_set, r.distro, r.arch)


def _row(t: ExtensionTarget, state: State, **kw: str) -> Row:
    pg = t.postgres
    return Row("extension", t.extension.name, t.version.version, pg.release.version,
               pg.option_set.name, pg.distro.name, pg.arch, state, **kw)


@dataclass(frozen=True)
class _Known:
    """What the cache directory holds: finished builds and recorded outcomes, by input digest."""

    finished: frozenset[str]
    recorded: frozenset[str]
    outcomes: Outcomes

    def outcome(self, key: str) -> Outcome | None:
        return self.outcomes.get(key) if key in self.recorded else None

    @cached_property
    def _latest(self) -> dict[str, tuple[str, Outcome]]:
        # Read once, and only when some target is not built from its current inputs.
        return self.outcomes.latest_by_target()

    def before(self, name: str, key: str) -> str:
        """What the target ``name`` came to when last built from inputs other than ``key``."""
        found = self._latest.get(name)
        if found is None or found[0] == key:
            return ""
        outcome = found[1]
        if not outcome.ok:
            return "FAILED"
        if outcome.stage != "gate":
            return "built"
        return f"passed {_tests(outcome)}" if outcome.tests_total else "passed"


def _postgres_row(pg: PostgresTarget, known: _Known,
                  published: Mapping[str, InRegistry] | None) -> Row:
    state, detail, _ = _built_state(pg.key, known)
    state, detail = _published(state, detail, pg.key, published)
    return Row("postgres", "postgresql", pg.release.version, pg.release.version,
               pg.option_set.name, pg.distro.name, pg.arch, state, detail=detail,
               input_digest=f"sha256:{pg.key}",
               before=known.before(pg.name, pg.key) if state == "not built" else "")


def _extension_row(t: ExtensionTarget, known: _Known,
                   published: Mapping[str, InRegistry] | None) -> Row:
    state, detail, tests = _built_state(t.key, known)
    state, detail = _published(state, detail, t.key, published)
    return _row(t, state, detail=detail, tests=tests, input_digest=f"sha256:{t.key}",
                before=known.before(t.name, t.key) if state == "not built" else "")


def _built_state(key: str, known: _Known) -> tuple[State, str, str]:
    outcome = known.outcome(key)
    if outcome is not None and not outcome.ok:
        return "failed", f"{outcome.stage}: {outcome.summary}", _tests(outcome)
    if key not in known.finished:
        return "not built", "", ""
    if outcome is not None and outcome.stage == "gate":
        if outcome.suite_skipped:
            return "tested", f"CREATE EXTENSION ok; suite not run: {outcome.suite_skipped}", ""
        return "tested", outcome.summary, _tests(outcome)
    return "built", outcome.summary if outcome else "", ""


def _tests(outcome: Outcome) -> str:
    return f"{outcome.tests_passed}/{outcome.tests_total}" if outcome.tests_total else ""


def _published(state: State, detail: str, key: str,
               published: Mapping[str, InRegistry] | None) -> tuple[State, str]:
    found = published.get(key) if published is not None else None
    if found is None or found.state == "not published":
        return state, detail
    more = f"; {detail}" if detail else ""
    if found.state == "current":
        return "published", found.reference + more
    # A stale image is not this target: the row keeps the local state and says what is out there.
    return state, found.describe() + more


def counts(rows: Iterable[Row]) -> dict[str, int]:
    """Rows per state, in STATES order, states with no row left out."""
    c = Counter(r.state for r in rows)
    return {s: c[s] for s in STATES if c[s]}


def to_json(rows: Sequence[Row]) -> dict[str, object]:
    return {"counts": counts(rows), "targets": [asdict(r) for r in rows]}


_MARK = {"published": "published", "tested": "passed", "built": "built", "failed": "FAILED",
         "not built": "·", "disabled": "disabled", "no release": "—"}


def to_markdown(rows: Sequence[Row]) -> str:
    """A matrix: one line per artifact and version, one column per release x distro x arch.

    Reasons (disabled, failed) are footnotes under the table, numbered in order of appearance.
    """
    columns = sorted({r.column for r in rows if r.postgres},  # newest release first
                     key=lambda c: (tuple(-n for n in _numeric(c.split()[0])), c.split()[1:]))
    lines = ["| artifact | version | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    notes: dict[str, int] = {}
    by_line: dict[tuple[str, str], dict[str, Row]] = {}
    order: list[tuple[str, str]] = []
    for r in sorted(rows, key=_order):
        line = (r.name if r.kind == "extension" else f"postgresql ({r.option_set})", r.version)
        if line not in by_line:
            by_line[line] = {}
            order.append(line)
        by_line[line][r.column] = r
    for line in order:
        found = by_line[line]
        cells = [_cell(found[c], notes) if c in found else "" for c in columns]
        if not any(cells):  # no release admits it: say so once, in the first column
            cells = [_cell(next(iter(found.values())), notes)] + [""] * (len(columns) - 1)
        lines.append(f"| {line[0]} | {line[1]} | " + " | ".join(cells) + " |")
    summary = ", ".join(f"{n} {s}" for s, n in counts(rows).items())
    out = "\n".join(lines) + (f"\n\n{len(rows)} targets: {summary}. "
                               "`·` not built; `passed x/y`: the upstream suite's tests passed "
                               "in the gate; `· (before: ...)`: not built from these inputs, and "
                               "what the last build of the same target from other inputs (an "
                               "earlier recipe, source or catalog entry) came to; an empty "
                               "cell: the version does not support that release.\n")
    if notes:
        out += "\n" + "\n".join(f"{n}. {text}" for text, n in notes.items()) + "\n"
    return out


def _cell(r: Row, notes: dict[str, int]) -> str:
    text = _MARK[r.state]
    if r.state == "tested" and r.tests:
        text = f"passed {r.tests}"
    if r.before:
        text += f" (before: {r.before})"
    if r.state in ("disabled", "failed", "no release") and r.detail:
        n = notes.setdefault(_escape(r.detail), len(notes) + 1)
        text += f" [{n}]"
    return text


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _numeric(version: str) -> tuple[int, ...]:
    parts = []
    for p in version.replace("-", ".").split("."):
        parts.append(int(p) if p.isdigit() else -1)
    return tuple(parts)
