"""Progress of a long compile: ninja's steps at every 10 %, a heartbeat while there are none."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from monogres_oci.build.state import BuildTimes
from monogres_oci.progress import LastBuild, Progress, StepMeter, TransferMeter
from tests.support.oci_samples import sample_layout


def test_ninja_steps_every_ten_percent_and_a_heartbeat_without_them(
        capsys: pytest.CaptureFixture[str]) -> None:
    now = [0.0]
    meter = StepMeter(Progress(), "postgres-18.6", interval=60, clock=lambda: now[0])
    meter("#12 0.41 The Meson build system")
    now[0] = 61.0
    meter("#12 61.0 Checking for function \"strlcpy\" : NO")  # configure: no steps yet
    for done in range(1, 201):
        now[0] = 61.0 + done
        meter(f"#12 {now[0]:.1f} [{done}/200] Compiling C object src/x{done}.o")
    meter("#5 [1/3] FROM docker.io/library/debian")  # BuildKit's own step count: not ninja's
    lines = [line.split("] ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert lines[0] == "postgres-18.6: still building, 1 min 01 s (2 log lines)"
    assert lines[1] == "postgres-18.6: 1/200 steps (0 %), 1 min 02 s"
    assert [line.split(" steps")[0] for line in lines[1:]] == [
        "postgres-18.6: 1/200", *(f"postgres-18.6: {n}/200" for n in range(20, 201, 20))]
    assert lines[-1] == "postgres-18.6: 200/200 steps (100 %), 4 min 21 s"


def test_the_heartbeat_estimates_from_the_last_build_of_the_same_target(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    times = BuildTimes(tmp_path)
    assert times.get("postgis-3.6.4") is None
    times.record("postgis-3.6.4", 300.0, 1000)
    times.record("rum-1.3.15", 12.0, 80)
    assert BuildTimes(tmp_path).get("postgis-3.6.4") == LastBuild(300.0, 1000)  # kept on disk
    now = [0.0]
    meter = StepMeter(Progress(), "postgis-3.6.4", interval=60, clock=lambda: now[0],
                      last=times.get("postgis-3.6.4"))
    for n in range(1, 251):
        now[0] = n * 0.5
        meter(f"#9 {now[0]} gcc -c liblwgeom/lwgeom_{n}.c")
    now[0] = 400.0
    meter("#9 400.0 make[1]: Leaving directory")
    lines = [line.split("] ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert lines == [
        "postgis-3.6.4: still building, 1 min 00 s (120 log lines; the last build wrote 1000 in "
        "5 min 00 s: about 12 %, ~4 min 00 s left)",
        "postgis-3.6.4: still building, 2 min 00 s (240 log lines; the last build wrote 1000 in "
        "5 min 00 s: about 24 %, ~3 min 00 s left)",
        "postgis-3.6.4: still building, 6 min 40 s (251 log lines; the last build wrote 1000 in "
        "5 min 00 s: about 25 %, past its time)"]


def test_a_transfer_reports_every_ten_percent_and_its_rate_at_the_end() -> None:
    lines: list[str] = []
    now = [0.0]
    meter = TransferMeter(lines.append, "fetch postgis-3.6.4.tar.gz", 10_000_000,
                          clock=lambda: now[0])
    for _ in range(100):
        now[0] += 0.05
        meter.add(100_000)
    meter.finish()
    assert lines[0] == "fetch postgis-3.6.4.tar.gz: 1.0 MB of 10.0 MB (10 %), 2.0 MB/s"
    assert [line.split("(")[1].split(")")[0] for line in lines[:-1]] == [
        f"{n} %" for n in range(10, 100, 10)]
    assert lines[-1] == "fetch postgis-3.6.4.tar.gz: 10.0 MB in 5.0 s (2.0 MB/s)"
    unknown: list[str] = []
    meter = TransferMeter(unknown.append, "fetch x", None, interval=10, clock=lambda: now[0])
    now[0] += 11
    meter.add(50_000)
    assert unknown == ["fetch x: 50 kB, 0.0 MB/s"]


def _compile(meter: StepMeter, now: list[float], steps: int = 200) -> None:
    for done in range(1, steps + 1):
        now[0] = float(done)
        meter(f"#12 {now[0]:.1f} [{done}/{steps}] Compiling C object src/x{done}.o")


def test_on_a_terminal_the_steps_update_one_line_and_the_end_stays() -> None:
    out, now = io.StringIO(), [0.0]
    progress = Progress(mode="terminal", stream=out, clock=lambda: now[0])
    meter = StepMeter(progress, "postgres-18.6", clock=lambda: now[0])
    progress.stage("compiling postgres-18.6")
    _compile(meter, now)
    meter.close()
    text = out.getvalue()
    # one permanent line before, one at the end; every update in between rewrites the line
    assert text.count("\n") == 2
    permanent = [line.split("] ", 1)[1] for line in text.replace("\r\x1b[2K", "\n").split("\n")
                 if line.startswith("[")]
    assert permanent == ["compiling postgres-18.6",
                         "postgres-18.6: 200/200 steps (100 %), 3 min 20 s"]
    updates = [part for part in text.split("\r\x1b[2K") if part and not part.startswith("[")]
    assert updates[0] == "postgres-18.6: 1/200 steps (0 %), 1 s"
    assert len(updates) == 200 - 1  # a redraw each second of this clock, but the last (kept)
    assert "postgres-18.6: 100/200 steps (50 %), 1 min 40 s" in updates


def test_json_events_carry_the_steps_for_scripts() -> None:
    out, now = io.StringIO(), [0.0]
    progress = Progress(mode="json", stream=out, clock=lambda: now[0])
    meter = StepMeter(progress, "postgres-18.6", clock=lambda: now[0])
    _compile(meter, now, steps=50)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["done"], e["total"]) for e in events] == [(1, 50), *((n, 50) for n in range(5, 51, 5))]
    assert events[-1] == {"t": 50.0, "event": "stage", "target": "postgres-18.6", "done": 50,
                          "total": 50,
                          "message": "postgres-18.6: 50/50 steps (100 %), 50 s"}


def test_each_ninja_run_of_one_compile_gets_its_headlines() -> None:
    """A cross build runs ninja twice (the build machine's zic, then PostgreSQL): the second
    run's steps are reported at every 10 % as the first's were, not swallowed after its 100 %."""
    out, now = io.StringIO(), [0.0]
    progress = Progress(mode="json", stream=out, clock=lambda: now[0])
    meter = StepMeter(progress, "postgres-18.6", clock=lambda: now[0])
    _compile(meter, now, steps=10)
    _compile(meter, now, steps=50)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    steps = [(e["done"], e["total"]) for e in events if "done" in e]
    assert steps == [*((n, 10) for n in range(1, 11)), (1, 50),
                     *((n, 50) for n in range(5, 51, 5))]


def test_quiet_prints_nothing() -> None:
    out = io.StringIO()
    progress = Progress(mode="quiet", stream=out, verbose=True)
    meter = StepMeter(progress, "postgres-18.6")
    progress.stage("compiling")
    meter("#12 1.0 [1/1] Linking target src/backend/postgres")
    progress.detail("a log line")
    assert out.getvalue() == ""


def test_the_command_line_chooses_the_form(tmp_path: Path) -> None:
    sample_layout(tmp_path / "oci", tmp_path / "trees")

    def run(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "monogres_oci", *flags, "site", "--layout",
                               str(tmp_path / "oci"), "--out", str(tmp_path / "site")],
                              capture_output=True, text=True, timeout=120)

    lines = run()  # stderr is a pipe here: lines
    assert lines.returncode == 0 and "] wrote " in lines.stderr and "\x1b" not in lines.stderr
    events = run("--events")
    assert events.returncode == 0
    (event,) = [json.loads(line) for line in events.stderr.splitlines()]
    assert event["event"] == "stage" and event["message"].startswith("wrote ")
    quiet = run("--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""
    both = run("--quiet", "--events")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
