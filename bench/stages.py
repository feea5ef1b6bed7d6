"""Wall time of each stage for PostgreSQL 18 + extensions, from scratch, on this machine.

Usage (as root, after .ci/setup-host.sh):
    python bench/stages.py [--extension pgaudit --extension rum] [--keep DIR]

Starts its own registry on a free loopback port, uses a fresh cache directory and compiles with
BuildKit's cache off, so the figures are cold ones. Prints one line per stage and the sizes of
what was published. Nothing here asserts a time: it reports.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monogres_oci.attest.buildinfo import postgres_record  # noqa: E402
from monogres_oci.build.base import create_base_image  # noqa: E402
from monogres_oci.build.compile import (  # noqa: E402
    compile_extension,
    compile_postgres,
    extension_invocation,
)
from monogres_oci.build.extension_stage import package_extension  # noqa: E402
from monogres_oci.build.fetch import Fetcher  # noqa: E402
from monogres_oci.build.recipes import recipe_digests  # noqa: E402
from monogres_oci.build.run import source_date_epoch  # noqa: E402
from monogres_oci.build.state import BuildCache  # noqa: E402
from monogres_oci.catalog import load_catalog  # noqa: E402
from monogres_oci.consume.install import install_one  # noqa: E402
from monogres_oci.consume.pull import make_client, this_platform  # noqa: E402
from monogres_oci.oci.layout import Layout  # noqa: E402
from monogres_oci.oci.reference import parse_reference  # noqa: E402
from monogres_oci.package.images import Packager  # noqa: E402
from monogres_oci.plan.targets import Selection, expand  # noqa: E402
from monogres_oci.publish.push import publish  # noqa: E402
from tests.support.registry import start_registry  # noqa: E402

T = TypeVar("T")
ROWS: list[tuple[str, float]] = []


@contextmanager
def stage(name: str) -> Iterator[None]:
    start = time.monotonic()
    print(f"... {name}", file=sys.stderr, flush=True)
    yield
    ROWS.append((name, time.monotonic() - start))
    print(f"    {name}: {ROWS[-1][1]:.1f} s", file=sys.stderr, flush=True)


def timed(name: str, fn: Callable[[], T]) -> T:
    with stage(name):
        return fn()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extension", action="append", default=[])
    parser.add_argument("--keep", metavar="DIR", help="work here instead of a temp dir")
    args = parser.parse_args()
    exts = tuple(args.extension or ["pgaudit", "rum"])
    work = Path(args.keep or tempfile.mkdtemp(prefix="monogres-bench-"))
    registry = start_registry(work / "registry")
    try:
        catalog = load_catalog(REPO / "extensions.yaml")
        base = timed("base image (debootstrap + push)", lambda: create_base_image(
            "bookworm", f"{registry.host}/base", workdir=work / "base"))
        plan = expand(catalog, Selection(postgres=("18",), option_sets=("regular",),
                                         archs=("amd64",), extensions=exts),
                      base_overrides={"bookworm": base}, recipe_digests=recipe_digests())
        fetcher = Fetcher(work / "cache")
        pg = plan.postgres[0]
        paths = {}
        for src in [pg.release.source, *[e.version.source for e in plan.extensions]]:
            paths[src.sha256] = timed(f"fetch {src.file}", lambda s=src: fetcher.fetch(s))
        cache = BuildCache(work / "cache")
        pg_epoch = source_date_epoch(paths[pg.release.source.sha256])
        pg_out = timed(f"compile {pg.name}", lambda: compile_postgres(
            base_image=pg.base_image, pg_version=pg.release.version, pg_major=pg.release.major,
            source_tarball=paths[pg.release.source.sha256],
            meson_options=(f"--buildtype={pg.option_set.buildtype}", *pg.option_set.meson_options),
            build_packages=pg.build_packages, platform=pg.platform, source_date_epoch=pg_epoch,
            out_dir=cache.dir(pg.key), progress=lambda _: None, cache_key=pg.key, no_cache=True))
        ext_outs = []
        for ext in plan.extensions:
            epoch = max(pg_epoch, source_date_epoch(paths[ext.version.source.sha256]))
            invocation = extension_invocation(
                base_image=pg.base_image, postgres=pg_out, pg_major=pg.release.major,
                source_tarball=paths[ext.version.source.sha256], patches=[],
                build_packages=pg.build_packages, recipe=ext.extension.build,
                platform=pg.platform, source_date_epoch=epoch)
            out = timed(f"compile {ext.name}", lambda i=invocation, e=ext: compile_extension(
                i, out_dir=cache.dir(e.key), progress=lambda _: None, cache_key=e.key,
                no_cache=True))
            ext_outs.append((ext, out, epoch))
        layout = Layout.create(work / "oci")
        client = make_client(registry.host)
        from monogres_oci.cli.common import _base_resolver

        resolver = _base_resolver(layout, argparse.Namespace(insecure=True, ca_file=None))
        packager = Packager(catalog, layout, resolver)
        pg_record = postgres_record(pg, pg_out, pg_epoch)
        timed("package postgres (dist + runnable, with SBOM and provenance)",
              lambda: packager.add_postgres(pg, pg_out, pg_record))
        with stage("package extensions"):
            for ext, out, epoch in ext_outs:
                package_extension(ext, out, pg_out, epoch, pg_record, packager)
            packager.finish()
        result = timed("publish", lambda: publish(layout, f"{registry.host}/bench", client))
        for ref in result.refs:
            runnable = ref.repository.endswith("/postgresql")  # for docker, not for install
            if not runnable and ref.tag.count("-") <= 3 and ref.tag.startswith("18-"):
                timed(f"install {ref.repository.rsplit('/', 1)[-1]}", lambda r=ref: install_one(
                    client, parse_reference(f"{r.repository}:{r.tag}"), work / "installed",
                    this_platform()))
        print(f"\n{'stage':<58} {'seconds':>8}")
        for name, seconds in ROWS:
            print(f"{name:<58} {seconds:8.1f}")
        print(f"{'total':<58} {sum(s for _, s in ROWS):8.1f}")
        print("\nsizes (compressed layer blobs, per platform):")
        for name, desc in layout.refs().items():
            if name.count("-") > 3 or ":18-" not in name:
                continue
            index = layout.read_index(desc.digest)
            manifest = layout.read_manifest(index.manifests[0].digest)
            total = sum(layer.size for layer in manifest.layers)
            print(f"  {name:<50} {len(manifest.layers)} layer(s) {total / 1e6:8.2f} MB")
    finally:
        registry.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
