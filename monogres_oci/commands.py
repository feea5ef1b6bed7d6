"""The subcommands: each turns parsed arguments into calls to the stages, and prints the result."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from monogres_oci.build.recipes import recipe_digests
from monogres_oci.catalog import Catalog, load_catalog
from monogres_oci.consume.pull import as_oci_layer, make_client, resolve, this_platform
from monogres_oci.errors import UsageError
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import Descriptor, Platform
from monogres_oci.oci.reference import Reference, parse_reference, parse_target, split_ref_name
from monogres_oci.oci.registry import RegistryClient
from monogres_oci.oci.retry import policy_from
from monogres_oci.package.cache import PackagedStore
from monogres_oci.package.images import BaseImage, BaseResolver, Packager
from monogres_oci.plan.targets import ExtensionTarget, Plan, PostgresTarget, Selection, expand
from monogres_oci.progress import Progress, StepMeter, TransferMeter

if TYPE_CHECKING:
    from monogres_oci.build.compile.from_registry import RegistrySource
    from monogres_oci.consume.rebuild import RebuildResult
    from monogres_oci.plan.published import InRegistry
    from monogres_oci.plan.rows import PlanState
    from monogres_oci.publish.push import PublishEvent


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _catalog(args: argparse.Namespace) -> Catalog:
    from monogres_oci.cli import _cache_dir

    # A command with a cache directory keeps the validated catalog there (`validate` has none).
    cache = _cache_dir(args.cache_dir) / "catalogs" if "cache_dir" in vars(args) else None
    return load_catalog(Path(args.catalog), validated_dir=cache)


def _base_overrides(args: argparse.Namespace, catalog: Catalog) -> dict[str, str]:
    overrides: dict[str, str] = {}
    known = {d.name for d in catalog.distros}
    for item in getattr(args, "base", []):
        distro, sep, ref = item.partition("=")
        if not sep or distro not in known:
            raise UsageError(f"--base {item!r}: expected DISTRO=REF@sha256:... with DISTRO one of "
                             f"{', '.join(sorted(known))}")
        if "@sha256:" not in ref:
            raise UsageError(f"--base {item!r}: the base image must be pinned by digest "
                             "(REF@sha256:...), so the build is reproducible")
        overrides[distro] = ref
    return overrides


def _selection(args: argparse.Namespace) -> Selection:
    return Selection(
        postgres=tuple(args.postgres), option_sets=tuple(args.option_set),
        distros=tuple(args.distro), archs=tuple(args.arch), extensions=tuple(args.extension),
        postgres_only=args.postgres_only, emulate=args.emulate,
    )


def _plan(args: argparse.Namespace, catalog: Catalog) -> Plan:
    return expand(catalog, _selection(args), base_overrides=_base_overrides(args, catalog),
                  recipe_digests=recipe_digests())


def cmd_import(args: argparse.Namespace, progress: Progress) -> int:
    from monogres_oci.cli import _cache_dir
    from monogres_oci.importer.command import run_import

    return run_import(args, progress, _cache_dir(args.cache_dir))


def cmd_validate(args: argparse.Namespace, progress: Progress) -> int:
    catalog = _catalog(args)
    summary = {
        "catalog": catalog.path,
        "valid": True,
        "postgres": [p.version for p in catalog.postgres],
        "option_sets": [o.name for o in catalog.option_sets],
        "distros": [d.name for d in catalog.distros],
        "extensions": {e.name: [v.version for v in e.versions] for e in catalog.extensions},
    }
    if args.json:
        _print_json(summary)
    else:
        print(f"{catalog.path}: valid: {len(catalog.postgres)} Postgres release(s), "
              f"{len(catalog.option_sets)} option set(s), {len(catalog.distros)} distro(s), "
              f"{len(catalog.extensions)} extension(s)")
    return 0


def cmd_plan(args: argparse.Namespace, progress: Progress) -> int:
    from monogres_oci.build.fetch import Fetcher
    from monogres_oci.build.state import BuildCache
    from monogres_oci.cli import _cache_dir
    from monogres_oci.plan.rows import PlanState, plan_lines, plan_rows

    catalog = _catalog(args)
    plan = _plan(args, catalog)
    cache_dir = _cache_dir(args.cache_dir)
    fetcher = Fetcher(cache_dir)
    sources = {*(p.release.source for p in plan.postgres),
               *(e.version.source for e in plan.extensions),
               *(d.target.version.source for d in plan.disabled)}
    if args.shards:
        from monogres_oci.plan.shards import matrix

        _print_json(matrix(plan, args.shards))
        return 0
    have = PlanState(BuildCache(cache_dir).finished(),
                     {s.sha256: fetcher.is_cached(s) for s in sources})
    if args.registry:
        return _plan_published(args, plan, have, progress)
    if args.jsonl:
        # Written a batch at a time as they come: a million targets never sit in memory as text.
        batch: list[str] = []
        for line in plan_lines(plan, have):
            batch.append(line)
            if len(batch) == 4096:
                sys.stdout.write("\n".join(batch) + "\n")
                batch.clear()
        if batch:
            sys.stdout.write("\n".join(batch) + "\n")
        return 0
    rows = list(plan_rows(plan, have))
    if args.json:
        _print_json({"targets": rows})
        return 0
    width = max(len(str(r["name"])) for r in rows)
    for r in rows:
        print(f"{r['kind']:<9} {r['name']:<{width}}  {r['method']:<8}  {r['state']:<8}  "
              f"{str(r['input_digest'])[:19]}")
    to_build = sum(r["state"] == "to build" for r in rows)
    print(f"{len(rows)} target(s), {to_build} to build"
          + (f", {len(plan.disabled)} disabled (`monogres-oci status` says why)"
             if plan.disabled else ""))
    return 0


STATUS_BEGIN = "<!-- BEGIN monogres-oci status: regenerated by `monogres-oci status --update FILE` -->"
STATUS_END = "<!-- END monogres-oci status -->"


def cmd_status(args: argparse.Namespace, progress: Progress) -> int:
    from monogres_oci.build.state import BuildCache, Outcomes
    from monogres_oci.cli import _cache_dir
    from monogres_oci.plan.status import collect, counts, to_json, to_markdown

    catalog = _catalog(args)
    plan = _plan(args, catalog)
    cache_dir = _cache_dir(args.cache_dir)
    lookup = _published_states(args, plan, progress) if args.registry else None
    rows = collect(catalog, plan, BuildCache(cache_dir), Outcomes(cache_dir), lookup,
                   _selection(args))
    if args.json:
        _print_json(to_json(rows))
    elif args.update:
        _update_between_markers(Path(args.update), to_markdown(rows))
        progress.stage(f"{args.update}: status table updated ({len(rows)} targets)")
    elif args.markdown:
        print(to_markdown(rows), end="")
    else:
        width = max(len(f"{r.name} {r.version}") for r in rows)
        for r in rows:
            where = f"{r.postgres} {r.option_set} {r.distro} {r.arch}" if r.postgres else "-"
            tests = f" {r.tests}" if r.tests and r.state != "failed" else ""
            detail = f"  {r.detail}" if r.detail and r.state != "tested" else ""
            print(f"{r.name + ' ' + r.version:<{width}}  {where:<32} {r.state}{tests}{detail}")
        summary = ", ".join(f"{n} {state}" for state, n in counts(rows).items())
        print(f"{len(rows)} target(s): {summary}")
    return 0


def _update_between_markers(path: Path, table: str) -> None:
    """Replace what lies between the status markers of a Markdown file (README.md)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    begin, end = text.find(STATUS_BEGIN), text.find(STATUS_END)
    if begin < 0 or end < begin:
        raise UsageError(f"{path} has no status markers; put these two lines where the table "
                         f"goes:\n{STATUS_BEGIN}\n{STATUS_END}")
    head = text[:begin + len(STATUS_BEGIN)]
    path.write_text(f"{head}\n{table}{text[end:]}")


def _client(host: str, args: argparse.Namespace) -> RegistryClient:
    ca = Path(args.ca_file) if getattr(args, "ca_file", None) else None
    return make_client(host, insecure=getattr(args, "insecure", False), ca_file=ca,
                       retry=policy_from(getattr(args, "retries", None)))


def _base_resolver(layout: Layout, args: argparse.Namespace) -> BaseResolver:
    """Resolve a base image and copy its layers into the layout (once per reference/platform)."""
    seen: dict[tuple[str, str], BaseImage] = {}

    def resolve_base(reference: str, platform: Platform) -> BaseImage:
        key = (reference, str(platform))
        if key not in seen:
            ref = parse_reference(reference)
            client = _client(ref.host, args)
            image = resolve(client, ref, platform)
            layers = tuple(as_oci_layer(layer) for layer in image.manifest.layers)
            for layer in layers:
                if not layout.has_blob(layer.digest, layer.size):
                    client.download_blob(ref.repository, layer.digest,
                                         layout.blob_path(layer.digest), layer.size)
            seen[key] = BaseImage(reference, image.config, layers)
        return seen[key]

    return resolve_base


def _published_states(args: argparse.Namespace, plan: Plan,
                      progress: Progress) -> dict[str, InRegistry]:
    from monogres_oci.plan.published import count, published_states

    host, namespace = parse_target(args.registry)
    targets: list[PostgresTarget | ExtensionTarget] = [*plan.postgres, *plan.extensions]
    progress.stage(f"reading what {args.registry} holds for {len(targets)} target(s)")
    states = published_states(_client(host, args), namespace, targets)
    totals = count(states.values())
    progress.stage(f"{args.registry}: {totals['current']} current, {totals['stale']} stale, "
                   f"{totals['not published']} not published")
    return states


def _use_builder(name: str) -> None:
    """Every buildx build of this process goes to the builder ``name`` (BUILDX_BUILDER is buildx's
    own variable for it), once buildx knows the name."""
    from monogres_oci.runner import run

    found = run(["docker", "buildx", "inspect", name], check=False)
    if found.returncode != 0:
        raise UsageError(f"--builder {name}: {(found.stderr or found.stdout).strip()} "
                         "(`docker buildx ls` lists the builders; `docker buildx create` adds one)")
    os.environ["BUILDX_BUILDER"] = name


def _registry_source(args: argparse.Namespace) -> RegistrySource | None:
    """Where Postgres builds may be taken from (build --registry R --registry-key PUB)."""
    if not args.registry_key:
        return None
    from monogres_oci.attest.sign import load_public_key
    from monogres_oci.build.compile.from_registry import RegistrySource

    host, namespace = parse_target(args.registry)
    return RegistrySource(_client(host, args), namespace,
                          load_public_key(Path(args.registry_key)))


def _unpublished(plan: Plan, states: dict[str, InRegistry], progress: Progress) -> Plan:
    """The plan without what the registry holds from the same inputs; a Postgres build stays
    while an extension to build needs it."""
    current = {k for k, s in states.items() if s.state == "current"}
    extensions = tuple(e for e in plan.extensions if e.key not in current)
    needed = {e.postgres.key for e in extensions}
    postgres = tuple(p for p in plan.postgres if p.key not in current or p.key in needed)
    skipped = len(plan.postgres) - len(postgres) + len(plan.extensions) - len(extensions)
    if skipped:
        progress.stage(f"skipping {skipped} target(s) published from the same inputs")
    return dataclasses.replace(plan, postgres=postgres, extensions=extensions)


def _plan_published(args: argparse.Namespace, plan: Plan, have: PlanState,
                    progress: Progress) -> int:
    from monogres_oci.plan.rows import plan_rows, row_line

    states = _published_states(args, plan, progress)
    rows = list(plan_rows(plan, have))
    for row in rows:
        known = states.get(str(row["input_digest"]).removeprefix("sha256:"))
        if known is not None:
            row["published"] = known.state
            if known.reference:
                row["published_ref"] = known.reference
            if known.changed:
                row["changed"] = list(known.changed)
    if args.jsonl:
        for row in rows:
            print(row_line(row))
    elif args.json:
        _print_json({"targets": rows})
    else:
        width = max(len(str(r["name"])) for r in rows)
        for r in rows:
            changed = f" (changed: {', '.join(r['changed'])})" if r.get("changed") else ""  # type: ignore[arg-type]
            print(f"{r['kind']:<9} {r['name']:<{width}}  {r['state']:<8}  "
                  f"{r.get('published', r['state'])}{changed}")
    return 0


def cmd_build(args: argparse.Namespace, progress: Progress) -> int:
    from monogres_oci.build.compile.storage import CacheLimit
    from monogres_oci.build.fetch import Fetcher
    from monogres_oci.build.run import run_build
    from monogres_oci.build.state import BuildCache
    from monogres_oci.cli import _cache_dir

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
    cache_dir = _cache_dir(args.cache_dir)
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


IMMUTABLE_TAG = re.compile(r"-\d{12}-")


def cmd_publish(args: argparse.Namespace, progress: Progress) -> int:
    from monogres_oci.publish.push import publish

    layout = Layout.open(Path(args.layout))
    host, namespace = parse_target(args.registry)
    if args.sign_key:
        from monogres_oci.attest.sign import load_signing_key
        from monogres_oci.attest.signatures import sign_layout

        key = load_signing_key(Path(args.sign_key))
        count = sign_layout(layout, key, progress=progress.detail)
        progress.stage(f"signed: {count} signature(s) and attestation(s) with key {key.public.hint}")
    if not args.allow_untested:
        from monogres_oci.gate import check_gated

        check_gated(layout)
    client = None if args.dry_run else _client(host, args)
    if client is not None:
        client.ping()
        if not args.by_digest:
            _check_immutable_tags(layout, client, namespace)
    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: give 1 or more")
    uploads = _UploadMeter(progress)
    result = publish(layout, args.registry, client, dry_run=args.dry_run, jobs=args.jobs,
                     progress=uploads, tags=not args.by_digest)
    uploads.finish()
    if args.json:
        _print_json({"dry_run": result.dry_run, "by_digest": args.by_digest,
                     "refs": [{"reference": str(r), "repository": r.repository, "tag": r.tag,
                               "digest": r.digest} for r in result.refs],
                     "manifests": _pushed_manifests(layout, result.refs),
                     "attestations": _attestation_files(layout, result.refs)})
    else:
        for ref in result.refs:
            print(ref)
        print(f"{'would push' if result.dry_run else 'pushed'}: "
              f"{result.count('blob', 'would push' if result.dry_run else 'pushed')} blob(s); "
              f"{0 if args.by_digest else len(result.refs)} tag(s)"
              f"{_retried(client)}", file=sys.stderr)
    return 0


def _retried(client: RegistryClient | None) -> str:
    made = client.retries_made if client is not None else 0
    return f"; {made} request(s) repeated after transient failures" if made else ""


def cmd_merge(args: argparse.Namespace, progress: Progress) -> int:
    import tempfile

    from monogres_oci.publish.merge import merge, read_parts
    from monogres_oci.publish.push import publish

    host, namespace = parse_target(args.registry)
    parts = read_parts([Path(p) for p in args.parts], args.registry)
    client = _client(host, args)
    client.ping()
    with tempfile.TemporaryDirectory(prefix="monogres-merge-") as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "layout"
        layout = Layout.create(out)
        merged, present = merge(parts, client, args.registry, layout, progress.stage)
        if args.sign_key:
            from monogres_oci.attest.sign import load_signing_key
            from monogres_oci.attest.signatures import sign_layout

            key = load_signing_key(Path(args.sign_key))
            count = sign_layout(layout, key, progress=progress.detail)
            progress.stage(f"signed: {count} signature(s) with key {key.public.hint}")
        if not args.dry_run:
            _check_immutable_tags(layout, client, namespace)
        uploads = _UploadMeter(progress)
        result = publish(layout, args.registry, None if args.dry_run else client,
                         dry_run=args.dry_run, present=present, progress=uploads)
        uploads.finish()
    if args.json:
        _print_json({"dry_run": result.dry_run,
                     "indexes": [{"repository": "/".join(filter(None, (host, namespace,
                                                                        m.repository))),
                                  "digest": m.digest, "platforms": list(m.platforms),
                                  "tags": list(m.tags), "parts": list(m.parts)} for m in merged],
                     "refs": [{"reference": str(r), "repository": r.repository, "tag": r.tag,
                               "digest": r.digest} for r in result.refs]})
    else:
        for ref in result.refs:
            print(ref)
        print(f"{'would merge' if result.dry_run else 'merged'}: {len(merged)} index(es), "
              f"{len(result.refs)} tag(s)", file=sys.stderr)
    return 0


def _pushed_manifests(layout: Layout, refs: Any) -> list[dict[str, str]]:
    """Every index and image of a publish, by digest: what a keyless CI job signs with cosign."""
    from monogres_oci.oci.model import INDEX_TYPES, MANIFEST_TYPES

    seen: dict[str, dict[str, str]] = {}
    for ref in refs:
        top = layout.read_node(Descriptor(ref.media_type, ref.digest, 0))
        digests = [ref.digest] + [d.digest for d in getattr(top, "manifests", ())
                                  if d.media_type in MANIFEST_TYPES | INDEX_TYPES]
        for digest in digests:
            key = f"{ref.repository}@{digest}"
            seen.setdefault(key, {"reference": key, "digest": digest})
    return list(seen.values())


def _attestation_files(layout: Layout, refs: Any) -> list[dict[str, str]]:
    """The SBOM and provenance of each pushed image, as files of the layout (for cosign attest)."""
    from monogres_oci.attest.attach import PREDICATE_ANNOTATION, attachments_by_subject

    by_subject = attachments_by_subject(layout)
    out = []
    for item in _pushed_manifests(layout, refs):
        for attachment in by_subject.get(item["digest"], []):
            predicate_type = attachment.descriptor.annotations.get(PREDICATE_ANNOTATION)
            if predicate_type:
                out.append({"reference": item["reference"], "predicate_type": predicate_type,
                            "file": str(layout.blob_path(attachment.payload.digest))})
    return out


def cmd_keygen(args: argparse.Namespace, progress: Progress) -> int:
    from monogres_oci.attest.sign import PASSWORD_ENV, generate_key_pair

    password = os.environ.get(PASSWORD_ENV) or None
    private, public = generate_key_pair(Path(args.out), password)
    state = "encrypted" if password else f"NOT encrypted: set {PASSWORD_ENV} to encrypt it"
    print(f"private key: {private} ({state})")
    print(f"public key:  {public}")
    return 0


def cmd_verify(args: argparse.Namespace, progress: Progress) -> int:
    from monogres_oci.attest.sign import load_public_key
    from monogres_oci.consume.verify import verify_reference

    key = load_public_key(Path(args.key))
    platform = Platform.parse(args.platform) if args.platform else None
    results = []
    for text in args.references:
        ref = parse_reference(text)
        checked = verify_reference(_client(ref.host, args), ref, key, platform=platform,
                                   blobs=not args.no_blobs, progress=progress.detail)
        results.append({"reference": text, "verified": [
            {"digest": c.digest, "platform": c.platform, "signed": c.signed,
             "attestations": list(c.attestations), "blobs_checked": c.blobs} for c in checked]})
        if not args.json:
            print(f"{text}: verified ({len(checked)} manifest(s)/index(es) signed with key "
                  f"{key.hint}; SBOM and provenance signed; digests checked)")
    if args.json:
        _print_json({"key": key.hint, "results": results})
    return 0


def cmd_rebuild(args: argparse.Namespace, progress: Progress) -> int:
    import tempfile
    from collections import defaultdict

    from monogres_oci.build.fetch import Fetcher
    from monogres_oci.build.run import run_build
    from monogres_oci.build.state import BuildCache
    from monogres_oci.cli import _cache_dir
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
    fetcher = Fetcher(_cache_dir(args.cache_dir), Path(args.distdir) if args.distdir else None,
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


def cmd_test(args: argparse.Namespace, progress: Progress) -> int:
    import tempfile
    from collections import defaultdict

    from monogres_oci.build.fetch import Fetcher
    from monogres_oci.build.run import run_build
    from monogres_oci.build.state import BuildCache
    from monogres_oci.cli import _cache_dir
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
    cache_dir = _cache_dir(args.cache_dir)
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


def cmd_verify_blob(args: argparse.Namespace, progress: Progress) -> int:
    from monogres_oci.attest.sign import load_public_key, verify_blob

    key = load_public_key(Path(args.key))
    path = Path(args.file)
    bundle = Path(args.bundle) if args.bundle else path.with_name(path.name + ".sigstore.json")
    try:
        data, bundle_bytes = path.read_bytes(), bundle.read_bytes()
    except OSError as exc:
        raise UsageError(f"{exc.filename}: {exc.strerror}") from exc
    verify_blob(key, data, bundle_bytes, str(path))
    print(f"{path}: verified with key {key.hint}")
    return 0


def _check_immutable_tags(layout: Layout, client: RegistryClient, namespace: str) -> None:
    """An immutable (timestamped) tag that exists with other content is never moved."""
    for name, desc in layout.refs().items():
        repo, tag = split_ref_name(name)
        if not IMMUTABLE_TAG.search(tag):
            continue
        full = f"{namespace}/{repo}" if namespace else repo
        existing = client.head_manifest(full, tag)
        if existing is not None and existing.digest != desc.digest:
            raise UsageError(
                f"{client.host}/{full}:{tag} already exists as {existing.digest}, and this build "
                f"is {desc.digest}; immutable tags are never moved. The inputs differ (a new "
                "toolchain?): set SOURCE_DATE_EPOCH to a new time and rebuild, or publish "
                "elsewhere. Nothing was pushed.")


def cmd_install(args: argparse.Namespace, progress: Progress) -> int:
    from monogres_oci.consume.install import (
        check_bundled,
        check_married,
        install_one,
        postgresql_conf,
        server_environment,
    )

    platform = Platform.parse(args.platform) if args.platform else this_platform()
    dest = Path(args.dest).resolve()
    refs = [parse_reference(text) for text in args.references]
    check = _install_check(args, progress)
    items = []
    for ref in refs:
        items.append(install_one(_client(ref.host, args), ref, dest, platform, progress.stage,
                                 check=check))
    check_married(items)
    check_bundled(items)
    conf = postgresql_conf(items)
    env = server_environment(items)
    if args.json:
        _print_json({"installed": [{"reference": i.reference, "digest": i.digest,
                                    "manifest_digest": i.manifest_digest, "kind": i.kind,
                                    "name": i.name, "path": str(i.path),
                                    "preload": list(i.preload)} for i in items],
                     "postgresql_conf": conf, "environment": env})
    else:
        for item in items:
            if item.kind == "postgres":
                major = item.labels.get("org.monogres.postgres.major", "")
                print(f"# PostgreSQL binaries: {item.path}/usr/lib/postgresql/{major}/bin")
        if conf:
            print("# add to postgresql.conf:")
            for line in conf:
                print(line)
        if env:
            print("# environment of the postgres process (e.g. Environment= in its systemd unit):")
            for key, value in env.items():
                print(f"{key}={value}")
    return 0


def _install_check(args: argparse.Namespace, progress: Progress) -> Any:
    """What install runs on each resolved image before extracting it."""
    from monogres_oci.attest.sign import load_public_key
    from monogres_oci.consume.verify import verify_pulled

    if args.allow_unsigned:
        print("monogres-oci install: WARNING: --allow-unsigned: signatures, SBOM and provenance "
              "are NOT checked; you are trusting the registry and the network", file=sys.stderr)
        return None
    key = load_public_key(Path(args.key))

    def check(client: RegistryClient, image: Any) -> None:
        verify_pulled(client, image, key)
        progress.stage(f"verified {image.reference} ({image.manifest_digest[:19]}): signed with "
                       f"key {key.hint}, signed SBOM and provenance")

    return check


class _UploadMeter:
    """A publish's steps as detail lines, and the blob bytes it pushed, with the rate."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.meter = TransferMeter(progress.stage, "upload", None)
        self.pushed = 0

    def __call__(self, event: PublishEvent) -> None:
        self.progress.detail(str(event))
        if event.kind == "blob" and event.status == "pushed":
            self.pushed += 1
            self.meter.add(event.size)

    def finish(self) -> None:
        if self.pushed:
            self.meter.what = f"upload of {self.pushed} blob(s)"
            self.meter.finish()


def cmd_site(args: argparse.Namespace, progress: Progress) -> int:
    from monogres_oci.site.command import cmd_site as site

    return site(args, progress)


def cmd_cnpg(args: argparse.Namespace, progress: Progress) -> int:
    from monogres_oci.consume.cnpg import ExtensionRef, cluster, image_catalog, with_required
    from monogres_oci.package.contract import RuntimeContract
    from monogres_oci.package.tags import extension_tags, postgres_tags

    catalog = _catalog(args)
    release = next((p for p in catalog.postgres if p.version == args.postgres), None)
    if release is None:
        raise UsageError(f"PostgreSQL {args.postgres} is not in {catalog.path}; known: "
                         f"{', '.join(p.version for p in catalog.postgres)}")
    selection = Selection(
        postgres=(release.version,),
        option_sets=(args.option_set or release.option_sets[0],),
        distros=(args.distro or release.distros[0],),
        archs=(this_platform().architecture,),
        extensions=tuple(_with_requires(catalog, args.extension)),
        postgres_only=not args.extension)
    plan = expand(catalog, selection, base_overrides={}, recipe_digests=recipe_digests())
    host, namespace = parse_target(args.registry)
    client = _client(host, args)
    prefix = f"{namespace}/" if namespace else ""

    def pinned(repo: str, tag: str) -> tuple[str, dict[str, str]]:
        ref = Reference(host, prefix + repo, tag)
        image = resolve(client, ref, this_platform())
        return f"{host}/{prefix}{repo}:{tag}@{image.digest}", dict(image.config.labels)

    pg = plan.postgres[0]
    pg_tags = postgres_tags(pg, 0, runnable=True)
    postgres_image, _ = pinned(pg_tags.repository, pg_tags.rolling[0])
    resolved = []
    for ext in plan.extensions:
        tags = extension_tags(ext, 0)
        reference, labels = pinned(tags.repository, tags.rolling[0])
        resolved.append(ExtensionRef(reference, RuntimeContract.from_labels(labels)))
    # In the order asked for, each after the extensions it requires.
    by_name = {e.name: e for e in resolved}
    requested = [by_name[n] for n in dict.fromkeys(x.partition("=")[0] for x in args.extension)]
    exts = with_required(requested, resolved)
    docs = [cluster(args.name, postgres_image, exts),
            image_catalog(args.name, release.major, postgres_image, exts)]
    text = (json.dumps(docs, indent=2, sort_keys=True) + "\n" if args.json
            else yaml.safe_dump_all(docs, sort_keys=False))
    if args.sign_key and not args.output:
        raise UsageError("--sign-key needs --output FILE (the signature goes to FILE.sigstore.json)")
    if not args.output:
        print(text, end="")
        return 0
    out = Path(args.output)
    out.write_text(text)
    print(f"wrote {out}", file=sys.stderr)
    if args.sign_key:
        from monogres_oci.attest.sign import load_signing_key, sign_blob

        key = load_signing_key(Path(args.sign_key))
        bundle = out.with_name(out.name + ".sigstore.json")
        bundle.write_bytes(sign_blob(key, out.read_bytes()))
        print(f"signed {out} -> {bundle} (key {key.public.hint})", file=sys.stderr)
    return 0


def _with_requires(catalog: Catalog, wanted: Sequence[str]) -> list[str]:
    """``NAME[=VERSION]`` items plus the extensions they require (runtime.requires), by name."""
    known = {e.name: e for e in catalog.extensions}
    out = list(wanted)
    names = [w.partition("=")[0] for w in wanted]
    while names:
        name = names.pop()
        for required in known[name].runtime.requires if name in known else ():
            if required not in {o.partition("=")[0] for o in out}:
                out.append(required)
                names.append(required)
    return out


def cmd_base(args: argparse.Namespace, progress: Progress) -> int:
    from monogres_oci.build.base import create_base_index
    from monogres_oci.cli import _cache_dir

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
        workdir=_cache_dir(args.cache_dir) / "base",
        progress=StepMeter(progress, f"base image {distro.name}"))
    if args.json:
        _print_json({"distro": distro.name, "reference": reference, "architectures": sorted(archs)})
    else:
        print(reference)
    return 0
