"""Credentials from the Docker config and credential helpers, and challenge parsing."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from monogres_oci.errors import AuthError, CommandError
from monogres_oci.oci.auth import Challenge, Credentials, docker_config_file, load_credentials
from monogres_oci.runner import Result

SECRET = "pa55-w0rd-never-shown"


def write_config(directory: Path, config: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    return path


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class FakeHelper:
    """Stands in for runner.run when a docker-credential-* helper would be called."""

    def __init__(self, returncode: int = 0, stdout: str = "", stderr: str = "") -> None:
        self.calls: list[tuple[Sequence[str], str | None]] = []
        self.answer = (returncode, stdout, stderr)

    def __call__(self, argv: Sequence[str], **kwargs: Any) -> Result:
        self.calls.append((argv, kwargs.get("input_text")))
        code, out, err = self.answer
        return Result(tuple(argv), code, out, err)


def test_config_location(tmp_path: Path) -> None:
    assert docker_config_file({"DOCKER_CONFIG": str(tmp_path)}) == tmp_path / "config.json"
    assert docker_config_file({"HOME": "/home/x"}) == Path("/home/x/.docker/config.json")


@pytest.mark.parametrize(
    "key", ["reg.example:5000", "https://reg.example:5000", "http://reg.example:5000/v1/"]
)
def test_auths_entry(tmp_path: Path, key: str) -> None:
    path = write_config(tmp_path, {"auths": {key: {"auth": b64(f"alice:{SECRET}")}}})
    creds = load_credentials("reg.example:5000", config_file=path)
    assert creds is not None and (creds.username, creds.password) == ("alice", SECRET)
    assert str(path) in creds.source
    assert SECRET not in repr(creds)
    assert load_credentials("other.example", config_file=path) is None


def test_other_entry_forms(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {
            "auths": {
                "a.example": {"username": "bob", "password": SECRET},
                "b.example": {"identitytoken": "tok"},
                "c.example": {},
                "d.example": {"auth": "zz-garbage-zz"},
            }
        },
    )
    bob = load_credentials("a.example", config_file=path)
    assert bob is not None and bob.username == "bob"
    token = load_credentials("b.example", config_file=path)
    assert token is not None and token.identity_token == "tok"
    assert load_credentials("c.example", config_file=path) is None
    with pytest.raises(AuthError) as caught:
        load_credentials("d.example", config_file=path)
    assert "zz-garbage-zz" not in str(caught.value)  # the value itself is never echoed
    assert load_credentials("x", config_file=tmp_path / "missing.json") is None


def test_cred_helper_is_asked_with_the_host_on_stdin(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"credHelpers": {"reg.example": "pass"}, "auths": {}})
    helper = FakeHelper(stdout=json.dumps({"Username": "carol", "Secret": SECRET}))
    creds = load_credentials("reg.example", config_file=path, runner=helper)
    assert helper.calls == [(["docker-credential-pass", "get"], "reg.example")]
    assert (
        creds is not None and creds.password == SECRET and creds.source == "docker-credential-pass"
    )


def test_creds_store_and_identity_token(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"credsStore": "secretservice"})
    helper = FakeHelper(stdout=json.dumps({"Username": "<token>", "Secret": "refresh"}))
    creds = load_credentials("reg.example", config_file=path, runner=helper)
    assert creds is not None and creds.identity_token == "refresh"


def test_helper_without_credentials_falls_back(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {"credsStore": "pass", "auths": {"reg.example": {"auth": b64("dave:" + SECRET)}}},
    )
    helper = FakeHelper(returncode=1, stdout="credentials not found in native keychain")
    creds = load_credentials("reg.example", config_file=path, runner=helper)
    assert creds is not None and creds.username == "dave"


def test_helper_failures_never_echo_output(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"credsStore": "pass"})
    helper = FakeHelper(returncode=3, stdout=SECRET, stderr=SECRET)
    with pytest.raises(AuthError) as caught:
        load_credentials("reg.example", config_file=path, runner=helper)
    assert SECRET not in str(caught.value) and "exit 3" in str(caught.value)

    def missing(argv: Sequence[str], **kwargs: Any) -> Result:
        raise CommandError(argv, 127, "not found on PATH")

    with pytest.raises(AuthError, match="could not be run"):
        load_credentials("reg.example", config_file=path, runner=missing)


def test_basic_header() -> None:
    assert Credentials("u", "p").basic_header() == "Basic " + b64("u:p")


def test_challenge_parsing() -> None:
    challenge = Challenge.parse(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push"'
    )
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push",
    }
    assert Challenge.parse('Basic realm="x"').scheme == "basic"
