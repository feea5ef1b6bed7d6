"""Two clean builds per Postgres release x option set: are the published digests identical?

Usage (as root, after .ci/setup-host.sh; BASE from `monogres-oci base create`):
    python bench/reproducible.py --base bookworm=HOST/base/bookworm@sha256:... \
        [--postgres 18.6] [--option-set full ...] [--extension rum ...] [--first-cache DIR]

For each target, build A and build B each start from a new, empty build cache with BuildKit's
cache off (`build --rebuild`), in different working directories, time zones, umasks and TMPDIRs,
minutes apart. `--first-cache DIR` takes build A from an existing cache instead (a build that was
itself made from scratch earlier, say by the test suite), halving the time. Prints a table of
target x identical, with each build's wall time and the first differing tag. Source files are
linked from --source-cache (verified by sha256 on use). Nothing here asserts: it reports.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monogres_oci.catalog import load_catalog  # noqa: E402
from monogres_oci.oci.layout import Layout  # noqa: E402
from tests.support.cache import fresh_cache  # noqa: E402


def _named(layout: Path) -> dict[str, str]:
    return {name: desc.digest for name, desc in Layout.open(layout).refs().items()}


def _build(work: Path, cache: Path, args: list[str], *, tz: str, umask: int,
           rebuild: bool) -> tuple[float, Path, str]:
    """One build into work/oci; returns wall seconds, the layout and the error (if any)."""
    (work / "tmp").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TZ": tz, "TMPDIR": str(work / "tmp"), "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "monogres_oci", "build", *args, "--cache-dir", str(cache),
            "--out", str(work / "oci"), *(["--rebuild"] if rebuild else [])]
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True,
                          preexec_fn=lambda: os.umask(umask))
    error = "" if proc.returncode == 0 else proc.stderr.strip().splitlines()[-1]
    return time.monotonic() - started, work / "oci", error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, metavar="DISTRO=REF@sha256:...")
    parser.add_argument("--catalog", default=str(REPO / "extensions.yaml"))
    parser.add_argument("--postgres", action="append", default=[])
    parser.add_argument("--option-set", action="append", default=[])
    parser.add_argument("--extension", action="append", default=[])
    parser.add_argument("--source-cache", default="/var/cache/monogres-oci-tests",
                        help="a cache whose sources/ are reused (default: the test suite's)")
    parser.add_argument("--first-cache", metavar="DIR",
                        help="take build A from this cache instead of building it again")
    parser.add_argument("--keep", metavar="DIR", help="work here and keep everything")
    opts = parser.parse_args()

    catalog = load_catalog(Path(opts.catalog))
    targets = [(pg.version, name) for pg in catalog.postgres for name in pg.option_sets
               if (not opts.postgres or pg.version in opts.postgres or str(pg.major) in opts.postgres)
               and (not opts.option_set or name in opts.option_set)]
    root = Path(opts.keep) if opts.keep else Path(tempfile.mkdtemp(prefix="monogres-repro-"))
    rows = []
    for version, option_set in targets:
        args = ["--catalog", opts.catalog, "--postgres", version, "--option-set", option_set,
                "--arch", "amd64", "--base", opts.base, "--distro", opts.base.partition("=")[0]]
        args += [a for e in opts.extension for a in ("--extension", e)] or ["--postgres-only"]
        label = f"{version} {option_set}" + (f" + {', '.join(opts.extension)}" if opts.extension
                                             else "")
        print(f"== {label}", file=sys.stderr, flush=True)
        runs = []
        for side, tz, umask in (("a", "America/Los_Angeles", 0o077), ("b", "Asia/Kolkata", 0o002)):
            work = root / f"{version}-{option_set}-{side}"
            if side == "a" and opts.first_cache:
                runs.append(_build(work, Path(opts.first_cache), args, tz=tz, umask=umask,
                                   rebuild=False))
                continue
            cache = fresh_cache(work, Path(opts.source_cache) / "sources")
            runs.append(_build(work, cache, args, tz=tz, umask=umask, rebuild=True))
            print(f"   build {side}: {runs[-1][0]:.0f} s {runs[-1][2]}", file=sys.stderr, flush=True)
        (ta, la, ea), (tb, lb, eb) = runs
        if ea or eb:
            rows.append((label, "build failed", ta, tb, ea or eb))
            continue
        a, b = _named(la), _named(lb)
        differing = sorted(n for n in a.keys() | b.keys() if a.get(n) != b.get(n))
        rows.append((label, "no" if differing else "yes", ta, tb,
                     f"{len(differing)} tag(s) differ, e.g. {differing[0]}" if differing
                     else f"{len(a)} tags, same digests"))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'target':<{width}}  identical  build A   build B   detail")
    for label, same, ta, tb, detail in rows:
        print(f"{label:<{width}}  {same:<9}  {ta:6.0f} s  {tb:6.0f} s  {detail}")
    print(f"\n(work directories under {root})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
