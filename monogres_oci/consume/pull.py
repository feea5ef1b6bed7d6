"""Pulling one platform's image from a registry: resolve, pick the platform, verify everything.

Shared by the package stage (the base image under the runnable Postgres image) and by
``install``. Every manifest and blob is checked against its digest as it arrives.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from monogres_oci.errors import VerifyError
from monogres_oci.machine import machine_arch
from monogres_oci.oci.model import (
    DOCKER_LAYER_TAR_GZIP,
    INDEX_TYPES,
    OCI_LAYER_TAR_GZIP,
    Descriptor,
    ImageConfig,
    Manifest,
    Platform,
)
from monogres_oci.oci.parse import parse_image_config, parse_index, parse_manifest
from monogres_oci.oci.reference import Reference
from monogres_oci.oci.registry import RegistryClient
from monogres_oci.oci.retry import RetryPolicy, policy_from

# Docker Hub's registry answers on another host than the one image names use.
HOST_ALIASES = {"docker.io": "registry-1.docker.io"}


def is_loopback(host: str) -> bool:
    """Whether HOST[:PORT] is this machine; such registries speak plain HTTP, as docker assumes."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def make_client(host: str, *, insecure: bool = False, ca_file: Path | None = None,
                retry: RetryPolicy | None = None) -> RegistryClient:
    """A registry client; loopback registries without a CA file are plain HTTP."""
    plain = insecure or (ca_file is None and is_loopback(host))
    return RegistryClient(HOST_ALIASES.get(host, host), insecure=plain, ca_file=ca_file,
                          retry=retry or policy_from())


def this_platform() -> Platform:
    return Platform(architecture=machine_arch(), os="linux")


@dataclass(frozen=True)
class PulledImage:
    """One platform's manifest and config, verified; the index digest when there was one."""

    reference: Reference
    digest: str  # what the reference resolved to (index or manifest)
    manifest_digest: str
    manifest: Manifest
    config: ImageConfig


def resolve(client: RegistryClient, ref: Reference, platform: Platform) -> PulledImage:
    """Fetch the manifest for ``platform`` (through the index if there is one) and its config."""
    data, media_type, digest = client.get_manifest(ref.repository, ref.reference)
    manifest_digest = digest
    if media_type in INDEX_TYPES:
        index = parse_index(data, media_type)
        wanted = (platform.os, platform.architecture)
        chosen = next((d for d in index.manifests if d.platform is not None
                       and (d.platform.os, d.platform.architecture) == wanted), None)
        if chosen is None:
            have = ", ".join(str(d.platform) for d in index.manifests if d.platform) or "none"
            raise VerifyError(f"{ref} has no image for {platform} (it has: {have})")
        data, media_type, manifest_digest = client.get_manifest(ref.repository, chosen.digest)
        if manifest_digest != chosen.digest:
            raise VerifyError(f"{ref}: manifest {chosen.digest} arrived as {manifest_digest}")
    manifest = parse_manifest(data, media_type)
    config_bytes = client.get_blob(ref.repository, manifest.config.digest, manifest.config.size)
    config = parse_image_config(config_bytes, manifest.config.media_type)
    if (config.os, config.architecture) != (platform.os, platform.architecture):
        raise VerifyError(f"{ref} is for {config.os}/{config.architecture}, not {platform}")
    if len(config.diff_ids) != len(manifest.layers):
        raise VerifyError(f"{ref}: config lists {len(config.diff_ids)} diff_ids for "
                          f"{len(manifest.layers)} layers")
    return PulledImage(ref, digest, manifest_digest, manifest, config)


def as_oci_layer(desc: Descriptor) -> Descriptor:
    """The same layer blob described with the OCI media type (Docker's gzip layer is identical)."""
    media_type = OCI_LAYER_TAR_GZIP if desc.media_type == DOCKER_LAYER_TAR_GZIP else desc.media_type
    return Descriptor(media_type, desc.digest, desc.size)
