"""The suite needs nothing beside the repository: its conformance tests pass in a clone whose
parent directory holds nothing else (as anyone who clones the project has it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFORMANCE = ["tests/oci/test_layout.py::test_every_file_conforms",
               "tests/unit/consume/test_cnpg.py"]


@pytest.mark.skipif(not (REPO / ".git").exists() or shutil.which("git") is None,
                    reason="needs a git checkout to clone")
def test_conformance_tests_pass_in_a_lone_clone(tmp_path: Path) -> None:
    clone = tmp_path / "lone" / "monogres-oci"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)],
                   check=True)
    assert sorted(p.name for p in clone.parent.iterdir()) == ["monogres-oci"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONOGRES_OCI_SCHEMAS")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-o", "addopts=", *CONFORMANCE], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout
