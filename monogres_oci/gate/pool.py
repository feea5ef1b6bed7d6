"""Gates side by side: each in a thread (its work is done in containers, so a thread only waits
on them), and an interruption stops every one of them.

The caller submits gates so that each comes after the gates of the extensions it requires, and
a gate that needs another's result waits on that one's future. Workers take gates first in,
first out, so whatever a running gate waits on has started already: no deadlock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import TypeVar

from monogres_oci.errors import GateError
from monogres_oci.gate.server import remove_own_containers

T = TypeVar("T")


class GatePool:
    """Up to ``jobs`` gates at once; with 1, each runs in the caller's thread when submitted."""

    def __init__(self, jobs: int) -> None:
        self._executor = (ThreadPoolExecutor(jobs, thread_name_prefix="gate")
                          if jobs > 1 else None)
        self._futures: list[Future[object]] = []
        self._stopping = threading.Event()

    def submit(self, gate: Callable[[], T]) -> Future[T]:
        if self._executor is None:
            done: Future[T] = Future()
            try:
                done.set_result(gate())
            except Exception as exc:  # an interruption is not a result: it propagates
                done.set_exception(exc)
            return done
        future = self._executor.submit(self._start, gate)
        self._futures.append(future)  # type: ignore[arg-type]
        return future

    def _start(self, gate: Callable[[], T]) -> T:
        if self._stopping.is_set():
            raise GateError("not started: the build was interrupted")
        return gate()

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
