"""Generated CloudNativePG manifests validate against the CRDs CloudNativePG ships."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from monogres_oci.cnpg import ExtensionRef, cluster, image_catalog

CRDS = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "cloudnative-pg-v1.30.0"
DIGEST = "sha256:" + "a" * 64


def crd_schema(file: str) -> dict[str, Any]:
    if not (CRDS / file).exists():
        pytest.skip(f"{CRDS} not present (shared/ is beside the repo in CI)")
    crd = yaml.safe_load((CRDS / file).read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return version["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


EXTS = [
    ExtensionRef("pgaudit", f"reg.example/pgaudit:18.6-18.0-bookworm@{DIGEST}", ("pgaudit",)),
    ExtensionRef("rum", f"reg.example/rum:18.6-1.3.15-bookworm@{DIGEST}", ()),
]


def test_cluster_validates_and_preloads() -> None:
    doc = cluster("demo", f"reg.example/postgresql:18.6-regular-bookworm@{DIGEST}", EXTS)
    jsonschema.validate(doc, crd_schema("postgresql.cnpg.io_clusters.yaml"))
    pg = doc["spec"]["postgresql"]
    assert pg["shared_preload_libraries"] == ["pgaudit"]
    assert [e["image"]["reference"] for e in pg["extensions"]] == [e.reference for e in EXTS]


def test_image_catalog_validates() -> None:
    doc = image_catalog("monogres-18", 18, f"reg.example/postgresql:18.6@{DIGEST}", EXTS)
    jsonschema.validate(doc, crd_schema("postgresql.cnpg.io_imagecatalogs.yaml"))


def test_crd_rejects_a_broken_stanza() -> None:
    """Guard the guard: the CRD schema really checks the extension items."""
    doc = cluster("demo", "img@" + DIGEST, EXTS)
    doc["spec"]["postgresql"]["extensions"][0]["name"] = "Bad Name!"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, crd_schema("postgresql.cnpg.io_clusters.yaml"))


def test_install_conf_lines_follow_the_postgres_major(tmp_path: Path) -> None:
    from monogres_oci.install import Installed, postgresql_conf

    def ext(major: str, preload: str = "") -> Installed:
        return Installed("r", "d", "m", "extension", "vector", tmp_path / "vector",
                         {"org.monogres.postgres.major": major,
                          "org.monogres.extension.preload": preload})

    eighteen = postgresql_conf([ext("18", "pgaudit")])
    assert eighteen[0] == f"extension_control_path = '$system:{tmp_path}/vector/share'"
    assert eighteen[-1] == "shared_preload_libraries = 'pgaudit'"
    seventeen = postgresql_conf([ext("17")])
    assert not any(line.startswith("extension_control_path") for line in seventeen)
    assert "extension_control_path is new in 18" in seventeen[0]
    assert f"cp -r {tmp_path}/vector/share/extension/." in seventeen[1]
