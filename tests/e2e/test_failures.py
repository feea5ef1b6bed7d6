"""Bad input and broken parts fail clearly, early, and without half-published results."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from monogres_oci.gate.server import SOCKET_DIR
from tests.e2e.conftest import CACHE, REPO, Built, Published, build_args, cli
from tests.support.registry import free_port, registry_server
from tests.unit.consume.test_cnpg import crd_schema

pytestmark = pytest.mark.e2e


def test_checksum_mismatch_builds_nothing(built: Built, tmp_path: Path) -> None:
    data = yaml.safe_load(built.catalog.read_text())
    source = data["extensions"]["hello"]["versions"][0]["source"]
    source["sha256"] = "0" * 64
    catalog = tmp_path / "extensions.yaml"
    catalog.write_text(yaml.safe_dump(data))
    out = tmp_path / "oci"
    proc = cli(*build_args(catalog, built.base_image, out, "hello"), check=False)
    assert proc.returncode == 1
    assert "checksum mismatch for hello-1.0.tar.gz" in proc.stderr
    assert "expected sha256:" + "0" * 64 in proc.stderr
    assert "got      sha256:" in proc.stderr
    assert "Traceback" not in proc.stderr
    # nothing compiled, nothing packaged
    assert "compiling" not in proc.stderr
    index = out / "index.json"
    assert not index.exists() or json.loads(index.read_text())["manifests"] == []


def test_failed_extension_shows_its_log_and_spares_the_others(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "oci"
    proc = cli(*build_args(built.catalog, built.base_image, out, "broken", "hello"), check=False)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    by_ext = {r["name"].split("-")[0]: r for r in report["targets"]}
    assert by_ext["hello"]["ok"] and by_ext["postgres"]["ok"]
    assert not by_ext["broken"]["ok"]
    assert "this extension is broken on purpose" in by_ext["broken"]["error"]
    assert "this extension is broken on purpose" in proc.stderr  # the log tail, for people
    # its log holds a byte that is not UTF-8: still a failed build, not a traceback
    assert "Traceback" not in proc.stderr
    refs = report["refs"]
    assert any(r.startswith("hello:") for r in refs)
    assert not any(r.startswith("broken:") for r in refs)


def test_unreachable_registry(built: Built) -> None:
    port = free_port()
    proc = cli("publish", "--registry", f"127.0.0.1:{port}/x", "--layout", str(built.layout),
               check=False)
    assert proc.returncode == 1
    assert f"127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_wrong_credentials_are_refused_without_echoing_them(built: Built, tmp_path: Path) -> None:
    with registry_server(tmp_path / "reg", auth=("ci", "right-password")) as reg:
        config = reg.docker_config(tmp_path / "docker", password="wrong-password-123")
        proc = cli("publish", "--registry", f"{reg.host}/x", "--layout", str(built.layout),
                   check=False, env={"DOCKER_CONFIG": str(config)})
        assert proc.returncode == 1
        assert reg.host in proc.stderr
        assert "wrong-password-123" not in proc.stderr + proc.stdout
        assert "Traceback" not in proc.stderr
        # and with the right ones it works
        good = reg.docker_config(tmp_path / "docker-ok")
        ok = cli("publish", "--registry", f"{reg.host}/x", "--layout", str(built.layout),
                 "--json", env={"DOCKER_CONFIG": str(good)})
        assert json.loads(ok.stdout)["refs"]


def test_cnpg_manifests_pin_published_digests(published: Published, built: Built) -> None:
    proc = cli("cnpg", "--catalog", str(built.catalog), "--registry",
               f"{published.registry.host}/{published.namespace}", "--postgres", "18.6",
               "--extension", "pgaudit", "--extension", "rum")
    cluster, catalog = list(yaml.safe_load_all(proc.stdout))
    jsonschema.validate(cluster, crd_schema("postgresql.cnpg.io_clusters.yaml"))
    jsonschema.validate(catalog, crd_schema("postgresql.cnpg.io_imagecatalogs.yaml"))
    pg = cluster["spec"]["postgresql"]
    assert pg["shared_preload_libraries"] == ["pgaudit"]
    published_refs = set(published.refs.values())
    for ext in pg["extensions"]:
        assert ext["image"]["reference"] in published_refs
    assert cluster["spec"]["imageName"] in published_refs
    assert catalog["spec"]["images"][0]["major"] == 18


def _gate_containers(pid: int) -> list[str]:
    """The names of the gate containers (servers and suites) a monogres-oci process started."""
    listed = subprocess.run(["docker", "ps", "--all", "--format", "{{.Names}}", "--filter",
                             f"name=monogres-gate-{pid}-"], capture_output=True, text=True,
                            check=True)
    return listed.stdout.split()


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_terminated_gate_leaves_no_container_running(built: Built, tmp_path: Path,
                                                       jobs: int) -> None:
    # SIGTERM (a cancelled CI job) while the gate runs rum's upstream suite: the command says so
    # and exits 128 + 15, and neither the gate's server nor the suite's container outlives it
    # (the suite's container used to: its docker client was killed, the container ran on).
    # With --jobs 2, pgaudit's gate runs beside rum's, in another thread: its containers too.
    layout = tmp_path / "oci"
    shutil.copytree(built.layout, layout)
    names = ["rum"] if jobs == 1 else ["rum", "pgaudit"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "monogres_oci", "test", "--layout", str(layout),
         *(a for n in names for a in ("--extension", n)), "--jobs", str(jobs),
         "--catalog", str(built.catalog), "--cache-dir", str(CACHE),
         "--base", f"bookworm={built.base_image}"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    servers: set[str] = set()  # every gate server seen, and the most seen at once
    most = [0]
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            now = {n for n in _gate_containers(proc.pid) if not n.endswith("-suite")}
            servers.update(now)
            most[0] = max(most[0], len(now))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if "gate rum: running the upstream suite" in line:
                break
        else:
            raise AssertionError("the gate never ran the suite:\n" + "".join(seen[-30:]))
        # The suite's container starts after that line: a second or two on a busy machine
        # (with --jobs 2 the other gate's server starts beside it), seen to take longer.
        deadline = time.monotonic() + 60
        running = _gate_containers(proc.pid)
        while not any(n.endswith("-suite") for n in running) and time.monotonic() < deadline:
            time.sleep(0.2)
            running = _gate_containers(proc.pid)
        time.sleep(1)
    finally:
        watching.set()
        watcher.join()
    running = _gate_containers(proc.pid)
    assert len(running) >= 2 and any(n.endswith("-suite") for n in running), running
    assert most[0] == jobs, (most[0], servers)  # --jobs 2: the two gates' servers side by side
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM, rest
    assert "monogres-oci: terminated" in rest and "Traceback" not in rest
    assert _gate_containers(proc.pid) == []


def test_a_builder_buildx_does_not_know_is_refused_before_anything_is_fetched(
        tmp_path: Path) -> None:
    proc = cli("build", "--postgres", "18.6", "--extension", "rum", "--arch", "amd64",
               "--builder", "no-such-builder", "--out", str(tmp_path / "oci"), check=False)
    assert proc.returncode == 2
    assert 'no builder "no-such-builder" found' in proc.stderr
    assert "docker buildx create" in proc.stderr and "fetch" not in proc.stderr
    assert not (tmp_path / "oci").exists()


def test_a_build_killed_with_its_process_group_starts_nothing_more(built: Built,
                                                                   tmp_path: Path) -> None:
    # `kill -- -PGID` (a CI runner, a shell's job control) signals the build and the docker
    # clients of its gates alike; a `docker exec` killed so exits 0, so the step it ran looks
    # done. Here rum's suite setup waits an hour in its server, pgaudit's gate beside it: the
    # build must end without exporting rum's build tree or starting its suite, and leave no
    # container. (It used to go on to the suite, and a second kill left a server running.)
    data = yaml.safe_load(built.catalog.read_text())
    data["extensions"]["rum"].setdefault("test", {})["setup"] = ["SELECT pg_sleep(3600)"]
    catalog = tmp_path / "extensions.yaml"
    catalog.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen(
        [sys.executable, "-m", "monogres_oci",
         *build_args(catalog, built.base_image, tmp_path / "oci", "rum", "pgaudit"),
         "--jobs", "2"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "gate rum: server up" in line:
            break
    else:
        raise AssertionError("rum's gate never started:\n" + "".join(seen[-30:]))
    server = next(n for n in _gate_containers(proc.pid)
                  if n.endswith("-" + line.split("127.0.0.1:")[1].split(",")[0]))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _sleeping(server):
        time.sleep(0.5)
    assert _sleeping(server), "rum's setup statement never ran"
    os.killpg(proc.pid, signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=300) == 128 + signal.SIGTERM, rest
    assert "monogres-oci: terminated" in rest and "Traceback" not in rest
    assert "gate rum: exporting" not in rest and "gate rum: running the upstream suite" not in rest
    assert _gate_containers(proc.pid) == []


def _sleeping(server: str) -> bool:
    """Whether the gate's server runs the setup's pg_sleep."""
    port = server.rsplit("-", 1)[1]
    out = subprocess.run(["docker", "exec", server, "psql", "-X", "-At", "-h", SOCKET_DIR,
                          "-p", port, "-U", "postgres", "-d", "postgres", "-c",
                          "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
                          " AND pid <> pg_backend_pid()"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() == "1"
