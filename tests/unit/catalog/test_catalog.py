"""The catalog loader accepts the shipped catalog and rejects bad input with actionable errors."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import date
from pathlib import Path

import pytest
import yaml

from monogres_oci.catalog import load_catalog
from monogres_oci.catalog.background import validating_beside
from monogres_oci.catalog.load import load_catalog_then
from monogres_oci.catalog.validated import KEPT, recall, remember
from monogres_oci.errors import CatalogError, UsageError

REPO = Path(__file__).resolve().parents[3]
CATALOG = REPO / "extensions.yaml"


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "extensions.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _raw() -> dict:  # type: ignore[type-arg]
    """The shipped catalog as data, its patch files named where they are (copies live elsewhere)."""
    data = yaml.safe_load(CATALOG.read_text())
    for ext in data["extensions"].values():
        for patch in ext["build"].get("patches", []):
            patch["file"] = str(CATALOG.parent / patch["file"])
    return data  # type: ignore[no-any-return]


def test_shipped_catalog_loads() -> None:
    catalog = load_catalog(CATALOG)
    names = {e.name for e in catalog.extensions}
    assert {"pgaudit", "rum"} <= names
    pgaudit = catalog.extension("pgaudit")
    assert pgaudit.shared_preload_libraries == ("pgaudit",)
    assert catalog.postgres[0].version_num == 180006
    for distro in catalog.distros:
        assert "@sha256:" in distro.base_image


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "extensions.yaml"
    path.write_text("schema_version: 1\ndistros: [unclosed\n")
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    assert str(path) in str(err.value)
    assert "malformed YAML" in str(err.value)
    assert "line " in str(err.value)


def test_unknown_key_is_rejected_with_pointer_and_allowed_keys(tmp_path: Path) -> None:
    data = _raw()
    data["extensions"]["pgaudit"]["bulid"] = {"system": "pgxs"}
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, data))
    msg = str(err.value)
    assert "/extensions/pgaudit" in msg
    assert "'bulid'" in msg
    assert "allowed keys" in msg and "build" in msg


def test_wrong_type_is_rejected(tmp_path: Path) -> None:
    data = _raw()
    data["postgres"][0]["version"] = 18.6
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, data))
    assert "/postgres/0/version" in str(err.value)
    assert "quote versions" in str(err.value)


def test_missing_sha256_is_rejected(tmp_path: Path) -> None:
    data = _raw()
    del data["extensions"]["rum"]["versions"][0]["source"]["sha256"]
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, data))
    assert "/extensions/rum/versions/0/source" in str(err.value)
    assert "'sha256' is missing" in str(err.value)


def test_bad_sha256_is_rejected(tmp_path: Path) -> None:
    data = _raw()
    data["extensions"]["rum"]["versions"][0]["source"]["sha256"] = "ABC123"
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, data))
    assert "/extensions/rum/versions/0/source/sha256" in str(err.value)
    assert "sha256sum" in str(err.value)


def test_bad_version_is_rejected(tmp_path: Path) -> None:
    data = _raw()
    data["postgres"][0]["version"] = "eighteen"
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, data))
    assert "/postgres/0/version" in str(err.value)


def test_base_image_must_be_pinned_by_digest(tmp_path: Path) -> None:
    data = _raw()
    data["distros"]["bookworm"]["base_image"] = "debian:bookworm-slim"
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, data))
    assert "/distros/bookworm/base_image" in str(err.value)


def test_unknown_option_set_reference(tmp_path: Path) -> None:
    data = _raw()
    data["postgres"][0]["option_sets"] = ["regular", "fancy"]
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, data))
    assert "/postgres/0/option_sets/1" in str(err.value)
    assert "unknown option set 'fancy'" in str(err.value)


def test_extension_range_that_admits_no_release(tmp_path: Path) -> None:
    data = _raw()
    data["extensions"]["rum"]["versions"][0]["postgres"] = ">=13,<17"
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, data))
    msg = str(err.value)
    assert "/extensions/rum/versions/0/postgres" in msg
    assert "no release in the catalog is in that range" in msg and "17.11" in msg


def test_malformed_range_is_rejected(tmp_path: Path) -> None:
    data = _raw()
    data["extensions"]["rum"]["versions"][0]["postgres"] = "=>17"
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, data))
    assert "/extensions/rum/versions/0/postgres" in str(err.value)


def test_option_sets_extend_and_filter_by_version() -> None:
    catalog = load_catalog(CATALOG)
    assert {o.name for o in catalog.option_sets} == {"barebones", "minimal", "regular", "full",
                                                     "debug"}
    full = catalog.option_set("full")
    # debug extends regular -> minimal -> barebones: the base's options come first, --buildtype
    # leads, and debug's own -Dcassert=true comes last
    opts = catalog.option_set("debug").meson_options_for("18.6")
    assert opts[0] == "--buildtype=debug"
    assert opts.index("--auto-features=disabled") < opts.index("-Dnls=enabled") \
        < opts.index("-Dicu=enabled") < opts.index("-Dcassert=true")
    # PostgreSQL 18 features are asked for on 18 only
    assert "libnuma-dev" in full.build_packages_for("18.6")
    assert "libnuma-dev" not in full.build_packages_for("17.11")
    assert "libicu-dev" in full.build_packages_for("17.11")  # inherited from regular
    assert catalog.option_set("debug").buildtype == "debug"


def test_option_set_too_long_for_an_annotation(tmp_path: Path) -> None:
    data = _raw()
    data["option_sets"]["debug"]["meson_options"] += [f"-Dextra_version=-{'x' * 40}{i}"
                                                      for i in range(3)]
    with pytest.raises(CatalogError, match="longer than an annotation may be"):
        load_catalog(_write(tmp_path, data))


def test_option_set_cycle_and_unknown_parent(tmp_path: Path) -> None:
    data = _raw()
    data["option_sets"]["barebones"]["extends"] = "debug"
    with pytest.raises(CatalogError, match="cycle: .*barebones") as err:
        load_catalog(_write(tmp_path, data))
    assert "/option_sets/" in str(err.value)
    data = _raw()
    data["option_sets"]["minimal"]["extends"] = "tiny"
    with pytest.raises(CatalogError, match="extends unknown 'tiny'"):
        load_catalog(_write(tmp_path, data))


def test_patch_must_exist_and_match_its_sha256(tmp_path: Path) -> None:
    data = _raw()
    (tmp_path / "fix.patch").write_text("--- a/x\n+++ b/x\n")
    data["patches"] = [{"file": "fix.patch", "sha256": "0" * 64, "postgres": ">=17",
                        "reason": "test"}]
    with pytest.raises(CatalogError, match="does not match its sha256") as err:
        load_catalog(_write(tmp_path, data))
    assert "/patches/0/sha256" in str(err.value)
    import hashlib
    data["patches"][0]["sha256"] = hashlib.sha256((tmp_path / "fix.patch").read_bytes()).hexdigest()
    catalog = load_catalog(_write(tmp_path, data))
    assert [p.file for p in catalog.patches_for("18.6")] == ["fix.patch"]
    data["patches"][0]["file"] = "missing.patch"
    with pytest.raises(CatalogError, match="cannot read patch missing.patch"):
        load_catalog(_write(tmp_path, data))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as err:
        load_catalog(tmp_path / "nope.yaml")
    assert "file not found" in str(err.value)


def test_unknown_distro_reference(tmp_path: Path) -> None:
    data = _raw()
    data["postgres"][0]["distros"] = ["forky"]
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, data))
    assert "/postgres/0/distros/0" in str(err.value)
    assert "unknown distro 'forky'" in str(err.value)
    assert "known: bookworm, trixie" in str(err.value)


def test_extension_references_are_checked(tmp_path: Path) -> None:
    data = _raw()
    data["extensions"]["rum"]["runtime"] = {"requires": ["postgres-gis"]}
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, data))
    assert "/extensions/rum/runtime/requires/0" in str(err.value)
    assert "rum requires 'postgres-gis', which is not in the catalog" in str(err.value)
    data = _raw()
    data["extensions"]["rum"]["build"]["requires"] = ["rum"]
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, data))
    assert "/extensions/rum/build/requires/0" in str(err.value)
    assert "rum requires 'rum', which is itself" in str(err.value)
    data = _raw()
    data["extensions"]["rum"]["build"]["requires"] = ["jsquery"]
    data["extensions"]["jsquery"]["build"]["requires"] = ["pgaudit"]
    data["extensions"]["pgaudit"]["build"]["requires"] = ["rum"]
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, data))
    assert "/extensions/jsquery/build/requires" in str(err.value)
    assert "built against each other in a cycle: jsquery -> pgaudit -> rum -> jsquery" in str(
        err.value)
    data = _raw()
    data["extensions"]["rum"]["disabled"] = [{"distro": "forky", "reason": "no such distro"}]
    with pytest.raises(CatalogError, match="unknown distro 'forky'") as err:
        load_catalog(_write(tmp_path, data))
    assert "/extensions/rum/disabled/0/distro" in str(err.value)
    data = _raw()
    data["extensions"]["rum"]["disabled"] = [{"arch": "arm64"}]
    with pytest.raises(CatalogError, match="reason"):
        load_catalog(_write(tmp_path, data))
    data = _raw()
    data["extensions"]["rum"]["test"] = {"result_pattern": "^(?P<name>\\S+) ok$"}
    with pytest.raises(CatalogError, match="no .*status.* groups"):
        load_catalog(_write(tmp_path, data))
    data = _raw()
    data["extensions"]["rum"]["build"]["configure_flags"] = ["--with-x=$(id)"]
    with pytest.raises(CatalogError, match="configure_flags/0"):
        load_catalog(_write(tmp_path, data))


def test_every_kind_of_recipe_loads() -> None:
    catalog = load_catalog(CATALOG)
    postgis, h3 = catalog.extension("postgis"), catalog.extension("h3-pg")
    assert postgis.build.system == "configure" and postgis.sql_names[0] == "postgis"
    assert [d.dest for d in postgis.build.data] == ["proj", "gdal"]
    assert dict(postgis.runtime.env)["PROJ_DATA"] == "${image_root}/share/proj"
    assert (h3.build.system, h3.runtime.requires) == ("cmake", ("postgis",))
    assert [(d.distro, d.arch) for d in h3.disabled] == [("bookworm", "")]
    assert h3.build.patches[0].file == "patches/h3-pg-4.2.3-system-libh3.patch"


def test_a_library_opened_with_dlopen_is_named_by_its_file_name_with_a_reason(
        tmp_path: Path) -> None:
    mysql_fdw = load_catalog(CATALOG).extension("mysql_fdw")
    assert [name for name, _ in mysql_fdw.build.dlopen] == ["libmysqlclient.so"]
    data = _raw()
    data["extensions"]["rum"]["build"]["dlopen"] = [
        {"name": "/usr/lib/libx.so", "reason": "a path is not what dlopen() is given here"}]
    with pytest.raises(CatalogError, match="/extensions/rum/build/dlopen/0/name"):
        load_catalog(_write(tmp_path, data))
    data["extensions"]["rum"]["build"]["dlopen"] = [{"name": "libx.so.1"}]
    with pytest.raises(CatalogError, match="reason"):
        load_catalog(_write(tmp_path, data))


def test_a_module_without_a_control_file_names_its_libraries(tmp_path: Path) -> None:
    catalog = load_catalog(CATALOG)
    module = catalog.extension("bgw_replstatus")
    assert module.sql_names == () and module.runtime.modules == ("bgw_replstatus",)
    data = _raw()
    del data["extensions"]["bgw_replstatus"]["runtime"]["modules"]
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, data))
    assert "/extensions/bgw_replstatus" in str(err.value)
    assert "no sql_name and no runtime.modules" in str(err.value)
    assert "list its libraries in runtime.modules" in str(err.value)


def test_a_suite_may_set_server_settings_but_not_those_of_the_contract(tmp_path: Path) -> None:
    pglogical = load_catalog(CATALOG).extension("pglogical")
    assert ("wal_level", "logical") in pglogical.test.server_settings
    data = _raw()
    data["extensions"]["rum"]["test"] = {"server_settings": {"shared_preload_libraries": "rum"}}
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, data))
    assert "/extensions/rum/test/server_settings/shared_preload_libraries" in str(err.value)
    assert "runtime.shared_preload_libraries" in str(err.value)
    data["extensions"]["rum"]["test"] = {"server_settings": {"wal_level": "logical'; x"}}
    with pytest.raises(CatalogError, match="server_settings"):
        load_catalog(_write(tmp_path, data))


def test_a_known_failure_may_say_where_it_fails(tmp_path: Path) -> None:
    catalog = load_catalog(CATALOG)
    londiste = catalog.extension("londiste-sql").test
    assert "londiste_create_part" in londiste.failures_for("18.6", emulated=False)
    assert londiste.failures_for("17.11", emulated=False) == {}
    pgfincore = catalog.extension("pgfincore").test
    assert pgfincore.failures_for("18.6", emulated=False) == {}
    assert "QEMU" in pgfincore.failures_for("18.6", emulated=True)["pgfincore"]
    data = _raw()
    failures = data["extensions"]["pgfincore"]["test"]["known_failures"]
    for wrong in ({"reason": "a reason long enough", "arch": "arm64"},  # not a condition
                  {"reason": "a reason long enough"},  # an object must say where
                  {"reason": "a reason long enough", "emulated": False},
                  {"reason": "a reason long enough", "postgres": "eighteen"}):
        failures["pgfincore"] = wrong
        with pytest.raises(CatalogError) as err:
            load_catalog(_write(tmp_path, data))
        assert "/extensions/pgfincore/test/known_failures/pgfincore" in str(err.value)


def test_a_validated_catalog_is_read_back_until_its_text_changes(tmp_path: Path) -> None:
    # plan, build and status keep the validated data in their cache directory: the same text
    # gives the same catalog without parsing or validating again; any change is validated anew
    kept = tmp_path / "catalogs"
    path = tmp_path / "extensions.yaml"
    path.write_text(CATALOG.read_text())
    (tmp_path / "patches").symlink_to(REPO / "patches")
    first = load_catalog(path, validated_dir=kept)
    (entry,) = kept.iterdir()
    assert load_catalog(path, validated_dir=kept) == first == load_catalog(path)
    # read back, not parsed: a kept entry that says otherwise is what the loader returns
    data = json.loads(entry.read_text())
    data["publisher"]["vendor"] = "kept"
    entry.write_text(json.dumps(data))
    assert load_catalog(path, validated_dir=kept).publisher.vendor == "kept"
    # one more byte of text is another catalog: validated (and refused) before anything is kept
    path.write_text(CATALOG.read_text().replace("schema_version: 1", "schema_version: 1\nbogus: 1"))
    with pytest.raises(CatalogError, match="bogus"):
        load_catalog(path, validated_dir=kept)
    assert list(kept.iterdir()) == [entry]


def test_only_data_json_holds_exactly_is_kept(tmp_path: Path) -> None:
    remember(tmp_path, "{}", "1: a", {1: "a"})  # an integer key would come back a string
    remember(tmp_path, "{}", "when: 2026-12-06", {"when": date(2026, 12, 6)})
    assert list(tmp_path.iterdir()) == []
    remember(tmp_path, "{}", "a: 1", {"a": 1})
    assert recall(tmp_path, "{}", "a: 1") == {"a": 1} and recall(tmp_path, "{ }", "a: 1") is None


def test_only_the_catalogs_used_last_are_kept(tmp_path: Path) -> None:
    for i in range(KEPT + 3):
        remember(tmp_path, "{}", f"a: {i}", {"a": i})
        time.sleep(0.01)  # files written within one clock tick would have the same time
    assert len(list(tmp_path.glob("*.json"))) == KEPT
    assert recall(tmp_path, "{}", "a: 0") is None  # the first ones went
    assert recall(tmp_path, "{}", "a: 3") == {"a": 3}
    # the one just used stays when the next ones come
    time.sleep(0.01)
    remember(tmp_path, "{}", "a: new", {"a": "new"})
    assert recall(tmp_path, "{}", "a: 3") == {"a": 3} and recall(tmp_path, "{}", "a: 4") is None


def _children() -> set[str]:
    """This process's children (the running and the unreaped), from /proc."""
    return {pid for task in Path(f"/proc/{os.getpid()}/task").iterdir()
            for pid in (task / "children").read_text().split()}


def test_validation_beside_the_work_answers_as_validation_before_it(tmp_path: Path) -> None:
    """`plan` validates a catalog not validated before in a child process while it expands:
    a valid catalog gives what load_catalog gives, then the work's result, and is kept; a
    catalog the schema refuses raises the schema's error (not what the work tripped over on the
    refused data), is not kept, and leaves no child behind; the work's own error comes through."""
    kept = tmp_path / "catalogs"
    (tmp_path / "patches").symlink_to(REPO / "patches")
    path = tmp_path / "extensions.yaml"
    path.write_text(CATALOG.read_text())
    children_before = _children()
    catalog, count = load_catalog_then(path, lambda c: len(c.extensions), validated_dir=kept)
    assert catalog == load_catalog(path) and count == len(catalog.extensions)
    assert len(list(kept.iterdir())) == 1

    data = _raw()
    data["extensions"]["rum"]["versions"] = "1.3.15"  # the model cannot be made of it
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "patches").symlink_to(REPO / "patches")
    bad = _write(tmp_path / "bad", data)
    with pytest.raises(CatalogError, match=r"/extensions/rum/versions .*expected array"):
        load_catalog(bad)

    def work(c: object) -> None:
        raise AssertionError("the work ran on data the schema refuses")

    with pytest.raises(CatalogError, match=r"/extensions/rum/versions .*expected array"):
        load_catalog_then(bad, work, validated_dir=kept)
    data["extensions"]["rum"]["versions"] = _raw()["extensions"]["rum"]["versions"]
    data["extensions"]["rum"]["colour"] = "blue"  # the model ignores it; the schema does not
    bad.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(CatalogError, match="unknown key 'colour'"):
        load_catalog_then(bad, lambda c: len(c.extensions), validated_dir=kept)
    assert len(list(kept.iterdir())) == 1
    assert _children() == children_before, "a validating child was left behind"

    def refuse(c: object) -> None:
        raise UsageError("the work's own error")

    with pytest.raises(UsageError, match="the work's own error"):
        load_catalog_then(path, refuse)


def test_a_validation_that_dies_without_an_answer_is_not_a_pass() -> None:
    """The child killed before it answered (the OOM killer, say): an error, not a valid catalog."""
    def die(data: object, text: str, shown: str) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    with validating_beside(die, {}, "", "extensions.yaml") as verdict, \
            pytest.raises(CatalogError, match="did not finish"):
        verdict.wait()
