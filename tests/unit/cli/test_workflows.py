"""The GitHub Actions workflows: valid against the workflow schema, clean under zizmor, and the
release's shard jobs build exactly the shards its plan job cut."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[3] / ".github" / "workflows"
BIN = Path(__file__).resolve().parents[3] / ".venv" / "bin"


def _tool(name: str) -> str:
    found = shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


def test_every_workflow_is_valid_against_the_workflow_schema() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    proc = subprocess.run([_tool("check-jsonschema"), "--builtin-schema",
                           "vendor.github-workflows", *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_finds_nothing() -> None:
    proc = subprocess.run([_tool("zizmor"), "--offline", "--no-progress", str(WORKFLOWS)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_release_builds_the_shards_its_plan_cut_with_the_same_selection() -> None:
    release = yaml.safe_load((WORKFLOWS / "release.yml").read_text())
    jobs = release["jobs"]
    plan = " ".join(s.get("run", "") for s in jobs["plan"]["steps"])
    assert "plan --postgres \"$POSTGRES\" --arch \"$arch\" --shards \"$SHARDS\"" in plan
    for name, stage in (("postgres", "postgres"), ("extensions", "extensions")):
        job = jobs[name]
        assert job["strategy"]["matrix"] == f"${{{{ fromJSON(needs.plan.outputs.{stage}) }}}}"
        build = next(s["run"] for s in job["steps"] if "monogres-oci build" in s.get("run", ""))
        assert re.search(r'--postgres "\$POSTGRES" --arch "\$ARCH"', build), build
        assert '--shard "$SHARD"' in build
        assert ("--postgres-only" in build) == (stage == "postgres")
    extensions = next(s["run"] for s in jobs["extensions"]["steps"]
                      if "monogres-oci build" in s.get("run", ""))
    assert "--registry-key" in extensions  # Postgres builds come from the registry, verified
    assert jobs["extensions"]["needs"] == ["plan", "merge-postgres"]
