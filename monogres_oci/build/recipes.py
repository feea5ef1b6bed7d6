"""The build recipes' digests, which are part of every target's inputs."""

from __future__ import annotations

import hashlib
from functools import cache

from monogres_oci.build.buildkit import dockerfile


@cache
def recipe_digests() -> dict[str, str]:
    """sha256 of the Dockerfile each kind of target is built with."""
    return {
        kind: hashlib.sha256(dockerfile(f"{kind}.Dockerfile").read_bytes()).hexdigest()
        for kind in ("postgres", "extension")
    }
