"""Publishing through a registry that fails: every transient fault is retried, announced, and the
result is complete; what is not transient is refused at once.

The faults come from tests/support/faults.py, a proxy on loopback in front of the real
``docker-registry`` (a real registry cannot be made to answer 503 on cue); everything it does not
fault reaches that registry unchanged, and every check afterwards reads the real registry
directly, with our client and with ``crane validate --remote``.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from monogres_oci.errors import RegistryError
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import OCI_LAYER_TAR, Blob, ImageConfig, Manifest
from monogres_oci.oci.reference import split_ref_name
from monogres_oci.oci.registry import RegistryClient
from monogres_oci.oci.retry import NO_RETRIES, RetryPolicy
from monogres_oci.publish.push import publish
from tests.oci.test_publish import Sample, assert_complete, client_for
from tests.support.faults import (
    Fault,
    FaultProxy,
    Logged,
    every,
    fault_proxy,
    is_upload_session,
    random_mix,
)
from tests.support.registry import RunningRegistry

# Waits are real but short: the behaviour under test is what is repeated, not how long it waits.
FAST = RetryPolicy(first_wait=0.01, max_wait=0.05)


def proxied(proxy: FaultProxy, policy: RetryPolicy = FAST,
            lines: list[str] | None = None) -> RegistryClient:
    return RegistryClient(proxy.host, insecure=True, retry=policy,
                          on_retry=(lines.append if lines is not None else lambda _: None))


def assert_published(registry: RunningRegistry, sample: Sample, namespace: str) -> None:
    """Every tag of the layout is in the real registry, with everything it reaches, byte for
    byte, and crane agrees that each is complete and well-formed."""
    layout, _ = sample
    direct = client_for(registry)
    crane = shutil.which("crane")
    assert crane
    for name in layout.refs():
        repo, tag = split_ref_name(name)
        assert_complete(direct, layout, f"{namespace}/{repo}", tag)
        checked = subprocess.run([crane, "validate", "--insecure", "--remote",
                                  f"{registry.host}/{namespace}/{repo}:{tag}"],
                                 capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def checked_again(proxy: FaultProxy, put: Logged) -> bool:
    """Whether the blob of an upload-session PUT was looked up (HEAD) again after that PUT."""
    hex_digest = put.path.rsplit("%3A", 1)[1]  # the PUT names it URL-encoded, in its query
    return any(e.method == "HEAD" and e.path.endswith(f"/blobs/sha256:{hex_digest}")
               for e in proxy.log[put.number:])


FAULTS = {
    "503": Fault("status", 503),
    "429-retry-after": Fault("status", 429, retry_after="1"),
    "reset": Fault("reset"),
    "truncate": Fault("truncate"),
    "slow-answer": Fault("slow", delay=0.5),
    "lost-answer": Fault("lost_answer"),
}


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_publish_succeeds_under_each_fault(registry: RunningRegistry, sample: Sample,
                                           name: str) -> None:
    """One request in four faulted (every kind of request: checks, uploads, manifests, tags;
    not three, which a blob upload's HEAD, POST, PUT would meet at the same step every time)."""
    lines: list[str] = []
    with fault_proxy(registry.host, every(4, FAULTS[name])) as proxy:
        # A slow answer is a fault only past the read timeout: give the client a short one.
        client = proxied(proxy, lines=lines)
        if name == "slow-answer":
            client.timeout = (client.timeout[0], 0.25)
        publish(sample[0], f"{proxy.host}/{name}", client)
    assert proxy.faults(), "the plan injected nothing"
    assert_published(registry, sample, name)
    assert client.retries_made == len(lines) > 0
    if name == "429-retry-after":
        assert all(" in 1.0 s: " in line for line in lines), lines


def test_publish_succeeds_under_a_random_mix_at_15_percent(registry: RunningRegistry,
                                                           sample: Sample) -> None:
    for seed in (1, 2, 3):
        with fault_proxy(registry.host, random_mix(0.15, seed)) as proxy:
            client = proxied(proxy)
            client.timeout = (client.timeout[0], 5.0)
            publish(sample[0], f"{proxy.host}/mix{seed}", client)
        assert proxy.faults()
        assert_published(registry, sample, f"mix{seed}")


def test_each_retry_is_announced_with_its_cause(registry: RunningRegistry, sample: Sample) -> None:
    lines: list[str] = []
    with fault_proxy(registry.host, every(4, Fault("status", 503), limit=2)) as proxy:
        publish(sample[0], f"{proxy.host}/said", proxied(proxy, lines=lines))
    assert len(lines) == 2, lines
    for line in lines:
        assert line.startswith("retry 1/5 in ")
        assert "failed: HTTP 503" in line  # (a HEAD's answer has no body to say more)
        assert proxy.host in line


def test_retry_after_is_obeyed(registry: RunningRegistry, sample: Sample) -> None:
    waits: list[float] = []
    with fault_proxy(registry.host, every(5, Fault("status", 429, retry_after="7"), limit=1)) \
            as proxy:
        client = RegistryClient(proxy.host, insecure=True, retry=FAST, on_retry=lambda _: None,
                                sleep=waits.append)
        publish(sample[0], f"{proxy.host}/later", client)
    assert waits == [7.0]


def test_an_expired_upload_session_starts_over_from_the_existence_check(
        registry: RunningRegistry, sample: Sample) -> None:
    with fault_proxy(registry.host, every(1, Fault("expired"), limit=2,
                                          applies=is_upload_session)) as proxy:
        publish(sample[0], f"{proxy.host}/expired", proxied(proxy))
    faulted = proxy.faults()
    assert len(faulted) == 2
    for refused in faulted:
        assert refused.method == "PUT"
        assert checked_again(proxy, refused), "the upload was not started over from its HEAD"
    assert_published(registry, sample, "expired")


def test_a_put_whose_answer_was_lost_is_not_uploaded_again(registry: RunningRegistry,
                                                           sample: Sample) -> None:
    """The registry committed the blob but the answer never came: the retry finds it there."""
    with fault_proxy(registry.host, every(1, Fault("lost_answer"), limit=1,
                                          applies=is_upload_session)) as proxy:
        result = publish(sample[0], f"{proxy.host}/lost", proxied(proxy))
    lost = proxy.faults()[0]
    assert checked_again(proxy, lost)
    hex_digest = lost.path.rsplit("%3A", 1)[1]
    assert sum(1 for e in proxy.log if is_upload_session(e.method, e.path)
               and hex_digest in e.path) == 1, "the committed blob was uploaded twice"
    assert result.count("blob", "exists") >= 1
    assert_published(registry, sample, "lost")


def test_without_retries_the_first_fault_fails_the_publish_and_moves_no_tag(
        registry: RunningRegistry, sample: Sample) -> None:
    """The same fault plan with retries off: a clear error, and no tag in the registry."""
    with fault_proxy(registry.host, every(6, Fault("status", 503))) as proxy, \
            pytest.raises(RegistryError) as err:
        publish(sample[0], f"{proxy.host}/noretry", proxied(proxy, NO_RETRIES))
    assert "HTTP 503" in str(err.value) and "gave up after 1 attempt" in str(err.value)
    direct = client_for(registry)
    assert direct.list_tags("noretry/hello") == [] and direct.list_tags("noretry/world") == []


def test_a_registry_that_keeps_failing_is_given_up_on_within_the_policy(
        registry: RunningRegistry, sample: Sample) -> None:
    lines: list[str] = []
    with fault_proxy(registry.host, every(1, Fault("status", 502))) as proxy, \
            pytest.raises(RegistryError) as err:
        publish(sample[0], f"{proxy.host}/down", proxied(proxy, RetryPolicy(
            retries=3, first_wait=0.01, max_wait=0.02), lines), jobs=1)
    assert len(lines) == 3 and len(proxy.log) == 4
    assert "gave up after 4 attempts" in str(err.value)
    assert "MONOGRES_RETRIES" in str(err.value)


def test_errors_that_are_not_transient_are_not_repeated(registry: RunningRegistry,
                                                        sample: Sample) -> None:
    with fault_proxy(registry.host, every(1, Fault("status", 400))) as proxy, \
            pytest.raises(RegistryError) as err:
        publish(sample[0], f"{proxy.host}/bad", proxied(proxy), jobs=1)
    assert len(proxy.log) == 1
    assert "HTTP 400" in str(err.value) and "gave up" not in str(err.value)


@pytest.mark.parametrize("jobs", [1, 4])
def test_transfers_run_in_parallel_up_to_jobs(registry: RunningRegistry, sample: Sample,
                                              jobs: int) -> None:
    """Every answer delayed a little, so that requests overlap when the publisher lets them."""
    with fault_proxy(registry.host, every(1, Fault("slow", delay=0.2))) as proxy:
        publish(sample[0], f"{proxy.host}/jobs{jobs}", proxied(proxy), jobs=jobs)
    assert proxy.peak == jobs if jobs == 1 else 2 <= proxy.peak <= jobs
    assert_published(registry, sample, f"jobs{jobs}")


def big_blob_layout(tmp_path: Path, size: int) -> Layout:
    """One image whose layer is ``size`` random bytes (stored as is: a blob is a blob)."""
    layout = Layout.create(tmp_path / "big")
    layer = layout.add_blob(Blob(random.Random(size).randbytes(size), OCI_LAYER_TAR))
    config = layout.add_config(ImageConfig(architecture="amd64", diff_ids=(layer.digest,)))
    layout.set_ref("big:1", layout.add_manifest(Manifest(config=config, layers=(layer,))))
    return layout


def chunked(proxy: FaultProxy, lines: list[str]) -> RegistryClient:
    client = proxied(proxy, lines=lines)
    client.chunk_threshold, client.chunk_size = 256 << 10, 128 << 10  # a 1 MiB blob: 8 chunks
    return client


def test_a_chunked_upload_resumes_where_the_registry_stopped(registry: RunningRegistry,
                                                            tmp_path: Path) -> None:
    """Chunks that never reached the registry are sent again, and only they."""
    size = 1 << 20
    layout = big_blob_layout(tmp_path, size)
    lines: list[str] = []
    patches = every(3, Fault("reset"), limit=2, applies=lambda m, p: m == "PATCH")
    with fault_proxy(registry.host, patches) as proxy:
        publish(layout, f"{proxy.host}/chunks", chunked(proxy, lines))
    patched = [e for e in proxy.log if e.method == "PATCH"]
    assert len(patched) == 8 + 2
    # The proxy counts what reached it, the two reset chunks included: nothing else twice.
    assert sum(e.sent for e in patched) == size + 2 * (128 << 10)
    assert sum(1 for e in proxy.log if e.method == "POST") == 2  # the upload never restarted
    assert len([line for line in lines if "resuming the upload of" in line]) == 2, lines
    layer = layout.read_manifest(layout.resolve("big:1").digest).layers[0]
    assert client_for(registry).get_blob("chunks/big", layer.digest, layer.size) == \
        layout.read_blob(layer.digest)


@pytest.mark.parametrize("fault", ["lost_answer", "truncate", "expired"])
def test_a_chunked_upload_the_registry_will_not_resume_starts_over(
        registry: RunningRegistry, tmp_path: Path, fault: str) -> None:
    """A chunk stored whose answer was lost, or a session gone: the upload starts again from
    its HEAD (distribution 2.8 refuses to resume a session from a state it moved past)."""
    layout = big_blob_layout(tmp_path, 1 << 20)
    gone: list[bool] = []

    def plan(number: int, method: str, path: str) -> Fault | None:
        if method == "PATCH" and not gone and sum(
                1 for e in proxy.log if e.method == "PATCH") == 4:
            gone.append(True)
            return Fault(fault)
        if fault == "expired" and gone and method == "GET" and "/blobs/uploads/" in path:
            return Fault("expired")  # the session is gone for good
        return None

    with fault_proxy(registry.host, plan) as proxy:
        publish(layout, f"{proxy.host}/restart-{fault}", chunked(proxy, []))
    assert gone
    assert sum(1 for e in proxy.log if e.method == "POST") == 3  # config, layer, layer again
    layer = layout.read_manifest(layout.resolve("big:1").digest).layers[0]
    assert client_for(registry).get_blob(f"restart-{fault}/big", layer.digest, layer.size) == \
        layout.read_blob(layer.digest)
