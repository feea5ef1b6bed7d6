"""A build with nothing new: no compile, no packaging, and the very same layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monogres_oci.oci.layout import Layout
from tests.e2e.conftest import CACHE, EXTENSIONS, PG_VERSION, Built, Published, build_args, cli

pytestmark = pytest.mark.e2e


def test_a_build_of_the_same_inputs_compiles_and_packages_nothing(built: Built,
                                                                  tmp_path: Path) -> None:
    # The shared build packaged PostgreSQL and its extensions from these inputs (on a warm
    # machine, an earlier run did): the same build into a new layout takes every compile from
    # the build cache and every image from what was packaged, and writes the same layout.
    out = tmp_path / "oci"
    proc = cli(*build_args(built.catalog, built.base_image, out, *EXTENSIONS))
    lines = proc.stderr.splitlines()
    assert not [line for line in lines if "] compiling " in line], proc.stderr
    packaged = [line for line in lines if "] packaged " in line]
    assert len(packaged) == 1 + len(EXTENSIONS), proc.stderr  # Postgres, then each extension
    assert all("reused, packaged before from the same inputs" in line for line in packaged)
    # The same names on the same digests, and the same SBOMs and provenance attached (the
    # shared layout may hold more: publish signs it in place).
    mine, theirs = Layout.open(out), Layout.open(built.layout)
    assert {n: d.digest for n, d in mine.refs().items()} == \
        {n: d.digest for n, d in theirs.refs().items()}
    assert set(mine.index().manifests) <= set(theirs.index().manifests)
    assert json.loads(proc.stdout)["refs"] == built.report["refs"]


def test_plan_and_build_know_what_the_registry_holds(built: Built, published: Published,
                                                     tmp_path: Path) -> None:
    registry = f"{published.registry.host}/{published.namespace}"
    selection = ["--catalog", str(built.catalog), "--postgres", PG_VERSION, "--option-set",
                 "regular", "--arch", "amd64", "--distro", "bookworm",
                 "--base", f"bookworm={built.base_image}", "--cache-dir", str(CACHE),
                 *(a for e in EXTENSIONS for a in ("--extension", e))]
    plan = json.loads(cli("plan", *selection, "--registry", registry, "--json").stdout)
    assert {r["name"]: r["published"] for r in plan["targets"]} == \
        {r["name"]: "current" for r in plan["targets"]}
    # Published from the same inputs: nothing to build (and nothing compiled or packaged).
    out = tmp_path / "oci"
    proc = cli("build", *selection, "--registry", registry, "--out", str(out), "--json")
    assert f"skipping {len(plan['targets'])} target(s) published from the same inputs" \
        in proc.stderr
    assert json.loads(proc.stdout)["refs"] == []
    assert "] compiling " not in proc.stderr and "] packaged " not in proc.stderr
    # A namespace that holds nothing: every target to build.
    empty = json.loads(cli("plan", *selection, "--registry",
                           f"{published.registry.host}/nothing-here", "--json").stdout)
    assert {r["published"] for r in empty["targets"]} == {"not published"}
