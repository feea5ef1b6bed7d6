"""--engine-cache-limit against the real engine: buildx takes the prune it asks for.

A limit far above what the cache holds, so that nothing the other tests cached is pruned: what
is proven is that the engine's buildx accepts the command and reports what it freed, and that
prunes between targets are spaced out.
"""

from __future__ import annotations

import pytest

from monogres_oci.build.compile.storage import CacheLimit

pytestmark = pytest.mark.e2e


def test_the_engine_prunes_its_cache_down_to_the_limit_and_says_what_it_freed() -> None:
    said: list[str] = []
    limit = CacheLimit("1000TB", every=3600)
    limit.enforce(said.append, now=True)
    assert said == ["BuildKit's cache pruned down to 1000tb: 0B freed"], said
    limit.enforce(said.append)  # within the interval: no prune
    assert len(said) == 1
