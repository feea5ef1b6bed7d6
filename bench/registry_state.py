#!/usr/bin/env python3
"""How long `plan --registry` takes to say what a registry holds: a generated catalog of about
N targets (bench/plan_scale.py's generator) is planned, an index per target is published to a
loopback registry under its rolling tag (as `build` + `publish` would leave it, content aside),
then `monogres-oci plan --registry --json` is timed, cold (a new process).

    .venv/bin/python bench/registry_state.py              # about 1,000 targets
    .venv/bin/python bench/registry_state.py --size 1:99:5 --stale 10

``--stale K`` publishes K extension targets with other inputs (their build packages changed),
so the output shows stale rows and which input changed.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.plan_scale import generate  # noqa: E402
from monogres_oci.build.recipes import recipe_digests  # noqa: E402
from monogres_oci.catalog import load_catalog  # noqa: E402
from monogres_oci.consume.pull import make_client  # noqa: E402
from monogres_oci.oci.layout import Layout  # noqa: E402
from monogres_oci.plan.targets import ExtensionTarget, PostgresTarget, Selection, expand  # noqa: E402
from monogres_oci.publish.push import publish  # noqa: E402
from tests.support.as_built import add_as_built  # noqa: E402
from tests.support.registry import start_registry  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1:99:5", help="RELEASES:EXTENSIONS:VERSIONS "
                        "(default 1:99:5: 1 x (5 + 99 x 5) x 2 = 1,000 targets)")
    parser.add_argument("--stale", type=int, default=10)
    args = parser.parse_args()
    n_rel, n_ext, n_ver = (int(x) for x in args.size.split(":"))
    with tempfile.TemporaryDirectory(prefix="monogres-bench-registry-") as tmp:
        work = Path(tmp)
        catalog_path = work / "catalog.yaml"
        generate(catalog_path, n_rel, n_ext, n_ver)
        plan = expand(load_catalog(catalog_path), Selection(), recipe_digests=recipe_digests(),
                      base_overrides={})
        targets: list[PostgresTarget | ExtensionTarget] = [*plan.postgres, *plan.extensions]
        published = list(targets)
        for i in range(min(args.stale, len(plan.extensions))):
            ext = plan.extensions[i]
            other = dataclasses.replace(ext.extension, build=dataclasses.replace(
                ext.extension.build, packages=("libxslt1-dev",)))
            published[len(plan.postgres) + i] = dataclasses.replace(ext, extension=other)
        registry = start_registry(work / "registry")
        try:
            layout = Layout.create(work / "oci")
            add_as_built(layout, published)
            started = time.monotonic()
            publish(layout, f"{registry.host}/bench", make_client(registry.host), jobs=8)
            pushed = time.monotonic() - started
            started = time.monotonic()
            proc = subprocess.run(
                [sys.executable, "-m", "monogres_oci", "plan", "--catalog", str(catalog_path),
                 "--cache-dir", str(work / "cache"), "--registry", f"{registry.host}/bench",
                 "--json"], cwd=REPO, capture_output=True, text=True, check=True)
            elapsed = time.monotonic() - started
        finally:
            registry.stop()
    rows = json.loads(proc.stdout)["targets"]
    states = collections.Counter(str(r.get("published")) for r in rows)
    changed = collections.Counter(",".join(r.get("changed", [])) for r in rows if r.get("changed"))
    print(f"{len(rows)} targets ({args.size}), published in {pushed:.1f} s")
    print(f"plan --registry: {elapsed:.2f} s wall ({len(rows) / elapsed:.0f} targets/s); "
          f"states: {dict(states)}; changed: {dict(changed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
