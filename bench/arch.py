"""arm64 build time over amd64 build time, cross-compiled and emulated, per target.

Usage (as root, after .ci/setup-host.sh; BASE from `monogres-oci base create`, both architectures):
    python bench/arch.py --base bookworm=HOST/base/bookworm@sha256:... \
        [--postgres 18.6] [--option-set barebones] [--extension pgaudit --extension rum] \
        [--emulated-budget 900] [--work DIR] [--report-only]

Every build starts from a new, empty build cache with BuildKit's cache off (`build --rebuild`), one
after the other (never two at once), on this machine (amd64):

1. amd64, native;
2. arm64, cross-compiled (the catalog's default for sets that allow it);
3. arm64 Postgres, emulated (`build --emulate`), stopped after --emulated-budget seconds. When it
   does not finish, its total is ESTIMATED: the time it took to reach the ninja step, plus the
   cross build's ninja and later steps scaled by how much slower the emulated ninja got through
   the same share of its steps than the cross one. The table says "est." and gives both counts;
4. arm64 extensions, emulated: each extension compiled under QEMU against the arm64 Postgres of
   step 2 (an install tree is an install tree: how it was compiled does not matter to PGXS).

`--no-emulated` leaves out steps 3 and 4. Last, whether the amd64 and the cross-compiled arm64
Postgres hold the same bytes under share/. `--report-only --work DIR` prints the table again from
the builds an earlier run left in DIR.

Times are the compile step of each target as the build records it (`.done` markers: toolchain
install, compile, install tree, runtime overlay), not the packaging. Prints a table; asserts
nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monogres_oci.build.compile import (  # noqa: E402
    PostgresBuildOutput,
    compile_extension,
    extension_invocation,
)
from monogres_oci.build.recipes import recipe_digests  # noqa: E402
from monogres_oci.catalog import load_catalog  # noqa: E402
from monogres_oci.plan.targets import Selection, expand  # noqa: E402
from tests.support.cache import fresh_cache  # noqa: E402

# The console log of `monogres-oci -v build` (each line "[  52.4s] ...", seconds since it started)
# relays BuildKit's plain log, where "#18 228.8 [1612/1757] Compiling C object ..." is seconds
# since the step started, then ninja's step counter.
NINJA = re.compile(r"#(\d+) (\d+\.\d+) \[(\d+)/(\d+)\] ")
STEP_START = re.compile(r"^\[\s*(\d+\.\d+)s\]\s+#(\d+) \[build \d+/\d+\] RUN .*ninja -C")
COMPILE_START = re.compile(r"^\[\s*(\d+\.\d+)s\]\s+PostgreSQL .*: building into ")


def _build(cache: Path, out: Path, args: list[str], budget: float | None = None) -> float:
    """Run `monogres-oci -v build`; returns wall seconds. With a budget, stop it after that long
    (its process group: the buildx client it runs cancels the BuildKit solve)."""
    argv = [sys.executable, "-m", "monogres_oci", "-v", "build", *args, "--cache-dir", str(cache),
            "--out", str(out), "--rebuild"]
    log = (out.parent / "build.log").open("w")
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        proc.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=120)
    log.close()
    return time.monotonic() - started


def _markers(builds: Path) -> dict[str, tuple[Path, float]]:
    """target name -> (its build directory, compile seconds), from the markers under builds.
    Found by name, not by cache key: a report of an earlier run must not depend on today's
    recipes."""
    out = {}
    for marker in builds.glob("*/.done"):
        doc = json.loads(marker.read_text())
        out[doc["target"]] = (marker.parent, float(doc["seconds"]))
    return out


def _seconds(builds: Path) -> dict[str, float]:
    return {name: seconds for name, (_, seconds) in _markers(builds).items()}


def _amd64_twin(name: str) -> str:
    """The amd64 build's marker name for an arm64 build's."""
    return name.replace("(linux/arm64)", "(linux/amd64)")


def _ninja_progress(log: Path) -> tuple[float | None, dict[int, float], int]:
    """From a build's console log: (seconds from the start of the Postgres compile step to its
    ninja step, {step k: seconds into ninja}, N)."""
    origin = 0.0
    started = None
    steps: dict[int, float] = {}
    total = 0
    ninja_id = None
    for line in log.read_text(errors="replace").splitlines():
        if m := COMPILE_START.search(line):
            origin = float(m.group(1))
        elif m := STEP_START.search(line):
            started, ninja_id = float(m.group(1)) - origin, m.group(2)
        elif (m := NINJA.search(line)) and m.group(1) == ninja_id:
            steps[int(m.group(3))] = float(m.group(2))
            total = int(m.group(4))
    return started, steps, total


def _compare_share(amd64: Path, arm64: Path) -> str:
    """Whether the two Postgres install trees hold the same bytes under share/."""
    def digests(tree: Path) -> dict[str, str]:
        share = next(tree.glob("usr/lib/postgresql/*/share"))
        return {str(f.relative_to(share)): hashlib.sha256(f.read_bytes()).hexdigest()
                for f in sorted(share.rglob("*")) if f.is_file() and not f.is_symlink()}
    a, b = digests(amd64), digests(arm64)
    differ = sorted(n for n in a.keys() | b.keys() if a.get(n) != b.get(n))
    if not differ:
        return f"share/: {len(a)} files, the same bytes on amd64 and arm64"
    return f"share/: {len(differ)} of {len(a | b)} files differ, e.g. {differ[:5]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, metavar="DISTRO=REF@sha256:...")
    parser.add_argument("--catalog", default=str(REPO / "extensions.yaml"))
    parser.add_argument("--postgres", default="18.6")
    parser.add_argument("--option-set", default="barebones")
    parser.add_argument("--extension", action="append", default=[])
    parser.add_argument("--emulated-budget", type=float, default=900,
                        help="seconds the emulated Postgres build may run (default 900)")
    parser.add_argument("--no-emulated", action="store_true",
                        help="leave out the emulated builds (steps 3 and 4)")
    parser.add_argument("--source-cache", default="/var/cache/monogres-oci-tests/sources")
    parser.add_argument("--work", help="keep builds here (default: a temporary directory)")
    parser.add_argument("--report-only", action="store_true",
                        help="build nothing: print the table of the builds already in --work")
    args = parser.parse_args()
    if args.report_only and not args.work:
        parser.error("--report-only reads the builds of an earlier run: give its --work")
    extensions = args.extension or ["pgaudit", "rum"]
    work = Path(args.work or tempfile.mkdtemp(prefix="monogres-bench-arch-"))
    common = ["--catalog", args.catalog, "--postgres", args.postgres, "--option-set",
              args.option_set, "--base", args.base, "--distro", args.base.partition("=")[0]]
    for ext in extensions:
        common += ["--extension", ext]
    sources = Path(args.source_cache)
    runs = {name: work / name / "cache" for name in ("amd64", "cross", "emulated")}
    for name, extra, budget in (("amd64", ["--arch", "amd64"], None),
                                ("cross", ["--arch", "arm64"], None),
                                ("emulated", ["--arch", "arm64", "--emulate", "--postgres-only"],
                                 args.emulated_budget)):
        if args.report_only or (args.no_emulated and name == "emulated"):
            continue
        root = work / name
        shutil.rmtree(root, ignore_errors=True)  # a reused --work starts from nothing too
        root.mkdir(parents=True)
        fresh_cache(root, sources)
        print(f"[{name}] building ...", file=sys.stderr, flush=True)
        wall = _build(runs[name], root / "oci", [*common, *extra], budget)
        print(f"[{name}] {wall:.0f} s", file=sys.stderr, flush=True)

    amd64_builds = _markers(runs["amd64"] / "builds")
    amd64 = {name: seconds for name, (_, seconds) in amd64_builds.items()}
    cross = _seconds(runs["cross"] / "builds")
    # Extensions under emulation, against the cross-compiled arm64 Postgres.
    catalog = load_catalog(Path(args.catalog))
    distro, _, base = args.base.partition("=")
    plan = expand(catalog, Selection(postgres=(args.postgres,), option_sets=(args.option_set,),
                                     distros=(distro,), archs=("arm64",),
                                     extensions=tuple(extensions)),
                  base_overrides={distro: base}, recipe_digests=recipe_digests())
    pg = plan.postgres[0]
    pg_name = next(n for n in cross if n.startswith(f"PostgreSQL {args.postgres}"))
    pg_out = _markers(runs["cross"] / "builds")[pg_name][0]
    postgres = PostgresBuildOutput(pg_out / "install", pg_out / "runtime", pg_out / "meta",
                                   pg.release.major)
    if not args.report_only:
        shutil.rmtree(work / "emulated-ext", ignore_errors=True)
    for ext in plan.extensions:
        if args.report_only or args.no_emulated:
            break
        tarball = runs["cross"] / "sources" / "sha256" / ext.version.source.sha256
        print(f"[emulated {ext.extension.name}] building ...", file=sys.stderr, flush=True)
        invocation = extension_invocation(
            base_image=pg.base_image, postgres=postgres, pg_major=pg.release.major,
            source_tarball=tarball, patches=[], build_packages=pg.build_packages,
            recipe=ext.extension.build, platform=pg.platform, source_date_epoch=0,
            compile_on="target")
        compile_extension(invocation, out_dir=work / "emulated-ext" / ext.name,
                          progress=lambda _: None, no_cache=True)
    # the same measure as the other columns: the compile step's seconds, as its marker records
    emulated_ext = _seconds(work / "emulated-ext")

    # Postgres under emulation: measured up to the budget, the rest estimated.
    done = _seconds(runs["emulated"] / "builds")
    if pg_name in done:
        emulated_pg, how = done[pg_name], "measured"
    elif (work / "emulated" / "build.log").exists():
        c_start, c_steps, c_total = _ninja_progress(work / "cross" / "build.log")
        e_start, e_steps, e_total = _ninja_progress(work / "emulated" / "build.log")
        if c_start is None or e_start is None or not e_steps or not c_steps:
            emulated_pg, how = float("nan"), "no compile step reached within the budget"
        else:
            # A cross build has fewer ninja steps (meson leaves out test programs it could not
            # run), so compare the times at which each got through the same share of its own.
            e_k = max(e_steps)
            c_k = min((k for k in c_steps if k / c_total >= e_k / e_total), default=max(c_steps))
            ratio = e_steps[e_k] / max(c_steps[c_k], 0.1)
            cross_rest = cross[pg_name] - c_start  # compile and everything after it
            emulated_pg = e_start + cross_rest * ratio
            how = (f"est.: {e_k}/{e_total} ninja steps in {e_steps[e_k]:.0f} s emulated, "
                   f"{c_k}/{c_total} in {c_steps[c_k]:.0f} s cross ({ratio:.1f}x); "
                   f"{e_start:.0f} s to reach ninja")
    else:
        emulated_pg, how = float("nan"), "emulated build left no log"

    emulated_head = "" if args.no_emulated else f" {'arm64 emulated':>15} {'ratio':>6}"
    print(f"\n{'target':<32} {'amd64':>8} {'arm64 cross':>12} {'ratio':>6}{emulated_head}")
    rows = [(f"PostgreSQL {args.postgres} {args.option_set}",
             amd64.get(_amd64_twin(pg_name)), cross[pg_name],
             emulated_pg, how)]
    for ext in plan.extensions:
        # compile names an extension target by its tarball, which the cache keeps by sha256
        name = next(n for n in cross if n.startswith(f"extension {ext.version.source.sha256}"))
        rows.append((f"extension {ext.extension.name} {ext.version.version}",
                     amd64.get(_amd64_twin(name)), cross[name],
                     emulated_ext.get(name, float("nan")), "measured"))
    for label, a, c, e, note in rows:
        a_text = f"{a:.0f} s" if a else "?"
        emulated_cells = "" if args.no_emulated else \
            f" {e:>13.0f} s {e / a if a else float('nan'):>6.2f}  {note}"
        print(f"{label:<32} {a_text:>8} {c:>10.0f} s {c / a if a else float('nan'):>6.2f}"
              f"{emulated_cells}")
    amd64_pg = amd64_builds.get(_amd64_twin(pg_name))
    if amd64_pg:
        print(f"\n{_compare_share(amd64_pg[0] / 'install', pg_out / 'install')}")
    print(f"\nwork directory: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
