"""Postgres started from the published artifacts loads the published extensions and runs their C code."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import EXTENSIONS, Published, cli, rolling

pytestmark = pytest.mark.e2e

QUERIES = {
    "hello": ("SELECT hello('oci'), hello_version_num()", "hello, oci|180006"),
    "rum": ("CREATE TABLE docs(t tsvector); "
            "INSERT INTO docs SELECT to_tsvector('english', 'image volume ' || g) "
            "FROM generate_series(1, 200) g; "
            "CREATE INDEX ON docs USING rum (t rum_tsvector_ops); SET enable_seqscan = off; "
            "SELECT count(*) FROM docs WHERE t @@ to_tsquery('english', 'volume')", "200"),
    "pgaudit": ("SELECT setting FROM pg_settings WHERE name = 'pgaudit.log'", "none"),
}


def _psql(psql: list[str], sql: str) -> str:
    proc = subprocess.run([*psql, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip()


def _exercise(psql: list[str]) -> None:
    for ext in EXTENSIONS:
        _psql(psql, f"CREATE EXTENSION {ext}")
    assert _psql(psql, "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension") \
        == "hello,pgaudit,plpgsql,rum"
    for sql, expected in QUERIES.values():
        assert _psql(psql, sql).splitlines()[-1] == expected
    assert _psql(psql, "SHOW shared_preload_libraries") == "pgaudit"


def _wait(psql: list[str], log: Path | None = None) -> None:
    for _ in range(60):
        if subprocess.run([*psql, "-c", "SELECT 1"], capture_output=True).returncode == 0:
            return
        time.sleep(1)
    raise AssertionError("postgres did not start" + (f":\n{log.read_text()}" if log else ""))


def test_bare_metal_install_and_run(published: Published, world_dir: Path) -> None:
    """`monogres-oci install` the scratch Postgres artifact and the extensions, then run them."""
    tmp_path = world_dir
    dest = tmp_path / "root"
    refs = [published.tag_ref(rolling("postgresql-dist"))]
    refs += [published.tag_ref(rolling(ext)) for ext in EXTENSIONS]
    out = json.loads(cli("install", *refs, "--dest", str(dest), "--key",
                         str(published.keys.public), "--json").stdout)
    conf = out["postgresql_conf"]
    assert "shared_preload_libraries = 'pgaudit'" in conf
    bindir = dest / "usr/lib/postgresql/18/bin"
    assert (bindir / "postgres").is_file()
    for ext in EXTENSIONS:
        assert (dest / ext / "share/extension" / f"{ext}.control").is_file()
    # read-only, as an image volume is
    subprocess.run(["chmod", "-R", "a-w", *[str(dest / e) for e in EXTENSIONS]], check=True)
    # Postgres refuses to run as root: run it as nobody, in a directory nobody owns.
    data, sock = tmp_path / "data", tmp_path / "sock"
    sock.mkdir()
    subprocess.run(["chown", "nobody", str(sock)], check=True)
    data.mkdir()
    subprocess.run(["chown", "nobody", str(data)], check=True)
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    subprocess.run([*as_nobody, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                    "--no-sync"], check=True, capture_output=True)
    with open(data / "postgresql.auto.conf", "a") as f:
        f.write("\n".join(conf) + "\n")
    log = tmp_path / "pg.log"
    with open(log, "w") as log_file:
        server = subprocess.Popen([*as_nobody, str(bindir / "postgres"), "-D", str(data), "-c",
                                   "listen_addresses=", "-c", f"unix_socket_directories={sock}"],
                                  stdout=log_file, stderr=subprocess.STDOUT)
    try:
        psql = [*as_nobody, str(bindir / "psql"), "-h", str(sock), "-U", "postgres", "postgres"]
        _wait(psql, log)
        _exercise(psql)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_runnable_image_with_image_volume_layout(published: Published, tmp_path: Path) -> None:
    """docker run the published Postgres image with each extension mounted read-only at
    /extensions/<name> and the GUCs exactly as CloudNativePG sets them."""
    image = published.tag_ref(rolling("postgresql"))
    mounts, control, libs = [], ["$system"], ["$libdir"]
    for ext in EXTENSIONS:
        target = tmp_path / ext
        cli("install", published.tag_ref(rolling(ext)), "--dest", str(tmp_path),
            "--key", str(published.keys.public))
        mounts += ["-v", f"{target}:/extensions/{ext}:ro"]
        control.append(f"/extensions/{ext}/share")
        libs.append(f"/extensions/{ext}/lib")
    name = f"monogres-test-{os.getpid()}"
    script = ("set -e; id -u > /tmp/uid; "
              "for b in initdb postgres pg_ctl pg_controldata pg_basebackup; do command -v $b; done; "
              "initdb -D /tmp/data -U postgres --no-sync >/dev/null; "
              "exec postgres -D /tmp/data -c listen_addresses= -c unix_socket_directories=/tmp "
              f"-c extension_control_path='{':'.join(control)}' "
              f"-c dynamic_library_path='{':'.join(libs)}' -c shared_preload_libraries=pgaudit")
    subprocess.run(["docker", "pull", image], check=True, capture_output=True)
    run = subprocess.run(["docker", "run", "-d", "--name", name, "--network", "host", *mounts,
                          image, "bash", "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    try:
        psql = ["docker", "exec", name, "psql", "-h", "/tmp", "-U", "postgres", "postgres"]
        _wait(psql)
        uid = subprocess.run(["docker", "exec", name, "cat", "/tmp/uid"], capture_output=True,
                             text=True, check=True).stdout.strip()
        assert uid == "26"
        _exercise(psql)
    finally:
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        print(logs.stdout[-3000:], logs.stderr[-3000:])
