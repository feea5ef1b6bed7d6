"""The gate for one extension image: mount it in its runnable Postgres, create it, run its suite.

1. The runnable Postgres image of the extension's own build is loaded from the layout, and the
   extension's layer (and those of the extensions it requires) extracted from the layout, each
   checked against its digest, to be mounted read-only at ``/extensions/<name>``.
2. The server starts as CloudNativePG would start it (see ``server``); before PostgreSQL 18,
   which has no ``extension_control_path``, the extension's control, SQL, data and library files are
   put in the Postgres tree instead (as a user of 17 installs them: see ``in_tree``), and each of the image's
   extensions is created with ``CREATE EXTENSION ... CASCADE`` in a database of its own, and
   each module without a control file is loaded with ``LOAD``; that database, and any role the
   extension scripts made, are dropped before the suite, which expects a fresh cluster.
3. The upstream suite runs from the build tree (the ``build`` stage of extension.Dockerfile,
   which BuildKit has cached, exported as an image and run as a container) against that server,
   over 127.0.0.1, with the directories the catalog says the harness shares with the server.
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from monogres_oci.attest.attach import INTOTO_TYPE, PREDICATE_ANNOTATION, attach
from monogres_oci.attest.sign import canonical, digest_set
from monogres_oci.build.compile import ExtensionInvocation, export_build_image
from monogres_oci.catalog.model import Extension
from monogres_oci.errors import GateError
from monogres_oci.gate.results import (
    OUTPUT_TAIL,
    TEST_RESULT_PREDICATE,
    Created,
    GateResult,
    parse_cases,
    result_statement,
)
from monogres_oci.gate.server import (
    BUILD_IMAGE,
    SERVER_LOG_TAIL,
    Mounted,
    Server,
    load_image,
)
from monogres_oci.machine import machine_arch
from monogres_oci.oci.extract import extract_layer
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import Blob, Descriptor, Platform
from monogres_oci.oci.parse import parse_image_config
from monogres_oci.package.contract import FIRST_MAJOR_WITH_CONTROL_PATH, RuntimeContract
from monogres_oci.runner import run


@dataclass(frozen=True)
class GateSubject:
    """An extension image to gate, with how it was built (the suite runs in that build)."""

    extension: Extension
    version: str
    image: Descriptor  # platform manifest in the layout
    platform: Platform
    invocation: ExtensionInvocation
    log_dir: Path | None = None  # where to keep the suite's output (beside the build's log)


_GIVEN: set[int] = set()
_GIVING = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listened on a moment ago, and not one given to another
    gate of this process (gates run side by side; a server binds its port only later)."""
    with _GIVING:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in _GIVEN:
                _GIVEN.add(port)
                return port


def _extract(layout: Layout, image: Descriptor, into: Path) -> Mounted:
    manifest = layout.read_manifest(image.digest)
    config = parse_image_config(layout.read_blob(manifest.config.digest))
    for layer, diff_id in zip(manifest.layers, config.diff_ids, strict=True):
        with layout.open_blob(layer.digest) as blob:
            extract_layer(blob, into, digest=layer.digest, size=layer.size, diff_id=diff_id)
    into.chmod(0o755)
    return Mounted(RuntimeContract.from_labels(config.labels), into)


def _release(layout: Layout, image: Descriptor) -> tuple[str, int]:
    """The PostgreSQL version and major of a runnable image of the layout, from its labels."""
    manifest = layout.read_manifest(image.digest)
    version = parse_image_config(layout.read_blob(manifest.config.digest)).labels[
        "org.monogres.postgres.version"]
    return version, int(version.split(".")[0])


def in_tree(layout: Layout, postgres_image: Descriptor, major: int, mounted: Sequence[Mounted],
            work: Path) -> dict[str, Path]:
    """The Postgres tree's ``share`` and ``lib`` with the mounted extensions' files added, as
    host directories to mount over the image's own (container path -> host path): all of
    ``share``, since a control file's ``directory`` may name one beside ``extension``."""
    manifest = layout.read_manifest(postgres_image.digest)
    tree_layer = manifest.layers[-1]  # the install tree, the same blob as postgresql-dist's
    with layout.open_blob(tree_layer.digest) as blob:
        extract_layer(blob, work, digest=tree_layer.digest, size=tree_layer.size)
    prefix = f"usr/lib/postgresql/{major}"
    merged = {}
    for part in ("share", "lib"):
        target = work / prefix / part
        for m in mounted:
            if (m.root / part).is_dir():
                shutil.copytree(m.root / part, target, dirs_exist_ok=True, symlinks=True)
        merged[f"/{prefix}/{part}"] = target
    return merged


def gate_extension(layout: Layout, subject: GateSubject, postgres_image: Descriptor,
                   required: Sequence[Descriptor], progress: Callable[[str], None],
                   interrupted: Callable[[], bool]) -> GateResult:
    """Run the gate on ``subject`` in ``postgres_image`` (both in ``layout``), with the images of
    the extensions it requires mounted beside it; ``interrupted`` is asked between steps (the
    build is ending: start nothing more)."""
    ext = subject.extension

    def go_on(step: str) -> None:
        if interrupted():
            raise GateError(f"gate {ext.name}: interrupted before {step}")
    progress(f"gate {ext.name} {subject.version} ({subject.platform}): loading the runnable "
             "Postgres image")
    image_name = load_image(layout, postgres_image, subject.platform)
    with tempfile.TemporaryDirectory(prefix=f"monogres-gate-{ext.name}-") as tmp:
        work = Path(tmp)
        mounted = [_extract(layout, d, work / "images" / str(i))
                   for i, d in enumerate((subject.image, *required))]
        port = free_port()
        shared = {}
        for i, path in enumerate(ext.test.shared_dirs):
            shared[path] = work / "shared" / str(i)
            shared[path].mkdir(parents=True)
            shared[path].chmod(0o1777)  # the server (UID 26) and the client (root) write there
        tree = work / "tree"
        for directory in ext.test.tree_on_server:
            (tree / directory).mkdir(parents=True)
        readonly = {f"/build/src/{d}": tree / d for d in ext.test.tree_on_server}
        version, major = _release(layout, postgres_image)
        if major < FIRST_MAJOR_WITH_CONTROL_PATH:
            progress(f"gate {ext.name}: PostgreSQL {major} has no extension_control_path: "
                     "its files go into the Postgres tree, as on a 17 server")
            readonly.update(in_tree(layout, postgres_image, major, mounted, work / "pgtree"))
        server = Server(image_name, subject.platform, mounted, port, work, shared, readonly,
                        ext.test.server_settings, control_path=major >= FIRST_MAJOR_WITH_CONTROL_PATH)
        go_on("its server started")
        server.start()
        try:
            go_on("CREATE EXTENSION")
            progress(f"gate {ext.name}: server up on 127.0.0.1:{port}, "
                     f"{' '.join(server.settings)}")
            roles = set(server.rows("postgres", ROLES))
            server.psql("postgres", "CREATE DATABASE monogres_gate")
            # A module has no control file: LOAD runs its _PG_init, as a preload would.
            created = [_load(server, ext.name, f'CREATE EXTENSION "{n}" CASCADE', n, False,
                             progress) for n in ext.sql_names]
            created += [_load(server, ext.name, f"LOAD '{m}'", m, True, progress)
                        for m in ext.runtime.modules]
            base = GateResult(extension=ext.name, version=subject.version,
                              platform=str(subject.platform), image_digest=subject.image.digest,
                              postgres_image=postgres_image.digest, created=tuple(created))
            if not all(c.ok for c in created):
                return dataclasses.replace(base, skipped="CREATE EXTENSION or LOAD failed",
                                           output_tail=server.logs())
            if ext.test.skip:
                return dataclasses.replace(base, skipped=ext.test.skip)
            _forget_the_check(server, ext.name, roles, progress)
            go_on("the suite's setup")
            _setup(server, ext, progress)
            go_on("the suite")
            # QEMU's user-mode emulation runs a foreign architecture's server and suite.
            known = ext.test.failures_for(
                version, emulated=subject.platform.architecture != machine_arch())
            return _suite(subject, server, port, work, base, known, progress, go_on)
        finally:
            server.stop()


def _load(server: Server, name: str, statement: str, loaded: str, module: bool,
          progress: Callable[[str], None]) -> Created:
    """One CREATE EXTENSION or LOAD in the gate's database."""
    out = server.psql("monogres_gate", statement)
    ok = out.returncode == 0
    error = "" if ok else (out.stdout + out.stderr).strip()
    progress(f"gate {name}: {statement}: " + ("ok" if ok else f"FAILED: {error[-500:]}"))
    return Created(loaded, ok, error[-2000:], module=module)


ROLES = "SELECT rolname FROM pg_roles ORDER BY 1"


def _forget_the_check(server: Server, name: str, roles_before: set[str],
                      progress: Callable[[str], None]) -> None:
    """Drop the check's database and the roles its CREATE EXTENSION made (roles are the
    cluster's, not the database's: powa's script makes its own), so that the suite starts from
    the cluster its harness expects, as fresh as initdb left it."""
    out = server.psql("postgres", "DROP DATABASE monogres_gate WITH (FORCE)")
    if out.returncode != 0:
        raise GateError(f"{name}: cannot drop the database of the CREATE EXTENSION check before "
                        f"the suite: {(out.stdout + out.stderr).strip()}")
    made = [r for r in server.rows("postgres", ROLES) if r not in roles_before]
    for role in made:
        quoted = '"' + role.replace('"', '""') + '"'
        out = server.psql("postgres", f"DROP ROLE {quoted}")
        if out.returncode != 0:
            raise GateError(f"{name}: cannot drop the role {role!r} that CREATE EXTENSION made "
                            f"before the suite: {(out.stdout + out.stderr).strip()}")
    if made:
        progress(f"gate {name}: dropped the roles CREATE EXTENSION made ({', '.join(made)}) "
                 "before the suite")


def _setup(server: Server, ext: Extension, progress: Callable[[str], None]) -> None:
    """The environment the suite expects on the server, as the catalog describes it."""
    for directory in ext.test.server_dirs:
        out = server.exec(["mkdir", "-p", directory])
        if out.returncode != 0:
            raise GateError(f"{ext.name}: cannot make {directory} in the server: {out.stderr}")
    for sql in ext.test.setup:
        out = server.psql("postgres", sql)
        if out.returncode != 0:
            raise GateError(f"{ext.name}: test.setup statement {sql!r} failed: "
                            f"{(out.stdout + out.stderr).strip()}")
        progress(f"gate {ext.name}: setup: {sql}")


SUITE_SCRIPT = "/usr/local/lib/monogres/run-suite.sh"
SUITE_TIMEOUT = 4 * 3600.0  # PostGIS's whole suite under QEMU takes hours


def _suite(subject: GateSubject, server: Server, port: int, work: Path, base: GateResult,
           known: Mapping[str, str], progress: Callable[[str], None],
           go_on: Callable[[str], None]) -> GateResult:
    """Run the suite script of the build tree (exported as an image) against ``server``."""
    ext, build = subject.extension, subject.invocation
    image = f"{BUILD_IMAGE}:{subject.image.digest.removeprefix('sha256:')[:24]}"
    progress(f"gate {ext.name}: exporting its build tree as {image}")
    export_build_image(build, image, progress=lambda _: None)
    dest = work / "results"
    dest.mkdir()
    suite = ext.test
    env = {"PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": "postgres",
           "TEST_COMMAND": " ".join(suite.command), "TEST_REGRESS": " ".join(suite.regress),
           "TEST_INPUTDIR": suite.inputdir, "TEST_OPTIONS": " ".join(suite.options),
           "TEST_TREE_ON_SERVER": " ".join(suite.tree_on_server)}
    # Named, so that it is removed however this ends: a timeout or an interruption kills the
    # docker client, and a container whose client is gone runs on (seen: a suite spinning
    # under QEMU outlived the build that started it).
    container = f"{server.name}-suite"
    try:
        go_on("the suite's container started")  # the export takes a while
        progress(f"gate {ext.name}: running the upstream suite in the build tree")
        # The image is recorded for the target's platform whatever ran the compiler: a cross
        # build's tree holds the build machine's programs, which the kernel runs as they are.
        run(["docker", "run", "--rm", "--name", container, "--network", "host",
             "--platform", build.platform,
             *(a for k, v in sorted(env.items()) for a in ("-e", f"{k}={v}")),
             "-v", f"{dest}:/results", "-v", f"{work / 'tree'}:/monogres/tree",
             *server.shared_mounts, image, SUITE_SCRIPT],
            what=f"the upstream suite of {ext.name}", timeout=SUITE_TIMEOUT)
    finally:
        run(["docker", "rm", "--force", container], check=False)
        run(["docker", "image", "rm", image], check=False)
    output = (dest / "output.txt").read_text(errors="replace")
    exit_code = int((dest / "exit-code").read_text().strip() or "0")
    if subject.log_dir is not None:
        # The harness's own files (diffs, logs in its shared directories) beside its output.
        shutil.rmtree(subject.log_dir, ignore_errors=True)
        shutil.copytree(dest, subject.log_dir)
        for i in range(len(suite.shared_dirs)):
            shutil.copytree(work / "shared" / str(i), subject.log_dir / f"shared-{i}",
                            ignore_dangling_symlinks=True)
    # The server's whole log goes beside the suite's output (what a failed test's diff does not
    # say, a worker's error, is often only there); the result keeps its tail.
    server_log = server.logs(tail=None if subject.log_dir is not None else SERVER_LOG_TAIL)
    if subject.log_dir is not None:
        (subject.log_dir / "server.log").write_text(server_log + "\n")
        server_log = "\n".join(server_log.splitlines()[-SERVER_LOG_TAIL:])
    command_file = dest / "command.txt"
    if not command_file.is_file():  # the script found no suite to run
        return dataclasses.replace(base, skipped=output.strip(), exit_code=exit_code)
    cases = parse_cases(output, suite, known)
    tail = "\n".join(output.splitlines()[-OUTPUT_TAIL:])
    diffs = sorted(dest.glob("*regression.diffs"))
    if diffs:
        tail += "\n" + "\n".join(diffs[0].read_text(errors="replace").splitlines()[:OUTPUT_TAIL])
    if subject.log_dir is not None:
        tail += f"\n(the suite's whole output: {subject.log_dir})"
    return dataclasses.replace(base, cases=cases,
                               command=tuple(command_file.read_text().split("\n")[:-1]),
                               exit_code=exit_code, output_tail=tail + "\n" + server_log)


def attach_result(layout: Layout, image: Descriptor, result: GateResult, runnable: Descriptor,
                  recipe_digest: str) -> None:
    """Attach the gate's result to the image it tested, as the SBOM and provenance are
    (signed with them by ``publish --sign-key``)."""
    configuration = [
        {"name": "postgresql (runnable image)", "digest": digest_set(runnable.digest)},
        {"name": "dockerfiles/extension.Dockerfile (test stage)",
         "digest": digest_set(f"sha256:{recipe_digest}")},
    ]
    stmt = result_statement(result, configuration)
    config = layout.read_manifest(image.digest).config
    created = parse_image_config(layout.read_blob(config.digest)).created or ""
    attach(layout, image, INTOTO_TYPE, Blob(canonical(stmt), INTOTO_TYPE),
           {PREDICATE_ANNOTATION: TEST_RESULT_PREDICATE, "org.opencontainers.image.created": created})
