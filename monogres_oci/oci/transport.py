"""The requests a registry client sends: one session per thread, timeouts, authentication,
repetition of what failed transiently (see :mod:`monogres_oci.oci.registry`), answers read
within a size limit."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import requests

from monogres_oci.errors import AuthError, RegistryError, TransientRegistryError
from monogres_oci.oci.auth import Authenticator, Credentials
from monogres_oci.oci.reference import check_host
from monogres_oci.oci.retry import RETRYABLE_STATUSES, RetryPolicy, parse_retry_after
from monogres_oci.oci.streams import (
    BROKEN_BODY,
    FileRange,
    RangeReader,
    short_reason,
)
from monogres_oci.runner import Result, run

MAX_MANIFEST_SIZE = 4 * 1024 * 1024  # what the distribution-spec says registries must accept
ERROR_BODY_LIMIT = 64 * 1024  # of an error answer, only its errors[] list is of use
CONNECT_TIMEOUT = 10.0

Body = bytes | Path | FileRange | None
T = TypeVar("T")
# Errors a registry answers with that mean "try that operation again": the upload session
# expired or was lost (a PUT whose answer never came), a manifest PUT that raced the commit of
# a blob it names.
TRANSIENT_CODES = frozenset({"BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID",
                             "MANIFEST_BLOB_UNKNOWN"})
# 416: a chunk that does not start where the registry's session ends: start the upload again.
TRANSIENT_UPLOAD_STATUSES = frozenset({416})


def pull_scope(repo: str) -> str:
    """The token scope that reads ``repo``."""
    return f"repository:{repo}:pull"


def push_scope(repo: str) -> str:
    """The token scope that writes ``repo`` (and reads it: an upload checks first)."""
    return f"repository:{repo}:pull,push"


def _say_retry(line: str) -> None:
    print(f"monogres-oci: {line}", file=sys.stderr, flush=True)


def _error_list(response: requests.Response) -> list[dict[str, Any]]:
    """The registry's ``errors`` list, if the body has one."""
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError, *BROKEN_BODY):
        return []
    return [e for e in errors if isinstance(e, dict)]


def _error_codes(errors: list[dict[str, Any]]) -> str:
    """Return the registry's ``errors[].code: message`` list as one line."""
    parts = [f"{e.get('code', '?')}: {e.get('message', '')}".rstrip(": ") for e in errors]
    return "; ".join(parts)[:500]


@dataclass(frozen=True)
class Transport:
    """A registry host's HTTP plumbing; :class:`RegistryClient` speaks the API over it."""

    def __init__(
        self,
        host: str,
        *,
        insecure: bool = False,
        ca_file: Path | None = None,
        credentials: Credentials | None = None,
        use_docker_config: bool = True,
        docker_config_file: Path | None = None,
        read_timeout: float = 120.0,
        runner: Callable[..., Result] = run,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008  # a frozen value
        on_retry: Callable[[str], None] = _say_retry,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = check_host(host)
        self.insecure = insecure
        self.base_url = f"{'http' if insecure else 'https'}://{host}"
        self._local = threading.local()
        self._lock = threading.Lock()
        # Passed on every request, not only set on the session: requests lets the environment's
        # REQUESTS_CA_BUNDLE override a session-level setting, which would ignore ca_file.
        self.verify: str | bool = str(ca_file) if ca_file is not None else True
        self.timeout = (CONNECT_TIMEOUT, read_timeout)
        self.retry = retry
        self.on_retry = on_retry
        self._sleep = sleep
        self._clock = clock
        self.retries_made = 0  # for reports: how many requests were repeated
        self.auth = Authenticator(
            host,
            credentials,
            use_docker_config=use_docker_config,
            config_file=docker_config_file,
            runner=runner,
        )

    @property
    def session(self) -> requests.Session:
        """This thread's HTTP session (connections are reused within a thread only)."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.verify = self.verify
            session.headers["User-Agent"] = "monogres-oci"
            self._local.session = session
        return session

    def _url(self, path: str) -> str:
        return path if "://" in path else f"{self.base_url}{path}"

    def _retrying(self, what: str, operation: Callable[[], T]) -> T:
        """Run ``operation`` and repeat it, within the policy, while it fails transiently."""
        started = self._clock()
        attempt = 1
        while True:
            try:
                return operation()
            except TransientRegistryError as exc:
                wait = self._wait_allowed(attempt, started, exc)
                if wait is None:
                    elapsed = self._clock() - started
                    tries = "1 attempt" if attempt == 1 else f"{attempt} attempts"
                    raise RegistryError(
                        f"{exc} (gave up after {tries} in {elapsed:.1f} s; --retries N or "
                        "MONOGRES_RETRIES=N allows more)"
                    ) from None
                self._announce(f"retry {attempt}/{self.retry.retries} in {wait:.1f} s: {exc}")
                self._sleep(wait)
                attempt += 1

    def _wait_allowed(self, attempt: int, started: float,
                      exc: TransientRegistryError) -> float | None:
        """How long to wait before repeating after failed attempt ``attempt`` of an operation
        begun at ``started``; None when the policy allows no more."""
        wait = self.retry.wait(attempt, exc.retry_after)
        return wait if self.retry.allows(attempt, self._clock() - started, wait) else None

    def _announce(self, line: str) -> None:
        """Count a repetition and say why it is made."""
        with self._lock:
            self.retries_made += 1
        self.on_retry(line)

    def _send(self, method: str, path: str, scope: str, *, retry: bool = True,
              **request: Any) -> requests.Response:
        """Send one request (``_send_once``'s keywords), repeated while it fails transiently
        unless ``retry`` is off because the caller repeats a larger operation."""
        once = partial(self._send_once, method, path, scope, **request)
        return self._retrying(request["what"], once) if retry else once()

    def _send_once(
        self,
        method: str,
        path: str,
        scope: str,
        *,
        ok: tuple[int, ...],
        what: str,
        headers: dict[str, str] | None = None,
        body: Body = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send one request, answering an auth challenge once; raise on unexpected statuses."""
        response: requests.Response | None = None
        for attempt in (1, 2):
            sent = dict(headers or {})
            authorization = self.auth.header(scope)
            if authorization:
                sent["Authorization"] = authorization
            data: Any = body
            if isinstance(body, Path):
                data = open(body, "rb")  # noqa: SIM115  # closed below, reopened on a retry
                sent["Content-Length"] = str(os.fstat(data.fileno()).st_size)
            elif isinstance(body, FileRange):
                data = RangeReader(body)  # closed below, reopened on a retry
                sent["Content-Length"] = str(body.length)
            try:
                response = self.session.request(
                    method,
                    self._url(path),
                    headers=sent,
                    data=data,
                    stream=True,  # always: what is read of an answer is bounded below
                    timeout=self.timeout,
                    verify=self.verify,
                    allow_redirects=True,
                )
            except requests.exceptions.SSLError as exc:
                raise RegistryError(
                    f"TLS with registry {self.host} failed ({short_reason(exc)}); if it uses a "
                    "private CA pass its certificate (ca_file), if it serves plain HTTP use "
                    "insecure mode"
                ) from None
            except requests.TooManyRedirects:
                raise RegistryError(
                    f"registry {self.host}: {what} failed: more than 30 redirects (a redirect "
                    "loop); the registry or a proxy in front of it is misconfigured"
                ) from None
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                hint = "" if self.insecure else ", and whether it serves HTTPS (else use insecure)"
                raise TransientRegistryError(
                    f"cannot reach registry {self.host} at {self.base_url} for {what} "
                    f"({short_reason(exc)}); check the host and port, that the registry is "
                    f"running and reachable from here{hint}"
                ) from None
            finally:
                if isinstance(body, Path | FileRange):
                    data.close()
            if response.status_code not in ok:
                self._buffer(response, what, limit=ERROR_BODY_LIMIT, refuse=False)
            elif not stream:
                self._buffer(response, what, limit=MAX_MANIFEST_SIZE, refuse=True)
            if response.status_code != 401 or attempt == 2:
                break
            if not self.auth.answer(self.session, response, scope, self.timeout):
                break
            response.close()
        assert response is not None
        if response.status_code in ok:
            return response
        errors = _error_list(response)
        codes = _error_codes(errors)
        detail = f": {codes}" if codes else ""
        response.close()
        status = response.status_code
        if (status in RETRYABLE_STATUSES or any(e.get("code") in TRANSIENT_CODES for e in errors)
                or method == "PATCH" and status in TRANSIENT_UPLOAD_STATUSES):
            raise TransientRegistryError(
                f"registry {self.host}: {what} failed: HTTP {status}{detail}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code in (401, 403):
            raise AuthError(
                f"registry {self.host} refused {what} (HTTP {response.status_code}{detail}); "
                f"{self.auth.describe()}"
            )
        raise RegistryError(
            f"registry {self.host}: {what} failed: HTTP {response.status_code}{detail}"
        )

    def _buffer(self, response: requests.Response, what: str, *, limit: int,
                refuse: bool) -> None:
        """Read a whole answer into ``response`` (as requests does without ``stream``), but no
        more than ``limit`` bytes: past that it is refused, or (an error's text) cut short."""
        data = self._read_body(response, limit + 1, f"the answer to {what}")
        if len(data) > limit:
            response.close()
            if refuse:
                raise RegistryError(f"registry {self.host}: the answer to {what} is larger than "
                                    f"{limit} bytes; refused")
            data = data[:limit]
        # What requests' own non-streamed read stores: .content, .json() and .text read it.
        response._content = data
        response._content_consumed = True  # type: ignore[attr-defined]
        response.close()  # the body was read: the connection goes back to the pool

    def _read_body(self, response: requests.Response, limit: int, what: str) -> bytes:
        """Up to ``limit`` bytes of a streamed body; a body cut short is a transient failure."""
        try:
            data: bytes = response.raw.read(limit, decode_content=True)
        except BROKEN_BODY as exc:
            raise TransientRegistryError(
                f"registry {self.host}: the connection broke while reading {what} "
                f"({short_reason(exc)})") from None
        return data

