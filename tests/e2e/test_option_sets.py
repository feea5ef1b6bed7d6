"""Each option set's Postgres has the features its meson options claim, and none it rules out.

The claims are read from the published artifact's `org.monogres.postgres.meson_options`
annotation (the catalog's option set, resolved for that release); the features are tried in a
container of the published runnable image (tests/support/features.py). In CI: `regular` (the
shared build) and `barebones` (the clean build). Every option set of every release: --slow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monogres_oci.catalog import load_catalog
from tests.e2e.conftest import (
    CACHE,
    PG_VERSION,
    REPO,
    Built,
    Keys,
    Published,
    PublishedLayout,
    RunningRegistry,
    cli,
    publish_signed,
    rolling,
)
from tests.support.features import actual, claimed, running

pytestmark = pytest.mark.e2e

ANNOTATION = "org.monogres.postgres.meson_options"


def _meson_options(layout: Path, repo_tag: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    (entry,) = [m for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == repo_tag]
    blob = layout / "blobs" / "sha256" / entry["digest"].split(":")[1]
    return str(json.loads(blob.read_text())["annotations"][ANNOTATION])


def _check(image: str, meson_options: str, major: int) -> None:
    claims = claimed(meson_options, major)
    with running(image) as server:
        have = actual(server, sorted(claims))
    wrong = {f: f"claimed {claims[f]}, found {have[f]}" for f in claims if claims[f] != have[f]}
    assert not wrong, f"{image} ({meson_options}):\n{json.dumps(wrong, indent=1)}"


def test_regular_has_its_features(built: Built, published: Published) -> None:
    tag = rolling("postgresql")
    options = _meson_options(built.layout, tag)
    assert "-Dllvm=enabled" in options and "-Dplpython=enabled" in options
    _check(published.tag_ref(tag), options, 18)


def test_barebones_has_nothing_optional(clean_build: PublishedLayout) -> None:
    tag = f"postgresql:{PG_VERSION}-barebones-bookworm"
    options = _meson_options(clean_build.layout, tag)
    assert "--auto-features=disabled" in options
    _check(clean_build.published.tag_ref(tag), options, 18)


def _every_option_set() -> list[tuple[str, str]]:
    catalog = load_catalog(REPO / "extensions.yaml")
    return [(pg.version, name) for pg in catalog.postgres for name in pg.option_sets]


@pytest.mark.slow
@pytest.mark.parametrize(("version", "option_set"), _every_option_set())
def test_every_option_set_has_its_features(
    tmp_path: Path, catalog: Path, base_image: str, registry: RunningRegistry, keys: Keys,
    version: str, option_set: str,
) -> None:
    out = tmp_path / "oci"
    cli("build", "--catalog", str(catalog), "--postgres", version, "--option-set", option_set,
        "--arch", "amd64", "--postgres-only", "--base", f"bookworm={base_image}", "--distro", "bookworm",
        "--cache-dir", str(CACHE), "--out", str(out), "--json")
    published = publish_signed(out, registry, f"options-{option_set}", keys)
    tag = f"postgresql:{version}-{option_set}-bookworm"
    _check(published.tag_ref(tag), _meson_options(out, tag), int(version.split(".")[0]))
