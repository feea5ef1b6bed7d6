"""Gates side by side: each in a thread (its work is done in containers, so a thread only waits
on them), and an interruption stops every one of them.

The caller submits gates so that each comes after the gates of the extensions it requires, and
names those gates' futures (``after``): a worker waits for them before the gate starts. Workers
take gates first in, first out, so whatever a gate waits on has started already. A gate whose
suite must run ``alone`` (timers a busy machine outruns: pglogical's subscription sync) waits
until the running gates end, and no other starts until it has.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Any, TypeVar

from monogres_oci.errors import GateError
from monogres_oci.gate.server import remove_own_containers

T = TypeVar("T")


class _Turns:
    """Gates side by side, or one alone: a gate that must run alone waits for the running ones
    to end, and holds back those that would start after it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._alone = False
        self._waiting_alone = 0

    def enter(self, alone: bool) -> None:
        with self._cond:
            if alone:
                self._waiting_alone += 1
                self._cond.wait_for(lambda: self._running == 0)
                self._waiting_alone -= 1
                self._alone = True
            else:
                self._cond.wait_for(lambda: not self._alone and not self._waiting_alone)
            self._running += 1

    def leave(self, alone: bool) -> None:
        with self._cond:
            self._running -= 1
            if alone:
                self._alone = False
            self._cond.notify_all()


class GatePool:
    """Up to ``jobs`` gates at once; with 1, each runs in the caller's thread when submitted."""

    def __init__(self, jobs: int) -> None:
        self._executor = (ThreadPoolExecutor(jobs, thread_name_prefix="gate")
                          if jobs > 1 else None)
        self._futures: list[Future[object]] = []
        self._stopping = threading.Event()
        self._turns = _Turns()

    def submit(self, gate: Callable[[], T], *, after: Sequence[Future[Any]] = (),
               alone: bool = False) -> Future[T]:
        """Run ``gate`` once the futures ``after`` are done; with ``alone``, with no other gate
        beside it."""
        if self._executor is None:
            done: Future[T] = Future()
            try:
                done.set_result(gate())
            except Exception as exc:  # an interruption is not a result: it propagates
                done.set_exception(exc)
            return done
        future = self._executor.submit(self._start, gate, tuple(after), alone)
        self._futures.append(future)  # type: ignore[arg-type]
        return future

    def interrupted(self) -> bool:
        """Whether the pool is being stopped: a gate asks between its steps, since a step's
        client killed with the build (`docker exec` exits 0 on SIGTERM) can look like success."""
        return self._stopping.is_set()

    def _start(self, gate: Callable[[], T], after: tuple[Future[Any], ...], alone: bool) -> T:
        wait(after)
        if self._stopping.is_set():
            raise GateError("not started: the build was interrupted")
        self._turns.enter(alone)
        try:
            if self._stopping.is_set():
                raise GateError("not started: the build was interrupted")
            return gate()
        finally:
            self._turns.leave(alone)

    def __enter__(self) -> GatePool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._executor is None:
            return
        if exc_type is not None:
            # Interrupted (or failed): start nothing more, and end the gates under way by
            # removing their containers; a gate between two containers (exporting its build
            # tree) starts the next one, which the following round removes.
            self._stopping.set()
            self._executor.shutdown(wait=False, cancel_futures=True)
            while not all(f.done() for f in self._futures):
                remove_own_containers()
                wait(self._futures, timeout=2)
        self._executor.shutdown(wait=True)
