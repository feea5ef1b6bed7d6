"""A published catalog read back into a layout, for the site: each reference's index, its
platform manifests, and what refers to them (SBOM, provenance, test results, signatures) with
their payloads. No config or layer is fetched: the site reads none."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from monogres_oci.errors import UsageError
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import INDEX_TYPES, Descriptor
from monogres_oci.oci.parse import parse_index, parse_manifest
from monogres_oci.oci.reference import Reference
from monogres_oci.oci.registry import RegistryClient


def layout_of_published(refs: Sequence[Reference], client_for: Callable[[str], RegistryClient],
                        into: Path, progress: Callable[[str], None]) -> Layout:
    """A layout at ``into`` naming each reference as ``REPOSITORY:TAG`` (the repository's last
    component, as `build` names it), with what the site reads of it."""
    layout = Layout.create(into)
    for ref in refs:
        if ref.tag is None:
            raise UsageError(f"{ref}: name the image by its tag (the site lists tags)")
        client = client_for(ref.host)
        repo = ref.repository
        data, media_type, digest = client.get_manifest(repo, ref.digest or ref.tag)
        if media_type not in INDEX_TYPES:
            raise UsageError(f"{ref} is a single manifest, not the index `publish` and `merge` "
                             "push: pass the references they print")
        layout.add_bytes(data)
        for platform in parse_index(data, media_type).manifests:
            _copy_manifest(client, repo, platform.digest, layout)
            for referrer in client.referrers(repo, platform.digest).index.manifests:
                attached = _copy_manifest(client, repo, referrer.digest, layout)
                for layer in parse_manifest(attached).layers:
                    layout.add_bytes(client.get_blob(repo, layer.digest, layer.size))
                layout.add_unnamed(referrer)
        layout.set_ref(f"{repo.rpartition('/')[2]}:{ref.tag}",
                       Descriptor(media_type, digest, len(data)))
        progress(f"read {ref}")
    return layout


def _copy_manifest(client: RegistryClient, repo: str, digest: str, layout: Layout) -> bytes:
    data, _, _ = client.get_manifest(repo, digest)
    layout.add_bytes(data)
    return data
