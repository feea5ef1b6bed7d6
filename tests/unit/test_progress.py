"""Progress of a long compile: ninja's steps at every 10 %, a heartbeat while there are none."""

from __future__ import annotations

import pytest

from monogres_oci.progress import Progress, StepMeter


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
