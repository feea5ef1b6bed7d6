"""What the build stage leaves behind per target, keyed by input digest: compile outputs, and how
the last attempt ended (compiled, failed and why, gated with what result).

Both live in the cache directory, so ``status`` and a resumed ``build`` see the same facts: a
finished compile is never repeated, and a failure is shown until an attempt succeeds. Writes are
atomic (a temporary file renamed), so an interrupted build leaves the previous record or the new
one, never half of one.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from monogres_oci.atomic import write_atomically
from monogres_oci.progress import LastBuild

if TYPE_CHECKING:
    from monogres_oci.gate import GateResult

Stage = Literal["compile", "package", "gate"]


class BuildCache:
    """Finished compile outputs, one directory per input digest."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir / "builds"

    def dir(self, key: str) -> Path:
        return self.root / key

    def has(self, key: str) -> bool:
        return (self.dir(key) / ".done").is_file()

    def finished(self) -> frozenset[str]:
        """Every key with a finished build: one directory listing, for asking about many."""
        return frozenset(n for n in _names(self.root) if self.has(n))


class BuildTimes:
    """How long the last compile of each target (by name: a new version of its inputs is still
    the same target to wait for) took, for estimates while it compiles again."""

    def __init__(self, cache_dir: Path) -> None:
        self.path = cache_dir / "timings.json"
        self._lock = threading.Lock()  # compiles of one build end in threads

    def _read(self) -> dict[str, dict[str, float]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, name: str) -> LastBuild | None:
        item = self._read().get(name)
        if not isinstance(item, dict):
            return None
        try:
            return LastBuild(float(item["seconds"]), int(item["lines"]))
        except (KeyError, TypeError, ValueError):
            return None

    def record(self, name: str, seconds: float, lines: int) -> None:
        with self._lock:
            data = self._read()
            data[name] = {"seconds": round(seconds, 1), "lines": lines}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


@dataclass(frozen=True)
class Outcome:
    """How the last attempt at one target ended."""

    target: str  # the target's name, for a person reading the file
    stage: Stage  # the last stage it reached
    ok: bool
    summary: str = ""  # the gate's one-line summary, or the first line of the error
    tests_passed: int = 0
    tests_total: int = 0
    suite_skipped: str = ""  # why the upstream suite did not run

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class Outcomes:
    """The outcome records of a cache directory, one JSON file per input digest."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir / "outcomes"

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def record(self, key: str, outcome: Outcome) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        text = json.dumps(outcome.to_json(), indent=2, sort_keys=True) + "\n"
        write_atomically(self._path(key), text.encode())

    def recorded(self) -> frozenset[str]:
        """Every key with a record: one directory listing, for asking about many."""
        return frozenset(n.removesuffix(".json") for n in _names(self.root)
                         if n.endswith(".json") and not n.startswith("."))

    def get(self, key: str) -> Outcome | None:
        try:
            doc = json.loads(self._path(key).read_text())
            return Outcome(**doc)
        except (OSError, ValueError, TypeError):
            # Missing, or written by another version: as if never attempted.
            return None

    def latest_by_target(self) -> dict[str, tuple[str, Outcome]]:
        """The newest record of each target name, as (key, outcome), whatever inputs it was
        built from: what a target came to before its inputs changed. Reads every record."""
        newest: dict[str, tuple[int, str, Outcome]] = {}
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return {}
        for entry in entries:
            if not entry.name.endswith(".json") or entry.name.startswith("."):
                continue
            key = entry.name.removesuffix(".json")
            outcome = self.get(key)
            if outcome is None:
                continue
            try:
                when = entry.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if outcome.target not in newest or when > newest[outcome.target][0]:
                newest[outcome.target] = (when, key, outcome)
        return {name: (key, outcome) for name, (_, key, outcome) in newest.items()}


def _names(directory: Path) -> list[str]:
    """The entries of ``directory``; none when it does not exist yet."""
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []


@dataclass(frozen=True)
class TargetResult:
    """How one target ended, for this invocation's report."""

    name: str
    kind: str
    ok: bool
    cached: bool = False
    error: str = ""
    gate: GateResult | None = None


@dataclass
class BuildReport:
    """Everything the build did, for the summary and --json."""

    results: list[TargetResult] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[TargetResult]:
        return [r for r in self.results if not r.ok]


# A compiler's or linker's own words in a build log line, after BuildKit's "#12 3.456 " prefix.
_CAUSE = re.compile(r"(: (fatal )?error: |: undefined reference to |cannot find -l|"
                    r"No such file or directory|configure: error: |CMake Error)")
_BUILDKIT_PREFIX = re.compile(r"^#\d+ [\d.]+ ")


def error_summary(exc: Exception) -> str:
    """What status shows of an error: its first line, and for a failed compile the first line of
    the log tail where the compiler says what broke (the whole tail stays in the report)."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    cause = next((_BUILDKIT_PREFIX.sub("", line) for line in lines[1:] if _CAUSE.search(line)), "")
    return f"{cause} [{lines[0]}]" if cause else lines[0]
