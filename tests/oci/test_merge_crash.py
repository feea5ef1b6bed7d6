"""`monogres-oci merge` killed with SIGKILL at any request: no tag names anything missing, and a
rerun ends in exactly the state of one uninterrupted merge.

Two one-platform parts (amd64 and arm64 images of the same tag) are published by digest through
a proxy in front of the real registry (tests/support/faults.py), as two CI jobs would; the merge
goes through the same proxy, which kills it when the N-th request reaches it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import Index, Platform
from monogres_oci.package.images import INPUT_DIGEST
from tests.oci.test_crash import assert_no_dangling_tag, state
from tests.support.faults import Fault, fault_proxy
from tests.support.oci_samples import add_image, write_tree
from tests.support.registry import RunningRegistry

REPO = Path(__file__).resolve().parents[2]


def part(root: Path, arch: str) -> Layout:
    layout = Layout.create(root / arch / "layout")
    image = add_image(layout, write_tree(root / arch / "tree", arch), Platform(arch),
                      {INPUT_DIGEST: "sha256:" + (arch[:1] * 64)})
    index = layout.add_manifest(Index(manifests=(image.manifest,)))
    layout.set_ref("hello:1.0-bookworm", index)
    return layout


def cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "monogres_oci", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def publish_parts(host: str, namespace: str, layouts: list[Layout], out: Path) -> list[str]:
    files = []
    for layout in layouts:
        proc = cli("publish", "--by-digest", "--registry", f"{host}/{namespace}", "--layout",
                   str(layout.root), "--json")
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        files.append(out / f"{namespace}-{layout.root.parent.name}.json")
        Path(files[-1]).write_text(stdout)
    return [str(f) for f in files]


def test_merge_killed_anywhere_then_rerun_converges(registry: RunningRegistry, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # A merge killed with SIGKILL cannot remove its scratch directory: keep those in tmp_path.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    layouts = [part(tmp_path, "amd64"), part(tmp_path, "arm64")]
    kill_at: list[int] = []
    victim: list[int] = []
    counted: list[int] = []

    def plan(number: int, method: str, path: str) -> Fault | None:
        counted.append(number)
        if kill_at and victim and len(counted) == kill_at[0]:
            os.kill(victim[0], signal.SIGKILL)
            return Fault("reset")
        return None

    with fault_proxy(registry.host, plan) as proxy:
        parts = publish_parts(proxy.host, "whole", layouts, tmp_path)
        counted.clear()
        whole = cli("merge", "--registry", f"{proxy.host}/whole", *parts)
        assert whole.wait(timeout=120) == 0, whole.communicate()[1]
        requests = len(counted)
        assert requests >= 5, counted  # fetches, the index, its referrers tag, the tag
        reference = state(registry, "whole")
        assert "1.0-bookworm" in reference["hello"]
        for n in range(1, requests + 1):
            namespace = f"merge{n}"
            parts = publish_parts(proxy.host, namespace, layouts, tmp_path)
            counted.clear()
            kill_at[:] = [n]
            killed = cli("merge", "--registry", f"{proxy.host}/{namespace}", *parts)
            victim[:] = [killed.pid]
            killed.wait(timeout=120)
            kill_at.clear()
            assert killed.returncode == -signal.SIGKILL, f"request {n}: not killed"
            assert_no_dangling_tag(registry, namespace)
            again = cli("merge", "--registry", f"{proxy.host}/{namespace}", *parts)
            assert again.wait(timeout=120) == 0, again.communicate()[1]
            assert state(registry, namespace) == reference, f"killed at request {n} of {requests}"


def test_merge_terminated_ends_cleanly_and_removes_its_scratch(registry: RunningRegistry,
                                                               tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    # SIGTERM (a cancelled CI job, `kill`) must end a command as Ctrl-C does: its cleanup runs
    # (here: merge's scratch layout is removed), it says so, and exits 128 + 15, no traceback.
    # The registry stalls the merge's first request after its ping, so the signal lands mid-step.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    layouts = [part(tmp_path, "amd64"), part(tmp_path, "arm64")]
    armed, stalled = threading.Event(), threading.Event()
    seen: list[int] = []

    def plan(number: int, method: str, path: str) -> Fault | None:
        if armed.is_set():
            seen.append(number)
            if len(seen) == 2 and not stalled.is_set():  # the first request after the ping
                stalled.set()
                return Fault("slow", delay=10)
        return None

    with fault_proxy(registry.host, plan) as proxy:
        parts = publish_parts(proxy.host, "term", layouts, tmp_path)
        armed.set()
        merging = cli("merge", "--registry", f"{proxy.host}/term", *parts)
        assert stalled.wait(timeout=60), "the merge never reached the registry"
        assert any(p.name.startswith("monogres-merge-") for p in scratch.iterdir())
        merging.send_signal(signal.SIGTERM)
        _, stderr = merging.communicate(timeout=60)
    assert merging.returncode == 128 + signal.SIGTERM, stderr
    assert "monogres-oci: terminated" in stderr and "Traceback" not in stderr
    assert list(scratch.iterdir()) == []
