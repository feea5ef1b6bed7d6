"""The schema validation of a catalog, run in a forked process beside work that needs the
catalog but not yet the validation's answer (expanding a million targets).

Validating a large catalog is pure Python (1.5 s of a cold 10 s plan of 1.2 million targets),
and the rest of the work does not depend on it: on a second core it costs nothing. The caller
waits for the answer before anything leaves the process, so nothing unvalidated is ever used.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from monogres_oci.errors import CatalogError


@contextmanager
def validating_beside(validate: Callable[[Any, str, str], None], data: Any, text: str,
                      shown: str) -> Iterator[Verdict]:
    """Start ``validate(data, text, shown)`` in a child process; the block gets a Verdict whose
    ``wait()`` raises the CatalogError the validation raised (if any). On leaving the block,
    a child still running is killed and reaped."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, then leave without cleanup of the parent's
        os.close(read_fd)
        status = 0
        try:
            validate(data, text, shown)
            answer = b""
        except CatalogError as exc:
            answer = json.dumps([exc.path, exc.pointer, exc.problem, exc.hint]).encode()
        except BaseException as exc:  # noqa: BLE001 (reported to the parent, which raises)
            answer = json.dumps(["", "", f"the schema validation failed: {exc!r}", ""]).encode()
            status = 1
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(answer)
        os._exit(status)
    os.close(write_fd)
    verdict = Verdict(pid, read_fd)
    try:
        yield verdict
    finally:
        verdict.close()


class Verdict:
    """The answer of a validation running in a child process."""

    def __init__(self, pid: int, read_fd: int) -> None:
        self._pid: int | None = pid
        self._read_fd = read_fd
        self._answer: list[str] | None = None

    def wait(self) -> None:
        """Wait for the child; raise the CatalogError it found."""
        if self._pid is not None:
            with os.fdopen(self._read_fd, "rb") as pipe:
                answer = pipe.read()
            _, status = os.waitpid(self._pid, 0)
            self._pid = None
            if answer:
                self._answer = json.loads(answer)
            elif status != 0:  # killed (out of memory?) before it could answer: no verdict
                self._answer = ["", "", "the schema validation did not finish (its process "
                                f"ended with status {status})", "run `monogres-oci validate`"]
            else:
                self._answer = []
        if self._answer:
            raise CatalogError(*self._answer)

    def close(self) -> None:
        """Kill and reap a child that is still running (the block ended early)."""
        if self._pid is None:
            return
        os.kill(self._pid, signal.SIGKILL)
        os.waitpid(self._pid, 0)
        os.close(self._read_fd)
        self._pid = None
