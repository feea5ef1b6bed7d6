"""`monogres-oci install` killed with SIGKILL at any moment leaves the extension directory as it
was or as the new image has it, never a mix; the next install cleans up what the killed one left.

Two versions of an extension image (other files, other bytes) are published to the real
registry; version 1 is installed, then version 2 is installed and killed, at every request it
makes (through the proxy of tests/support/faults.py) and at random moments.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import Index, Platform
from monogres_oci.publish.push import publish
from monogres_oci.swap import staging_dir, swap_in
from tests.oci.test_publish import client_for
from tests.support.faults import Fault, fault_proxy
from tests.support.oci_samples import add_image, write_tree
from tests.support.registry import RunningRegistry

REPO = Path(__file__).resolve().parents[2]
EXTENSION = {"org.monogres.artifact": "extension", "org.monogres.extension.name": "hello"}


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 (or 'dir') of everything under ``root``, hidden entries aside."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): "dir" if p.is_dir() else
            hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


def two_versions(work: Path) -> Layout:
    layout = Layout.create(work / "layout")
    for version in ("1", "2"):
        tree = write_tree(work / f"tree{version}", f"version {version} ")
        (tree / "share" / "extension" / f"only-in-{version}.sql").write_text(f"-- {version}\n")
        image = add_image(layout, tree, Platform("amd64"), EXTENSION)
        layout.set_ref(f"hello:{version}", layout.add_manifest(Index(manifests=(image.manifest,))))
    return layout


def install(host: str, tag: str, dest: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "monogres_oci", "install", f"{host}/crash/hello:{tag}",
         "--dest", str(dest), "--allow-unsigned", "--platform", "linux/amd64"],
        cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def versions(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory,
             ) -> dict[str, dict[str, str]]:
    """Publish both versions; return what each installs as (by a clean install)."""
    work = tmp_path_factory.mktemp("versions")
    publish(two_versions(work), f"{registry.host}/crash", client_for(registry))
    found = {}
    for tag in ("1", "2"):
        dest = work / f"clean{tag}"
        proc = install(registry.host, tag, dest)
        assert proc.wait(timeout=120) == 0, proc.communicate()[1]
        found[tag] = snapshot(dest / "hello")
    assert found["1"] != found["2"]
    return found


def test_install_killed_anywhere_leaves_the_old_or_the_new_tree(
        registry: RunningRegistry, versions: dict[str, dict[str, str]], tmp_path: Path) -> None:
    requests = 6  # an install of this image makes fewer; later counts are never reached
    moments = [("request", n) for n in range(1, requests + 1)]
    rng = random.Random(20261206)
    moments += [("seconds", round(rng.uniform(0.2, 1.5), 2)) for _ in range(10)]
    outcomes = set()
    for i, (how, when) in enumerate(moments):
        dest = tmp_path / f"dest{i}"
        first = install(registry.host, "1", dest)
        assert first.wait(timeout=120) == 0, first.communicate()[1]
        victim: list[int] = []

        def plan(number: int, method: str, path: str, at: object = when, by: str = how,
                 pid: list[int] = victim) -> Fault | None:
            if by == "request" and number == at:
                os.kill(pid[0], signal.SIGKILL)
                return Fault("reset")
            return None

        with fault_proxy(registry.host, plan) as proxy:
            second = install(proxy.host, "2", dest)
            victim.append(second.pid)
            if how == "seconds":
                time.sleep(float(when))
                if second.poll() is None:
                    second.send_signal(signal.SIGKILL)
            second.wait(timeout=120)
        state = snapshot(dest / "hello")
        assert state in (versions["1"], versions["2"]), f"killed at {how} {when}: a mixed tree"
        outcomes.add("1" if state == versions["1"] else "2")
        # The next install finds what the killed one left and removes it.
        again = install(registry.host, "2", dest)
        assert again.wait(timeout=120) == 0, again.communicate()[1]
        assert snapshot(dest / "hello") == versions["2"]
        assert [p.name for p in dest.iterdir()] == ["hello"], "a staging directory was left"
    assert "1" in outcomes, "no kill came before the new tree was in place: nothing was tested"


def test_swap_in_exchanges_a_tree_in_one_step(tmp_path: Path) -> None:
    tmp_path = tmp_path / "swap"
    target = tmp_path / "hello"
    (target / "lib").mkdir(parents=True)
    (target / "lib" / "old.so").write_bytes(b"old")
    new = staging_dir(tmp_path, "hello")
    (new / "lib").mkdir()
    (new / "lib" / "new.so").write_bytes(b"new")
    swap_in(new, target)
    assert snapshot(target) == {"lib": "dir", "lib/new.so": hashlib.sha256(b"new").hexdigest()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hello"]


def test_staging_directories_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    left = tmp_path / f".hello.{dead}.abc123"
    left.mkdir()
    mine = tmp_path / f".hello.{os.getpid()}.xyz"  # a live process's: kept
    mine.mkdir()
    fresh = staging_dir(tmp_path, "hello")
    assert not left.exists() and mine.exists() and fresh.is_dir()
