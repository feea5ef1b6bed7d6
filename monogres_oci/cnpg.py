"""CloudNativePG manifests for published artifacts: a Cluster's extension stanza and an ImageCatalog.

Pure: it takes resolved, digest-pinned references and returns plain dicts (YAML is the CLI's job).
CloudNativePG mounts each extension image read-only at ``/extensions/<name>`` and adds its
``share`` to ``extension_control_path`` and its ``lib`` to ``dynamic_library_path``; those are the
defaults, so the stanza only needs the name and the image reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

API_VERSION = "postgresql.cnpg.io/v1"


@dataclass(frozen=True)
class ExtensionRef:
    """One extension image as CloudNativePG should reference it."""

    name: str  # the image-volume name: /extensions/<name>
    reference: str  # repository:tag@sha256:...
    preload: tuple[str, ...]
    has_system_libs: bool = False


def extension_stanza(ext: ExtensionRef) -> dict[str, Any]:
    """The ``spec.postgresql.extensions[]`` item for one extension."""
    item: dict[str, Any] = {"name": ext.name, "image": {"reference": ext.reference}}
    if ext.has_system_libs:
        item["ld_library_path"] = ["system"]
    return item


def cluster(name: str, postgres_image: str, extensions: Sequence[ExtensionRef],
            instances: int = 1, storage: str = "1Gi") -> dict[str, Any]:
    """A minimal Cluster running ``postgres_image`` with the extensions mounted and preloaded."""
    preload = sorted({lib for ext in extensions for lib in ext.preload})
    postgresql: dict[str, Any] = {"extensions": [extension_stanza(e) for e in extensions]}
    if preload:
        postgresql["shared_preload_libraries"] = preload
    return {
        "apiVersion": API_VERSION,
        "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {
            "instances": instances,
            "imageName": postgres_image,
            "storage": {"size": storage},
            "postgresql": postgresql,
        },
    }


def image_catalog(name: str, major: int, postgres_image: str,
                  extensions: Sequence[ExtensionRef]) -> dict[str, Any]:
    """An ImageCatalog with one image for ``major`` and its extensions."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ImageCatalog",
        "metadata": {"name": name},
        "spec": {
            "images": [{
                "major": major,
                "image": postgres_image,
                "extensions": [extension_stanza(e) for e in extensions],
            }],
        },
    }
