"""Progress lines on stderr, so that stdout stays clean for results and --json."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

# A ninja step in BuildKit's plain log: "#23 41.7 [812/1964] Compiling C object ...".
_NINJA_STEP = re.compile(r"^#\d+ \d+(?:\.\d+)? \[(\d+)/(\d+)\] ")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


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


@dataclass(frozen=True)
class LastBuild:
    """How long the last compile of a target took, and how many log lines it wrote."""

    seconds: float
    lines: int


class StepMeter:
    """A compile's log lines turned into its progress: ninja's steps done of total as a headline
    at every 10 %, and, while the log shows no step counts (configure, make, a package install),
    a headline each ``interval`` seconds; every log line still goes to the detail stream. With the
    ``last`` compile of the same target, the heartbeat estimates how far it is (by log lines)
    and how long is left (by time)."""

    def __init__(self, progress: Progress, what: str, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 last: LastBuild | None = None) -> None:
        self.progress = progress
        self.last_build = last
        self.what = what
        self.interval = interval
        self.clock = clock
        self.started = self.last = clock()
        self.decile = -1
        self.lines = 0

    def __call__(self, line: str) -> None:
        self.progress.detail(line)
        self.lines += 1
        now = self.clock()
        step = _NINJA_STEP.match(line)
        if step:
            done, total = int(step.group(1)), int(step.group(2))
            if total and done * 10 // total > self.decile:
                self.decile = done * 10 // total
                self.last = now
                self.progress.stage(f"{self.what}: {done}/{total} steps "
                                    f"({done * 100 // total} %), {_duration(now - self.started)}")
        elif now - self.last >= self.interval:
            self.last = now
            self.progress.stage(f"{self.what}: still building, {_duration(now - self.started)} "
                                f"({self.lines} log lines{self._estimate(now)})")

    def _estimate(self, now: float) -> str:
        last = self.last_build
        if last is None or last.lines <= 0:
            return ""
        share = min(99, self.lines * 100 // last.lines)
        left = last.seconds - (now - self.started)
        return (f"; the last build wrote {last.lines} in {_duration(last.seconds)}: about "
                f"{share} %, " + (f"~{_duration(left)} left" if left > 0 else "past its time"))


class TransferMeter:
    """Bytes moved of a known (or unknown) total: a line at every 10 % (or every ``interval``
    seconds without a total) and one at the end, with the rate."""

    def __init__(self, report: Callable[[str], None], what: str, total: int | None,
                 interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.report = report
        self.what = what
        self.total = total if total and total > 0 else None
        self.interval = interval
        self.clock = clock
        self.started = self.last = clock()
        self.done = 0
        self.decile = 0

    def add(self, count: int) -> None:
        self.done += count
        now = self.clock()
        if self.total is not None:
            decile = min(9, self.done * 10 // self.total)
            if decile > self.decile:
                self.decile = decile
                self.report(f"{self.what}: {_size(self.done)} of {_size(self.total)} "
                            f"({decile * 10} %), {_rate(self.done, now - self.started)}")
        elif now - self.last >= self.interval:
            self.last = now
            self.report(f"{self.what}: {_size(self.done)}, {_rate(self.done, now - self.started)}")

    def finish(self) -> None:
        elapsed = self.clock() - self.started
        self.report(f"{self.what}: {_size(self.done)} in {elapsed:.1f} s "
                    f"({_rate(self.done, elapsed)})")


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count / 1e3:.0f} kB"


def _rate(count: int, seconds: float) -> str:
    return f"{count / 1e6 / seconds:.1f} MB/s" if seconds > 0 else "-"
