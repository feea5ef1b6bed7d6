#!/usr/bin/env python3
"""How planning scales: generate catalogs of R releases x E extensions x V versions and time
`monogres-oci plan` on each (wall time, targets per second, peak memory of the process).

    .venv/bin/python bench/plan_scale.py                  # 10k, 100k and 1.2M targets
    .venv/bin/python bench/plan_scale.py --size 60:100:10 --format json

A size is RELEASES:EXTENSIONS:VERSIONS. The catalog has one distro with two architectures and
five option sets, so a size expands to RELEASES x (5 + EXTENSIONS x VERSIONS) x 2 targets: the
issue's "million artifacts" is 60:1000:10 (60 releases: 4 minors a year across 5 majors).
Every extension version admits every release, so nothing is filtered away.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = ("1:995:5", "10:995:5", "60:1000:10")  # about 10k, 100k and 1.2M targets
SHA = "0123456789abcdef" * 4
OPTION_SETS = ("regular", "barebones", "minimal", "full", "debug")


def releases(count: int) -> list[dict[str, object]]:
    """``count`` releases across majors 14..18, newest first, as the catalog lists them."""
    out = []
    for i in range(count):
        major, minor = 18 - i % 5, 20 - i // 5
        out.append({
            "version": f"{major}.{minor}", "source_date_epoch": 1786473511,
            "source": {"file": f"postgresql-{major}.{minor}.tar.bz2", "sha256": SHA,
                       "origins": [{"url": f"https://example.org/postgresql-{major}.{minor}.tar.bz2"}]},
            "option_sets": list(OPTION_SETS), "distros": ["bookworm"]})
    return out


def extension(index: int, versions: int) -> dict[str, object]:
    name = f"ext{index:05d}"
    return {
        "sql_name": name, "description": f"generated extension {index}",
        "homepage": "https://example.org/", "license": "PostgreSQL",
        "build": {"system": "pgxs", "packages": ["libxml2-dev"]},
        "versions": [{"version": f"1.{v}", "postgres": ">=14", "source": {
            "file": f"{name}-1.{v}.tar.gz", "sha256": SHA,
            "origins": [{"url": f"https://example.org/{name}-1.{v}.tar.gz"}]}}
            for v in range(versions)],
    }


def generate(path: Path, n_releases: int, n_extensions: int, n_versions: int) -> None:
    shipped = yaml.safe_load((REPO / "extensions.yaml").read_text())
    doc = {
        "schema_version": shipped["schema_version"],
        "publisher": shipped["publisher"],
        "distros": {"bookworm": shipped["distros"]["bookworm"]},
        "option_sets": shipped["option_sets"],
        "postgres": releases(n_releases),
        "extensions": {f"ext{i:05d}": extension(i, n_versions) for i in range(n_extensions)},
    }
    path.write_text(yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False))


def measure(catalog: Path, fmt: str, cache_dir: Path) -> tuple[float, int, int]:
    """(seconds, output lines, peak RSS in KiB) of one `plan` run, its output discarded."""
    argv = [sys.executable, "-m", "monogres_oci", "plan", "--catalog", str(catalog), f"--{fmt}",
            "--cache-dir", str(cache_dir)]
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    lines = sum(1 for _ in proc.stdout)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        assert proc.stderr is not None
        sys.exit(f"plan failed on {catalog}:\n{proc.stderr.read().decode()[-3000:]}")
    return seconds, lines, usage.ru_maxrss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", action="append", metavar="RELEASES:EXTENSIONS:VERSIONS",
                        help=f"repeatable (default: {' '.join(DEFAULT_SIZES)})")
    parser.add_argument("--format", choices=("jsonl", "json"), default="jsonl",
                        help="plan's output format (default jsonl: one target per line)")
    parser.add_argument("--keep", metavar="DIR", help="write the generated catalogs here")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="plan-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    # cold: an empty cache directory (the catalog is parsed and validated); warm: the same
    # directory again (the validated catalog is read back)
    print(f"| size (R:E:V) | targets | catalog | plan --{args.format} cold | warm | targets/s "
          "(warm) | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for size in args.size or DEFAULT_SIZES:
        r, e, v = (int(x) for x in size.split(":"))
        catalog = work / f"catalog-{r}-{e}-{v}.yaml"
        if not catalog.exists():
            generate(catalog, r, e, v)
        targets = r * (len(OPTION_SETS) + e * v) * 2
        with tempfile.TemporaryDirectory(prefix="plan-cache-") as cache:
            cold, lines, _ = measure(catalog, args.format, Path(cache))
            warm, _, rss = measure(catalog, args.format, Path(cache))
        if lines < targets:
            sys.exit(f"plan printed {lines} lines for {targets} targets")
        mib = catalog.stat().st_size / 2**20
        print(f"| {size} | {targets:,} | {mib:.1f} MiB | {cold:.2f} s | {warm:.2f} s | "
              f"{targets / warm:,.0f} | {rss / 1024:.0f} MiB |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
