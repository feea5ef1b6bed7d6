"""Planning expands the catalog into targets whose input digests track their inputs."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from monogres_oci.catalog import Catalog, load_catalog
from monogres_oci.errors import UsageError
from monogres_oci.plan.rows import PlanState, plan_lines, plan_rows
from monogres_oci.plan.targets import Selection, expand, extension_key_document

CATALOG = Path(__file__).resolve().parents[3] / "extensions.yaml"
RECIPES = {"postgres": "p" * 64, "extension": "e" * 64}


def test_one_postgres_build_shared_by_its_extensions() -> None:
    catalog = load_catalog(CATALOG)
    plan = expand(catalog, Selection(postgres=("18",), option_sets=("regular",), archs=("amd64",),
                                     distros=("bookworm",)),
                  base_overrides={}, recipe_digests=RECIPES)
    assert [t.name for t in plan.postgres] == ["postgres-18.6-regular-bookworm-amd64"]
    # pgvector 0.8.0 is limited to <18 in the catalog, first_last_agg to <=17 and h3-pg to trixie
    planned = {(e.extension.name, e.version.version) for e in plan.extensions}
    assert {("pgaudit", "18.0"), ("rum", "1.3.15"), ("pgtap", "1.3.4"), ("pg_repack", "1.5.3"),
            ("unit", "7.10"), ("postgis", "3.6.4"), ("jsquery", "1.2")} <= planned
    assert not {n for n, _ in planned} & {"pgvector", "first_last_agg", "h3-pg", "timescaledb"}
    assert len(planned) == len({n for n, _ in planned})  # one version of each for 18.6
    assert all(e.postgres is plan.postgres[0] for e in plan.extensions)


def test_digest_changes_with_inputs_and_propagates_to_extensions() -> None:
    catalog = load_catalog(CATALOG)
    sel = Selection(option_sets=("regular",), archs=("amd64",), extensions=("pgaudit",))
    a = expand(catalog, sel, base_overrides={}, recipe_digests=RECIPES)
    b = expand(catalog, sel, base_overrides={}, recipe_digests=RECIPES)
    assert a.postgres[0].key == b.postgres[0].key
    c = expand(catalog, sel, base_overrides={"bookworm": "r/x@sha256:" + "1" * 64},
               recipe_digests=RECIPES)
    assert c.postgres[0].key != a.postgres[0].key
    assert c.extensions[0].key != a.extensions[0].key
    # the same base served from another registry is the same input
    moved = expand(catalog, sel, base_overrides={"bookworm": "127.0.0.1:5999/y@sha256:" + "1" * 64},
                   recipe_digests=RECIPES)
    assert moved.postgres[0].key == c.postgres[0].key
    d = expand(catalog, sel, base_overrides={}, recipe_digests={**RECIPES, "extension": "x" * 64})
    assert d.postgres[0].key == a.postgres[0].key
    assert d.extensions[0].key != a.extensions[0].key
    # a different source sha256 is a different build; so is a library bundled for dlopen()
    ext = a.extensions[0]
    opened = replace(ext, extension=replace(ext.extension, build=replace(
        ext.extension.build, dlopen=(("libx.so.1", "why"),))))
    assert opened.key != ext.key
    reason = replace(opened, extension=replace(opened.extension, build=replace(
        opened.extension.build, dlopen=(("libx.so.1", "another reason"),))))
    assert reason.key == opened.key
    changed = replace(ext, version=replace(ext.version, source=replace(ext.version.source, sha256="0" * 64)))
    assert changed.key != ext.key


def test_unknown_selection_is_a_usage_error() -> None:
    catalog = load_catalog(CATALOG)
    with pytest.raises(UsageError, match="unknown extension 'nope'"):
        expand(catalog, Selection(extensions=("nope",)), base_overrides={}, recipe_digests=RECIPES)
    with pytest.raises(UsageError, match="unknown Postgres version '9.6'"):
        expand(catalog, Selection(postgres=("9.6",)), base_overrides={}, recipe_digests=RECIPES)


def test_version_ranges_pick_extension_versions_per_release() -> None:
    catalog = load_catalog(CATALOG)
    plan = expand(catalog, Selection(postgres=("17",), archs=("amd64",)),
                  base_overrides={}, recipe_digests=RECIPES)
    names = {(e.extension.name, e.postgres.release.version) for e in plan.extensions}
    assert ("pgvector", "17.11") in names and ("rum", "17.11") in names
    assert not any(n == "pgaudit" for n, _ in names)  # pgaudit 18.0 is for 18 only


def test_extensions_follow_the_default_option_set_unless_asked() -> None:
    catalog = load_catalog(CATALOG)
    every = expand(catalog, Selection(postgres=("18.6",), archs=("amd64",)),
                   base_overrides={}, recipe_digests=RECIPES)
    assert {t.option_set.name for t in every.postgres} == {"barebones", "minimal", "regular",
                                                           "full", "debug"}
    assert {e.postgres.option_set.name for e in every.extensions} == {"regular"}
    asked = expand(catalog, Selection(postgres=("18.6",), option_sets=("debug", "barebones"),
                                      archs=("amd64",), extensions=("rum",)),
                   base_overrides={}, recipe_digests=RECIPES)
    assert {e.postgres.option_set.name for e in asked.extensions} == {"debug", "barebones"}


def test_meson_options_resolve_per_release_and_later_settings_win() -> None:
    catalog = load_catalog(CATALOG)
    plan = expand(catalog, Selection(option_sets=("debug", "full"), archs=("amd64",)),
                  base_overrides={}, recipe_digests=RECIPES)
    by_name = {(t.release.version, t.option_set.name): t for t in plan.postgres}
    debug = by_name["18.6", "debug"].meson_options
    assert debug[0] == "--buildtype=debug" and "-Dcassert=true" in debug
    full = by_name["18.6", "full"].meson_options
    assert [o for o in full if o.startswith("--auto-features")] == ["--auto-features=enabled"]
    # debug extends regular (which extends barebones' --auto-features=disabled); its own
    # --buildtype replaces regular's, and appears once
    assert [o for o in debug if o.startswith("--buildtype")] == ["--buildtype=debug"]
    assert "libcurl4-openssl-dev" in by_name["18.6", "full"].build_packages
    assert "libcurl4-openssl-dev" not in by_name["17.11", "full"].build_packages
    assert by_name["18.6", "full"].key != by_name["17.11", "full"].key


def test_build_method_per_target(tmp_path: Path) -> None:
    """A foreign architecture is cross-compiled unless its option set (or extension) says why it
    cannot be, or --emulate asks; an extension is built like the Postgres it is built against;
    each method is another build (another input digest)."""
    catalog = load_catalog(CATALOG)
    # Every option set of the catalog cross-compiles (LLVM included); one that says it cannot is
    # emulated, and so is what is built against it.
    text = CATALOG.read_text()
    anchor = "  debug:\n"
    assert text.count(anchor) == 1
    (tmp_path / "extensions.yaml").write_text(text.replace(
        anchor, anchor + '    emulate: "needs a program of the target at build time"\n'))
    (tmp_path / "patches").symlink_to(CATALOG.parent / "patches")
    emulating = load_catalog(tmp_path / "extensions.yaml")

    def plan(build_arch: str, emulate: bool = False,
             catalog: Catalog = catalog) -> dict[str, tuple[str, str]]:
        p = expand(catalog, Selection(postgres=("18.6",),
                                      option_sets=("barebones", "regular", "debug"),
                                      extensions=("rum",), emulate=emulate),
                   base_overrides={}, recipe_digests=RECIPES, build_arch=build_arch)
        return {t.name: (t.method, t.key) for t in (*p.postgres, *p.extensions)}

    on_amd64 = plan("amd64")
    methods = {name: method for name, (method, _) in on_amd64.items()}
    assert methods["postgres-18.6-barebones-bookworm-amd64"] == "native"
    assert methods["postgres-18.6-barebones-bookworm-arm64"] == "cross"
    assert methods["rum-1.3.15-pg18.6-barebones-bookworm-arm64"] == "cross"
    assert methods["postgres-18.6-regular-bookworm-arm64"] == "cross"
    assert methods["postgres-18.6-debug-bookworm-arm64"] == "cross"
    assert methods["rum-1.3.15-pg18.6-regular-bookworm-arm64"] == "cross"
    assert all(not o.emulate for o in catalog.option_sets)
    marked = {name: method for name, (method, _) in plan("amd64", catalog=emulating).items()}
    assert marked["postgres-18.6-debug-bookworm-arm64"] == "emulated"  # catalog: emulate
    assert marked["rum-1.3.15-pg18.6-debug-bookworm-arm64"] == "emulated"  # follows Postgres
    assert marked["postgres-18.6-regular-bookworm-arm64"] == "cross"
    forced = plan("amd64", emulate=True)
    assert forced["postgres-18.6-barebones-bookworm-arm64"][0] == "emulated"
    assert forced["postgres-18.6-barebones-bookworm-amd64"] == on_amd64[
        "postgres-18.6-barebones-bookworm-amd64"]
    assert forced["postgres-18.6-barebones-bookworm-arm64"][1] != on_amd64[
        "postgres-18.6-barebones-bookworm-arm64"][1]
    # on an arm64 machine the roles swap: arm64 native, amd64 cross (another input digest)
    on_arm64 = plan("arm64")
    assert on_arm64["postgres-18.6-barebones-bookworm-arm64"][0] == "native"
    assert on_arm64["postgres-18.6-barebones-bookworm-amd64"][0] == "cross"
    assert on_arm64["postgres-18.6-barebones-bookworm-amd64"][1] != on_amd64[
        "postgres-18.6-barebones-bookworm-amd64"][1]


def test_required_extensions_build_first_and_disabled_targets_are_kept_with_why() -> None:
    from monogres_oci.build.run import requires_first

    catalog = load_catalog(CATALOG)
    plan = expand(catalog, Selection(postgres=("18",), option_sets=("regular",), archs=("amd64",),
                                     distros=("trixie",), extensions=("h3-pg", "postgis")),
                  base_overrides={}, recipe_digests=RECIPES)
    assert [e.extension.name for e in requires_first(plan.extensions)] == ["postgis", "h3-pg"]
    assert plan.disabled == ()
    bookworm = expand(catalog, Selection(postgres=("18",), option_sets=("regular",),
                                         archs=("amd64",), distros=("bookworm",)),
                      base_overrides={}, recipe_digests=RECIPES)
    assert "h3-pg" not in {e.extension.name for e in bookworm.extensions}  # no libh3 there
    why = {d.target.name: d.reason for d in bookworm.disabled}
    assert "libh3" in why["h3-pg-4.2.3-pg18.6-regular-bookworm-amd64"]


def test_disabled_rules_match_by_scope_and_versions_win(tmp_path: Path) -> None:
    import yaml

    data = yaml.safe_load(CATALOG.read_text())
    rum = data["extensions"]["rum"]
    rum["disabled"] = [{"reason": "no arm64 here", "arch": "arm64"},
                       {"reason": "17 is broken", "postgres": "17", "distro": "trixie"}]
    rum["versions"][0]["disabled"] = [{"reason": "this version on bookworm 18",
                                       "postgres": ">=18", "distro": "bookworm"}]
    data["extensions"]["pgaudit"]["disabled"] = "everything"
    path = tmp_path / "extensions.yaml"
    path.write_text(yaml.safe_dump(data))
    for patch in {p["file"] for e in data["extensions"].values()
                  for p in e["build"].get("patches", [])}:
        (tmp_path / patch).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / patch).write_bytes((CATALOG.parent / patch).read_bytes())
    plan = expand(load_catalog(path), Selection(option_sets=("regular",),
                                                extensions=("rum", "pgaudit")),
                  base_overrides={}, recipe_digests=RECIPES)
    why = {d.target.name: d.reason for d in plan.disabled}
    built = {t.name for t in plan.extensions}
    assert why["rum-1.3.15-pg18.6-regular-bookworm-amd64"] == "this version on bookworm 18"
    assert why["rum-1.3.15-pg18.6-regular-bookworm-arm64"] == "this version on bookworm 18"
    assert why["rum-1.3.15-pg18.6-regular-trixie-arm64"] == "no arm64 here"
    assert why["rum-1.3.15-pg17.11-regular-trixie-amd64"] == "17 is broken"
    assert why["pgaudit-18.0-pg18.6-regular-trixie-amd64"] == "everything"
    assert built == {"rum-1.3.15-pg18.6-regular-trixie-amd64",
                     "rum-1.3.15-pg17.11-regular-bookworm-amd64"}


def test_each_key_is_the_digest_of_what_names_it() -> None:
    # An extension target's key is the digest of {inputs: the digest of its version's document,
    # kind, method, postgres: its Postgres build's key}, both canonical JSON; expand writes the
    # outer one out by hand for speed, so it must come to the same bytes
    catalog = load_catalog(CATALOG)
    plan = expand(catalog, Selection(option_sets=("barebones", "regular")), base_overrides={},
                  recipe_digests=RECIPES)  # arm64: barebones cross-compiled, regular emulated
    targets = [*plan.extensions, *(d.target for d in plan.disabled)]
    assert {t.method for t in targets} == {"native", "cross", "emulated"}

    def canonical_digest(doc: dict[str, object]) -> str:
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    for target in targets:
        inputs = canonical_digest(
            extension_key_document(target.extension, target.version, RECIPES["extension"]))
        key = canonical_digest({"inputs": inputs, "kind": "extension", "method": target.method,
                                "postgres": target.postgres.key})
        if target.needs:  # built against other targets (build.requires): their keys too
            key = canonical_digest({"target": key,
                                    "build_requires": [n.key for n in target.needs]})
        assert target.key == key, target.name
    assert any(t.needs for t in targets)
    # one digest of the version's document, shared by its targets
    rum = [t for t in plan.extensions if t.extension.name == "rum"]
    assert len(rum) > 1 and all(t.inputs is rum[0].inputs for t in rum)


def test_jsonl_lines_hold_what_the_rows_hold() -> None:
    # plan --jsonl fills templates instead of encoding a dict per target: read back, each line
    # must be the row --json prints, in the same order, whatever the target's state
    catalog = load_catalog(CATALOG)
    plan = expand(catalog, Selection(option_sets=("barebones", "regular")), base_overrides={},
                  recipe_digests=RECIPES)
    some = {t.key for t in plan.extensions[::3]} | {plan.postgres[0].key}
    sources = {t.version.source.sha256 for t in (*plan.extensions,
                                                 *(d.target for d in plan.disabled))}
    have = PlanState(frozenset(some), {s: s < "8" for s in sources}
                     | {p.release.source.sha256: True for p in plan.postgres})
    rows = list(plan_rows(plan, have))
    lines = list(plan_lines(plan, have))
    assert [json.loads(line) for line in lines] == rows
    assert all(line == json.dumps(row, sort_keys=True, separators=(",", ":"))
               for line, row in zip(lines, rows, strict=True))
    assert {r["state"] for r in rows} == {"built", "to build", "disabled"}
    assert {r["source_cached"] for r in rows} == {True, False}


def test_plan_jsonl_streams_the_targets_of_json(tmp_path: Path) -> None:
    def plan(fmt: str) -> str:
        return subprocess.run([sys.executable, "-m", "monogres_oci", "plan", fmt, "--postgres",
                               "18", "--cache-dir", str(tmp_path)], cwd=CATALOG.parent,
                              capture_output=True, text=True, check=True, timeout=120).stdout

    lines = plan("--jsonl").splitlines()
    assert len(lines) > 100
    assert [json.loads(line) for line in lines] == json.loads(plan("--json"))["targets"]


def _with_build_requires(tmp_path: Path, requires: dict[str, list[str]]) -> Path:
    """The shipped catalog with these build.requires (patch paths made absolute)."""
    data = yaml.safe_load(CATALOG.read_text())
    for ext in data["extensions"].values():
        ext["build"].pop("requires", None)
        for patch in ext["build"].get("patches", []):
            patch["file"] = str(CATALOG.parent / patch["file"])
    for name, required in requires.items():
        data["extensions"][name]["build"]["requires"] = required
    path = tmp_path / "extensions.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_an_extension_is_built_against_the_same_postgres_targets_it_requires(
        tmp_path: Path) -> None:
    catalog = load_catalog(_with_build_requires(tmp_path, {"rum": ["pgaudit", "jsquery"]}))
    sel = Selection(postgres=("18.6", "17.11"), option_sets=("regular",), archs=("amd64",),
                    extensions=("rum", "pgaudit", "jsquery"))
    plan = expand(catalog, sel, base_overrides={}, recipe_digests=RECIPES)
    by_name = {t.name: t for t in plan.extensions}
    rums = [t for t in plan.extensions if t.extension.name == "rum"]
    assert len({t.postgres.key for t in rums}) == len(rums) >= 2
    for rum in rums:
        assert [n.extension.name for n in rum.needs] == ["pgaudit", "jsquery"]
        assert all(n.postgres is rum.postgres and by_name[n.name] is n for n in rum.needs)
        assert "build_requires" in rum.key_parts()
    # its key follows theirs: another pgaudit source is another rum build; pgaudit's is not rum's
    moved = replace(catalog, extensions=tuple(
        replace(e, versions=tuple(replace(v, source=replace(v.source, sha256="0" * 64))
                                  for v in e.versions)) if e.name == "pgaudit" else e
        for e in catalog.extensions))
    again = expand(moved, sel, base_overrides={}, recipe_digests=RECIPES)
    before = {t.name: t.key for t in plan.extensions}
    after = {t.name: t.key for t in again.extensions}
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {t.name for t in plan.extensions if t.extension.name in ("rum", "pgaudit")}
    # what it is built against is planned with it, even when the selection leaves it out
    alone = expand(catalog, replace(sel, extensions=("rum",)), base_overrides={},
                   recipe_digests=RECIPES)
    assert {t.name: t.key for t in alone.extensions} == before


def test_a_target_built_against_a_disabled_one_is_disabled_saying_why(tmp_path: Path) -> None:
    # h3-pg is disabled on bookworm (no libh3 there): what is built against it is too, there only
    catalog = load_catalog(_with_build_requires(tmp_path, {"rum": ["h3-pg"]}))
    plan = expand(catalog, Selection(postgres=("18.6",), option_sets=("regular",),
                                     archs=("amd64",), extensions=("rum", "h3-pg")),
                  base_overrides={}, recipe_digests=RECIPES)
    assert [t.name for t in plan.extensions if t.extension.name == "rum"] == [
        "rum-1.3.15-pg18.6-regular-trixie-amd64"]
    (why,) = [d.reason for d in plan.disabled if d.target.extension.name == "rum"]
    assert why.startswith("it is built against h3-pg, which is disabled here: ")
