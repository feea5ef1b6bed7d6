"""Progress lines on stderr, so that stdout stays clean for results and --json."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TextIO

# A ninja step in BuildKit's plain log: "#23 41.7 [812/1964] Compiling C object ...".
_NINJA_STEP = re.compile(r"^#\d+ \d+(?:\.\d+)? \[(\d+)/(\d+)\] ")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


MODES = ("auto", "lines", "terminal", "json", "quiet")


class Progress:
    """Progress on stderr, in one of four forms:

    - ``lines``: timestamped lines (a file, a pipe, a CI log): stages, and a compile's steps at
      every 10 %;
    - ``terminal``: the same stages, but a compile's steps (and a transfer's bytes) update one
      line in place, which the next stage line replaces;
    - ``json``: one JSON object per line (``t``, ``event``, ``message`` and the event's own
      fields, e.g. ``done``/``total``), for scripts;
    - ``quiet``: nothing (errors are the CLI's, and still printed).

    ``auto`` is ``terminal`` when stderr is one, else ``lines``. Thread-safe: compiles and gates
    report from their own threads.
    """

    def __init__(self, verbose: bool = False, mode: str = "auto", stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "terminal" if _is_terminal(self.stream) else "lines"
        if mode not in MODES:
            raise ValueError(f"unknown progress mode {mode!r}")
        self.mode = mode
        self.verbose = verbose
        self.clock = clock
        self.start = clock()
        self._lock = threading.Lock()
        self._status: dict[str, str] = {}  # what is under way -> its latest state (terminal)
        self._drawn = 0.0

    def _elapsed(self) -> float:
        return self.clock() - self.start

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _event(self, event: str, text: str, fields: Mapping[str, object]) -> None:
        doc = {"t": round(self._elapsed(), 1), "event": event, "message": text, **fields}
        self._write(json.dumps(doc, sort_keys=True) + "\n")

    def _status_line(self) -> str:
        width = shutil.get_terminal_size((100, 24)).columns - 1
        return "\r\x1b[2K" + " | ".join(self._status.values())[:width]

    def stage(self, text: str, **fields: object) -> None:
        """A headline: always shown (but in quiet mode)."""
        with self._lock:
            if self.mode == "json":
                self._event("stage", text, fields)
            elif self.mode == "lines":
                self._write(f"[{self._elapsed():7.1f}s] {text}\n")
            elif self.mode == "terminal":
                self._write(f"\r\x1b[2K[{self._elapsed():7.1f}s] {text}\n")
                if self._status:
                    self._write(self._status_line())

    def milestone(self, text: str, **fields: object) -> None:
        """A step of long work (a compile's next 10 %, a heartbeat): a line of its own in
        lines and json mode; on a terminal, the updating line."""
        if self.mode == "terminal":
            self.update(str(fields.get("target", text)), text, force=True)
        else:
            self.stage(text, **fields)

    def update(self, key: str, text: str, *, force: bool = False) -> None:
        """The latest state of ``key`` (a target under way): on a terminal only, redrawn at most
        ten times a second; elsewhere milestones carry it."""
        if self.mode != "terminal":
            return
        with self._lock:
            self._status[key] = f"{text}"
            now = self.clock()
            if force or now - self._drawn >= 0.1:
                self._drawn = now
                self._write(self._status_line())

    def done(self, key: str) -> None:
        """``key`` ended: its state leaves the updating line."""
        if self.mode != "terminal":
            return
        with self._lock:
            if self._status.pop(key, None) is not None:
                self._write(self._status_line() if self._status else "\r\x1b[2K")

    def detail(self, text: str) -> None:
        """A line of detail (build log lines): shown with --verbose."""
        if not self.verbose:
            return
        if self.mode == "json":
            with self._lock:
                self._event("log", text, {})
        else:
            self.stage("  " + text)

    def __call__(self, text: str) -> None:
        self.stage(text)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False


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
    and how long is left (by time). A log may hold several ninja runs (a cross build compiles
    the build machine's zic first): a new total starts the headlines again."""

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
        self.total = 0  # of the ninja run under way
        self.lines = 0

    def __call__(self, line: str) -> None:
        self.progress.detail(line)
        self.lines += 1
        now = self.clock()
        step = _NINJA_STEP.match(line)
        if step:
            done, total = int(step.group(1)), int(step.group(2))
            if not total:
                return
            if total != self.total:
                self.total, self.decile = total, -1
            text = (f"{self.what}: {done}/{total} steps ({done * 100 // total} %), "
                    f"{_duration(now - self.started)}")
            fields = {"target": self.what, "done": done, "total": total}
            if done == total and self.decile < 10:
                self.decile = 10
                self.progress.done(self.what)
                self.progress.stage(text, **fields)  # the end stays on a terminal too
            elif done * 10 // total > self.decile:
                self.decile = done * 10 // total
                self.last = now
                self.progress.milestone(text, **fields)
            else:
                self.progress.update(self.what, text)
        elif now - self.last >= self.interval:
            self.last = now
            self.progress.milestone(f"{self.what}: still building, "
                                    f"{_duration(now - self.started)} "
                                    f"({self.lines} log lines{self._estimate(now)})",
                                    target=self.what, log_lines=self.lines)

    def close(self) -> None:
        """The compile ended: its state leaves a terminal's updating line."""
        self.progress.done(self.what)

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
