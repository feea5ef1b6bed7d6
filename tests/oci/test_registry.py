"""The distribution client against Debian's real docker-registry (distribution 2.8)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import requests

from monogres_oci.errors import AuthError, RegistryError, UsageError, VerifyError
from monogres_oci.oci.auth import Credentials
from monogres_oci.oci.digest import sha256_digest
from monogres_oci.oci.model import (
    EMPTY_BLOB,
    OCI_INDEX,
    OCI_MANIFEST,
    Blob,
    ImageConfig,
    Index,
    Manifest,
    Platform,
)
from monogres_oci.oci.registry import RegistryClient
from monogres_oci.oci.streams import BlobReader
from tests.oci.conftest import PASSWORD, USER
from tests.support.registry import RunningRegistry, free_port


def client_for(registry: RunningRegistry, credentials: Credentials | None = None) -> RegistryClient:
    return RegistryClient(
        registry.host, insecure=registry.insecure, ca_file=registry.ca_file, credentials=credentials
    )


def push_image(client: RegistryClient, repo: str, payload: bytes) -> Manifest:
    """Push a one-layer image by digest and return its manifest."""
    layer = Blob(payload, "application/vnd.oci.image.layer.v1.tar")
    config = ImageConfig(architecture="amd64", diff_ids=(layer.digest,))
    client.push_blob(repo, layer.data, layer.digest, len(layer.data))
    client.push_blob(repo, config.to_json(), config.digest, len(config.to_json()))
    manifest = Manifest(config=config.descriptor(), layers=(layer.descriptor(),))
    client.push_manifest(repo, manifest.digest, manifest.to_json(), OCI_MANIFEST)
    return manifest


def test_blob_push_skip_and_read_back(registry: RunningRegistry, tmp_path: Path) -> None:
    client = client_for(registry)
    client.ping()
    data = b"blob content " * 1000
    digest = sha256_digest(data)
    assert not client.blob_exists("t/blobs", digest)
    assert client.push_blob("t/blobs", data, digest, len(data)) == "pushed"
    assert client.blob_exists("t/blobs", digest)
    assert client.push_blob("t/blobs", data, digest, len(data)) == "exists"
    assert client.get_blob("t/blobs", digest, len(data)) == data
    source = tmp_path / "big.bin"
    source.write_bytes(bytes(range(256)) * 20_000)  # 5 MB, streamed from the file
    big = sha256_digest(source.read_bytes())
    assert client.push_blob("t/blobs", source, big, source.stat().st_size) == "pushed"
    client.download_blob("t/blobs", big, tmp_path / "down" / "big.bin")
    assert (tmp_path / "down" / "big.bin").read_bytes() == source.read_bytes()
    with client.open_blob("t/blobs", big) as reader:
        assert len(reader.read(1000)) == 1000


def test_cross_repository_mount(registry: RunningRegistry) -> None:
    client = client_for(registry)
    data = b"shared layer"
    digest = sha256_digest(data)
    client.push_blob("t/mount-a", data, digest, len(data))
    assert (
        client.push_blob("t/mount-b", data, digest, len(data), mount_from="t/mount-a") == "mounted"
    )
    assert client.get_blob("t/mount-b", digest) == data


def test_manifest_and_index_round_trip(registry: RunningRegistry) -> None:
    client = client_for(registry)
    amd = push_image(client, "t/images", b"amd64 layer")
    arm = push_image(client, "t/images", b"arm64 layer")
    index = Index(
        manifests=(
            amd.descriptor(platform=Platform("amd64")),
            arm.descriptor(platform=Platform("arm64")),
        )
    )
    assert client.push_manifest("t/images", "1.0", index.to_json(), OCI_INDEX) == index.digest
    data, media_type, digest = client.get_manifest("t/images", "1.0")
    assert (data, media_type, digest) == (index.to_json(), OCI_INDEX, index.digest)
    data, media_type, digest = client.get_manifest("t/images", amd.digest)
    assert (data, media_type) == (amd.to_json(), OCI_MANIFEST)
    head = client.head_manifest("t/images", "1.0")
    assert head is not None and (head.digest, head.size, head.media_type) == (
        index.digest,
        len(index.to_json()),
        OCI_INDEX,
    )
    assert client.head_manifest("t/images", "missing") is None
    assert client.list_tags("t/images") == ["1.0"]
    assert client.list_tags("t/never-pushed") == []


def test_referrers_fall_back_to_the_tag_scheme(registry: RunningRegistry) -> None:
    client = client_for(registry)
    image = push_image(client, "t/referred", b"subject layer")
    found = client.referrers("t/referred", image.digest)
    assert not found.from_api and found.index.manifests == ()
    sbom = Blob(b'{"spdxVersion":"SPDX-2.3"}', "application/spdx+json")
    client.push_blob("t/referred", sbom.data, sbom.digest, len(sbom.data))
    client.push_blob("t/referred", EMPTY_BLOB.data, EMPTY_BLOB.digest, 2)
    artifact = Manifest(
        config=EMPTY_BLOB.descriptor(),
        layers=(sbom.descriptor(),),
        subject=image.descriptor(),
        artifact_type="application/spdx+json",
    )
    client.push_manifest("t/referred", artifact.digest, artifact.to_json(), OCI_MANIFEST)
    fallback = Index(manifests=(artifact.descriptor(),))
    tag = image.digest.replace(":", "-")
    client.push_manifest("t/referred", tag, fallback.to_json(), OCI_INDEX)
    found = client.referrers("t/referred", image.digest, artifact_type="application/spdx+json")
    assert found.index.manifests == (artifact.descriptor(),)
    assert client.referrers("t/referred", image.digest, artifact_type="x/y").index.manifests == ()


def test_registry_errors_carry_status_and_codes(registry: RunningRegistry) -> None:
    client = client_for(registry)
    missing = Blob(b"never uploaded", "application/octet-stream")
    manifest = Manifest(config=missing.descriptor(), layers=(missing.descriptor(),))
    with pytest.raises(RegistryError) as caught:
        client.push_manifest("t/errors", "broken", manifest.to_json(), OCI_MANIFEST)
    assert "HTTP 400" in str(caught.value) and "MANIFEST_BLOB_UNKNOWN" in str(caught.value)
    with pytest.raises(RegistryError, match="MANIFEST_UNKNOWN"):
        client.get_manifest("t/errors", "nope")
    with pytest.raises(RegistryError, match="DIGEST_INVALID"):
        client.push_blob("t/errors", b"abc", sha256_digest(b"abd"), 3)
    with pytest.raises(UsageError):
        client.blob_exists("Bad Name", sha256_digest(b""))
    with pytest.raises(VerifyError):
        client.push_manifest("t/errors", sha256_digest(b"x"), b"y", OCI_MANIFEST)


def test_blob_reader_checks_the_digest() -> None:
    response = requests.Response()
    response.raw = io.BytesIO(b"tampered")
    reader = BlobReader(response, sha256_digest(b"original"), None)
    with pytest.raises(VerifyError, match="digest mismatch"):
        while reader.read(3):
            pass


def test_unreachable_registry() -> None:
    host = f"127.0.0.1:{free_port()}"
    with pytest.raises(RegistryError) as caught:
        RegistryClient(host, insecure=True).ping()
    message = str(caught.value)
    assert host in message and "check the host and port" in message
    with pytest.raises(RegistryError, match="HTTPS"):
        RegistryClient(host).blob_exists("x", sha256_digest(b""))


# --- Basic auth --------------------------------------------------------------------------------


def test_anonymous_access_is_refused_with_a_hint(
    auth_registry: RunningRegistry, no_docker_config: Path
) -> None:
    with pytest.raises(AuthError) as caught:
        client_for(auth_registry).blob_exists("t/auth", sha256_digest(b""))
    message = str(caught.value)
    assert auth_registry.host in message and "no credentials" in message
    assert str(no_docker_config) in message


def test_credentials_from_docker_config(
    auth_registry: RunningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(auth_registry.docker_config(tmp_path / "docker")))
    client = client_for(auth_registry)
    client.ping()
    data = b"authenticated"
    assert client.push_blob("t/auth", data, sha256_digest(data), len(data)) == "pushed"
    assert client.get_blob("t/auth", sha256_digest(data)) == data


def test_explicit_credentials(auth_registry: RunningRegistry) -> None:
    client = client_for(auth_registry, Credentials(USER, PASSWORD, "test"))
    client.ping()


def test_wrong_password_never_shows_the_secret(
    auth_registry: RunningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "Wr0ng-Secret-Value-xyz"
    config = auth_registry.docker_config(tmp_path / "docker", password=wrong)
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    with pytest.raises(AuthError) as caught:
        client_for(auth_registry).blob_exists("t/auth", sha256_digest(b""))
    error = caught.value
    text = " ".join(
        [str(error), repr(error), repr(error.args), str(error.__cause__), str(error.__context__)]
    )
    assert wrong not in text and PASSWORD not in text
    assert "from" in str(error) and "config.json" in str(error) and "were used" in str(error)


# --- TLS ---------------------------------------------------------------------------------------


def test_tls_with_custom_ca(tls_registry: RunningRegistry) -> None:
    assert tls_registry.ca_file is not None
    client = RegistryClient(tls_registry.host, ca_file=tls_registry.ca_file)
    client.ping()
    data = b"over tls"
    client.push_blob("t/tls", data, sha256_digest(data), len(data))
    assert client.get_blob("t/tls", sha256_digest(data)) == data


def test_tls_without_the_ca_is_refused(tls_registry: RunningRegistry) -> None:
    with pytest.raises(RegistryError, match="ca_file"):
        RegistryClient(tls_registry.host).ping()
    with pytest.raises(RegistryError):
        RegistryClient(tls_registry.host, insecure=True).ping()  # plain HTTP to an HTTPS port
