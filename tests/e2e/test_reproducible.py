"""Two clean builds of the same targets give the same digests, whatever the machine around them.

The first build is made with `build --rebuild` in one set of conditions and published; the second
is `monogres-oci rebuild --verify` of those published tags in other conditions: another cache and
work directory (so other build-context paths), another time zone, umask and TMPDIR, a different
host name inside the build containers, and a later wall-clock time. Both start from nothing
(fresh build directories, BuildKit's cache off). Postgres, the runnable image and three C
extensions (two PGXS, one CMake) must come out bit for bit identical. A fourth extension, the
`unstable` fixture, is non-reproducible on purpose (a random nonce compiled in): the rebuild must
fail `--verify`, name the differing file and show diffoscope's explanation.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PublishedLayout, fresh_cache, monogres_in

pytestmark = pytest.mark.e2e

REPRODUCIBLE = ("postgresql-dist", "postgresql", "pgaudit", "rum", "greet")


@dataclass(frozen=True)
class Rebuilt:
    first_layout: Path
    refs: dict[str, str]  # "repo:tag" -> published reference
    proc: subprocess.CompletedProcess[str]
    report: dict[str, Any]
    work: Path


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory, catalog: Path,
            clean_build: PublishedLayout) -> Rebuilt:
    published = clean_build.published
    # One rolling tag per artifact (the immutable ones carry a -YYYYMMDDhhmm- timestamp).
    wanted = sorted(published.tag_ref(name) for name in published.refs
                    if name.startswith(tuple(f"{r}:18.6-" for r in (*REPRODUCIBLE, "unstable")))
                    and not re.search(r"-\d{12}-", name))
    two = tmp_path_factory.mktemp("second")
    proc = monogres_in(["rebuild", "--verify", "--catalog", str(catalog), "--json",
                      "--cache-dir", str(fresh_cache(two)), "--work-dir", str(two / "work"),
                      *wanted], cwd=two, tz="Asia/Kolkata", umask=0o002, tmpdir=two / "tmp")
    assert proc.stdout, proc.stderr[-5000:]
    return Rebuilt(clean_build.layout, published.refs, proc, json.loads(proc.stdout), two / "work")


def _result(rebuilt: Rebuilt, repo: str) -> dict[str, Any]:
    found = [r for r in rebuilt.report["results"] if f"/repro/{repo}:" in r["reference"]]
    assert found, [r["reference"] for r in rebuilt.report["results"]]
    return found[0]


@pytest.mark.parametrize("repo", REPRODUCIBLE)
def test_two_clean_builds_give_identical_digests(rebuilt: Rebuilt, repo: str) -> None:
    result = _result(rebuilt, repo)
    assert result["identical"], json.dumps(result, indent=2)
    kinds = {d["what"].split()[-1] if "layer" not in d["what"] else "layer"
             for d in result["digests"]}
    assert {"index", "manifest"} <= kinds
    assert all(d["identical"] for d in result["digests"])
    assert not result["files"]


def test_rebuilt_layout_matches_the_first_build_entry_for_entry(rebuilt: Rebuilt) -> None:
    """Independently of the rebuild command: the two layouts name the same digests."""
    def named(layout: Path) -> dict[str, str]:
        index = json.loads((layout / "index.json").read_text())
        return {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
                for m in index["manifests"]
                if "org.opencontainers.image.ref.name" in m.get("annotations", {})}

    first, second = named(rebuilt.first_layout), named(rebuilt.work / "oci")
    shared = [n for n in second if n.split(":")[0] in REPRODUCIBLE]
    assert len(shared) >= 3 * len(REPRODUCIBLE)  # every tag of every reproducible artifact
    assert {n: first[n] for n in shared} == {n: second[n] for n in shared}


def test_unreproducible_build_is_caught_and_explained(rebuilt: Rebuilt) -> None:
    assert rebuilt.proc.returncode == 1
    assert "not reproduced" in rebuilt.proc.stderr and "unstable" in rebuilt.proc.stderr
    assert "Traceback" not in rebuilt.proc.stderr
    assert not rebuilt.report["identical"]
    result = _result(rebuilt, "unstable")
    assert not result["identical"]
    assert any(not d["identical"] for d in result["digests"] if "layer" in d["what"])
    files = {f["path"]: f for f in result["files"] if "layer" in f["layer"]}
    so = "lib/unstable.so"  # the image-volume layout: lib/, share/extension/
    assert so in files, files.keys()
    assert files[so]["change"] == "content"
    # Only the library differs: its SQL and control files are the same in both builds.
    assert set(files) == {so}
    # The config differs only where it names the layer.
    config = {f["path"] for f in result["files"] if f["layer"].endswith("config")}
    assert config == {"rootfs.diff_ids"}
    if shutil.which("diffoscope"):
        assert rebuilt.report["diffoscope"]
        assert "build nonce" in files[so]["diffoscope"], files[so]["diffoscope"]


def test_a_compile_from_nothing_shows_its_progress(rebuilt: Rebuilt) -> None:
    """Postgres's ninja steps as headlines, every 10 %, ending at 100 % (the rebuild compiles
    from nothing, so its progress is real; README's first run shows the same)."""
    steps = re.findall(r"postgres-18\.6-barebones-bookworm-amd64: (\d+)/(\d+) steps \((\d+) %\)",
                       rebuilt.proc.stderr)
    assert len(steps) >= 10, rebuilt.proc.stderr[-3000:]
    done, total, percent = steps[-1]
    assert done == total and percent == "100"
    assert [int(p) // 10 for _, _, p in steps] == sorted({int(p) // 10 for _, _, p in steps})
