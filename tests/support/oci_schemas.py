"""Validation against the official OCI image-spec 1.1.1 JSON schemas, as Debian packages them.

The schemas are draft-04 and refer to each other by relative file name (``defs-descriptor.json``)
resolved against their ``id`` URLs, which point at nested paths that do not exist as files.
Every URL is therefore served by file name from the one schema directory.

``.ci/setup-host.sh`` unpacks them from ``golang-github-opencontainers-image-spec-dev`` into
``$MONOGRES_APT_DIR/oci-image-spec-v1.1.1``, so the tests need nothing beside the repository;
``MONOGRES_OCI_SCHEMAS`` names another directory of the same files.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_DIR_NAME = "oci-image-spec-v1.1.1"

SCHEMAS = {
    "manifest": "image-manifest-schema.json",
    "index": "image-index-schema.json",
    "config": "config-schema.json",
    "layout": "image-layout-schema.json",
    "descriptor": "content-descriptor.json",
}


def schema_dir() -> Path:
    """Return the directory of the OCI image-spec schemas."""
    if override := os.environ.get("MONOGRES_OCI_SCHEMAS"):
        return Path(override)
    return Path(os.environ.get("MONOGRES_APT_DIR", "/var/cache/monogres-apt")) / SPEC_DIR_NAME


@cache
def _load(name: str) -> dict[str, Any]:
    path = schema_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no OCI image-spec schema here; run .ci/setup-host.sh "
                                "(it unpacks them) or set MONOGRES_OCI_SCHEMAS")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _retrieve(uri: str) -> Resource[Any]:
    name = uri.rstrip("/").rsplit("/", 1)[-1].split("#", 1)[0]
    if not name.endswith(".json"):
        name += ".json"
    return Resource.from_contents(_load(name), default_specification=DRAFT4)


@cache
def _validator(kind: str) -> jsonschema.Draft4Validator:
    registry: Registry[Any] = Registry(retrieve=_retrieve)  # type: ignore[call-arg]
    schema = _load(SCHEMAS[kind])
    return jsonschema.Draft4Validator(
        schema, registry=registry, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )


def validate(kind: str, document: bytes | dict[str, Any]) -> None:
    """Validate a manifest, index, config, layout marker or descriptor; raise on a violation."""
    value = json.loads(document) if isinstance(document, bytes) else document
    _validator(kind).validate(value)
