"""A real registry for tests: Debian's ``docker-registry`` (distribution 2.8) on 127.0.0.1.

``start_registry(workdir)`` runs ``docker-registry serve CONFIG`` on a free port with its storage
under ``workdir``, optionally with htpasswd Basic auth (bcrypt, made with ``htpasswd -Bbn``)
and/or TLS with a self-signed certificate for 127.0.0.1 (made with ``openssl req -x509``). It
returns once ``/v2/`` answers; ``stop()`` ends that one process by its PID.

``registry_server(...)`` is the same as a context manager. Pytest fixtures live in the test
packages' conftest files, so this module imports nothing from pytest.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
import urllib3

from monogres_oci.runner import run

REGISTRY_BIN = "docker-registry"
START_TIMEOUT = 20.0


def have_registry() -> bool:
    """Tell whether the registry binary (and htpasswd, for auth) are installed."""
    return shutil.which(REGISTRY_BIN) is not None


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_self_signed_cert(directory: Path,
                          names: str = "IP:127.0.0.1,DNS:localhost") -> tuple[Path, Path]:
    """Create a self-signed certificate valid for ``names`` (subjectAltName entries; by default
    127.0.0.1 and localhost); return (cert, key)."""
    cert, key = directory / "registry.crt", directory / "registry.key"
    run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", f"subjectAltName={names}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-keyout", str(key), "-out", str(cert),
        ],
        what="making a self-signed test certificate",
    )  # fmt: skip
    return cert, key


def make_htpasswd(path: Path, username: str, password: str) -> None:
    """Write a bcrypt htpasswd file (distribution only accepts bcrypt)."""
    result = run(["htpasswd", "-Bbn", username, password], what="making an htpasswd file")
    path.write_text(result.stdout)


@dataclass
class RunningRegistry:
    """A registry process started by :func:`start_registry`."""

    host: str
    root: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None

    @property
    def pid(self) -> int:
        """The registry's process id."""
        return self.process.pid

    @property
    def insecure(self) -> bool:
        """Whether it speaks plain HTTP."""
        return self.ca_file is None

    @property
    def url(self) -> str:
        """The registry's base URL."""
        return f"{'http' if self.insecure else 'https'}://{self.host}"

    def docker_config(self, directory: Path, password: str | None = None) -> Path:
        """Write a Docker config dir whose ``auths`` hold our (or the given) credentials."""
        directory.mkdir(parents=True, exist_ok=True)
        secret = password if password is not None else self.password
        pair = base64.b64encode(f"{self.username}:{secret}".encode()).decode()
        config = {"auths": {self.host: {"auth": pair}}}
        (directory / "config.json").write_text(json.dumps(config))
        return directory

    def log(self) -> str:
        """Return what the registry printed."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop the registry process (by its PID only) and wait for it, and remove from the
        engine the images tests pulled from it: its port is random, so nothing would use them
        again, and each run would otherwise leave gigabytes behind on a machine that keeps its
        engine (a developer's, or a CI runner's)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        forget_pulled_images(self.host)


def forget_pulled_images(host: str) -> None:
    """Remove from the engine the names under ``host`` (by name, never by image ID: an ID
    may also carry names that are not ours); nothing when there is no engine."""
    if shutil.which("docker") is None:
        return
    listed = subprocess.run(["docker", "images", "--digests", "--format",
                             "{{.Repository}} {{.Tag}} {{.Digest}}"],
                            capture_output=True, text=True, check=False)
    names = []
    for line in listed.stdout.splitlines():
        repository, tag, digest = (line.split() + ["", "", ""])[:3]
        if repository.startswith(f"{host}/"):
            names.append(f"{repository}:{tag}" if tag != "<none>" else f"{repository}@{digest}")
    if names:
        subprocess.run(["docker", "image", "rm", *dict.fromkeys(names)],
                       capture_output=True, check=False)


def _config(root: Path, port: int, htpasswd: Path | None, tls: tuple[Path, Path] | None) -> str:
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {root / 'storage'}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        "  secret: monogres-test-secret",
    ]
    if tls is not None:
        lines += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
    if htpasswd is not None:
        lines += ["auth:", "  htpasswd:", "    realm: monogres-test", f"    path: {htpasswd}"]
    return "\n".join(lines) + "\n"


def _wait_ready(registry: RunningRegistry, names_host: bool = True) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    verify: str | bool = str(registry.ca_file) if registry.ca_file else True
    if not names_host:  # a certificate for another name, on purpose: only wait for an answer
        verify = False
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    while time.monotonic() < deadline:
        if registry.process.poll() is not None:
            raise RuntimeError(
                f"docker-registry exited with {registry.process.returncode}:\n{registry.log()}"
            )
        try:
            reply = requests.get(f"{registry.url}/v2/", timeout=2, verify=verify)
            if reply.status_code in (200, 401):
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    registry.stop()
    raise RuntimeError(f"docker-registry did not answer in {START_TIMEOUT}s:\n{registry.log()}")


def start_registry(
    workdir: Path,
    *,
    auth: tuple[str, str] | None = None,
    tls: bool = False,
    tls_names: str = "IP:127.0.0.1,DNS:localhost",
) -> RunningRegistry:
    """Start a registry storing under ``workdir``; optional Basic auth (user, password) and TLS."""
    workdir.mkdir(parents=True, exist_ok=True)
    htpasswd = None
    if auth is not None:
        htpasswd = workdir / "htpasswd"
        make_htpasswd(htpasswd, *auth)
    cert = make_self_signed_cert(workdir, tls_names) if tls else None
    last_error: Exception | None = None
    for _ in range(3):  # another process may grab the free port before the registry binds it
        port = free_port()
        config = workdir / "config.yml"
        config.write_text(_config(workdir, port, htpasswd, cert))
        log_path = workdir / "registry.log"
        # A long-running server, so not runner.run (which waits for commands to finish).
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [REGISTRY_BIN, "serve", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        registry = RunningRegistry(
            host=f"127.0.0.1:{port}",
            root=workdir,
            process=process,
            log_path=log_path,
            username=auth[0] if auth else None,
            password=auth[1] if auth else None,
            ca_file=cert[0] if cert else None,
        )
        try:
            _wait_ready(registry, names_host="IP:127.0.0.1" in tls_names)
            return registry
        except RuntimeError as exc:
            last_error = exc
            registry.stop()
    raise RuntimeError(f"could not start docker-registry: {last_error}")


@contextmanager
def registry_server(
    workdir: Path, *, auth: tuple[str, str] | None = None, tls: bool = False
) -> Iterator[RunningRegistry]:
    """Run a registry for the duration of a ``with`` block."""
    registry = start_registry(workdir, auth=auth, tls=tls)
    try:
        yield registry
    finally:
        registry.stop()
