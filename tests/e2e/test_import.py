"""A Debian source package imported into a catalog that has never seen it, then built, gated and
published, with no change to the code or the catalog by hand; the entry it writes is the one the
shipped catalog holds (its entries are imported, not typed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import CACHE, REPO, Keys, build_args, cli, publish_signed
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.e2e

# jsquery 1.2-3 (sid): a PGXS extension with its own regression suite, which builds for
# PostgreSQL 18 in Debian; its .orig and Debian tarballs both download here.
PACKAGE = "jsquery=1.2-3"


def test_imported_package_is_built_gated_and_published(catalog: Path, base_image: str,
                                                       registry: RunningRegistry, keys: Keys,
                                                       tmp_path: Path) -> None:
    shipped = yaml.safe_load((REPO / "extensions.yaml").read_text())["extensions"]["jsquery"]
    mine = tmp_path / "extensions.yaml"
    data = yaml.safe_load(catalog.read_text())
    del data["extensions"]["jsquery"]
    mine.write_text(yaml.safe_dump(data, sort_keys=False))
    before = mine.read_text()

    proc = cli("import", "debian", PACKAGE, "--catalog", str(mine), "--cache-dir", str(CACHE),
               "--json")
    [item] = json.loads(proc.stdout)["imported"]
    assert (item["name"], item["action"]) == ("jsquery", "added")
    findings = {f["key"]: f for f in item["findings"]}
    assert findings["license"]["value"] == "PostgreSQL"
    assert findings["license"]["source"] == "debian/copyright of jsquery 1.2-3"
    assert findings["build.system"]["value"] == "pgxs"
    assert findings["postgres"]["source"] == "debian/pgversions"
    text = mine.read_text()
    after = yaml.safe_load(text)
    entry = after["extensions"].pop("jsquery")
    assert after == yaml.safe_load(before)  # what was there is untouched (byte for byte: unit test)
    assert {key: shipped[key] for key in entry} == entry  # the shipped one may add keys
    version = entry["versions"][0]
    assert version["version"] == "1.2" and version["sql_version"] == "1.1"
    assert len(version["source"]["sha256"]) == 64  # pinned from the signed Sources index

    # imported twice: nothing changes
    again = json.loads(cli("import", "debian", PACKAGE, "--catalog", str(mine), "--cache-dir",
                           str(CACHE), "--json").stdout)
    assert again["imported"][0]["action"] == "unchanged" and mine.read_text() == text

    out = tmp_path / "oci"
    report = json.loads(cli(*build_args(mine, base_image, out, "jsquery"), timeout=3600).stdout)
    [target] = [t for t in report["targets"] if t["name"].startswith("jsquery-")]
    assert target["ok"], target
    suite = target["gate"]["suite"]
    assert suite["passed"] == suite["total"] > 0  # its own upstream regression suite
    published = publish_signed(out, registry, "imported", keys)
    ref = published.tag_ref("jsquery:18.6-1.2-bookworm")
    verified = json.loads(cli("verify", ref, "--key", str(keys.public), "--json").stdout)
    attestations = verified["results"][0]["verified"][1]["attestations"]
    assert "test result" in attestations
