"""What a Postgres build really has, asked of a running server, against what its option set claims.

The claims come from the meson options the artifact carries in its annotations (the catalog's
option set, resolved for that release); each feature is then tried for real in a container of the
runnable image: an SQL statement that only works with the feature, or the library a binary links.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# Features PostgreSQL 18 added; an older release has no such meson option.
SINCE_18 = {"libnuma", "liburing", "libcurl"}
ON_OFF = {"ssl": "openssl", "uuid": "e2fs", "cassert": "true"}
# Feature options whose default is "disabled", not "auto": --auto-features does not turn them on.
DEFAULT_DISABLED = {"dtrace", "llvm"}


@dataclass(frozen=True)
class Probe:
    kind: str  # "sql": the statement must succeed and print "t" when it selects;
    #            "sh": the shell command must exit 0
    text: str


def _ldd(binary: str, lib: str) -> Probe:
    return Probe("sh", f'ldd "$(command -v {binary})" | grep -q "{lib}"')


PROBES: dict[str, Probe] = {
    "icu": Probe("sql", "CREATE COLLATION probe_icu (provider = icu, locale = 'und')"),
    "llvm": Probe("sql", "SELECT pg_jit_available()"),
    "lz4": Probe("sql", "SET default_toast_compression = 'lz4'"),
    "zstd": Probe("sql", "SET wal_compression = 'zstd'"),
    "libxml": Probe("sql", "SELECT xmlparse(document '<a/>') IS NOT NULL"),
    "nls": Probe("sh", 'ls "$(pg_config --localedir)"/*/LC_MESSAGES/postgres-*.mo >/dev/null'),
    "readline": _ldd("psql", "libreadline"),
    "zlib": _ldd("pg_dump", "libz.so"),
    "plpython": Probe("sql", "CREATE EXTENSION plpython3u; "
                             "DO $$ plpy.notice('python') $$ LANGUAGE plpython3u"),
    "systemd": _ldd("postgres", "libsystemd"),
    "ssl": Probe("sql", "SELECT current_setting('ssl_library') = 'OpenSSL'"),
    "uuid": Probe("sql", 'CREATE EXTENSION "uuid-ossp"'),
    "cassert": Probe("sql", "SELECT current_setting('debug_assertions') = 'on'"),
    "plperl": Probe("sql", "CREATE EXTENSION plperl"),
    "pltcl": Probe("sql", "CREATE EXTENSION pltcl"),
    "gssapi": _ldd("postgres", "libgssapi_krb5"),
    "ldap": _ldd("postgres", "libldap"),
    "pam": _ldd("postgres", "libpam"),
    "selinux": Probe("sh", 'test -f "$(pg_config --pkglibdir)/sepgsql.so"'),
    "dtrace": Probe("sh", 'grep -q -a stapsdt "$(command -v postgres)"'),
    "libnuma": _ldd("postgres", "libnuma"),
    "liburing": Probe("sql", "SELECT 'io_uring' = ANY(enumvals) FROM pg_settings "
                             "WHERE name = 'io_method'"),
    "libcurl": Probe("sh", 'for f in "$(pg_config --libdir)"/libpq-oauth*.so; do ldd "$f"; done '
                           '| grep -q libcurl'),
    "optimized": Probe("sh", "pg_config --cflags | grep -q -e '-O2' -e '-O3'"),
    "debuginfo": Probe("sh", "pg_config --cflags | grep -q -e ' -g'"),
}


def claimed(meson_options: str, major: int) -> dict[str, bool]:
    """Which probed features the options promise (True) or rule out (False)."""
    opts = dict(o.lstrip("-").removeprefix("D").split("=", 1) for o in meson_options.split())
    auto = opts.get("auto-features", "auto")
    out = {}
    for feature in PROBES:
        if feature in SINCE_18 and major < 18:
            continue
        if feature == "optimized":
            out[feature] = opts.get("buildtype") in ("release", "debugoptimized")
        elif feature == "debuginfo":
            out[feature] = opts.get("buildtype") in ("debug", "debugoptimized")
        elif feature in ON_OFF:
            out[feature] = opts.get(feature) == ON_OFF[feature]
        else:
            value = opts.get(feature, "disabled" if feature in DEFAULT_DISABLED else auto)
            # "auto" depends on what the build found; the catalog never leaves a feature on auto.
            assert value in ("enabled", "disabled"), (feature, value)
            out[feature] = value == "enabled"
    return out


class Server:
    """A running container of a runnable Postgres image, for probing."""

    def __init__(self, name: str) -> None:
        self.name = name

    def sh(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", "exec", self.name, "bash", "-c", command],
                              capture_output=True, text=True, timeout=120)

    def sql(self, statement: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", "exec", self.name, "psql", "-h", "/tmp", "-U", "postgres",
                               "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", statement],
                              capture_output=True, text=True, timeout=120)

    def has(self, feature: str) -> bool:
        probe = PROBES[feature]
        if probe.kind == "sh":
            return self.sh(probe.text).returncode == 0
        proc = self.sql(probe.text)
        if proc.returncode != 0:
            return False
        out = proc.stdout.strip().splitlines()
        # A SELECT must print t; a statement (SET, CREATE, DO) only has to succeed.
        return out[-1] == "t" if probe.text.lstrip().upper().startswith("SELECT") else True


@contextmanager
def running(image: str) -> Iterator[Server]:
    """initdb and start ``image`` (its own user, UID 26); removed afterwards."""
    name = f"monogres-features-{os.getpid()}-{time.monotonic_ns()}"
    script = ("set -e; initdb -D /tmp/data -U postgres --no-sync >/dev/null; "
              "exec postgres -D /tmp/data -c listen_addresses= -c unix_socket_directories=/tmp")
    subprocess.run(["docker", "pull", "-q", image], check=True, capture_output=True)
    started = subprocess.run(["docker", "run", "-d", "--name", name, "--network", "host", image,
                              "bash", "-c", script], capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    server = Server(name)
    try:
        for _ in range(60):
            if server.sql("SELECT 1").returncode == 0:
                break
            time.sleep(1)
        else:
            logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
            raise AssertionError(f"{image} did not start:\n{logs.stdout}{logs.stderr}")
        yield server
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def actual(server: Server, features: list[str]) -> dict[str, bool]:
    return {f: server.has(f) for f in features}
