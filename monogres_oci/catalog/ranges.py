"""PostgreSQL version ranges, as the catalog writes them: ``">=17"``, ``">=13,<18"``, ``"18"``.

A range is a comma-separated list of comparisons that must all hold; a bare version means ``==``.
Versions are ``MAJOR`` or ``MAJOR.MINOR``; a comparison with a bare major compares majors only
(``<18`` admits 17.11, ``==18`` admits every 18.x), one with a minor compares both. A list of
majors (``[17, 18]``) is the union of ``==`` ranges. Everything here is pure and cheap: the
planner evaluates ranges for every target.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

_OPS: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
    "==": operator.eq, "!=": operator.ne,
}
_CLAUSE = re.compile(r"^(>=|<=|>|<|==|!=)?\s*([0-9]+(?:\.[0-9]+)?)$")
# The pattern the catalog's JSON Schema uses for a range string (kept in step with _CLAUSE).
PATTERN = r"^\s*(>=|<=|>|<|==|!=)?\s*[0-9]+(\.[0-9]+)?\s*(,\s*(>=|<=|>|<|==|!=)?\s*[0-9]+(\.[0-9]+)?\s*)*$"


@dataclass(frozen=True)
class Clause:
    """One comparison: ``op`` against ``version`` (a major, or a major and a minor)."""

    op: str
    version: tuple[int, ...]

    def admits(self, major: int, minor: int) -> bool:
        have = (major,) if len(self.version) == 1 else (major, minor)
        return _OPS[self.op](have, self.version)

    def __str__(self) -> str:
        return f"{self.op}{'.'.join(map(str, self.version))}"


@dataclass(frozen=True)
class VersionRange:
    """A union of intersections of clauses; the empty union (``ANY``) admits every version."""

    alternatives: tuple[tuple[Clause, ...], ...] = ()

    def admits(self, version: str) -> bool:
        major, minor = _split(version)
        if not self.alternatives:
            return True
        return any(all(c.admits(major, minor) for c in alt) for alt in self.alternatives)

    def __str__(self) -> str:
        if not self.alternatives:
            return "any"
        return " || ".join(",".join(str(c) for c in alt) for alt in self.alternatives)


ANY = VersionRange()


def parse_range(text: str) -> VersionRange:
    """Parse a range string; raise ``ValueError`` with the offending clause."""
    clauses = []
    for raw in text.split(","):
        match = _CLAUSE.match(raw.strip())
        if not match:
            raise ValueError(f"{raw.strip()!r} is not a comparison such as >=17 or <18.2")
        op, version = match.group(1) or "==", match.group(2)
        clauses.append(Clause(op, tuple(int(p) for p in version.split("."))))
    return VersionRange((tuple(clauses),))


def majors_range(majors: tuple[int, ...]) -> VersionRange:
    """The range admitting exactly the listed majors."""
    return VersionRange(tuple((Clause("==", (m,)),) for m in majors))


def _split(version: str) -> tuple[int, int]:
    parts = version.split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
