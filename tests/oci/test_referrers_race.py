"""Two publishers attaching referrers to the same subjects at the same moment, through the
``sha256-<hex>`` fallback tag of a registry without the referrers API (distribution 2.8): every
entry of both survives.

Two copies of the sample layout are signed with two keys, so they hold the same images and
different signatures, and are published at once by two clients. The race is made likely, not
left to luck: the proxy in front of the real registry (tests/support/faults.py) delays every
read of a referrers tag, so both publishers read the index before either writes it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from monogres_oci.attest.attach import attachments_by_subject
from monogres_oci.attest.sign import generate_key_pair, load_signing_key
from monogres_oci.attest.signatures import sign_layout
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.registry import RegistryClient
from monogres_oci.oci.retry import RetryPolicy
from monogres_oci.publish.push import publish
from tests.oci.test_publish import client_for
from tests.support.faults import Fault, Plan, fault_proxy
from tests.support.oci_samples import sample_layout
from tests.support.registry import RunningRegistry

ROUNDS = 3


def slow_referrers_reads(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") and "/manifests/sha256-" in path


def delaying() -> Plan:
    """Every read of a referrers tag waits for the other publisher's read of the same tag (or
    2 s), then 0.4 s more: both read the index before either writes it, however the two threads
    drifted apart before (under load they did, and the race did not happen)."""
    barriers: dict[str, threading.Barrier] = {}

    def plan(number: int, method: str, path: str) -> Fault | None:
        if not slow_referrers_reads(method, path):
            return None
        barrier = barriers.get(path)
        if barrier is None or barrier.broken:
            barrier = barriers[path] = threading.Barrier(2)
        return Fault("slow", delay=0.4, meet=barrier)
    return plan


def signed_copy(root: Path, name: str) -> Layout:
    layout, _ = sample_layout(root / name / "layout", root / name / "trees")
    private, _ = generate_key_pair(root / f"{name}.key", "")
    sign_layout(layout, load_signing_key(private, ""))
    return layout


def lost_entries(registry: RunningRegistry, namespace: str, layouts: list[Layout]) -> list[str]:
    """The referrers of the layouts that the registry's fallback tags do not list."""
    client = client_for(registry)
    lost = []
    for layout in layouts:
        for subject, items in attachments_by_subject(layout).items():
            listed = {d.digest for d in client.referrers(f"{namespace}/hello", subject).index.manifests}
            if subject not in {d.digest for d in layout.walk(layout.resolve("hello:1.0-bookworm"))}:
                continue  # world's: another repository
            lost += [i.descriptor.digest for i in items if i.descriptor.digest not in listed]
    return lost


def race(registry: RunningRegistry, namespace: str, layouts: list[Layout],
         read_back: bool) -> None:
    with fault_proxy(registry.host, delaying()) as proxy:
        errors: list[BaseException] = []

        def one(layout: Layout) -> None:
            client = RegistryClient(proxy.host, insecure=True, retry=RetryPolicy(first_wait=0.01),
                                    on_retry=lambda _: None)
            client.referrers_settle = 0.5 if read_back else None
            try:
                publish(layout, f"{proxy.host}/{namespace}", client, refs=["hello:1.0-bookworm"])
            except BaseException as exc:  # noqa: BLE001  # reported by the test
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(layout,)) for layout in layouts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not errors, errors


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> list[Layout]:
    root = tmp_path_factory.mktemp("race")
    return [signed_copy(root, "alice"), signed_copy(root, "bob")]


def test_without_read_back_concurrent_publishers_lose_referrers(
        registry: RunningRegistry, layouts: list[Layout]) -> None:
    """The failure the read-back exists for: one publisher's update overwrites the other's."""
    lost = 0
    for i in range(ROUNDS):
        race(registry, f"unsafe{i}", layouts, read_back=False)
        lost += len(lost_entries(registry, f"unsafe{i}", layouts))
    assert lost > 0, "the race never happened: this test proves nothing"


def test_concurrent_publishers_keep_each_others_referrers(
        registry: RunningRegistry, layouts: list[Layout]) -> None:
    for i in range(ROUNDS):
        race(registry, f"safe{i}", layouts, read_back=True)
        assert lost_entries(registry, f"safe{i}", layouts) == []
