"""The command line as a user meets it: help that renders as written, quiet ends of a pipe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monogres_oci", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_help_examples_keep_their_line_continuations() -> None:
    text = _run("--help").stdout
    examples = text[text.index("typical session:"):].splitlines()
    for i, line in enumerate(examples):
        if line.rstrip().endswith("\\"):
            assert examples[i + 1].startswith("      "), line  # the continued line follows
    assert sum(line.rstrip().endswith("\\") for line in examples) >= 4


def test_a_closed_pipe_ends_quietly_with_sigpipe_status(tmp_path: Path) -> None:
    # status --json of the whole catalog is larger than a pipe's buffer, so the writer meets
    # the closed end; like `cat`, it stops without a traceback and reports SIGPIPE (128 + 13).
    proc = subprocess.Popen([sys.executable, "-m", "monogres_oci", "status", "--json",
                             "--cache-dir", str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10) == b'{\n  "count'
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_import_license_is_checked_before_anything_is_read(tmp_path: Path) -> None:
    # A licence is only taken as an SPDX expression, for one package: said before the archive
    # is read, without a traceback.
    bad = _run("import", "debian", "pgfincore", "--license", "BSD-ish", "--cache-dir",
               str(tmp_path))
    assert bad.returncode == 2 and "BSD-ish: not an SPDX licence identifier" in bad.stderr
    two = _run("import", "debian", "pgfincore", "pg-repack", "--license", "BSD-3-Clause",
               "--cache-dir", str(tmp_path))
    assert two.returncode == 2 and "name exactly one SOURCE" in two.stderr
    assert "Traceback" not in bad.stderr + two.stderr
    assert not (tmp_path / "import-apt").exists()


def test_a_bad_engine_cache_limit_is_refused_before_anything_builds(tmp_path: Path) -> None:
    proc = _run("build", "--engine-cache-limit", "lots", "--postgres", "18.6",
                "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "oci"))
    assert proc.returncode == 2
    assert "--engine-cache-limit 'lots': expected a size such as 20GB or 500MB" in proc.stderr
    assert not (tmp_path / "oci").exists() and "Traceback" not in proc.stderr
