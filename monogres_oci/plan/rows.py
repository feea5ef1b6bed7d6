"""What `plan` prints for each target: a row (a dict, for --json and the table) or, for --jsonl,
the same row as one line of compact JSON with sorted keys.

A catalog of a thousand extensions across sixty releases plans about a million extension targets,
so the lines are not made by encoding a dict per target: each is filled into a template whose
parts (per extension version, per Postgres build) are escaped once. The two forms hold the same
values; a test reads the lines back and compares them with the rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from monogres_oci.plan.targets import ExtensionTarget, Plan, PostgresTarget


@dataclass(frozen=True)
class PlanState:
    """What the caches hold: finished builds by key, and whether each source (by sha256) is."""

    finished: frozenset[str]
    sources_cached: Mapping[str, bool]

    def state(self, key: str) -> str:
        return "built" if key in self.finished else "to build"


def postgres_row(pg: PostgresTarget, have: PlanState) -> dict[str, object]:
    return {"kind": "postgres", "name": pg.name, "input_digest": f"sha256:{pg.key}",
            "platform": pg.platform, "method": pg.method, "base_image": pg.base_image,
            "source_cached": have.sources_cached[pg.release.source.sha256],
            "state": have.state(pg.key)}


def extension_row(ext: ExtensionTarget, have: PlanState, reason: str = "") -> dict[str, object]:
    row: dict[str, object] = {
        "kind": "extension", "name": ext.name, "input_digest": f"sha256:{ext.key}",
        "platform": ext.postgres.platform, "method": ext.method, "postgres": ext.postgres.name,
        "source_cached": have.sources_cached[ext.version.source.sha256],
        "state": "disabled" if reason else have.state(ext.key)}
    if reason:
        row["reason"] = reason
    return row


def plan_rows(plan: Plan, have: PlanState) -> Iterator[dict[str, object]]:
    """One row per target: Postgres builds, extensions, then the disabled ones."""
    for pg in plan.postgres:
        yield postgres_row(pg, have)
    for ext in plan.extensions:
        yield extension_row(ext, have)
    for item in plan.disabled:
        yield extension_row(item.target, have, item.reason)


# A row as one line of --jsonl: compact JSON with sorted keys.
row_line = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


def _escaped(text: str) -> str:
    """``text`` as it reads inside a JSON string (without the quotes)."""
    return json.dumps(text)[1:-1]


def plan_lines(plan: Plan, have: PlanState) -> Iterator[str]:
    """The rows of ``plan_rows`` as JSON Lines (no newline), in the same order."""
    for pg in plan.postgres:
        yield row_line(postgres_row(pg, have))
    # What a line shares with the other targets of its Postgres build, escaped once per build.
    hosts: dict[int, tuple[str, str, str]] = {}
    names: dict[tuple[int, int], str] = {}
    for ext in plan.extensions:
        pg = ext.postgres
        host = hosts.get(id(pg))
        if host is None:
            host = hosts[id(pg)] = (_escaped(pg.platform), _escaped(pg.name), _escaped(
                f"-pg{pg.release.version}-{pg.option_set.name}-{pg.distro.name}-{pg.arch}"))
        platform, pg_name, suffix = host
        # The name's extension part is escaped once per version (ids: the objects live as long
        # as the plan, which holds them).
        prefix = names.get((id(ext.extension), id(ext.version)))
        if prefix is None:
            prefix = names[(id(ext.extension), id(ext.version))] = _escaped(
                f"{ext.extension.name}-{ext.version.version}")
        key = ext.key
        cached = "true" if have.sources_cached[ext.version.source.sha256] else "false"
        yield (f'{{"input_digest":"sha256:{key}","kind":"extension","method":"{ext.method}",'
               f'"name":"{prefix}{suffix}","platform":"{platform}","postgres":"{pg_name}",'
               f'"source_cached":{cached},"state":"{have.state(key)}"}}')
    for item in plan.disabled:
        yield row_line(extension_row(item.target, have, item.reason))
