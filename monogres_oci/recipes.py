"""The build recipes (Dockerfiles) and their digests, which are part of every target's inputs."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from monogres_oci.errors import BuildError

DOCKERFILES = Path(__file__).resolve().parents[1] / "dockerfiles"


def dockerfile(name: str) -> Path:
    """The path of one of this repository's Dockerfiles, checked to exist."""
    path = DOCKERFILES / name
    if not path.is_file():
        raise BuildError(f"Dockerfile {name} not found at {path} (run from a source checkout "
                         "or an editable install)")
    return path


@cache
def recipe_digests() -> dict[str, str]:
    """sha256 of the recipe each kind of target is built with."""
    return {
        kind: hashlib.sha256(dockerfile(f"{kind}.Dockerfile").read_bytes()).hexdigest()
        for kind in ("postgres", "extension")
    }
