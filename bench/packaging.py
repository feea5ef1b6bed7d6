#!/usr/bin/env python3
"""Packaging time against the single-core `tar | gzip -6` of the same trees.

A Postgres build in the cache (``<cache>/builds/<input digest>``) has two trees that packaging
turns into layers: the install tree and the runtime overlay. For each, this prints the time of
`tar -cf - | gzip -6` (one core: the floor a shell pipeline sets), and of monogres-oci's layer
writer with one compressing thread and with every core, and checks that the layer digest does not
depend on the number of threads.

    .venv/bin/python bench/packaging.py --build /var/cache/monogres-oci-tests/builds/KEY

Each figure is the best of --repeat runs (the machine's other work only ever slows a run down).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monogres_oci.oci.layer import LayerEntry, tree_entries, write_layer  # noqa: E402


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def _best(repeat: int, run: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def _trees(build: Path) -> list[tuple[str, Path, str]]:
    """(name, directory tar runs in, path within it) of the build's two trees."""
    majors = sorted((build / "install/usr/lib/postgresql").iterdir())
    if not majors:
        sys.exit(f"{build}: no install/usr/lib/postgresql/<major>: not a Postgres build")
    prefix = f"usr/lib/postgresql/{majors[-1].name}"
    return [("install tree", build / "install", prefix), ("runtime overlay", build / "runtime", ".")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, required=True,
                        help="a Postgres build directory of the cache (builds/<input digest>)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"{'tree':<16} {'MB':>7} {'tar|gzip -6':>12} {'1 thread':>9} {f'{cores} threads':>10}"
          f" {'ratio':>6}  digest")
    totals = [0.0, 0.0, 0.0]
    for name, root, path in _trees(args.build):
        size = sum(f.stat().st_size for f in (root / path).rglob("*")
                   if f.is_file() and not f.is_symlink())
        floor, _ = _best(args.repeat, lambda root=root, path=path: subprocess.run(
            ["bash", "-c", 'tar -C "$1" -cf - "$2" | gzip -6 > /dev/null', "-", str(root), path],
            check=True))
        entries: list[LayerEntry] = tree_entries(root / path, "" if path == "." else path)
        one, first = _best(args.repeat, lambda e=entries: write_layer(e, _Discard(), epoch=1,
                                                                      threads=1))
        every, second = _best(args.repeat, lambda e=entries: write_layer(e, _Discard(), epoch=1,
                                                                         threads=cores))
        assert first == second, f"{name}: the digest depends on the number of threads"
        totals = [totals[0] + floor, totals[1] + one, totals[2] + every]
        print(f"{name:<16} {size / 1e6:7.1f} {floor:11.2f}s {one:8.2f}s {every:9.2f}s "
              f"{every / floor:6.2f}  {first.digest[:19]}")  # type: ignore[attr-defined]
    print(f"{'both':<16} {'':>7} {totals[0]:11.2f}s {totals[1]:8.2f}s {totals[2]:9.2f}s "
          f"{totals[2] / totals[0]:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
