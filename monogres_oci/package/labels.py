"""Labels and annotations: one key/value set per artifact, validated against labels/ before use."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from monogres_oci.catalog.model import Catalog
from monogres_oci.errors import MonogresError
from monogres_oci.package.contract import RuntimeContract
from monogres_oci.plan.targets import ExtensionTarget, PostgresTarget


class LabelError(MonogresError):
    """Generated labels violate the schema in labels/: a bug or a catalog value too long."""


def _schema_text() -> str:
    # Installed wheels carry a copy under monogres_oci/_labels; a source checkout reads labels/.
    packaged = resources.files("monogres_oci").joinpath("_labels/annotations.schema.json")
    if packaged.is_file():
        return packaged.read_text()
    return (Path(__file__).resolve().parents[2] / "labels" / "annotations.schema.json").read_text()


@cache
def annotations_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema


def validate(labels: dict[str, str]) -> dict[str, str]:
    """Return the labels unchanged, or raise LabelError naming the offending key."""
    validator = jsonschema.Draft202012Validator(annotations_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(labels))
    if error is not None:
        key = "/".join(str(p) for p in error.absolute_path) or "(labels)"
        raise LabelError(f"label {key}: {error.message}")
    return labels


def rfc3339(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


INPUT_PARTS = "org.monogres.input.parts"


def format_parts(parts: Mapping[str, str]) -> str:
    """The input parts as a label: ``name=digest`` pairs, sorted, separated by spaces."""
    return " ".join(f"{name}={digest}" for name, digest in sorted(parts.items()))


def parse_parts(text: str) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in text.split())


def _base(catalog: Catalog, pg: PostgresTarget, epoch: int, input_key: str,
          source_sha256: str, parts: Mapping[str, str]) -> dict[str, str]:
    pub = catalog.publisher
    base_name, _, base_digest = pg.base_image.partition("@")
    labels = {
        "org.opencontainers.image.created": rfc3339(epoch),
        "org.opencontainers.image.source": pub.source,
        "org.opencontainers.image.url": pub.url,
        "org.opencontainers.image.documentation": pub.documentation,
        "org.opencontainers.image.vendor": pub.vendor,
        "org.opencontainers.image.base.name": base_name,
        "org.opencontainers.image.base.digest": base_digest,
        "io.cloudnativepg.image.base.pgmajor": str(pg.release.major),
        "io.cloudnativepg.image.base.os": pg.distro.suite,
        "org.monogres.postgres.version": pg.release.version,
        "org.monogres.postgres.version_num": str(pg.release.version_num),
        "org.monogres.postgres.major": str(pg.release.major),
        "org.monogres.postgres.option_set": pg.option_set.name,
        "org.monogres.postgres.meson_options": " ".join(pg.meson_options),
        "org.monogres.distro": pg.distro.name,
        "org.monogres.source.sha256": source_sha256,
        "org.monogres.input.digest": f"sha256:{input_key}",
        INPUT_PARTS: format_parts(parts),
    }
    if pub.revision:
        labels["org.opencontainers.image.revision"] = pub.revision
    return labels


def postgres_labels(catalog: Catalog, pg: PostgresTarget, epoch: int, *, runnable: bool) -> dict[str, str]:
    """Labels of the Postgres scratch artifact or of the runnable image."""
    labels = _base(catalog, pg, epoch, pg.key, pg.release.source.sha256, pg.key_parts())
    labels.update({
        "org.opencontainers.image.title": "postgresql" if runnable else "postgresql-dist",
        "org.opencontainers.image.description":
            f"PostgreSQL {pg.release.version} ({pg.option_set.name}, {pg.distro.name})"
            + (", runnable image" if runnable else ", install tree for bare metal"),
        "org.opencontainers.image.version": pg.release.version,
        "org.opencontainers.image.licenses": "PostgreSQL",
        "org.monogres.artifact": "postgres-image" if runnable else "postgres",
    })
    return validate(labels)


def extension_labels(catalog: Catalog, target: ExtensionTarget, epoch: int,
                     postgres_image: str, contract: RuntimeContract,
                     license_expression: str) -> dict[str, str]:
    """Labels of an extension image; ``postgres_image`` is the repository:tag it was built for,
    ``license_expression`` covers the extension and every package it bundles."""
    ext, version, pg = target.extension, target.version, target.postgres
    labels = _base(catalog, pg, epoch, target.key, version.source.sha256,
                   target.key_parts())
    labels.update({
        "org.opencontainers.image.title": ext.name,
        "org.opencontainers.image.description": ext.description,
        "org.opencontainers.image.version": version.version,
        "org.opencontainers.image.licenses": license_expression,
        "org.opencontainers.image.url": ext.homepage,
        "io.cloudnativepg.image.base.name": postgres_image,
        "io.cloudnativepg.image.sql.version": version.sql_version,
        "org.monogres.artifact": "extension",
        "org.monogres.extension.version": version.version,
        **contract.labels(),
    })
    return validate(labels)
