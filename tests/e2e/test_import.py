"""Debian source packages imported into a catalog that has never seen them (an extension, and a
module without a control file), then built, gated and published, with no change to the code or the
catalog by hand; the entries it writes are the ones the shipped catalog holds (its entries are
imported, not typed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import CACHE, REPO, Keys, build_args, cli, publish_signed
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.e2e

# jsquery 1.2-3 (sid): a PGXS extension with its own regression suite, which builds for
# PostgreSQL 18 in Debian; its .orig and Debian tarballs both download here.
PACKAGE = "jsquery=1.2-3"
# bgw_replstatus 1.0.8-2: a module without a control file (a preloaded background worker).
MODULE = "bgw-replstatus=1.0.8-2"


def test_imported_package_is_built_gated_and_published(catalog: Path, base_image: str,
                                                       registry: RunningRegistry, keys: Keys,
                                                       tmp_path: Path) -> None:
    everything = yaml.safe_load((REPO / "extensions.yaml").read_text())["extensions"]
    shipped = everything["jsquery"]
    mine = tmp_path / "extensions.yaml"
    data = yaml.safe_load(catalog.read_text())
    del data["extensions"]["jsquery"], data["extensions"]["bgw_replstatus"]
    mine.write_text(yaml.safe_dump(data, sort_keys=False))
    before = mine.read_text()

    proc = cli("import", "debian", PACKAGE, MODULE, "--catalog", str(mine), "--cache-dir",
               str(CACHE), "--json")
    [item, module] = json.loads(proc.stdout)["imported"]
    assert (item["name"], item["action"]) == ("jsquery", "added")
    assert (module["name"], module["action"]) == ("bgw_replstatus", "added")
    module_findings = {f["key"]: f for f in module["findings"]}
    assert module_findings["runtime.modules"]["value"] == "bgw_replstatus"
    assert module_findings["runtime.shared_preload_libraries"]["detected"]
    findings = {f["key"]: f for f in item["findings"]}
    assert findings["license"]["value"] == "PostgreSQL"
    assert findings["license"]["source"] == "debian/copyright of jsquery 1.2-3"
    assert findings["build.system"]["value"] == "pgxs"
    assert findings["postgres"]["source"] == "debian/pgversions"
    text = mine.read_text()
    after = yaml.safe_load(text)
    entry = after["extensions"].pop("jsquery")
    module_entry = after["extensions"].pop("bgw_replstatus")
    assert after == yaml.safe_load(before)  # what was there is untouched (byte for byte: unit test)
    assert {key: shipped[key] for key in entry} == entry  # the shipped one may add keys
    assert {key: everything["bgw_replstatus"][key] for key in module_entry} == module_entry
    assert "sql_name" not in module_entry
    version = entry["versions"][0]
    assert version["version"] == "1.2" and version["sql_version"] == "1.1"
    assert len(version["source"]["sha256"]) == 64  # pinned from the signed Sources index

    # imported twice: nothing changes
    again = json.loads(cli("import", "debian", PACKAGE, MODULE, "--catalog", str(mine),
                           "--cache-dir", str(CACHE), "--json").stdout)
    assert [i["action"] for i in again["imported"]] == ["unchanged"] * 2
    assert mine.read_text() == text

    out = tmp_path / "oci"
    report = json.loads(cli(*build_args(mine, base_image, out, "jsquery", "bgw_replstatus"),
                            timeout=3600).stdout)
    [target] = [t for t in report["targets"] if t["name"].startswith("jsquery-")]
    assert target["ok"], target
    suite = target["gate"]["suite"]
    assert suite["passed"] == suite["total"] > 0  # its own upstream regression suite
    # The module: nothing to CREATE; the gate LOADs it in a server that preloads it.
    [loaded] = [t for t in report["targets"] if t["name"].startswith("bgw_replstatus-")]
    assert loaded["ok"], loaded
    assert loaded["gate"]["create_extension"] == []
    assert loaded["gate"]["load"] == [{"module": "bgw_replstatus", "ok": True, "error": ""}]
    published = publish_signed(out, registry, "imported", keys)
    labels = json.loads(subprocess.run(
        ["crane", "config", "--insecure", published.tag_ref("bgw_replstatus:18.6-1.0.8-bookworm")],
        check=True, capture_output=True, text=True).stdout)["config"]["Labels"]
    assert labels["org.monogres.extension.sql_name"] == ""
    assert labels["org.monogres.extension.modules"] == "bgw_replstatus"
    assert labels["org.monogres.extension.preload"] == "bgw_replstatus"
    ref = published.tag_ref("jsquery:18.6-1.2-bookworm")
    verified = json.loads(cli("verify", ref, "--key", str(keys.public), "--json").stdout)
    attestations = verified["results"][0]["verified"][1]["attestations"]
    assert "test result" in attestations
