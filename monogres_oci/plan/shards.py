"""A plan cut into shards that separate machines build, each depending only on the registry.

Two stages: the Postgres builds (``--postgres-only``), then the extensions, whose Postgres builds
each shard takes from the registry (``build --registry R --registry-key PUB``) instead of
compiling. Within a stage, the targets (extensions grouped by the Postgres build they need, so
that those of one build mostly fall in one shard: one download of it) are cut into contiguous
slices whose sizes differ by one at most. ``plan --shards N`` and ``build --shard K/N`` cut the same plan
the same way: the shard is taken before anything else narrows the plan (``--registry``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from monogres_oci.errors import UsageError
from monogres_oci.plan.targets import ExtensionTarget, Plan

# GitHub Actions runs at most 256 jobs of one matrix.
MAX_SHARDS = 256

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (from 1) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)) <= MAX_SHARDS:
        raise UsageError(f"--shard {text!r}: give K/N with 1 <= K <= N <= {MAX_SHARDS} "
                         "(as `plan --shards N --json` lists them)")
    return Shard(int(match.group(1)), int(match.group(2)))


def _slice(items: Sequence[T], shard: Shard) -> tuple[T, ...]:
    n = len(items)
    return tuple(items[n * (shard.index - 1) // shard.count:n * shard.index // shard.count])


def _by_postgres(plan: Plan) -> list[ExtensionTarget]:
    """The extensions grouped by the Postgres build they need, in plan order otherwise."""
    position = {p.key: i for i, p in enumerate(plan.postgres)}
    return sorted(plan.extensions, key=lambda e: position.get(e.postgres.key, -1))


def shard_plan(plan: Plan, shard: Shard, postgres_only: bool) -> Plan:
    """The targets of one shard: Postgres builds, or extensions with the builds they need."""
    if postgres_only:
        return dataclasses.replace(plan, postgres=_slice(plan.postgres, shard), extensions=(),
                                   disabled=())
    extensions = _with_needs(_slice(_by_postgres(plan), shard), plan)
    needed = {e.postgres.key for e in extensions}
    return dataclasses.replace(plan, postgres=tuple(p for p in plan.postgres if p.key in needed),
                               extensions=extensions, disabled=())


def _with_needs(extensions: Sequence[ExtensionTarget], plan: Plan) -> tuple[ExtensionTarget, ...]:
    """The shard's extensions and those they are built against (build.requires), which it must
    compile first when another shard has them (their images come out the same in both)."""
    keys = {e.key for e in extensions}
    queue = list(extensions)
    while queue:
        for need in queue.pop().needs:
            if need.key not in keys:
                keys.add(need.key)
                queue.append(need)
    return tuple(e for e in _by_postgres(plan) if e.key in keys)


def matrix(plan: Plan, shards: int) -> dict[str, Any]:
    """Each stage's shards as a GitHub Actions ``strategy.matrix`` (``include``): no more shards
    than targets, none empty."""
    if not 1 <= shards <= MAX_SHARDS:
        raise UsageError(f"--shards {shards}: between 1 and {MAX_SHARDS} (a GitHub Actions "
                         "matrix runs at most 256 jobs)")
    stages: dict[str, Any] = {}
    for stage, names in (("postgres", [p.name for p in plan.postgres]),
                         ("extensions", [e.name for e in _by_postgres(plan)])):
        count = min(shards, len(names))
        include = []
        for index in range(1, count + 1):
            part = _slice(names, Shard(index, count))
            include.append({"shard": str(Shard(index, count)), "targets": len(part),
                            "first": part[0], "last": part[-1]})
        stages[stage] = {"include": include}
    return stages
