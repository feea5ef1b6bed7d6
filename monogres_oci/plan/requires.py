"""Extensions built against others (the catalog's build.requires): the selection widened to
what they need, and each target given the targets of the same Postgres build it compiles against
(their keys are part of its own)."""

from __future__ import annotations

import dataclasses

from monogres_oci.catalog.model import Catalog, build_order
from monogres_oci.plan.targets import DisabledTarget, ExtensionTarget


def with_build_requires(catalog: Catalog, targets: list[ExtensionTarget],
                         disabled: list[DisabledTarget],
                         ) -> tuple[list[ExtensionTarget], list[DisabledTarget]]:
    """Each target of an extension with build.requires given the targets it compiles against:
    for the same Postgres build, the first version of the required extension the plan builds
    (in the catalog's order). Where none is built (disabled, or no version for that Postgres),
    the target is disabled too, saying why."""
    order = build_order(catalog.extensions)  # the loader refused cycles
    found: dict[tuple[str, str], ExtensionTarget | DisabledTarget] = {}
    for t in targets:
        found.setdefault((t.postgres.key, t.extension.name), t)
    for d in disabled:
        found.setdefault((d.target.postgres.key, d.target.extension.name), d)
    kept: dict[int, ExtensionTarget] = {}
    dropped = list(disabled)
    # Those a target needs are settled before it: their keys are part of its own.
    for i in sorted(range(len(targets)), key=lambda i: order[targets[i].extension.name]):
        target = targets[i]
        needs, why = [], ""
        for name in target.extension.build.requires:
            required = found.get((target.postgres.key, name))
            if isinstance(required, DisabledTarget):
                why = f"it is built against {name}, which is disabled here: {required.reason}"
            elif required is None:
                why = (f"it is built against {name}, which has no version for PostgreSQL "
                       f"{target.postgres.release.version}")
            else:
                needs.append(required)
            if why:
                break
        item: ExtensionTarget | DisabledTarget
        if why:
            item = DisabledTarget(target, why)
            dropped.append(item)
        else:
            item = kept[i] = dataclasses.replace(target, needs=tuple(needs)) if needs else target
        if found[(target.postgres.key, target.extension.name)] is target:
            found[(target.postgres.key, target.extension.name)] = item
    return [kept[i] for i in sorted(kept)], dropped


def with_what_they_are_built_against(catalog: Catalog,
                                     wanted: dict[str, str]) -> dict[str, str]:
    """The selected extensions and, transitively, those they are built against (any version,
    unless the selection names one)."""
    more = dict(wanted)
    queue = list(wanted)
    while queue:
        for required in catalog.extension(queue.pop()).build.requires:
            if required not in more:
                more[required] = ""
                queue.append(required)
    return more
