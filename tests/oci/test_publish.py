"""Publishing a layout: everything arrives, nothing is sent twice, tags come last."""

from __future__ import annotations

from pathlib import Path

import pytest

from monogres_oci.errors import RegistryError, UsageError, VerifyError
from monogres_oci.oci.blobs import BlobStatus
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import INDEX_TYPES, MANIFEST_TYPES
from monogres_oci.oci.reference import split_ref_name
from monogres_oci.oci.registry import RegistryClient
from monogres_oci.publish.push import PublishEvent, publish
from tests.support.oci_samples import SampleImage
from tests.support.registry import RunningRegistry

Sample = tuple[Layout, list[SampleImage]]


def client_for(registry: RunningRegistry) -> RegistryClient:
    return RegistryClient(registry.host, insecure=registry.insecure, ca_file=registry.ca_file)


def assert_complete(client: RegistryClient, layout: Layout, repo: str, tag: str) -> None:
    """Everything under ``repo:tag`` is in the registry, byte for byte as in the layout."""
    data, media_type, digest = client.get_manifest(repo, tag)
    root = layout.resolve(f"{repo.rsplit('/', 1)[-1]}:{tag}")
    assert (digest, media_type) == (root.digest, root.media_type)
    for desc in layout.walk(root):
        if desc.media_type in MANIFEST_TYPES | INDEX_TYPES:
            assert client.get_manifest(repo, desc.digest)[0] == layout.read_blob(desc.digest)
        else:
            assert client.get_blob(repo, desc.digest, desc.size) == layout.read_blob(desc.digest)


def test_publish_and_read_everything_back(registry: RunningRegistry, sample: Sample) -> None:
    layout, _ = sample
    client = client_for(registry)
    events: list[PublishEvent] = []
    result = publish(layout, f"{registry.host}/ns1", client, progress=events.append)
    assert [str(ref) for ref in result.refs] == [
        f"{registry.host}/ns1/{name}@{desc.digest}" for name, desc in layout.refs().items()
    ]
    assert list(result.events) == events
    for name in layout.refs():
        repo, tag = split_ref_name(name)
        assert_complete(client, layout, f"ns1/{repo}", tag)
    assert client.list_tags("ns1/hello") == ["1-bookworm", "1.0-bookworm"]
    # The layer shared by hello and world is uploaded once and mounted into world.
    assert result.count("blob", "mounted") == 1
    assert result.count("blob", "pushed") == 5  # 2 layers + 2 configs + world's config


def test_second_publish_sends_no_content(registry: RunningRegistry, sample: Sample) -> None:
    layout, _ = sample
    client = client_for(registry)
    publish(layout, f"{registry.host}/ns2", client)
    again = publish(layout, f"{registry.host}/ns2", client)
    assert again.count("blob", "pushed") == again.count("manifest", "pushed") == 0
    assert again.count("manifest", "exists") == 2  # the hello index and the world manifest
    assert again.count("tag", "pushed") == 3


def test_tags_come_only_after_all_content(registry: RunningRegistry, sample: Sample) -> None:
    layout, _ = sample
    client = client_for(registry)
    checker = client_for(registry)
    kinds: list[str] = []

    def check(event: PublishEvent) -> None:
        kinds.append(event.kind)
        if event.kind == "tag":
            repo = event.repository.split("/", 1)[1]
            name = f"{repo.rsplit('/', 1)[-1]}:{event.reference}"
            for desc in layout.walk(layout.resolve(name)):
                if desc.media_type in MANIFEST_TYPES | INDEX_TYPES:
                    assert checker.head_manifest(repo, desc.digest) is not None
                else:
                    assert checker.blob_exists(repo, desc.digest)

    publish(layout, f"{registry.host}/ns3", client, progress=check)
    first_tag = kinds.index("tag")
    assert set(kinds[first_tag:]) == {"tag"} and "blob" in kinds[:first_tag]


class FailingClient(RegistryClient):
    """Fails on the n-th blob upload, as a registry that goes away mid-push would."""

    def __init__(self, host: str, fail_at: int) -> None:
        super().__init__(host, insecure=True)
        self.uploads = 0
        self.fail_at = fail_at

    def push_blob(self, *args: object, **kwargs: object) -> BlobStatus:
        self.uploads += 1
        if self.uploads == self.fail_at:
            raise RegistryError("simulated failure")
        return super().push_blob(*args, **kwargs)  # type: ignore[arg-type]


def test_failure_mid_push_moves_no_tag(registry: RunningRegistry, sample: Sample) -> None:
    layout, _ = sample
    with pytest.raises(RegistryError, match="simulated"):
        publish(layout, f"{registry.host}/ns4", FailingClient(registry.host, fail_at=5))
    client = client_for(registry)
    assert client.list_tags("ns4/hello") == [] and client.list_tags("ns4/world") == []


def test_incomplete_layout_pushes_nothing(registry: RunningRegistry, sample: Sample) -> None:
    layout, images = sample
    layout.blob_path(images[1].layer.digest).unlink()
    with pytest.raises(VerifyError, match="incomplete"):
        publish(layout, f"{registry.host}/ns5", client_for(registry))
    client = client_for(registry)
    assert not client.blob_exists("ns5/hello", images[0].layer.digest)


def test_selected_refs_only(registry: RunningRegistry, sample: Sample) -> None:
    layout, _ = sample
    client = client_for(registry)
    result = publish(layout, f"{registry.host}/ns6", client, refs=["world:2.0"])
    assert [ref.tag for ref in result.refs] == ["2.0"]
    assert client.list_tags("ns6/hello") == [] and client.list_tags("ns6/world") == ["2.0"]
    with pytest.raises(UsageError, match="nope:1"):
        publish(layout, f"{registry.host}/ns6", client, refs=["nope:1"])


def test_no_namespace(registry: RunningRegistry, sample: Sample) -> None:
    layout, _ = sample
    result = publish(layout, registry.host, client_for(registry), refs=["world:2.0"])
    assert str(result.refs[0]).startswith(f"{registry.host}/world:2.0@sha256:")


def test_dry_run_contacts_nothing(sample: Sample) -> None:
    layout, _ = sample
    lines: list[str] = []
    result = publish(
        layout,
        "registry.invalid:5000/ns",
        None,
        dry_run=True,
        progress=lambda e: lines.append(str(e)),
    )
    assert result.dry_run and {e.status for e in result.events} == {"would push"}
    assert (
        lines[-1].startswith("would push tag") and "registry.invalid:5000/ns/world:2.0" in lines[-1]
    )
    assert len(result.refs) == 3
    with pytest.raises(UsageError):
        publish(layout, "registry.invalid:5000/ns", None)


def test_layout_ref_names_must_be_repo_and_tag(tmp_path: Path, sample: Sample) -> None:
    layout, images = sample
    layout.set_ref("no-tag-here", images[0].manifest)
    with pytest.raises(UsageError, match="REPO:TAG"):
        publish(layout, "r.invalid/ns", None, dry_run=True, refs=["no-tag-here"])


def test_publish_with_basic_auth(
    auth_registry: RunningRegistry, sample: Sample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout, _ = sample
    monkeypatch.setenv("DOCKER_CONFIG", str(auth_registry.docker_config(tmp_path / "docker")))
    client = client_for(auth_registry)
    result = publish(layout, f"{auth_registry.host}/private", client)
    assert len(result.refs) == 3
    assert_complete(client, layout, "private/hello", "1.0-bookworm")


def test_publish_over_tls(tls_registry: RunningRegistry, sample: Sample) -> None:
    layout, _ = sample
    client = client_for(tls_registry)
    publish(layout, f"{tls_registry.host}/secure", client, refs=["hello:1.0-bookworm"])
    assert_complete(client, layout, "secure/hello", "1.0-bookworm")
