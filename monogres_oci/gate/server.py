"""The runnable Postgres image of a build, started the way CloudNativePG runs it.

Extension images are mounted read-only at ``/extensions/<name>``; the server gets
``extension_control_path`` and ``dynamic_library_path`` over them, ``LD_LIBRARY_PATH`` from
their ``ld_library_path``, ``PATH`` from their ``bin_path``, their ``env`` with ``${image_root}``
replaced by the mount point, and the libraries they need preloaded, as the operator would set
them. The data directory is a fresh ``initdb`` owned by UID 26. It listens on 127.0.0.1 only
(the host network, for the suite's client) and on a socket for ``psql`` inside the container.

The image comes out of the OCI layout: loaded into the engine's image store once per manifest
digest (``docker load`` of an OCI archive), so the very bytes about to be published are run. The
few most recently loaded stay for later gates; older ones are removed (each is a whole Postgres,
0.2-0.6 GB, and a machine building release after release would keep every one).
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from monogres_oci.errors import CommandError, GateError
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import Descriptor, Index, Platform
from monogres_oci.package.contract import MOUNT_ROOT, RuntimeContract
from monogres_oci.runner import Result, run

SERVER_LOG_TAIL = 60  # lines of the server's log a gate result keeps

POSTGRES_UID = 26
SOCKET_DIR = "/tmp"
DATA_DIR = "/var/lib/postgresql/data"
READY_TIMEOUT = 300.0  # an emulated (QEMU) server starts slowly
IMAGE_NAME = "monogres-gate/postgresql"
BUILD_IMAGE = "monogres-gate/build"
KEEP_LOADED = 6  # runnable images kept: the Postgres builds one invocation or test run gates
_LOADING = threading.Lock()  # gates run side by side; one `docker load` of an image is enough


def container_prefix() -> str:
    """What the names of this process's gate containers begin with (server and suite)."""
    return f"monogres-gate-{os.getpid()}-"


def remove_own_containers() -> None:
    """Remove every gate container this process started: an interrupted gate's threads then
    find their server and suite gone and end."""
    listed = run(["docker", "ps", "--all", "--quiet", "--filter",
                  f"name=^{container_prefix()}"], check=False)
    if ids := listed.stdout.split():
        run(["docker", "rm", "--force", *ids], check=False)


def load_image(layout: Layout, image: Descriptor, platform: Platform,
               repository: str = IMAGE_NAME, keep: int = KEEP_LOADED) -> str:
    """Load one platform image of the layout into the engine's image store; return its name.

    Skipped when an image of that name (named by the manifest digest) is already there. After a
    load, the images of ``repository`` beyond the ``keep`` most recently loaded are removed.
    """
    name = f"{repository}:{image.digest.removeprefix('sha256:')[:24]}"
    with _LOADING:
        if run(["docker", "image", "inspect", name], check=False).returncode != 0:
            _load(layout, image, platform, name)
            _remove_older(repository, keep, name)
    return name


def _remove_older(repository: str, keep: int, loaded: str) -> None:
    """Remove the images of ``repository`` but the ``keep`` most recently loaded (``loaded``
    among them). Without ``--force``: the engine refuses to remove one a container still uses
    (another gate's server), which then stays until a later load."""
    listed = run(["docker", "image", "ls", "--filter", f"reference={repository}",
                  "--format", "{{.Repository}}:{{.Tag}}"], check=False)
    others = [n for n in dict.fromkeys(listed.stdout.split()) if n != loaded]
    if len(others) < keep:
        return
    # The engine records when a name was last tagged: for these, when they were loaded.
    times = run(["docker", "image", "inspect", "--format", "{{.Metadata.LastTagTime.UnixNano}}",
                 *others], check=False).stdout.split()
    if len(times) != len(others):  # one vanished meanwhile (another process): next load
        return
    by_age = sorted(zip((int(t) for t in times), others, strict=True), reverse=True)
    for _, old in by_age[keep - 1:]:
        run(["docker", "image", "rm", old], check=False)


def _load(layout: Layout, image: Descriptor, platform: Platform, name: str) -> None:
    manifest = layout.read_manifest(image.digest)
    blobs = [image.digest, manifest.config.digest, *(layer.digest for layer in manifest.layers)]
    entry = Descriptor(image.media_type, image.digest, image.size,
                       {"io.containerd.image.name": f"docker.io/{name}",
                        "org.opencontainers.image.ref.name": name.rpartition(":")[2]},
                       platform=platform)
    with tempfile.TemporaryDirectory(prefix="monogres-gate-load-") as tmp:
        archive = Path(tmp) / "image.tar"
        with tarfile.open(archive, "w") as tar:
            _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            _add_bytes(tar, "index.json", Index(manifests=(entry,)).to_json())
            for digest in dict.fromkeys(blobs):
                tar.add(layout.blob_path(digest), f"blobs/sha256/{digest.removeprefix('sha256:')}")
        run(["docker", "load", "--input", str(archive)], what=f"docker load of {name}")


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        tar.addfile(info, f)


@dataclass(frozen=True)
class Mounted:
    """An extension image's files on the host, to be mounted at /extensions/<name>."""

    contract: RuntimeContract
    root: Path

    @property
    def mount(self) -> str:
        return f"{MOUNT_ROOT}/{self.contract.name}"


def server_settings(mounted: Sequence[Mounted], base_path: str,
                    control_path: bool = True) -> tuple[dict[str, str], list[str]]:
    """The environment and the ``-c`` settings CloudNativePG gives a server for these images
    (without ``extension_control_path`` for a Postgres that has none)."""
    env: dict[str, str] = {}
    ld, bins = [], []
    for m in mounted:
        ld += m.contract.paths_at(m.mount, m.contract.ld_library_path)
        bins += m.contract.paths_at(m.mount, m.contract.bin_path)
        env.update(m.contract.env_at(m.mount))
    if ld:
        env["LD_LIBRARY_PATH"] = ":".join(ld)
    env["PATH"] = ":".join([base_path, *bins])
    preload = [lib for m in mounted for lib in m.contract.shared_preload_libraries]
    settings = [
        "extension_control_path=" + ":".join(["$system", *(f"{m.mount}/share" for m in mounted)]),
    ] if control_path else []
    settings.append("dynamic_library_path=" + ":".join(["$libdir", *(f"{m.mount}/lib"
                                                                      for m in mounted)]))
    if preload:
        settings.append("shared_preload_libraries=" + ",".join(dict.fromkeys(preload)))
    return env, settings


class Server:
    """A Postgres server in a container of the runnable image; stop() removes the container."""

    def __init__(self, image: str, platform: Platform, mounted: Sequence[Mounted], port: int,
                 workdir: Path, shared: Mapping[str, Path] | None = None,
                 readonly: Mapping[str, Path] | None = None,
                 test_settings: Sequence[tuple[str, str]] = (), control_path: bool = True) -> None:
        self.image = image
        self.platform = platform
        self.port = port
        self.name = f"{container_prefix()}{port}"
        # Host directories mounted in the server and in the suite's client at the same path.
        self.shared_mounts = [a for path, host in sorted((shared or {}).items())
                              for a in ("-v", f"{host}:{path}")]
        # Host directories only the server mounts, read-only (files of the build tree).
        self.readonly_mounts = [a for path, host in sorted((readonly or {}).items())
                                for a in ("-v", f"{host}:{path}:ro")]
        self.data = workdir / "data"
        self.data.mkdir(parents=True)
        os.chown(self.data, POSTGRES_UID, POSTGRES_UID)
        self.mounts = [arg for m in mounted for arg in ("-v", f"{m.root}:{m.mount}:ro")]
        base_path = _image_path(image)
        self.env, self.settings = server_settings(mounted, base_path, control_path)
        # The suite's own configuration (its --temp-config), after the contract's settings.
        self.settings += [f"{name}={value}" for name, value in test_settings]

    def start(self) -> None:
        common = ["--platform", str(self.platform), "--network", "host",
                  "--user", f"{POSTGRES_UID}:{POSTGRES_UID}", "-v", f"{self.data}:{DATA_DIR}"]
        run(["docker", "run", "--rm", *common, self.image, "initdb", "-D", DATA_DIR,
             "-U", "postgres", "--auth=trust", "--no-sync"],
            what=f"initdb in {self.image}", timeout=READY_TIMEOUT)
        # libpq inside the server (an extension connecting to its own server, as pglogical's
        # DSNs that name only a database do) finds it by these.
        env = {**self.env, "PGHOST": SOCKET_DIR, "PGPORT": str(self.port)}
        env_args = [arg for k, v in sorted(env.items()) for arg in ("-e", f"{k}={v}")]
        gucs = [arg for s in [f"port={self.port}", "listen_addresses=127.0.0.1",
                              f"unix_socket_directories={SOCKET_DIR}", "fsync=off",
                              *self.settings] for arg in ("-c", s)]
        run(["docker", "run", "-d", "--name", self.name, *common, *self.mounts,
             *self.shared_mounts, *self.readonly_mounts, *env_args, self.image, "postgres",
             "-D", DATA_DIR, *gucs],
            what=f"starting {self.image}")
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.exec(["pg_isready", "-q", "-h", SOCKET_DIR, "-p", str(self.port)]).returncode == 0:
                return
            if not self._running():
                break
            time.sleep(1)
        raise GateError(f"the server in {self.image} did not start; its log:\n{self.logs()}")

    def _running(self) -> bool:
        state = run(["docker", "inspect", "-f", "{{.State.Running}}", self.name], check=False)
        return state.stdout.strip() == "true"

    def exec(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
             timeout: float = 600) -> Result:
        env_args = [arg for k, v in sorted((env or {}).items()) for arg in ("-e", f"{k}={v}")]
        try:
            return run(["docker", "exec", *env_args, self.name, *argv], check=False,
                       timeout=timeout)
        except CommandError as exc:  # a timeout: the server hangs
            return Result(tuple(argv), exc.returncode, "", exc.output)

    def psql(self, database: str, sql: str, output: str = "-q") -> Result:
        """Run ``sql`` as the superuser, with the server's own environment (as its backends);
        ``output``: psql's output option (quiet by default)."""
        return self.exec(["psql", "-X", output, "-v", "ON_ERROR_STOP=1", "-h", SOCKET_DIR,
                          "-p", str(self.port), "-U", "postgres", "-d", database, "-c", sql])

    def rows(self, database: str, sql: str) -> list[str]:
        """The rows ``sql`` returns, one line each (unaligned, tuples only)."""
        out = self.psql(database, sql, "-At")
        if out.returncode != 0:
            raise GateError(f"the gate's server did not answer {sql!r}: "
                            f"{(out.stdout + out.stderr).strip()}")
        return out.stdout.splitlines()

    def logs(self, tail: int | None = SERVER_LOG_TAIL) -> str:
        """The server's log: its last ``tail`` lines, or all of it."""
        out = run(["docker", "logs", *(("--tail", str(tail)) if tail else ()), self.name],
                  check=False)
        return (out.stdout + out.stderr).strip()

    def stop(self) -> None:
        run(["docker", "rm", "-f", self.name], check=False)
        shutil.rmtree(self.data, ignore_errors=True)


def _image_path(image: str) -> str:
    """The PATH the runnable image sets (its Postgres bin first)."""
    out = run(["docker", "image", "inspect", "-f", "{{json .Config.Env}}", image],
              what=f"inspecting {image}")
    for item in json.loads(out.stdout) or []:
        if item.startswith("PATH="):
            return str(item[5:])
    return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
