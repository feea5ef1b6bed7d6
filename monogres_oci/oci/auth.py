"""Registry credentials from the Docker config, and the token dance a registry may ask for.

Where credentials come from, in Docker's order: ``credHelpers[host]``, then ``credsStore`` (both
run ``docker-credential-NAME get`` with the host on stdin), then ``auths[host]`` in
``$DOCKER_CONFIG/config.json`` (or ``~/.docker/config.json``). They are looked up only when a
registry asks for authentication, so anonymous registries never run a helper.

Secrets never leave this module in text: :class:`Credentials` hides them from ``repr``, and no
error message includes them (only where they came from).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from monogres_oci.errors import AuthError, CommandError
from monogres_oci.runner import Result, run

Runner = Callable[..., Result]

TOKEN_USERNAME = "<token>"  # what helpers return as user name for an identity token
_PARAM_RE = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)=("(?:[^"\\]|\\.)*"|[^,\s]*)')


@dataclass(frozen=True)
class Credentials:
    """A user name and secret for one registry, and a description of where they were found."""

    username: str
    password: str = field(repr=False)
    source: str = ""
    identity_token: str | None = field(default=None, repr=False)

    def basic_header(self) -> str:
        """Return the value of an ``Authorization: Basic`` header for these credentials."""
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


def docker_config_file(environ: Mapping[str, str] | None = None) -> Path:
    """Return the Docker config file in use: ``$DOCKER_CONFIG/config.json`` or the home one."""
    env = os.environ if environ is None else environ
    directory = env.get("DOCKER_CONFIG")
    if directory:
        return Path(directory) / "config.json"
    return Path(env.get("HOME") or Path.home()) / ".docker" / "config.json"


def _server_key(key: str) -> str:
    """Reduce a config key such as ``https://host:5000/v1/`` to ``host:5000``."""
    key = re.sub(r"^[a-z]+://", "", key.strip())
    return key.split("/", 1)[0]


def _lookup(table: Mapping[str, Any], host: str) -> Any:
    for key, value in table.items():
        if _server_key(key) == host:
            return value
    return None


def _from_helper(helper: str, host: str, runner: Runner) -> Credentials | None:
    program = f"docker-credential-{helper}"
    try:
        result = runner([program, "get"], input_text=host, check=False, timeout=60)
    except CommandError as exc:
        raise AuthError(
            f"the Docker config names the credential helper {program} for {host}, but it could "
            f"not be run (exit {exc.returncode}); install it or remove it from the config"
        ) from None
    if result.returncode != 0:
        if "not found" in (result.stdout + result.stderr).lower():
            return None
        # The helper's output is not echoed: a misbehaving helper might print a secret.
        raise AuthError(
            f"credential helper {program} failed for {host} (exit {result.returncode}); "
            f"run `echo {host} | {program} get` to see why"
        )
    try:
        answer = json.loads(result.stdout)
        username, secret = str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError):
        raise AuthError(f"credential helper {program} gave no usable answer for {host}") from None
    if username == TOKEN_USERNAME:
        return Credentials("", "", program, identity_token=secret)
    return Credentials(username, secret, program)


def load_credentials(
    host: str, *, config_file: Path | None = None, runner: Runner = run
) -> Credentials | None:
    """Find credentials for ``host`` (``HOST[:PORT]``) in the Docker config, or return None."""
    path = config_file or docker_config_file()
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise AuthError(f"cannot read the Docker config {path}: {exc}") from None
    if not isinstance(config, dict):
        raise AuthError(f"the Docker config {path} is not a JSON object")
    helper = _lookup(config.get("credHelpers") or {}, host)
    if not helper and config.get("credsStore"):
        helper = config["credsStore"]
    if isinstance(helper, str) and helper:
        found = _from_helper(helper, host, runner)
        if found is not None:
            return found
    entry = _lookup(config.get("auths") or {}, host)
    if not isinstance(entry, dict):
        return None
    source = f"{path} (auths)"
    if entry.get("identitytoken"):
        return Credentials("", "", source, identity_token=str(entry["identitytoken"]))
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(str(entry["auth"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        username, colon, password = decoded.partition(":")
        if not colon:
            raise AuthError(f"{source}: the entry for {host} is not base64 of 'user:password'")
        return Credentials(username, password, source)
    if entry.get("username") and entry.get("password"):
        return Credentials(str(entry["username"]), str(entry["password"]), source)
    return None


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header: scheme (lower case) and parameters."""

    scheme: str
    params: Mapping[str, str]

    @classmethod
    def parse(cls, header: str) -> Challenge:
        """Parse the first challenge of a ``WWW-Authenticate`` header."""
        scheme, _, rest = header.strip().partition(" ")
        params: dict[str, str] = {}
        for key, value in _PARAM_RE.findall(rest):
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[key.lower()] = value
        return cls(scheme.lower(), params)


class Authenticator:
    """The authentication state for one registry: which scheme it wants and the tokens we hold.

    ``credentials`` given explicitly win; otherwise the Docker config is read the first time
    the registry asks for authentication.
    """

    def __init__(
        self,
        host: str,
        credentials: Credentials | None = None,
        *,
        use_docker_config: bool = True,
        config_file: Path | None = None,
        runner: Runner = run,
    ) -> None:
        self.host = host
        self._credentials = credentials
        self._looked_up = credentials is not None or not use_docker_config
        self._config_file = config_file
        self._runner = runner
        self._basic = False
        self._tokens: dict[str, str] = {}
        self._lookup_lock = threading.Lock()

    @property
    def credentials(self) -> Credentials | None:
        """The credentials in use, looked up in the Docker config on first need."""
        with self._lookup_lock:  # threads of one publish share this: look up once
            if not self._looked_up:
                self._credentials = load_credentials(
                    self.host, config_file=self._config_file, runner=self._runner
                )
                self._looked_up = True
        return self._credentials

    def describe(self) -> str:
        """Say which credentials were tried, for error messages (never the secret itself)."""
        if self._credentials is not None:
            return f"credentials for {self.host} from {self._credentials.source} were used"
        if not self._looked_up:
            return "no credentials were used"
        where = self._config_file or docker_config_file()
        return (
            f"no credentials for {self.host} were found in {where} (auths, credHelpers, "
            "credsStore); log in (docker login) or set DOCKER_CONFIG to a directory whose "
            "config.json has them"
        )

    def header(self, scope: str) -> str | None:
        """Return the Authorization header to send for ``scope``, if we have one already."""
        if scope in self._tokens:
            return f"Bearer {self._tokens[scope]}"
        if self._basic and self.credentials is not None:
            return self.credentials.basic_header()
        return None

    def answer(
        self, session: requests.Session, response: requests.Response, scope: str, timeout: Any
    ) -> bool:
        """React to a 401: learn the scheme, fetch a token; return True if a retry may succeed."""
        header = response.headers.get("WWW-Authenticate", "")
        challenge = Challenge.parse(header) if header else Challenge("basic", {})
        if challenge.scheme == "basic":
            # Decided by what this request sent, not by _basic: another thread may have learnt
            # the scheme while this request was on its way without credentials.
            sent = response.request.headers.get("Authorization", "") if response.request else ""
            if sent.lower().startswith("basic ") or self.credentials is None:
                return False  # the credentials we sent were refused, or we have none
            self._basic = True
            return True
        if challenge.scheme == "bearer":
            self._tokens.pop(scope, None)  # expired or insufficient: one fresh try
            self._tokens[scope] = self._fetch_token(session, challenge, scope, timeout)
            return True
        return False

    def _fetch_token(
        self, session: requests.Session, challenge: Challenge, scope: str, timeout: Any
    ) -> str:
        realm = challenge.params.get("realm")
        if not realm:
            raise AuthError(f"registry {self.host} asked for a bearer token but named no realm")
        scopes = [s for s in scope.split(" ") if s]
        if challenge.params.get("scope") and challenge.params["scope"] not in scopes:
            scopes.append(challenge.params["scope"])
        service = challenge.params.get("service")
        creds = self.credentials
        try:
            if creds is not None and creds.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "client_id": "monogres-oci",
                    "scope": " ".join(scopes),
                }
                if service:
                    form["service"] = service
                reply = session.post(realm, data=form, timeout=timeout, verify=session.verify)
            else:
                params: list[tuple[str, str]] = [("scope", s) for s in scopes]
                if service:
                    params.append(("service", service))
                headers = {"Authorization": creds.basic_header()} if creds is not None else {}
                reply = session.get(
                    realm, params=params, headers=headers, timeout=timeout, verify=session.verify
                )
        except requests.RequestException as exc:
            raise AuthError(
                f"cannot reach the token service of {self.host} ({type(exc).__name__})"
            ) from None
        if reply.status_code in (401, 403):
            raise AuthError(
                f"the token service of registry {self.host} refused "
                f"(HTTP {reply.status_code}); {self.describe()}"
            )
        try:
            body = reply.json()
            token = body.get("token") or body.get("access_token")
        except ValueError:
            token = None
        if reply.status_code != 200 or not isinstance(token, str) or not token:
            raise AuthError(
                f"the token service of registry {self.host} answered HTTP {reply.status_code} "
                "without a token"
            )
        return token
