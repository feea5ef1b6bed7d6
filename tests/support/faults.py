"""A fault-injecting HTTP proxy on loopback, in front of a real registry.

A real registry does not answer 503 or drop a connection on cue, so this proxy does, and only
that: every request it does not fault is forwarded to the real ``docker-registry`` unchanged
(the Host header included, so the upload locations the registry hands out point back at the
proxy), and the real registry's answer is passed back. What a fault does:

* ``status``: answer ``status`` (with ``Retry-After`` if given) without forwarding;
* ``reset``: close the connection without answering, without forwarding;
* ``truncate``: forward, then send the headers and half the body, and close;
* ``slow``: wait ``delay`` seconds, then forward;
* ``lost_answer``: forward (the registry commits the request), then close without answering, as
  when a PUT times out although the registry stored the blob;
* ``expired``: for an upload-session request (PATCH, PUT or GET on ``/blobs/uploads/``), answer 404
  ``BLOB_UPLOAD_UNKNOWN`` without forwarding, as a registry does once a session has expired.

Hostile answers (a registry that lies or misbehaves), none forwarded but ``mutate``'s:

* ``mutate``: forward, then flip one byte of the body (headers unchanged: a wrong digest);
* ``garbage``: 200 with ``size`` random bytes, as JSON;
* ``endless``: 200 with a body that never ends (sent until the client hangs up, 1 GiB at most);
* ``redirect``: 307 to the very same URL, forever.

A *plan* decides, for request number N (1-based) with its method and path, which fault (if any)
to inject; :func:`every` and :func:`random_mix` make the usual ones. The proxy logs each request
with the fault it got, and counts the most requests it had in flight at once.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULT_KINDS = ("status", "reset", "truncate", "slow", "lost_answer", "expired")
ENDLESS_LIMIT = 1 << 30
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate"}


MEET_TIMEOUT = 2.0


@dataclass(frozen=True)
class Fault:
    """One injected failure."""

    kind: str
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    size: int = 1024  # of a garbage body
    # "slow" only: the request first waits (at most MEET_TIMEOUT) until the barrier's other
    # parties arrive, so that concurrent clients' requests reach the registry together
    meet: threading.Barrier | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Logged:
    """One request the proxy saw."""

    number: int
    method: str
    path: str
    fault: Fault | None
    sent: int = 0  # bytes of the request's body


Plan = Callable[[int, str, str], Fault | None]


def is_upload_session(method: str, path: str) -> bool:
    """A request on an upload session (a chunk, the closing PUT, a status GET), not its POST."""
    return method in ("PUT", "PATCH", "GET") and "/blobs/uploads/" in path


def every(n: int, fault: Fault, *, limit: int | None = None,
          applies: Callable[[str, str], bool] = lambda m, p: True) -> Plan:
    """``fault`` on every ``n``-th request it applies to, at most ``limit`` times."""
    state = {"seen": 0, "done": 0}
    lock = threading.Lock()

    def plan(number: int, method: str, path: str) -> Fault | None:
        if not applies(method, path):
            return None
        with lock:
            state["seen"] += 1
            if state["seen"] % n or (limit is not None and state["done"] >= limit):
                return None
            state["done"] += 1
            return fault
    return plan


def random_mix(rate: float, seed: int, kinds: tuple[str, ...] = FAULT_KINDS) -> Plan:
    """Each request faulted with probability ``rate``, the fault drawn from ``kinds``."""
    rng = random.Random(seed)
    lock = threading.Lock()
    faults = {
        "status": [Fault("status", 503), Fault("status", 502), Fault("status", 500),
                   Fault("status", 504), Fault("status", 408), Fault("status", 429, "1")],
        "reset": [Fault("reset")], "truncate": [Fault("truncate")],
        "slow": [Fault("slow", delay=0.3)], "lost_answer": [Fault("lost_answer")],
        "expired": [Fault("expired")],
    }

    def plan(number: int, method: str, path: str) -> Fault | None:
        with lock:
            if rng.random() >= rate:
                return None
            kind = rng.choice(kinds)
            if kind == "expired" and not is_upload_session(method, path):
                kind = "status"
            return rng.choice(faults[kind])
    return plan


class FaultProxy:
    """The proxy: ``host`` is what clients use instead of the registry's."""

    def __init__(self, upstream: str, plan: Plan) -> None:
        self.upstream = upstream
        self.plan = plan
        self.log: list[Logged] = []
        self.in_flight = 0
        self.peak = 0  # the most requests in flight at once
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def faults(self) -> list[Logged]:
        """The requests that got a fault."""
        return [entry for entry in self.log if entry.fault is not None]

    def _record(self, method: str, path: str, sent: int = 0) -> Fault | None:
        with self._lock:
            number = len(self.log) + 1
            fault = self.plan(number, method, path)
            if fault is not None and fault.kind == "expired" and not is_upload_session(method, path):
                fault = None
            self.log.append(Logged(number, method, path, fault, sent))
            return fault

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # the proxy's own log is enough

            def _any(self) -> None:
                with proxy._lock:
                    proxy.in_flight += 1
                    proxy.peak = max(proxy.peak, proxy.in_flight)
                try:
                    self._handle()
                finally:
                    with proxy._lock:
                        proxy.in_flight -= 1

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._record(self.command, self.path, len(body))
                kind = fault.kind if fault else ""
                if fault is not None and kind == "status":
                    payload = json.dumps({"errors": [{"code": "UNAVAILABLE",
                                                      "message": "injected by the test proxy"}]})
                    self._answer(fault.status, payload.encode(),
                                 {"Retry-After": fault.retry_after} if fault.retry_after else {})
                    return
                if kind == "expired":
                    payload = json.dumps({"errors": [{"code": "BLOB_UPLOAD_UNKNOWN",
                                                      "message": "blob upload unknown to registry"}]})
                    self._answer(404, payload.encode(), {})
                    return
                if kind == "reset":
                    self.close_connection = True
                    return
                if kind == "garbage":
                    junk = random.Random(len(proxy.log)).randbytes(fault.size if fault else 0)
                    self._answer(200, junk, {})
                    return
                if kind == "redirect":
                    self.send_response(307)
                    self.send_header("Location", self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if kind == "endless":
                    self._endless()
                    return
                if kind == "slow" and fault is not None and fault.meet is not None:
                    # the other party may never come: then go on alone
                    with contextlib.suppress(threading.BrokenBarrierError):
                        fault.meet.wait(timeout=MEET_TIMEOUT)
                if kind == "slow":
                    time.sleep(fault.delay if fault else 0)
                status, headers, answer = self._forward(body)
                if kind == "mutate" and answer:
                    answer = bytes([answer[0] ^ 0xFF]) + answer[1:]
                if kind == "lost_answer":
                    self.close_connection = True
                    return
                if kind == "truncate" and answer and self.command != "HEAD":
                    self.send_response(status)
                    for name, value in headers:
                        if name.lower() != "content-length":
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer[: len(answer) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if kind == "truncate":  # nothing to cut short: drop the answer instead
                    self.close_connection = True
                    return
                self.send_response(status)
                for name, value in headers:
                    if self.command == "HEAD" or name.lower() != "content-length":
                        self.send_header(name, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer)

            def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in HOP_BY_HOP}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    response = conn.getresponse()
                    answer = response.read()
                    kept = [(k, v) for k, v in response.getheaders()
                            if k.lower() not in HOP_BY_HOP]
                    return response.status, kept, answer
                finally:
                    conn.close()

            def _endless(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"\0" * 65536
                framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
                self.close_connection = True
                try:
                    for _ in range(ENDLESS_LIMIT // len(chunk)):
                        self.wfile.write(framed)
                except OSError:
                    pass  # the client hung up, as it should

            def _answer(self, status: int, payload: bytes, extra: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any

        return Handler

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@contextmanager
def fault_proxy(upstream: str, plan: Plan) -> Iterator[FaultProxy]:
    """A running proxy to ``upstream`` (HOST:PORT of a plain-HTTP registry) with ``plan``."""
    proxy = FaultProxy(upstream, plan).start()
    try:
        yield proxy
    finally:
        proxy.stop()
