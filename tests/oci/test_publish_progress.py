"""A publish says how much it uploaded and how fast, against the real registry; nothing when
the registry already has every blob."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.support.oci_samples import sample_layout
from tests.support.registry import RunningRegistry

REPO = Path(__file__).resolve().parents[2]


def test_a_publish_reports_the_bytes_it_uploaded_and_the_rate(registry: RunningRegistry,
                                                              tmp_path: Path) -> None:
    layout, _ = sample_layout(tmp_path / "oci", tmp_path / "trees")
    # the blobs a publish pushes as blobs: every one but the manifests and indexes
    blobs = 0
    for path in (layout.root / "blobs" / "sha256").iterdir():
        try:
            media_type = json.loads(path.read_bytes()).get("mediaType", "")
        except (UnicodeDecodeError, ValueError):
            media_type = ""
        blobs += "manifest" not in media_type

    def publish() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "monogres_oci", "publish", "--registry",
                               f"{registry.host}/progress", "--layout", str(layout.root),
                               "--allow-untested"], cwd=REPO, capture_output=True, text=True,
                              timeout=120)

    first = publish()
    assert first.returncode == 0, first.stderr
    (line,) = [line for line in first.stderr.splitlines() if "] upload of " in line]
    found = re.search(r"upload of (\d+) blob\(s\): (\d+) kB in [\d.]+ s \(([\d.]+|-) MB/s\)", line)
    assert found, line
    # world's layer is hello's: the registry mounts it from there, nothing is uploaded for it
    assert int(found.group(1)) == blobs - 1
    again = publish()
    assert again.returncode == 0 and "] upload of " not in again.stderr
