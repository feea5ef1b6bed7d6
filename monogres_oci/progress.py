"""Progress lines on stderr, so that stdout stays clean for results and --json."""

from __future__ import annotations

import sys
import time


class Progress:
    """Prints timestamped progress lines; quiet mode prints only stage headlines."""

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose
        self.start = time.monotonic()

    def _emit(self, text: str) -> None:
        elapsed = time.monotonic() - self.start
        print(f"[{elapsed:7.1f}s] {text}", file=sys.stderr, flush=True)

    def stage(self, text: str) -> None:
        """A headline: always shown."""
        self._emit(text)

    def detail(self, text: str) -> None:
        """A line of detail (build log lines): shown with --verbose."""
        if self.verbose:
            self._emit("  " + text)

    def __call__(self, text: str) -> None:
        self.stage(text)
