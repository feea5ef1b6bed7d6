"""``monogres-oci import debian``: source packages in, catalog entries out, and what was not decided."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from monogres_oci.build.fetch import Fetcher
from monogres_oci.catalog import load_catalog
from monogres_oci.catalog.model import Catalog
from monogres_oci.debian.archive import PrivateApt
from monogres_oci.errors import ImporterError, UsageError
from monogres_oci.importer.archive import Archive
from monogres_oci.importer.catalog_edit import apply
from monogres_oci.importer.check import outdated
from monogres_oci.importer.debian import DebianImporter, Imported
from monogres_oci.progress import Progress


def run_import(args: argparse.Namespace, progress: Progress, cache_dir: Path) -> int:
    if args.origin != "debian":
        raise UsageError(f"import {args.origin}: only `debian` source packages can be imported")
    if sum(map(bool, (args.packages, args.all, args.check))) != 1:
        raise UsageError("import debian: name SOURCE[=VERSION]..., or give --all or --check")
    license_read = spdx_expression(args.license) if args.license else ""
    if license_read and len(args.packages) != 1:
        raise UsageError("--license: the licence of one package, read in its copyright file: "
                         "name exactly one SOURCE[=VERSION] with it")
    catalog_path = Path(args.catalog)
    catalog = load_catalog(catalog_path)
    # Its own apt state: the binary indexes (descriptions, copyright files of .debs) are needed
    # here and nowhere else.
    archive = Archive(PrivateApt(cache_dir / "import-apt", binary_arch="amd64"))
    progress("reading the archive's signed Sources and Packages indexes")
    if args.check:
        return _check(catalog, archive, args.json)
    toolchain = sorted({p for d in catalog.distros for p in d.toolchain_packages})
    work = cache_dir / "import-work"
    work.mkdir(parents=True, exist_ok=True)
    importer = DebianImporter(archive, Fetcher(cache_dir, progress=progress), work,
                              progress=progress,
                              licenses={e.name: e.license for e in catalog.extensions},
                              provides={sql: e.name for e in catalog.extensions
                                        for sql in e.sql_names})
    specs = args.packages or sorted({r.package for r in archive.extension_sources()})
    if args.all:
        progress(f"{len(specs)} source packages build-depend on postgresql-server-dev-all or "
                 "postgresql-all")
    imported: list[Imported] = []
    failed: dict[str, str] = {}
    for spec in specs:
        try:
            imported.append(importer.import_spec(spec, toolchain, license_read))
        except ImporterError as exc:
            failed[spec] = str(exc)
    changes = apply(catalog_path, imported, write=not args.dry_run)
    for item, change in zip(imported, changes, strict=True):
        if change.action == "invalid":
            failed[f"{item.package}={item.debian_version}"] = \
                f"the entry would not validate, left out: {change.reason}"
    taken = [(i, c) for i, c in zip(imported, changes, strict=True) if c.action != "invalid"]
    if args.json:
        print(json.dumps({
            "catalog": str(catalog_path), "written": not args.dry_run,
            "imported": [{"name": i.name, "package": i.package, "debian_version": i.debian_version,
                          "action": c.action, "entry": i.entry,
                          "findings": [f.__dict__ for f in i.findings],
                          "undecided": list(i.undecided)}
                         for i, c in taken],
            "failed": failed}, indent=2, sort_keys=True))
    else:
        for item, change in taken:
            print(f"{item.name} {change.version}: {change.action} "
                  f"(from {item.package} {item.debian_version})")
            for f in item.findings:
                mark = "  detected, confirm:" if f.detected else " "
                print(f" {mark} {f.key} = {f.value}  [{f.source}]")
            for text in item.undecided:
                print(f"  undecided: {text}")
        for spec, why in failed.items():
            print(f"{spec}: not imported: {why}")
        if args.dry_run:
            print(f"(dry run: {catalog_path} not written)")
    # --all reports what it could not take; naming packages that cannot be taken is an error.
    return 1 if failed and not args.all else 0


def _check(catalog: Catalog, archive: Archive, as_json: bool) -> int:
    found = outdated(catalog, archive)
    if as_json:
        print(json.dumps({"outdated": [{**o.__dict__, "import": o.spec} for o in found]},
                         indent=2, sort_keys=True))
    else:
        for o in found:
            print(f"{o.name} {o.version}: {o.suite} has {o.package} {o.newest} (the catalog pins "
                  f"{o.pinned}); take it with: monogres-oci import debian {o.spec}")
        if not found:
            print("every entry taken from Debian is at the archive's newest upstream version")
    return 0


def spdx_expression(text: str) -> str:
    """``text`` as a valid SPDX licence expression (identifiers in their SPDX spelling), or
    UsageError saying what is wrong. ``LicenseRef-`` names (a licence SPDX does not list) pass."""
    from license_expression import (  # type: ignore[import-untyped]
        ExpressionError,
        get_spdx_licensing,
    )

    licensing = get_spdx_licensing()
    try:
        parsed = licensing.parse(text, validate=False)
    except ExpressionError as exc:
        raise UsageError(f"--license {text!r}: not an SPDX expression ({exc})") from None
    if parsed is None:
        raise UsageError("--license: empty; give an SPDX expression, e.g. PostgreSQL or "
                         "'GPL-2.0-or-later OR Artistic-1.0'")
    unknown = [k for k in licensing.unknown_license_keys(parsed)
               if not k.startswith("LicenseRef-")]
    if unknown:
        raise UsageError(f"--license {text!r}: {', '.join(unknown)}: not an SPDX licence "
                         "identifier (https://spdx.org/licenses/; LicenseRef-NAME for one it "
                         "does not list)")
    return str(licensing.parse(text, validate=False, simple=False))
