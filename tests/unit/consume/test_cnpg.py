"""Generated CloudNativePG manifests validate against the CRDs CloudNativePG ships."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from monogres_oci.consume.cnpg import ExtensionRef, cluster, image_catalog, with_required
from monogres_oci.package.contract import RuntimeContract

CRDS = Path(__file__).resolve().parents[2] / "data" / "cloudnative-pg-v1.30.0"
DIGEST = "sha256:" + "a" * 64


def crd_schema(file: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / file).read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return version["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


POSTGIS = RuntimeContract(
    name="postgis", sql_names=("postgis", "postgis_raster"), ld_library_path=("system",),
    bin_path=("bin",), env=(("GDAL_DATA", "${image_root}/share/gdal"),
                            ("PROJ_DATA", "${image_root}/share/proj")))
EXTS = [
    ExtensionRef(f"reg.example/pgaudit:18.6-18.0-bookworm@{DIGEST}",
                 RuntimeContract("pgaudit", ("pgaudit",), shared_preload_libraries=("pgaudit",))),
    ExtensionRef(f"reg.example/postgis:18.6-3.6.4-bookworm@{DIGEST}", POSTGIS),
    ExtensionRef(f"reg.example/pg_repack:18.6-1.5.3-bookworm@{DIGEST}",
                 RuntimeContract("pg_repack", ("pg_repack",), bin_path=("bin",))),
]


def test_contract_round_trips_through_the_labels() -> None:
    assert RuntimeContract.from_labels(POSTGIS.labels()) == POSTGIS
    assert POSTGIS.env_at("/extensions/postgis") == {
        "GDAL_DATA": "/extensions/postgis/share/gdal", "PROJ_DATA": "/extensions/postgis/share/proj"}


def test_stanzas_carry_the_runtime_contract() -> None:
    doc = cluster("demo", f"reg.example/postgresql:18.6-regular-bookworm@{DIGEST}", EXTS)
    jsonschema.validate(doc, crd_schema("postgresql.cnpg.io_clusters.yaml"))
    pgaudit, postgis, repack = doc["spec"]["postgresql"]["extensions"]
    assert postgis["ld_library_path"] == ["system"]
    assert postgis["env"] == [{"name": "GDAL_DATA", "value": "${image_root}/share/gdal"},
                              {"name": "PROJ_DATA", "value": "${image_root}/share/proj"}]
    assert repack["bin_path"] == ["bin"] and "ld_library_path" not in repack
    assert set(pgaudit) == {"name", "image"}


def test_required_extensions_come_first() -> None:
    mobility = ExtensionRef(f"reg.example/mobilitydb:18.6-1.3.0-bookworm@{DIGEST}",
                            RuntimeContract("mobilitydb", ("mobilitydb",), requires=("postgis",)))
    assert [e.name for e in with_required([mobility], [*EXTS, mobility])] == ["postgis", "mobilitydb"]


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
    from monogres_oci.consume.install import Installed, postgresql_conf, server_environment

    def ext(major: str, contract: RuntimeContract) -> Installed:
        return Installed("r", "d", "m", "extension", contract.name, tmp_path / contract.name,
                         {"org.monogres.postgres.major": major, **contract.labels()})

    pgaudit = RuntimeContract("pgaudit", ("pgaudit",), shared_preload_libraries=("pgaudit",))
    eighteen = postgresql_conf([ext("18", pgaudit)])
    assert eighteen[0] == f"extension_control_path = '$system:{tmp_path}/pgaudit/share'"
    assert eighteen[-1] == "shared_preload_libraries = 'pgaudit'"
    module = RuntimeContract("pgextwlist", (), modules=("pgextwlist",))
    assert postgresql_conf([ext("18", pgaudit), ext("18", module)])[-2:] == [
        "shared_preload_libraries = 'pgaudit'",
        "# pgextwlist: no control file; load with LOAD 'pgextwlist' (or list it in "
        "session_preload_libraries)"]
    seventeen = postgresql_conf([ext("17", pgaudit)])
    assert not any(line.startswith("extension_control_path") for line in seventeen)
    assert "extension_control_path is new in 18" in seventeen[0]
    assert f"cp -r {tmp_path}/pgaudit/share/. \"$(pg_config --sharedir)/\"" in seventeen[1]
    env = server_environment([ext("18", POSTGIS)])
    assert env == {"GDAL_DATA": f"{tmp_path}/postgis/share/gdal",
                   "PROJ_DATA": f"{tmp_path}/postgis/share/proj",
                   "LD_LIBRARY_PATH": f"{tmp_path}/postgis/system",
                   "PATH": f"{tmp_path}/postgis/bin:$PATH"}
