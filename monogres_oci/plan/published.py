"""What a registry holds for each target: published from the same inputs, from other inputs (and
which of them changed), or not at all.

A target's rolling tag names a multi-arch index; the platform manifest for the target's
architecture records the input digest it was built from (``org.monogres.input.digest``) and each
input digested apart (``org.monogres.input.parts``). Each index and each manifest is fetched
once, up to ``jobs`` requests at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from monogres_oci.oci.model import OCI_INDEX
from monogres_oci.oci.registry import RegistryClient
from monogres_oci.package.images import INPUT_DIGEST
from monogres_oci.package.labels import INPUT_PARTS, parse_parts
from monogres_oci.package.tags import extension_tags, postgres_tags
from monogres_oci.plan.targets import ExtensionTarget, PostgresTarget

Target = PostgresTarget | ExtensionTarget
State = Literal["current", "stale", "not published"]


@dataclass(frozen=True)
class InRegistry:
    """One target in the registry."""

    state: State
    reference: str = ""  # repository:tag, as the registry names it under the namespace
    changed: tuple[str, ...] = ()  # stale: the inputs that differ ("?" when it records none)
    recorded: str = ""  # stale: the input digest the published image records

    def describe(self) -> str:
        if self.state == "current":
            return f"published from the same inputs: {self.reference}"
        if self.state == "stale":
            return (f"{self.reference} is published from other inputs "
                    f"({self.recorded[:19]}; changed: {', '.join(self.changed)})")
        return "not published"


def published_under(target: Target) -> tuple[str, str, str]:
    """The repository, rolling tag and architecture a target is published under."""
    if isinstance(target, PostgresTarget):
        tags = postgres_tags(target, 0, runnable=False)  # rolling tags ignore the epoch
        return tags.repository, tags.rolling[0], target.arch
    tags = extension_tags(target, 0)
    return tags.repository, tags.rolling[0], target.postgres.arch


def published_states(client: RegistryClient, namespace: str, targets: Sequence[Target],
                     jobs: int = 16) -> dict[str, InRegistry]:
    """Each target's state by its key."""
    def repo(name: str) -> str:
        return f"{namespace}/{name}" if namespace else name

    wheres = {t.key: published_under(t) for t in targets}
    tags = sorted({(repo(r), tag) for r, tag, _ in wheres.values()})

    def index_of(item: tuple[str, str]) -> dict[str, str]:
        """Architecture -> platform manifest digest of the index a tag names ({} if none)."""
        found = client.head_manifest(*item)
        if found is None or found.media_type != OCI_INDEX:
            return {}
        index = json.loads(client.get_manifest(*item)[0])
        return {m["platform"]["architecture"]: m["digest"] for m in index.get("manifests", [])
                if "platform" in m}

    def annotations_of(item: tuple[str, str]) -> dict[str, str]:
        manifest = json.loads(client.get_manifest(*item)[0])
        return dict(manifest.get("annotations", {}))

    with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="registry") as pool:
        indexes = dict(zip(tags, pool.map(index_of, tags), strict=True))
        wanted = sorted({(repo(r), indexes[(repo(r), tag)][arch])
                         for r, tag, arch in wheres.values()
                         if arch in indexes[(repo(r), tag)]})
        manifests = dict(zip(wanted, pool.map(annotations_of, wanted), strict=True))
    out = {}
    for target in targets:
        r, tag, arch = wheres[target.key]
        digest = indexes[(repo(r), tag)].get(arch)
        if digest is None:
            out[target.key] = InRegistry("not published")
            continue
        out[target.key] = _state(target, f"{r}:{tag}", manifests[(repo(r), digest)])
    return out


def _state(target: Target, reference: str, annotations: dict[str, str]) -> InRegistry:
    recorded = annotations.get(INPUT_DIGEST, "")
    if recorded == f"sha256:{target.key}":
        return InRegistry("current", reference)
    mine = target.key_parts()
    theirs = parse_parts(annotations.get(INPUT_PARTS, ""))
    changed = tuple(sorted(k for k in mine.keys() | theirs.keys()
                           if mine.get(k) != theirs.get(k))) if theirs else ("?",)
    return InRegistry("stale", reference, changed or ("?",), recorded)


def count(states: Iterable[InRegistry]) -> dict[str, int]:
    totals = {"current": 0, "stale": 0, "not published": 0}
    for s in states:
        totals[s.state] += 1
    return totals
