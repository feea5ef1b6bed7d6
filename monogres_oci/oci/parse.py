"""Manifests, indexes, descriptors and image configs read from their JSON, checked field by
field: a malformed document is a VerifyError naming the field, never a KeyError."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

from monogres_oci.errors import VerifyError
from monogres_oci.oci.model import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    History,
    ImageConfig,
    Index,
    Manifest,
    Platform,
)


def _load(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise VerifyError(f"{what}: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise VerifyError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def _get(obj: Mapping[str, Any], key: str, kind: type, where: str, default: Any = ...) -> Any:
    if key not in obj or obj[key] is None:
        if default is ...:
            raise VerifyError(f"{where}: missing {key!r}")
        return default
    value = obj[key]
    # bool is an int in Python; a size of `true` is still malformed.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise VerifyError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


def _strings(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    items = _get(obj, key, list, where, [])
    if not all(isinstance(item, str) for item in items):
        raise VerifyError(f"{where}.{key}: expected a list of strings")
    return tuple(items)


def _string_map(obj: Mapping[str, Any], key: str, where: str) -> dict[str, str]:
    items = _get(obj, key, dict, where, {})
    if not all(isinstance(value, str) for value in items.values()):
        raise VerifyError(f"{where}.{key}: expected string values")
    return dict(items)


def parse_platform(obj: Mapping[str, Any], where: str = "platform") -> Platform:
    """Build a Platform from its JSON object."""
    return Platform(
        architecture=_get(obj, "architecture", str, where),
        os=_get(obj, "os", str, where),
        variant=_get(obj, "variant", str, where, ""),
        os_version=_get(obj, "os.version", str, where, ""),
        os_features=_strings(obj, "os.features", where),
    )


def parse_descriptor(obj: Any, where: str = "descriptor") -> Descriptor:
    """Build a Descriptor from its JSON object; raise VerifyError naming the bad member."""
    if not isinstance(obj, dict):
        raise VerifyError(f"{where}: expected a JSON object")
    platform = obj.get("platform")
    data = _get(obj, "data", str, where, None)
    try:
        return Descriptor(
            media_type=_get(obj, "mediaType", str, where),
            digest=_get(obj, "digest", str, where),
            size=_get(obj, "size", int, where),
            annotations=_string_map(obj, "annotations", where),
            platform=parse_platform(platform, f"{where}.platform") if platform else None,
            artifact_type=_get(obj, "artifactType", str, where, None),
            urls=_strings(obj, "urls", where),
            data=base64.b64decode(data) if data is not None else None,
        )
    except (ValueError, TypeError, VerifyError) as exc:
        raise VerifyError(f"{where}: {exc}") from exc


def _descriptors(obj: Mapping[str, Any], key: str, where: str) -> tuple[Descriptor, ...]:
    items: Sequence[Any] = _get(obj, key, list, where, [])
    return tuple(parse_descriptor(item, f"{where}.{key}[{i}]") for i, item in enumerate(items))


def _subject(obj: Mapping[str, Any], where: str) -> Descriptor | None:
    subject = obj.get("subject")
    return parse_descriptor(subject, f"{where}.subject") if subject is not None else None


def parse_manifest(data: bytes, media_type: str | None = None) -> Manifest:
    """Parse image manifest bytes (OCI or Docker v2 schema 2)."""
    obj = _load(data, "manifest")
    where = "manifest"
    if _get(obj, "schemaVersion", int, where) != 2:
        raise VerifyError(f"{where}: schemaVersion is not 2")
    kind = _get(obj, "mediaType", str, where, media_type or OCI_MANIFEST)
    if kind not in MANIFEST_TYPES:
        raise VerifyError(f"{where}: media type {kind!r} is not an image manifest")
    return Manifest(
        config=parse_descriptor(_get(obj, "config", dict, where), f"{where}.config"),
        layers=_descriptors(obj, "layers", where),
        annotations=_string_map(obj, "annotations", where),
        subject=_subject(obj, where),
        artifact_type=_get(obj, "artifactType", str, where, None),
        media_type=kind,
    )


def parse_index(data: bytes, media_type: str | None = None) -> Index:
    """Parse image index bytes (OCI index or Docker manifest list)."""
    obj = _load(data, "index")
    where = "index"
    if _get(obj, "schemaVersion", int, where) != 2:
        raise VerifyError(f"{where}: schemaVersion is not 2")
    kind = _get(obj, "mediaType", str, where, media_type or OCI_INDEX)
    if kind not in INDEX_TYPES:
        raise VerifyError(f"{where}: media type {kind!r} is not an image index")
    return Index(
        manifests=_descriptors(obj, "manifests", where),
        annotations=_string_map(obj, "annotations", where),
        subject=_subject(obj, where),
        artifact_type=_get(obj, "artifactType", str, where, None),
        media_type=kind,
    )


def parse_manifest_or_index(data: bytes, media_type: str | None = None) -> Manifest | Index:
    """Parse bytes that are either a manifest or an index, deciding by media type then shape."""
    kind = media_type
    if kind not in MANIFEST_TYPES | INDEX_TYPES:
        obj = _load(data, "manifest")
        kind = obj.get("mediaType")
        if kind not in MANIFEST_TYPES | INDEX_TYPES:
            kind = OCI_INDEX if "manifests" in obj else OCI_MANIFEST
    if kind in INDEX_TYPES:
        return parse_index(data, kind)
    return parse_manifest(data, kind)


def parse_image_config(data: bytes, media_type: str = OCI_CONFIG) -> ImageConfig:
    """Parse image config bytes (OCI or Docker); unknown members are dropped."""
    obj = _load(data, "config")
    where = "config"
    cfg = _get(obj, "config", dict, where, {})
    rootfs = _get(obj, "rootfs", dict, where)
    entrypoint = cfg.get("Entrypoint")
    cmd = cfg.get("Cmd")
    return ImageConfig(
        architecture=_get(obj, "architecture", str, where),
        os=_get(obj, "os", str, where),
        variant=_get(obj, "variant", str, where, ""),
        os_version=_get(obj, "os.version", str, where, ""),
        os_features=_strings(obj, "os.features", where),
        created=_get(obj, "created", str, where, None),
        author=_get(obj, "author", str, where, ""),
        user=_get(cfg, "User", str, f"{where}.config", ""),
        env=_strings(cfg, "Env", f"{where}.config"),
        entrypoint=None if entrypoint is None else _strings(cfg, "Entrypoint", where),
        cmd=None if cmd is None else _strings(cfg, "Cmd", where),
        working_dir=_get(cfg, "WorkingDir", str, f"{where}.config", ""),
        labels=_string_map(cfg, "Labels", f"{where}.config"),
        exposed_ports=tuple(sorted(_get(cfg, "ExposedPorts", dict, where, {}))),
        volumes=tuple(sorted(_get(cfg, "Volumes", dict, where, {}))),
        stop_signal=_get(cfg, "StopSignal", str, f"{where}.config", ""),
        diff_ids=_strings(rootfs, "diff_ids", f"{where}.rootfs"),
        history=tuple(
            History(
                created=_get(item, "created", str, f"{where}.history", None),
                created_by=_get(item, "created_by", str, f"{where}.history", ""),
                author=_get(item, "author", str, f"{where}.history", ""),
                comment=_get(item, "comment", str, f"{where}.history", ""),
                empty_layer=_get(item, "empty_layer", bool, f"{where}.history", False),
            )
            for item in _get(obj, "history", list, where, [])
            if isinstance(item, dict)
        ),
        media_type=media_type,
    )
