"""The Bearer token flow, against a small in-process registry and token service.

docker-registry 2.8 only offers Basic auth without an external token service, so this fake
speaks just enough of the protocol: 401 with a Bearer challenge, a realm that checks Basic
credentials and hands out a token naming the granted scopes.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pytest

from monogres_oci.errors import AuthError
from monogres_oci.oci.auth import Credentials
from monogres_oci.oci.digest import sha256_digest
from monogres_oci.oci.registry import RegistryClient

USER, SECRET = "alice", "t0ken-flow-secret"


@dataclass
class FakeState:
    port: int = 0
    token_requests: list[list[str]] = field(default_factory=list)


def make_handler(state: FakeState) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(
            self, code: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _token(self) -> None:
            expected = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                self._reply(401, b'{"details":"bad credentials"}')
                return
            query = parse_qs(urlsplit(self.path).query)
            scopes = query.get("scope", [])
            state.token_requests.append(scopes)
            self._reply(200, json.dumps({"token": "T:" + " ".join(scopes)}).encode())

        def _registry(self) -> None:
            path = urlsplit(self.path).path
            repo = path.split("/blobs/")[0].removeprefix("/v2/")
            scope = f"repository:{repo}:pull" if "/blobs/" in path else ""
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer T:") or scope not in auth:
                challenge = f'Bearer realm="http://127.0.0.1:{state.port}/token",service="fake"'
                if scope:
                    challenge += f',scope="{scope}"'
                body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
                self._reply(401, body, {"WWW-Authenticate": challenge})
                return
            self._reply(404 if "/blobs/" in path else 200, b"{}")

        def do_GET(self) -> None:  # noqa: N802
            if self.path.startswith("/token"):
                self._token()
            else:
                self._registry()

        do_HEAD = do_GET  # noqa: N815

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeState]:
    state = FakeState()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def test_token_is_fetched_once_per_scope(fake: FakeState) -> None:
    client = RegistryClient(
        f"127.0.0.1:{fake.port}", insecure=True, credentials=Credentials(USER, SECRET, "test")
    )
    client.ping()
    digest = sha256_digest(b"x")
    assert not client.blob_exists("t/x", digest)
    assert not client.blob_exists("t/x", digest)
    assert fake.token_requests == [[], ["repository:t/x:pull"]]


def test_refused_token_names_the_registry_not_the_secret(fake: FakeState) -> None:
    client = RegistryClient(
        f"127.0.0.1:{fake.port}",
        insecure=True,
        credentials=Credentials(USER, "wrong-" + SECRET, "test"),
    )
    with pytest.raises(AuthError) as caught:
        client.blob_exists("t/x", sha256_digest(b"x"))
    assert f"127.0.0.1:{fake.port}" in str(caught.value)
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value.args)


def test_anonymous_token_refused(fake: FakeState) -> None:
    client = RegistryClient(f"127.0.0.1:{fake.port}", insecure=True)
    with pytest.raises(AuthError, match="no credentials"):
        client.ping()
