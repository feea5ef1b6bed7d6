"""The catalog loader accepts the shipped catalog and rejects bad input with actionable errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from monogres_oci.catalog import load_catalog
from monogres_oci.errors import CatalogError

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "extensions.yaml"


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "extensions.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _raw() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(CATALOG.read_text())  # type: ignore[no-any-return]


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


def test_extension_for_missing_major(tmp_path: Path) -> None:
    data = _raw()
    data["extensions"]["rum"]["versions"][0]["postgres"] = [18, 16]
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, data))
    assert "PostgreSQL 16 is not in the catalog" in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as err:
        load_catalog(tmp_path / "nope.yaml")
    assert "file not found" in str(err.value)


def test_unknown_distro_reference(tmp_path: Path) -> None:
    data = _raw()
    data["postgres"][0]["distros"] = ["trixie"]
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, data))
    assert "/postgres/0/distros/0" in str(err.value)
    assert "unknown distro 'trixie'" in str(err.value)
    assert "known: bookworm" in str(err.value)
