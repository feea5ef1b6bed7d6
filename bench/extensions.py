"""Every extension of the catalog built, gated and measured: one row per extension x release x arch.

    python bench/extensions.py --base bookworm=HOST/base/bookworm@sha256:... \\
        --base trixie=HOST/base/trixie@sha256:... \\
        --target 18.6:regular:bookworm:amd64 --target 17.11:regular:bookworm:amd64 \\
        --target 18.6:regular:trixie:amd64 --target 18.6:barebones:bookworm:arm64 \\
        [--cache-dir DIR] [--work DIR] [--extension NAME ...] [--jobs N] [--rebuild]

Each --target is one `monogres-oci build` (with its gate) of every extension the catalog admits
for that release, option set, distro and architecture; a build that fails is reported, not fatal.
The table: build system, compile seconds (the build marker's), image size (the compressed
layer), bundled libraries (count and MB, uncompressed), the upstream suite's passed/total, and
why anything failed; then each target's wall time. ``--jobs N`` compiles N extensions at once
(measure scaling by running 1 and 2 against the same cached Postgres build with ``--rebuild``,
which turns BuildKit's cache off, in fresh --work and --cache-dir holding only that build).
``--report-only`` reprints the table of an earlier run from its --work.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monogres_oci.catalog import load_catalog  # noqa: E402
from monogres_oci.oci.layout import Layout  # noqa: E402


def build(target: str, args: argparse.Namespace, work: Path) -> Path:
    version, option_set, distro, arch = target.split(":")
    out = work / target.replace(":", "-")
    argv = [sys.executable, "-m", "monogres_oci", "build", "--catalog", args.catalog,
            "--postgres", version, "--option-set", option_set, "--distro", distro,
            "--arch", arch, "--cache-dir", args.cache_dir, "--out", str(out / "oci"), "--json"]
    argv += [a for b in args.base for a in ("--base", b)]
    argv += [a for e in args.extension for a in ("--extension", e)]
    print(f"== {target}", file=sys.stderr, flush=True)
    plan = [a for a in argv if a not in ("--json",)]
    plan[plan.index("build")] = "plan"
    drop = plan.index("--out")
    plan = [*plan[:drop], *plan[drop + 2:], "--json"]
    (out / "plan.json").write_text(subprocess.run(plan, cwd=REPO, capture_output=True,
                                                  text=True, check=True).stdout)
    argv += ["--jobs", str(args.jobs), "--engine-cache-limit", args.engine_cache_limit]
    argv += ["--rebuild"] if args.rebuild else []  # build only
    start = time.monotonic()
    with open(out / "build.log", "w") as log:
        proc = subprocess.run(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True)
    (out / "wall.json").write_text(json.dumps({"seconds": time.monotonic() - start,
                                               "jobs": args.jobs}))
    (out / "report.json").write_text(proc.stdout or '{"targets": []}')
    return out


def _layer(layout: Layout, name: str) -> tuple[int, int, int]:
    """(compressed layer bytes, bundled library count, bundled bytes) of an extension image."""
    index = layout.read_index(layout.resolve(name).digest)
    manifest = layout.read_manifest(index.manifests[0].digest)
    layer = manifest.layers[0]
    count = size = 0
    with tarfile.open(layout.blob_path(layer.digest)) as tar:
        for member in tar:
            if member.isfile() and member.name.startswith("system/"):
                count += 1
                size += member.size
    return layer.size, count, size


def rows(out: Path, cache_dir: Path, catalog: Any) -> list[dict[str, Any]]:
    report = json.loads((out / "report.json").read_text())
    digests = {row["name"]: row["input_digest"]
               for row in json.loads((out / "plan.json").read_text())["targets"]}
    layout = Layout.open(out / "oci") if (out / "oci" / "index.json").exists() else None
    refs = layout.refs() if layout else {}
    found = []
    for t in report.get("targets", []):
        if t["kind"] != "extension":
            continue
        # NAME-VERSION-pgRELEASE-...; a name may hold "-" (h3-pg): the catalog's longest match.
        ext = max((e for e in catalog.extensions if t["name"].startswith(f"{e.name}-")),
                  key=lambda e: len(e.name))
        name, system = ext.name, ext.build.system
        version, pg = t["name"][len(name) + 1:].split("-")[:2]
        key = digests.get(t["name"], "").removeprefix("sha256:")
        marker = cache_dir / "builds" / key / ".done"
        seconds = json.loads(marker.read_text())["seconds"] if key and marker.is_file() else None
        tag = next((n for n in refs if n.startswith(f"{name}:{pg.removeprefix('pg')}-{version}-")),
                   None)
        size = bundled = bundled_bytes = None
        if tag and layout is not None:
            size, bundled, bundled_bytes = _layer(layout, tag)
        gate = t.get("gate") or {}
        suite = gate.get("suite", {})
        tests = (f"{suite.get('passed', 0)}/{suite.get('total', 0)}" if suite.get("total")
                 else (f"- ({suite.get('skipped') or gate.get('verdict', '')})"[:60] if gate
                       else "-"))
        why = "" if t["ok"] else (t["error"] or "").splitlines()[0][:160]
        found.append({"target": t["name"], "system": system, "seconds": seconds, "size": size,
                      "bundled": bundled, "bundled_mb": (bundled_bytes or 0) / 1e6,
                      "tests": tests, "ok": t["ok"], "why": why})
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", action="append", default=[], metavar="VER:SET:DISTRO:ARCH")
    parser.add_argument("--base", action="append", default=[], metavar="DISTRO=REF@sha256:...")
    parser.add_argument("--extension", action="append", default=[], metavar="NAME")
    parser.add_argument("--catalog", default=str(REPO / "extensions.yaml"))
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "monogres-oci"))
    parser.add_argument("--work", metavar="DIR", help="keep the layouts and logs here")
    parser.add_argument("--jobs", type=int, default=1, help="extension compiles at once")
    parser.add_argument("--rebuild", action="store_true", help="BuildKit's cache off")
    parser.add_argument("--engine-cache-limit", default="20GB", metavar="SIZE",
                        help="BuildKit's cache pruned down to SIZE between targets (default "
                             "20GB: four whole-catalog targets without it filled this "
                             "machine's disk)")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="monogres-bench-ext-"))
    work.mkdir(parents=True, exist_ok=True)
    catalog = load_catalog(Path(args.catalog))
    outs = []
    for target in args.target:
        out = work / target.replace(":", "-")
        if not args.report_only:
            out.mkdir(parents=True, exist_ok=True)
            build(target, args, work)
        outs.append(out)
    print(f"{'target':<58} {'system':<9} {'compile':>8} {'image':>9} {'bundled':>12} "
          f"{'tests':>9}  failure")
    for out in outs:
        for r in rows(out, Path(args.cache_dir), catalog):
            seconds = f"{r['seconds']:.0f} s" if r["seconds"] is not None else "-"
            size = f"{r['size'] / 1e6:.1f} MB" if r["size"] is not None else "-"
            bundled = f"{r['bundled']} / {r['bundled_mb']:.1f} MB" if r["bundled"] else "0"
            print(f"{r['target']:<58} {r['system']:<9} {seconds:>8} {size:>9} {bundled:>12} "
                  f"{r['tests']:>9}  {r['why']}")
    for out in outs:
        if (out / "wall.json").is_file():
            wall = json.loads((out / "wall.json").read_text())
            print(f"{out.name}: {wall['seconds']:.0f} s wall, --jobs {wall['jobs']}")
    print(f"(work directory: {work})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
