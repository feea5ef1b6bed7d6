"""A bound on BuildKit's cache while many targets build.

BuildKit keeps every layer of every build, and the gates' exported build trees too: a whole
catalog on one machine grows it by tens of gigabytes (70 GB here, until the disk was full). With
a limit, the cache is pruned down to it between targets, least recently used first; what a
running build uses is never pruned, and what a later gate needs again BuildKit rebuilds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from monogres_oci.errors import CommandError, UsageError
from monogres_oci.runner import run

_SIZE = re.compile(r"^\d+(\.\d+)?(b|kb|mb|gb|tb)$")


def cache_size(text: str) -> str:
    """A size as buildx reads it (``20gb``, ``500mb``); a usage error otherwise."""
    size = text.strip().lower()
    if not _SIZE.match(size):
        raise UsageError(f"--engine-cache-limit {text!r}: expected a size such as 20GB or 500MB")
    return size


class CacheLimit:
    """Prunes BuildKit's cache (of the current buildx builder) down to ``size``, at most once
    every ``every`` seconds: a prune that finds nothing to do still asks the engine."""

    def __init__(self, size: str, every: float = 60.0) -> None:
        self.size = cache_size(size)
        self.every = every
        self._last = float("-inf")
        self._failed = False

    def enforce(self, progress: Callable[[str], None], *, now: bool = False) -> None:
        if self._failed or (not now and time.monotonic() - self._last < self.every):
            return
        self._last = time.monotonic()
        try:
            out = run(["docker", "buildx", "prune", "--force", "--reserved-space", self.size],
                      what="docker buildx prune (--engine-cache-limit)")
        except CommandError as exc:
            # A bound not kept is no reason to stop a build: say so once, and stop trying.
            progress(f"--engine-cache-limit: BuildKit's cache could not be pruned, so it is "
                     f"not bounded in this run: {str(exc).splitlines()[0]}")
            self._failed = True
            return
        freed = [" ".join(line.split()[1:]) for line in out.stdout.splitlines()
                 if line.startswith("Total:")]
        if freed:
            progress(f"BuildKit's cache pruned down to {self.size}: {freed[-1]} freed")
