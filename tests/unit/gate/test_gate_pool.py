"""GatePool: gates side by side, a gate after the one it waits on, nothing new after an interruption.

The gates here are functions that sleep: what is under test is the scheduling (the real gates,
in containers, run through it in tests/e2e: the kinds build with --jobs 2, and `test --jobs 2`
interrupted by SIGTERM)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from monogres_oci.errors import GateError
from monogres_oci.gate.pool import GatePool


class Meter:
    """How many gates run at once, at most."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def gate(self, seconds: float, value: str) -> Callable[[], str]:
        def run() -> str:
            with self.lock:
                self.running += 1
                self.peak = max(self.peak, self.running)
            time.sleep(seconds)
            with self.lock:
                self.running -= 1
            return value
        return run


@pytest.mark.parametrize("jobs", [2, 3])
def test_up_to_jobs_gates_run_at_once(jobs: int) -> None:
    meter = Meter()
    with GatePool(jobs) as pool:
        futures = [pool.submit(meter.gate(0.1, f"g{i}")) for i in range(6)]
    assert [f.result() for f in futures] == [f"g{i}" for i in range(6)]
    assert meter.peak == jobs


def test_with_one_job_a_gate_runs_when_submitted_in_the_callers_thread() -> None:
    seen: list[threading.Thread] = []
    with GatePool(1) as pool:
        future = pool.submit(lambda: seen.append(threading.current_thread()) or "done")
        assert future.done() and seen == [threading.current_thread()]
        failed = pool.submit(lambda: (_ for _ in ()).throw(GateError("no server")))
    assert future.result() == "done"
    with pytest.raises(GateError, match="no server"):
        failed.result()


def test_a_gate_that_waits_on_an_earlier_one_sees_its_result() -> None:
    meter = Meter()
    with GatePool(2) as pool:
        first = pool.submit(meter.gate(0.2, "postgis passed"))
        second = pool.submit(lambda: f"pointcloud after: {first.result()}")
    assert second.result() == "pointcloud after: postgis passed"


def test_after_an_interruption_no_queued_gate_starts() -> None:
    meter = Meter()
    started: list[str] = []

    def gate(name: str) -> Callable[[], str]:
        inner = meter.gate(0.3, name)
        return lambda: started.append(name) or inner()

    with pytest.raises(KeyboardInterrupt), GatePool(2) as pool:
        futures = [pool.submit(gate(f"g{i}")) for i in range(5)]
        time.sleep(0.1)
        raise KeyboardInterrupt
    assert sorted(started) == ["g0", "g1"]  # those under way ended; the rest never began
    assert all(f.done() for f in futures)
    assert [f.cancelled() for f in futures[2:]] == [True, True, True]


def test_a_gate_under_way_learns_of_the_interruption() -> None:
    # A gate asks between its steps: a step whose client died with the build can look done.
    seen: list[bool] = []
    stepped = threading.Event()

    def gate(pool: GatePool) -> None:
        seen.append(pool.interrupted())
        stepped.set()
        time.sleep(0.3)  # a step under way (the export of a build tree)
        seen.append(pool.interrupted())

    with pytest.raises(KeyboardInterrupt), GatePool(2) as pool:
        pool.submit(lambda: gate(pool))
        stepped.wait(5)
        raise KeyboardInterrupt
    assert seen == [False, True]


def test_a_gate_that_must_run_alone_has_no_other_beside_it() -> None:
    spans: dict[str, tuple[float, float]] = {}

    def gate(name: str, seconds: float) -> Callable[[], str]:
        def run() -> str:
            start = time.monotonic()
            time.sleep(seconds)
            spans[name] = (start, time.monotonic())
            return name
        return run

    with GatePool(3) as pool:
        before = [pool.submit(gate(f"b{i}", 0.2)) for i in range(2)]
        alone = pool.submit(gate("alone", 0.2), alone=True)
        after = [pool.submit(gate(f"a{i}", 0.1)) for i in range(3)]
        # a gate that waits on the alone one (as pglogical_ticker on pglogical) starts after it
        dependent = pool.submit(gate("dependent", 0.05), after=[alone])
    assert all(f.done() for f in (*before, alone, *after, dependent))
    start, end = spans["alone"]
    others = {n: s for n, s in spans.items() if n != "alone"}
    assert all(e <= start or s >= end for s, e in others.values()), spans
    assert spans["b0"][0] < spans["b1"][1] and spans["b1"][0] < spans["b0"][1]  # side by side
    assert spans["dependent"][0] >= end
