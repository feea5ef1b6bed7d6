"""A registry that lies or misbehaves is refused with a clear error, in bounded time and memory.

The misbehaviour comes from the proxy of tests/support/faults.py in front of the real registry
(which never misbehaves on its own), or, for TLS, from a real registry whose certificate names
another host.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from monogres_oci.consume.pull import resolve
from monogres_oci.errors import RegistryError, VerifyError
from monogres_oci.oci.model import Platform
from monogres_oci.oci.reference import parse_reference
from monogres_oci.oci.registry import RegistryClient
from monogres_oci.oci.retry import RetryPolicy
from monogres_oci.publish.push import publish
from tests.oci.test_publish import Sample, client_for
from tests.support.faults import Fault, Plan, fault_proxy
from tests.support.registry import RunningRegistry, start_registry


def on(kind: str, fault: Fault) -> Plan:
    """``fault`` on every GET of a blob (``kind`` "blobs") or a manifest ("manifests")."""
    def plan(number: int, method: str, path: str) -> Fault | None:
        return fault if method == "GET" and f"/{kind}/" in path else None
    return plan


def client(host: str) -> RegistryClient:
    return RegistryClient(host, insecure=True, retry=RetryPolicy(first_wait=0.01, max_wait=0.02),
                          on_retry=lambda _: None)


@pytest.fixture
def pushed(registry: RunningRegistry, sample: Sample) -> tuple[str, str, int]:
    """(repository, digest, size) of a layer blob, and its manifest is ``hello:1.0-bookworm``."""
    layout, images = sample
    publish(layout, f"{registry.host}/hostile", client_for(registry))
    layer = images[0].layer.descriptor()
    return "hostile/hello", layer.digest, layer.size


@pytest.mark.parametrize(("fault", "error", "match"), [
    ("mutate", VerifyError, "sha256"),  # other bytes than the digest names
    ("redirect", RegistryError, "redirect loop"),
])
def test_a_blob_answer_with_other_bytes_or_a_redirect_loop_is_refused(
        registry: RunningRegistry, pushed: tuple[str, str, int], fault: str,
        error: type[Exception], match: str) -> None:
    repo, digest, size = pushed
    with fault_proxy(registry.host, on("blobs", Fault(fault))) as proxy, \
            pytest.raises(error, match=match):
        client(proxy.host).get_blob(repo, digest, size)


def test_a_manifest_with_other_bytes_is_refused(registry: RunningRegistry,
                                                pushed: tuple[str, str, int]) -> None:
    repo, _, _ = pushed
    digest = client_for(registry).get_manifest(repo, "1.0-bookworm")[2]
    with fault_proxy(registry.host, on("manifests", Fault("mutate"))) as proxy, \
            pytest.raises(VerifyError, match="refused|not valid JSON"):
        client(proxy.host).get_manifest(repo, digest)


@pytest.mark.parametrize("size", [200, 5 * 1024 * 1024])
def test_garbage_or_an_oversized_manifest_is_refused(registry: RunningRegistry,
                                                     pushed: tuple[str, str, int],
                                                     size: int) -> None:
    """(Through what `install` and the packager use to read an image: `resolve`.)"""
    repo, _, _ = pushed
    with fault_proxy(registry.host, on("manifests", Fault("garbage", size=size))) as proxy, \
            pytest.raises(VerifyError) as err:
        resolve(client(proxy.host), parse_reference(f"{proxy.host}/{repo}:1.0-bookworm"),
                Platform("amd64"))
    assert ("larger than 4 MiB" if size > 4 << 20 else "not valid JSON") in str(err.value)


def test_an_endless_blob_is_cut_off_in_bounded_time_and_memory(
        registry: RunningRegistry, pushed: tuple[str, str, int], tmp_path: Path) -> None:
    repo, digest, size = pushed
    with fault_proxy(registry.host, on("blobs", Fault("endless"))) as proxy:
        started = time.monotonic()
        tracemalloc.start()
        try:
            with pytest.raises(VerifyError, match=f"expected {size} bytes"):
                client(proxy.host).get_blob(repo, digest, size)
            with pytest.raises(VerifyError, match=f"expected {size} bytes"):
                client(proxy.host).download_blob(repo, digest, tmp_path / "dl" / "blob", size)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert time.monotonic() - started < 10
    assert peak < 8 << 20, f"{peak} bytes held for a {size}-byte blob"
    assert not list((tmp_path / "dl").iterdir()), "a refused download left a file"


def test_an_endless_answer_to_a_small_request_is_refused(registry: RunningRegistry,
                                                         pushed: tuple[str, str, int]) -> None:
    def plan(number: int, method: str, path: str) -> Fault | None:
        return Fault("endless") if path.endswith("/tags/list") else None
    with fault_proxy(registry.host, plan) as proxy, \
            pytest.raises(RegistryError, match="larger than 4194304 bytes; refused"):
        client(proxy.host).list_tags(pushed[0])


def test_a_certificate_for_another_name_is_refused(tmp_path: Path, sample: Sample) -> None:
    other = start_registry(tmp_path / "other", tls=True, tls_names="DNS:registry.invalid")
    try:
        assert other.ca_file is not None
        with pytest.raises(RegistryError) as err:
            RegistryClient(other.host, ca_file=other.ca_file).ping()
    finally:
        other.stop()
    assert "TLS with registry" in str(err.value)
    assert "hostname" in str(err.value) or "match" in str(err.value), str(err.value)
