"""CloudNativePG manifests for published artifacts: a Cluster's extension stanza and an ImageCatalog.

Pure: it takes resolved, digest-pinned references and the runtime contract each image carries,
and returns plain dicts (YAML is the CLI's job). CloudNativePG mounts each extension image
read-only at ``/extensions/<name>`` and adds its ``share`` to ``extension_control_path`` and its
``lib`` to ``dynamic_library_path`` (the defaults, so they are not written); ``ld_library_path``,
``bin_path`` and ``env`` come from the contract, and the stanza's name is the image's, since a
relocated image names its mount point in its files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monogres_oci.catalog.model import required_closure
from monogres_oci.package.contract import RuntimeContract

API_VERSION = "postgresql.cnpg.io/v1"


@dataclass(frozen=True)
class ExtensionRef:
    """One extension image as CloudNativePG should reference it."""

    reference: str  # repository:tag@sha256:...
    contract: RuntimeContract

    @property
    def name(self) -> str:
        return self.contract.name


def extension_stanza(ext: ExtensionRef) -> dict[str, Any]:
    """The ``spec.postgresql.extensions[]`` item for one extension."""
    item: dict[str, Any] = {"name": ext.name, "image": {"reference": ext.reference}}
    contract = ext.contract
    if contract.ld_library_path:
        item["ld_library_path"] = list(contract.ld_library_path)
    if contract.bin_path:
        item["bin_path"] = list(contract.bin_path)
    if contract.env:
        item["env"] = [{"name": k, "value": v} for k, v in contract.env]
    return item


def with_required(wanted: Sequence[ExtensionRef], available: Sequence[ExtensionRef]) -> list[ExtensionRef]:
    """``wanted`` plus every extension they require (transitively), required ones first: a
    ``CREATE EXTENSION ... CASCADE`` needs their images mounted too. KeyError names a required
    extension ``available`` lacks."""
    by_name = {e.name: e for e in (*available, *wanted)}
    names = required_closure([e.name for e in wanted],
                             {name: e.contract.requires for name, e in by_name.items()})
    return [by_name[name] for name in names]


def cluster(name: str, postgres_image: str, extensions: Sequence[ExtensionRef],
            instances: int = 1, storage: str = "1Gi") -> dict[str, Any]:
    """A minimal Cluster running ``postgres_image`` with the extensions mounted and preloaded."""
    preload = list(dict.fromkeys(lib for ext in extensions
                                 for lib in ext.contract.shared_preload_libraries))
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
