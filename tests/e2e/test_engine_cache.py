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


def test_a_prune_that_fails_leaves_the_build_going_and_says_so_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # buildx answers an error for a builder it does not know: the limit cannot be kept
    monkeypatch.setenv("BUILDX_BUILDER", "monogres-no-such-builder")
    said: list[str] = []
    limit = CacheLimit("20GB", every=0)
    limit.enforce(said.append)
    limit.enforce(said.append, now=True)
    assert len(said) == 1, said
    assert said[0].startswith("--engine-cache-limit: BuildKit's cache could not be pruned, so it "
                              "is not bounded in this run: ")
