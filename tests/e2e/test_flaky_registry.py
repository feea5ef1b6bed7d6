"""The real build, published by the real command line through a registry that fails 15 % of its
requests: the publish succeeds, says what it repeated, and what arrived is complete and verifies.

The faults come from tests/support/faults.py, a proxy in front of the real registry (a real
registry cannot be made to fail on cue); every check reads the real registry directly.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.e2e.conftest import Built, Published, cli, rolling
from tests.support.faults import fault_proxy, random_mix

pytestmark = pytest.mark.e2e


def test_publish_through_a_registry_failing_15_percent_of_requests(
        built: Built, published: Published) -> None:
    # `published` signed the layout: what goes through the proxy carries its signatures.
    registry = published.registry
    with fault_proxy(registry.host, random_mix(0.15, seed=20261206)) as proxy:
        proc = cli("publish", "--registry", f"{proxy.host}/flaky", "--layout", str(built.layout),
                   "--json")
    assert len(proxy.faults()) >= 10, "the proxy injected too little to prove anything"
    assert proc.stderr.count("monogres-oci: retry ") >= len(proxy.faults()) // 2, proc.stderr
    assert "repeated after transient failures" not in proc.stdout  # stdout stays JSON
    refs = json.loads(proc.stdout)["refs"]
    assert len(refs) == len(published.refs)
    crane = shutil.which("crane")
    assert crane
    for item in refs:
        direct = f"{registry.host}/flaky/{item['repository'].split('/flaky/', 1)[1]}:{item['tag']}"
        checked = subprocess.run([crane, "validate", "--remote", direct, "--insecure"],
                                 capture_output=True, text=True)
        assert checked.returncode == 0, f"{direct}: {checked.stdout}{checked.stderr}"
        assert subprocess.run([crane, "digest", "--insecure", direct], check=True,
                              capture_output=True, text=True).stdout.strip() == item["digest"]
    # Signatures, SBOMs, provenance and test results all arrived as referrers.
    for repo in ("pgaudit", "postgresql"):
        cli("verify", f"{registry.host}/flaky/{rolling(repo)}", "--key", str(published.keys.public))
