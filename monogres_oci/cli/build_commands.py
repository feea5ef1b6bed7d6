"""The build commands: build, base, test, rebuild."""


from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from monogres_oci.build.recipes import recipe_digests
from monogres_oci.errors import UsageError
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.reference import parse_reference, parse_target
from monogres_oci.package.cache import PackagedStore
from monogres_oci.package.images import Packager
from monogres_oci.plan.targets import expand
from monogres_oci.progress import Progress, StepMeter

if TYPE_CHECKING:
    from monogres_oci.consume.rebuild import RebuildResult
from monogres_oci.cli.common import (
    _base_overrides,
    _base_resolver,
    _catalog,
    _client,
    _plan,
    _print_json,
    _published_states,
    _registry_source,
    _unpublished,
    _use_builder,
)


def cmd_build(args: argparse.Namespace, progress: Progress) -> int:
    from monogres_oci.build.compile.storage import CacheLimit
    from monogres_oci.build.fetch import Fetcher
    from monogres_oci.build.run import run_build
    from monogres_oci.build.state import BuildCache
    from monogres_oci.cli.options import cache_dir_of

    catalog = _catalog(args)
    plan = _plan(args, catalog)
    if args.registry_key and not args.registry:
        raise UsageError("--registry-key: name the registry to take Postgres builds from "
                         "(--registry HOST/NAMESPACE)")
    if args.builder:
        _use_builder(args.builder)
    limit = CacheLimit(args.engine_cache_limit) if args.engine_cache_limit else None
    if args.shard:
        from monogres_oci.plan.shards import parse_shard, shard_plan

        # Cut before anything narrows the plan: `plan --shards N` cut the whole plan.
        shard = parse_shard(args.shard)
        plan = shard_plan(plan, shard, args.postgres_only)
        progress.stage(f"shard {shard}: {len(plan.postgres)} Postgres and "
                       f"{len(plan.extensions)} extension target(s)")
    if args.registry:
        plan = _unpublished(plan, _published_states(args, plan, progress), progress)
    cache_dir = cache_dir_of(args.cache_dir)
    fetcher = Fetcher(cache_dir, Path(args.distdir) if args.distdir else None, progress.stage)
    out = Path(args.out)
    layout = Layout.open(out) if (out / "index.json").exists() else Layout.create(out)
    # --rebuild: everything from nothing, packaging included.
    store = None if args.rebuild else PackagedStore(cache_dir)
    packager = Packager(catalog, layout, _base_resolver(layout, args), progress.stage, store)
    report = run_build(catalog, plan, fetcher=fetcher, cache=BuildCache(cache_dir),
                       packager=packager, progress=progress, rebuild=args.rebuild,
                       gate=not args.no_gate, jobs=args.jobs, registry=_registry_source(args),
                       cache_limit=limit)
    if args.json:
        _print_json({
            "layout": str(out),
            "refs": report.refs,
            "targets": [{"name": r.name, "kind": r.kind, "ok": r.ok, "cached": r.cached,
                         "error": r.error, "gate": r.gate.to_json() if r.gate else None}
                        for r in report.results],
        })
    else:
        for r in report.results:
            state = ("ok (cached)" if r.cached else "ok") if r.ok else "FAILED"
            gate = f"  gate {r.gate.summary()}" if r.gate else ""
            print(f"{state:<12} {r.kind:<9} {r.name}{gate}")
        print(f"{len(report.refs)} reference(s) written to the OCI layout {out}")
    for r in report.failed:
        print(f"\n{r.name} failed:\n{r.error}", file=sys.stderr)
    return 1 if report.failed else 0


def cmd_base(args: argparse.Namespace, progress: Progress) -> int:
    from monogres_oci.build.base import create_base_index
    from monogres_oci.cli.options import cache_dir_of

    catalog = _catalog(args)
    known = {d.name: d for d in catalog.distros}
    if args.distro not in known:
        raise UsageError(f"unknown distro {args.distro!r}; known: {', '.join(sorted(known))}")
    distro = known[args.distro]
    archs = args.arch or list(distro.architectures)
    host, namespace = parse_target(args.registry)
    repo = f"{args.registry.rstrip('/')}/{distro.suite}" if namespace else f"{host}/{distro.suite}"
    reference = create_base_index(
        distro.suite, repo, archs, _client(host, args),
        workdir=cache_dir_of(args.cache_dir) / "base",
        progress=StepMeter(progress, f"base image {distro.name}"))
    if args.json:
        _print_json({"distro": distro.name, "reference": reference, "architectures": sorted(archs)})
    else:
        print(reference)
    return 0


def cmd_test(args: argparse.Namespace, progress: Progress) -> int:
    import tempfile
    from collections import defaultdict

    from monogres_oci.build.fetch import Fetcher
    from monogres_oci.build.run import run_build
    from monogres_oci.build.state import BuildCache
    from monogres_oci.cli.options import cache_dir_of
    from monogres_oci.consume.identify import Published, identify, identify_in_layout, selection_for
    from monogres_oci.errors import VerifyError

    catalog = _catalog(args)
    overrides = _base_overrides(args, catalog)
    if bool(args.layout) == bool(args.references):
        raise UsageError("give either --layout DIR or published references, not both")
    published: list[Published] = []
    if args.layout:
        layout = Layout.open(Path(args.layout))
        seen: set[str] = set()
        for name, desc in layout.refs().items():
            item = identify_in_layout(layout, name)
            if (item.get("artifact") != "extension" or desc.digest in seen
                    or (args.extension and item.get("extension.name") not in args.extension)):
                continue
            seen.add(desc.digest)
            published.append(item)
    else:
        out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="monogres-test-"))
        layout = Layout.open(out) if (out / "index.json").exists() else Layout.create(out)
        for text in args.references:
            ref = parse_reference(text)
            item = identify(_client(ref.host, args), ref)
            if item.get("artifact") != "extension":
                raise UsageError(f"{text} is not an extension image (it is a "
                                 f"{item.get('artifact')} artifact): nothing to test")
            published.append(item)
    if not published:
        raise UsageError(f"no extension image to test in {layout.root}")
    cache_dir = cache_dir_of(args.cache_dir)
    fetcher = Fetcher(cache_dir, Path(args.distdir) if args.distdir else None, progress.stage)
    packager = Packager(catalog, layout, _base_resolver(layout, args), progress.stage,
                        PackagedStore(cache_dir))
    groups: dict[tuple[str, str, str, str], list[Published]] = defaultdict(list)
    for item in published:
        groups[item.group()].append(item)
    results = []
    for (_, _, distro, published_base), group in groups.items():
        base = overrides.get(distro) or published_base
        plan = expand(catalog, selection_for(group), base_overrides={distro: base} if base else {},
                      recipe_digests=recipe_digests())
        # Asked to test: the gate runs, whatever passed before.
        report = run_build(catalog, plan, fetcher=fetcher, cache=BuildCache(cache_dir),
                           packager=packager, progress=progress, reuse_gates=False,
                           jobs=args.jobs)
        results += [r for r in report.results if r.kind == "extension"]
    refs = packager.finish()
    # The images tested must be the very ones asked about: the catalog built them again.
    for item in published:
        repo = item.local_repository
        now = {layout.resolve(n).digest for n in refs if n.startswith(f"{repo}:")}
        if now and item.digest not in now:
            raise VerifyError(f"{item}: this catalog builds {sorted(now)[0]}, not "
                              f"{item.digest}; its result would say nothing about that image "
                              "(check out the catalog and recipes it was built from)")
    failed = [r for r in results if not r.ok]
    if args.json:
        _print_json({"layout": str(layout.root), "results": [
            {"name": r.name, "ok": r.ok, "error": r.error,
             "gate": r.gate.to_json() if r.gate else None} for r in results]})
    else:
        for r in results:
            summary = r.gate.summary() if r.gate else r.error.splitlines()[0]
            print(f"{'ok' if r.ok else 'FAILED':<7} {r.name}  {summary}")
        print(f"results attached in the layout {layout.root}")
    for r in failed:
        print(f"\n{r.name} failed:\n{r.error}", file=sys.stderr)
    return 1 if failed else 0


def cmd_rebuild(args: argparse.Namespace, progress: Progress) -> int:
    import tempfile
    from collections import defaultdict

    from monogres_oci.build.fetch import Fetcher
    from monogres_oci.build.run import run_build
    from monogres_oci.build.state import BuildCache
    from monogres_oci.cli.options import cache_dir_of
    from monogres_oci.consume.identify import Published, identify, selection_for
    from monogres_oci.consume.rebuild import compare, have_diffoscope
    from monogres_oci.errors import BuildError, VerifyError

    catalog = _catalog(args)
    overrides = _base_overrides(args, catalog)
    published = []
    for text in args.references:
        ref = parse_reference(text)
        published.append(identify(_client(ref.host, args), ref))
    if args.work_dir:
        work = Path(args.work_dir)
        if work.exists() and any(work.iterdir()):
            raise UsageError(f"--work-dir {work} is not empty: a rebuild starts from nothing")
    else:
        work = Path(tempfile.mkdtemp(prefix="monogres-rebuild-"))
    work.mkdir(parents=True, exist_ok=True)
    progress.stage(f"rebuilding {len(published)} artifact(s) from scratch in {work}")
    layout = Layout.create(work / "oci")
    fetcher = Fetcher(cache_dir_of(args.cache_dir), Path(args.distdir) if args.distdir else None,
                      progress.stage)
    packager = Packager(catalog, layout, _base_resolver(layout, args), progress.stage)
    groups: dict[tuple[str, str, str, str], list[Published]] = defaultdict(list)
    for item in published:
        groups[item.group()].append(item)
    for (_, _, distro, published_base), group in groups.items():
        # The base the artifact names, unless --base says otherwise (both pinned by digest).
        base = overrides.get(distro) or published_base
        bases = {distro: base} if base else {}
        plan = expand(catalog, selection_for(group), base_overrides=bases,
                      recipe_digests=recipe_digests())
        planned = ({f"sha256:{t.key}" for t in plan.postgres}
                   | {f"sha256:{t.key}" for t in plan.extensions})
        for item in group:
            if item.input_digest and item.input_digest not in planned:
                # Input digests name the catalog entry, recipes, packages and base: the rebuild
                # goes on (it shows what differs), but identical digests are not to be expected.
                progress.stage(f"warning: {item.reference} was built from other inputs "
                               f"({item.input_digest[:19]}) than this catalog and these recipes "
                               "plan; expect differences")
        report = run_build(catalog, plan, fetcher=fetcher, cache=BuildCache(work), packager=packager,
                           progress=progress, rebuild=True, gate=False,
                           sandbox_hostname=f"rebuild-{os.urandom(4).hex()}")
        if report.failed:
            raise BuildError("the rebuild failed: " + "; ".join(
                f"{r.name}: {r.error.splitlines()[0] if r.error else 'failed'}"
                for r in report.failed))
    results = [compare(_client(p.reference.host, args), p, layout, work,
                       diffoscope=not args.no_diffoscope, progress=progress.stage)
               for p in published]
    if args.json:
        _print_json({"work_dir": str(work), "diffoscope": have_diffoscope(),
                     "identical": all(r.identical for r in results),
                     "results": [r.to_json() for r in results]})
    else:
        _print_rebuild(results, work)
    if args.verify and not all(r.identical for r in results):
        different = [r.reference for r in results if not r.identical]
        raise VerifyError(f"not reproduced: {', '.join(different)} (details above; the rebuilt "
                          f"layout is {work / 'oci'})")
    return 0


def _print_rebuild(results: Sequence[RebuildResult], work: Path) -> None:
    from monogres_oci.consume.rebuild import have_diffoscope

    for r in results:
        print(f"{r.reference}: {'IDENTICAL' if r.identical else 'DIFFERENT'}")
        for c in r.comparisons:
            mark = "=" if c.identical else "!"
            shown = c.published if c.identical else f"published {c.published}, rebuilt {c.rebuilt}"
            print(f"  {mark} {c.what:<28} {shown}")
        for note in r.notes:
            print(f"  note: {note}")
        for f in r.files:
            print(f"  {f.change:<18} {f.path}  ({f.layer}{'; ' + f.detail if f.detail else ''})")
            for line in f.diffoscope.splitlines():
                print(f"      | {line}")
        if r.files and not have_diffoscope():
            print("  (install diffoscope to see how the files differ)")
    print(f"rebuilt layout: {work / 'oci'}")
