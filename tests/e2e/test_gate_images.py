"""The gate's runnable Postgres images do not pile up in the engine: the few most recently
loaded stay for later gates, older ones are removed, and one a container still uses is kept.

Tiny one-file images stand in for Postgres (the engine treats every image alike), in a
repository of this test's own so that the machine's real gate images are left alone.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from monogres_oci.gate.server import load_image
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import Platform
from tests.support.oci_samples import add_image

AMD64 = Platform("amd64")


def _images(repository: str) -> set[str]:
    out = subprocess.run(["docker", "image", "ls", "--filter", f"reference={repository}",
                          "--format", "{{.Repository}}:{{.Tag}}"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.fixture
def repository() -> Iterator[str]:
    name = f"monogres-gate-test-{os.getpid()}/postgresql"
    yield name
    subprocess.run(["docker", "image", "rm", "--force", *_images(name)], capture_output=True)


def test_only_the_most_recently_loaded_images_stay(tmp_path: Path, repository: str) -> None:
    layout = Layout.create(tmp_path / "layout")
    images = []
    for n in range(5):
        tree = tmp_path / f"tree{n}"
        (tree / "bin").mkdir(parents=True)
        (tree / "bin" / "postgres").write_text(f"build {n}\n")
        images.append(add_image(layout, tree, AMD64).manifest)

    def load(n: int) -> str:
        return load_image(layout, images[n], AMD64, repository=repository, keep=2)

    a, b, c = load(0), load(1), load(2)
    assert _images(repository) == {b, c}
    assert load(1) == b and _images(repository) == {b, c}  # already there: nothing removed

    container = f"monogres-gate-test-{os.getpid()}"
    subprocess.run(["docker", "create", "--name", container, b, "/bin/postgres"],
                   capture_output=True, check=True)
    try:
        d = load(3)
        assert _images(repository) == {b, c, d}, "the image a container uses must stay"
    finally:
        subprocess.run(["docker", "rm", "--force", container], capture_output=True, check=True)
    e = load(4)
    assert _images(repository) == {d, e}
    assert a not in _images(repository)
