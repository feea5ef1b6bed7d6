"""`monogres-oci publish` killed with SIGKILL at random moments: no tag ever points at something
missing, and a rerun ends in exactly the state of one uninterrupted publish.

The moment is a request count: a proxy in front of the real registry (tests/support/faults.py)
kills the publishing process when the N-th request reaches it. The state of a namespace is what
``crane`` reads from the real registry: every tag of every repository (the ``sha256-<hex>``
referrers tags included) and the digest it names.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import requests

from monogres_oci.attest.sign import generate_key_pair, load_signing_key
from monogres_oci.attest.signatures import sign_layout
from monogres_oci.oci.layout import Layout
from tests.oci.test_publish import Sample
from tests.support.faults import Fault, fault_proxy
from tests.support.registry import RunningRegistry

REPO = Path(__file__).resolve().parents[2]
KILLS = 20
REPOSITORIES = ("hello", "world")


def publish_cli(layout: Layout, target: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "monogres_oci", "publish", "--registry", target, "--layout",
         str(layout.root), "--json"], cwd=REPO, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def crane(*args: str) -> str:
    binary = shutil.which("crane")
    assert binary
    proc = subprocess.run([binary, *args, "--insecure"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def state(registry: RunningRegistry, namespace: str) -> dict[str, dict[str, str]]:
    """Every tag of the namespace's repositories and the digest it names."""
    found: dict[str, dict[str, str]] = {}
    for repo in REPOSITORIES:
        listed = subprocess.run(["crane", "ls", "--insecure", f"{registry.host}/{namespace}/{repo}"],
                                capture_output=True, text=True)
        tags = listed.stdout.split() if listed.returncode == 0 else []  # no repository yet
        found[repo] = {tag: crane("digest", f"{registry.host}/{namespace}/{repo}:{tag}")
                       for tag in tags}
    return found


def assert_no_dangling_tag(registry: RunningRegistry, namespace: str) -> None:
    """Every image tag validates (crane); every referrers tag lists only manifests that are
    there with all their blobs (crane validate takes those artifacts for images, so not it)."""
    for repo, tags in state(registry, namespace).items():
        where = f"{registry.host}/{namespace}/{repo}"
        for tag in tags:
            if not tag.startswith("sha256-"):
                crane("validate", "--remote", f"{where}:{tag}")
                continue
            for entry in json.loads(crane("manifest", f"{where}:{tag}"))["manifests"]:
                manifest = json.loads(crane("manifest", f"{where}@{entry['digest']}"))
                for blob in (manifest["config"], *manifest["layers"]):
                    head = requests.head(f"{registry.url}/v2/{namespace}/{repo}/blobs/"
                                         f"{blob['digest']}", timeout=10)
                    assert head.status_code == 200, f"{where}:{tag} names a missing blob"


def test_publish_killed_anywhere_then_rerun_converges(registry: RunningRegistry, sample: Sample,
                                                      tmp_path: Path) -> None:
    layout = sample[0]
    private, _ = generate_key_pair(tmp_path / "crash.key", "")
    sign_layout(layout, load_signing_key(private, ""))  # signatures: referrers tags too

    counted: list[int] = []
    with fault_proxy(registry.host, lambda n, m, p: counted.append(n) or None) as proxy:
        whole = publish_cli(layout, f"{proxy.host}/whole")
        assert whole.wait(timeout=300) == 0, whole.communicate()[1]
    reference = state(registry, "whole")
    assert any(t.startswith("sha256-") for t in reference["hello"]), reference
    requests = len(counted)

    rng = random.Random(20261206)
    for i, kill_at in enumerate(sorted(rng.sample(range(1, requests + 1), KILLS))):
        namespace = f"crash{i}"
        victim: list[int] = []

        def plan(number: int, method: str, path: str, at: int = kill_at,
                 pid: list[int] = victim) -> Fault | None:
            if number == at:
                os.kill(pid[0], signal.SIGKILL)
                return Fault("reset")
            return None

        with fault_proxy(registry.host, plan) as proxy:
            killed = publish_cli(layout, f"{proxy.host}/{namespace}")
            victim.append(killed.pid)
            killed.wait(timeout=300)
        assert killed.returncode == -signal.SIGKILL, f"request {kill_at}: not killed"
        assert_no_dangling_tag(registry, namespace)
        rerun = publish_cli(layout, f"{registry.host}/{namespace}")
        assert rerun.wait(timeout=300) == 0, rerun.communicate()[1]
        assert state(registry, namespace) == reference, f"killed at request {kill_at} of {requests}"
