"""What a real registry holds for each target: current, stale (and which inputs changed), or
not published, read from the rolling tags' indexes and their platform manifests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from monogres_oci.build.recipes import recipe_digests
from monogres_oci.catalog import load_catalog
from monogres_oci.consume.pull import make_client
from monogres_oci.oci.layout import Layout
from monogres_oci.plan.published import published_states
from monogres_oci.plan.targets import ExtensionTarget, PostgresTarget, Selection, expand
from monogres_oci.publish.push import publish
from tests.support.as_built import add_as_built
from tests.support.registry import RunningRegistry

CATALOG = Path(__file__).resolve().parents[2] / "extensions.yaml"


def _plan(**selection: tuple[str, ...]) -> tuple[list[PostgresTarget], list[ExtensionTarget]]:
    plan = expand(load_catalog(CATALOG), Selection(postgres=("18.6",), distros=("bookworm",),
                                                   option_sets=("regular",), **selection),
                  recipe_digests=recipe_digests(), base_overrides={})
    return list(plan.postgres), list(plan.extensions)



def test_current_stale_with_the_changed_input_and_not_published(
        registry: RunningRegistry, tmp_path: Path) -> None:
    (pg,), exts = _plan(archs=("amd64",), extensions=("pgaudit", "rum", "unit"))
    pgaudit, rum, unit = sorted(exts, key=lambda e: e.extension.name)
    layout = Layout.create(tmp_path / "oci")
    add_as_built(layout, [pg, pgaudit, rum])
    client = make_client(registry.host)
    publish(layout, f"{registry.host}/state", client, jobs=4)

    states = published_states(client, "state", [pg, pgaudit, rum, unit])
    assert {t.extension.name: states[t.key].state for t in (pgaudit, rum, unit)} == {
        "pgaudit": "current", "rum": "current", "unit": "not published"}
    assert states[pg.key].state == "current"
    assert states[pgaudit.key].reference == "pgaudit:18.6-18.0-bookworm"

    # One input changed since: rum's build packages (as a catalog edit would change them).
    edited = dataclasses.replace(rum.extension, build=dataclasses.replace(
        rum.extension.build, packages=(*rum.extension.build.packages, "libicu-dev")))
    rum_now = dataclasses.replace(rum, extension=edited)
    # ...and the Postgres build's recipe (a Dockerfile edit), which every extension build of it
    # inherits.
    pg_now = dataclasses.replace(pg, recipe_digest="0" * 64)
    pgaudit_now = dataclasses.replace(pgaudit, postgres=pg_now)
    states = published_states(client, "state", [pg_now, pgaudit_now, rum_now])
    assert (states[rum_now.key].state, states[rum_now.key].changed) == ("stale", ("build",))
    assert (states[pg_now.key].state, states[pg_now.key].changed) == ("stale", ("recipe",))
    assert (states[pgaudit_now.key].state, states[pgaudit_now.key].changed) == \
        ("stale", ("postgres",))
    assert states[rum_now.key].recorded == f"sha256:{rum.key}"
    # an arm64 target of a tag that has only amd64: not published
    (pg_arm,), _ = _plan(archs=("arm64",), extensions=("pgaudit",))
    assert published_states(client, "state", [pg_arm])[pg_arm.key].state == "not published"
