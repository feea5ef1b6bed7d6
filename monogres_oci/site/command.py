"""`monogres-oci site`: collect from a layout, render, and put the site in place whole."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from monogres_oci.consume.pull import is_loopback, make_client
from monogres_oci.errors import UsageError
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.reference import parse_reference
from monogres_oci.progress import Progress
from monogres_oci.site.collect import collect
from monogres_oci.site.pull import layout_of_published
from monogres_oci.site.render import SiteOptions, render, site_json


def write_site(files: dict[str, bytes], out: Path) -> None:
    """Write the site beside ``out`` and swap it in: a reader never sees half of one, and an
    older site's pages that no longer exist go with it. A directory that is not a site (no
    index.html) is never replaced."""
    if out.exists() and any(out.iterdir()) and not (out / "index.html").is_file():
        raise UsageError(f"{out} is not empty and holds no site (no index.html): name another "
                         "--out directory, or empty this one")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for path, data in sorted(files.items()):
            target = staging / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            target.chmod(0o644)
        for directory in [staging, *(p for p in staging.rglob("*") if p.is_dir())]:
            directory.chmod(0o755)
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def cmd_site(args: argparse.Namespace, progress: Progress) -> int:
    if args.published:
        refs = [parse_reference(text) for text in args.published]
        ca = Path(args.ca_file) if args.ca_file else None
        with tempfile.TemporaryDirectory(prefix="monogres-site-") as tmp:
            layout = layout_of_published(
                refs, lambda host: make_client(host, insecure=args.insecure, ca_file=ca),
                Path(tmp) / "layout", progress.stage)
            artifacts = collect(layout)
    else:
        layout_dir = Path(args.layout)
        if not (layout_dir / "index.json").is_file():
            raise UsageError(f"{layout_dir} is not an OCI image layout (no index.json): pass "
                             "the --out directory of `monogres-oci build` as --layout, or "
                             "published references")
        artifacts = collect(Layout.open(layout_dir))
    if not artifacts:
        raise UsageError("no named image to show: build (or publish) something first")
    host = (args.registry or "").partition("/")[0]
    options = SiteOptions(registry=args.registry or "", public_key=args.key,
                          plain_http=args.insecure or bool(host and is_loopback(host)))
    files = render(artifacts, options)
    out = Path(args.out)
    write_site(files, out)
    if args.json:
        print(site_json(artifacts, files))
    else:
        progress.stage(f"wrote {len(files)} files for {len(artifacts)} images to {out}: "
                       f"open {out / 'index.html'}")
    return 0
