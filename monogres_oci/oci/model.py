"""The OCI image model: immutable descriptors, platforms, configs, manifests, indexes; no I/O.

Every value serialises to canonical bytes (:func:`canonical_json`: keys sorted, no whitespace,
UTF-8 kept as is), so the same value always has the same digest. Values read from a registry are
parsed into the same types (by oci.parse); fields this model does not know are dropped on
parsing, which is why a pulled manifest's *bytes* (not a re-serialisation) are pushed again.

Mappings inside values (annotations, labels) are read-only views, sorted by key, so that a value
compares equal to itself however it was built.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from types import MappingProxyType
from typing import Any

from monogres_oci.oci.digest import check_digest, sha256_digest

# Media types (image-spec v1.1 and the Docker v2 schema 2 types registries still serve).
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_TAR_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})

# Annotation keys with a meaning to tools we interoperate with.
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ORAS_UNPACK = "io.deis.oras.content.unpack"
ORAS_CONTENT_DIGEST = "io.deis.oras.content.digest"  # sha256 of the *uncompressed* tar


def canonical_json(value: Any) -> bytes:
    """Return the one byte form this project gives a JSON value: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def rfc3339(epoch: int) -> str:
    """Return SOURCE_DATE_EPOCH ``epoch`` as RFC 3339 UTC time (``1970-01-01T00:00:00Z``)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _frozen_map(value: Mapping[str, str], what: str) -> Mapping[str, str]:
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise TypeError(f"{what}: keys and values must be strings, got {key!r}: {item!r}")
    return MappingProxyType(dict(sorted(value.items())))


@dataclass(frozen=True)
class Platform:
    """The operating system and CPU an image manifest runs on."""

    architecture: str
    os: str = "linux"
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]`` as docker and buildx spell it (``linux/arm64/v8``)."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform {text!r}: expected os/arch or os/arch/variant")
        return cls(architecture=parts[1], os=parts[0], variant=parts[2] if len(parts) == 3 else "")

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def sort_key(self) -> tuple[str, str, str, str]:
        """Return the key that orders platforms in an index (os, architecture, variant)."""
        return (self.os, self.architecture, self.variant, self.os_version)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object of this platform."""
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        return out


@dataclass(frozen=True)
class Descriptor:
    """A typed, sized, content-addressed pointer to a blob, manifest or index."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    platform: Platform | None = None
    artifact_type: str | None = None
    urls: tuple[str, ...] = ()
    data: bytes | None = None

    def __post_init__(self) -> None:
        check_digest(self.digest)
        if self.size < 0:
            raise ValueError(f"descriptor {self.digest}: negative size {self.size}")
        object.__setattr__(self, "annotations", _frozen_map(self.annotations, "annotations"))

    def with_annotations(self, annotations: Mapping[str, str]) -> Descriptor:
        """Return a copy whose annotations are ``annotations`` merged over the current ones."""
        return replace(self, annotations={**self.annotations, **annotations})

    def with_platform(self, platform: Platform | None) -> Descriptor:
        """Return a copy that names ``platform``."""
        return replace(self, platform=platform)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object of this descriptor (optional members only when set)."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.urls:
            out["urls"] = list(self.urls)
        if self.data is not None:
            out["data"] = base64.b64encode(self.data).decode("ascii")
        return out


@dataclass(frozen=True)
class Blob:
    """Bytes in memory together with their media type; small content such as configs and JSON."""

    data: bytes
    media_type: str

    @cached_property
    def digest(self) -> str:
        """The sha256 digest of the bytes."""
        return sha256_digest(self.data)

    def descriptor(self, annotations: Mapping[str, str] | None = None) -> Descriptor:
        """Return the descriptor of these bytes."""
        return Descriptor(self.media_type, self.digest, len(self.data), annotations or {})


EMPTY_BLOB = Blob(b"{}", OCI_EMPTY)
"""The image-spec's empty JSON blob, the config of artifacts that have none."""


def _with_optional(out: dict[str, Any], annotations: Mapping[str, str],
                   subject: Descriptor | None, artifact_type: str | None) -> dict[str, Any]:
    """Add the members a manifest and an index share, each only when set."""
    if annotations:
        out["annotations"] = dict(annotations)
    if subject is not None:
        out["subject"] = subject.to_dict()
    if artifact_type:
        out["artifactType"] = artifact_type
    return out


class _Document:
    """A JSON document stored as a blob: canonical bytes, media type and digest, derived once."""

    media_type: str

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @cached_property
    def blob(self) -> Blob:
        """The canonical bytes of this document with its media type."""
        return Blob(canonical_json(self.to_dict()), self.media_type)

    def to_json(self) -> bytes:
        """Return the canonical bytes of this document."""
        return self.blob.data

    @property
    def digest(self) -> str:
        """The sha256 digest of the canonical bytes."""
        return self.blob.digest


@dataclass(frozen=True)
class History:
    """One entry of an image config's history: how a layer (or an empty step) came to be."""

    created: str | None = None
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object of this history entry."""
        out: dict[str, Any] = {}
        if self.created is not None:
            out["created"] = self.created
        if self.created_by:
            out["created_by"] = self.created_by
        if self.author:
            out["author"] = self.author
        if self.comment:
            out["comment"] = self.comment
        if self.empty_layer:
            out["empty_layer"] = True
        return out


@dataclass(frozen=True)
class ImageConfig(_Document):
    """An image configuration: platform, runtime defaults, labels and the layers' diff_ids.

    ``entrypoint``/``cmd`` None means "not set" (omitted), which differs from an empty list for
    container runtimes. Docker-only keys of a pulled config (``container_config`` and the like)
    are not modelled.
    """

    architecture: str
    os: str = "linux"
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()
    created: str | None = None
    author: str = ""
    user: str = ""
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    working_dir: str = ""
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    stop_signal: str = ""
    diff_ids: tuple[str, ...] = ()
    history: tuple[History, ...] = ()
    media_type: str = OCI_CONFIG

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen_map(self.labels, "labels"))
        for diff_id in self.diff_ids:
            check_digest(diff_id)

    @property
    def platform(self) -> Platform:
        """The platform this config declares."""
        return Platform(self.architecture, self.os, self.variant, self.os_version, self.os_features)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object of this config."""
        out: dict[str, Any] = self.platform.to_dict()
        if self.created is not None:
            out["created"] = self.created
        if self.author:
            out["author"] = self.author
        cfg: dict[str, Any] = {}
        if self.user:
            cfg["User"] = self.user
        if self.exposed_ports:
            cfg["ExposedPorts"] = {port: {} for port in self.exposed_ports}
        if self.env:
            cfg["Env"] = list(self.env)
        if self.entrypoint is not None:
            cfg["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            cfg["Cmd"] = list(self.cmd)
        if self.volumes:
            cfg["Volumes"] = {volume: {} for volume in self.volumes}
        if self.working_dir:
            cfg["WorkingDir"] = self.working_dir
        if self.labels:
            cfg["Labels"] = dict(self.labels)
        if self.stop_signal:
            cfg["StopSignal"] = self.stop_signal
        if cfg:
            out["config"] = cfg
        out["rootfs"] = {"type": "layers", "diff_ids": list(self.diff_ids)}
        if self.history:
            out["history"] = [entry.to_dict() for entry in self.history]
        return out

    def descriptor(self) -> Descriptor:
        """Return the descriptor a manifest uses to point at this config."""
        return self.blob.descriptor()


@dataclass(frozen=True)
class Manifest(_Document):
    """An image manifest: one config and an ordered list of layers (one platform of an image)."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    media_type: str = OCI_MANIFEST

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "annotations", _frozen_map(self.annotations, "annotations"))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object of this manifest."""
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": self.config.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
        }
        return _with_optional(out, self.annotations, self.subject, self.artifact_type)

    def descriptor(
        self, platform: Platform | None = None, annotations: Mapping[str, str] | None = None
    ) -> Descriptor:
        """Return the descriptor an index (or a layout's index.json) uses to point here."""
        return Descriptor(
            self.media_type,
            self.digest,
            len(self.to_json()),
            annotations or {},
            platform=platform,
            artifact_type=self.artifact_type,
        )


@dataclass(frozen=True)
class Index(_Document):
    """An image index: a list of manifests (typically one per platform) or of other indexes."""

    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    media_type: str = OCI_INDEX

    def __post_init__(self) -> None:
        object.__setattr__(self, "manifests", tuple(self.manifests))
        object.__setattr__(self, "annotations", _frozen_map(self.annotations, "annotations"))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object of this index."""
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "manifests": [desc.to_dict() for desc in self.manifests],
        }
        return _with_optional(out, self.annotations, self.subject, self.artifact_type)

    def descriptor(self, annotations: Mapping[str, str] | None = None) -> Descriptor:
        """Return the descriptor that points at this index."""
        return Descriptor(
            self.media_type,
            self.digest,
            len(self.to_json()),
            annotations or {},
            artifact_type=self.artifact_type,
        )


# --- parsing (for content read from a layout or pulled from a registry) -------------------------
