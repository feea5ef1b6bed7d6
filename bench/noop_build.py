#!/usr/bin/env python3
"""How long a build with nothing new takes: the same `monogres-oci build` run twice into new
layouts; the first may compile, package and gate, the second should find every compile, every
packaged image and every gate result in the cache (it prints how many of each it reused).

    .venv/bin/python bench/noop_build.py --base bookworm=REF@sha256:... \\
        --cache-dir /var/cache/monogres-oci-tests -- --postgres 18.6 --option-set regular \\
        --distro bookworm --arch amd64 --extension rum --extension pgaudit

Arguments after ``--`` select what to build (as `monogres-oci build` takes them).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build(out: Path, args: argparse.Namespace) -> tuple[float, str]:
    argv = [sys.executable, "-m", "monogres_oci", "build", "--out", str(out),
            "--cache-dir", args.cache_dir, *(a for b in args.base for a in ("--base", b)),
            *args.selection]
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"build failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed, proc.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", action="append", default=[], metavar="DISTRO=REF")
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("selection", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    args.selection = [a for a in args.selection if a != "--"]
    with tempfile.TemporaryDirectory(prefix="monogres-bench-noop-") as tmp:
        for run in ("first", "again"):
            elapsed, log = build(Path(tmp) / run, args)
            lines = log.splitlines()
            print(f"{run}: {elapsed:.2f} s; compiled {sum('] compiling ' in x for x in lines)}, "
                  f"packaged {sum('] packaged ' in x and 'reused' not in x for x in lines)}, "
                  f"reused packaged {sum('packaged before from the same inputs' in x for x in lines)}, "
                  f"gates run {sum(': running the upstream suite' in x for x in lines)}, "
                  f"gate results reused {sum('result reused' in x for x in lines)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
