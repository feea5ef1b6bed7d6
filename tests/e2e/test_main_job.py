"""README's first command, scripts/demo.sh, runs the main job end to end and shows it working."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import CACHE, REPO, Published

pytestmark = pytest.mark.e2e


def test_demo_script_builds_publishes_and_queries(published: Published, tmp_path: Path) -> None:
    env = {**os.environ, "MONOGRES_REGISTRY": published.registry.host,
           "MONOGRES_DEMO_DIR": str(tmp_path), "MONOGRES_CACHE_DIR": str(CACHE)}
    proc = subprocess.run(["bash", "scripts/demo.sh"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    out = proc.stdout
    assert "PostgreSQL 18.6" in out
    assert " pgaudit " in out and " rum " in out  # pg_extension rows
    assert "rum_matches" in out and "1000" in out
    assert "kind: Cluster" in out and "@sha256:" in out
    assert "pgaudit:18.6-18.0-bookworm: verified" in out
    assert "application/spdx+json" in out  # oras discover lists the SBOM
    assert "cluster.yaml: verified with key" in out
    assert "done: PostgreSQL and its extensions" in proc.stderr
