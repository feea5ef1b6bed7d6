"""What the commands share: the catalog and plan from the options, registry clients, base images."""


from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monogres_oci.build.recipes import recipe_digests
from monogres_oci.catalog import Catalog, load_catalog
from monogres_oci.catalog.load import load_catalog_then
from monogres_oci.consume.pull import as_oci_layer, make_client, resolve
from monogres_oci.errors import UsageError
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import Platform
from monogres_oci.oci.reference import parse_reference, parse_target
from monogres_oci.oci.registry import RegistryClient
from monogres_oci.oci.retry import policy_from
from monogres_oci.package.images import BaseImage, BaseResolver
from monogres_oci.plan.targets import ExtensionTarget, Plan, PostgresTarget, Selection, expand
from monogres_oci.progress import Progress

if TYPE_CHECKING:
    from monogres_oci.build.compile.from_registry import RegistrySource
    from monogres_oci.plan.published import InRegistry
    from monogres_oci.plan.rows import PlanState


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _validated_dir(args: argparse.Namespace) -> Path | None:
    from monogres_oci.cli.options import cache_dir_of

    # A command with a cache directory keeps the validated catalog there (`validate` has none).
    return cache_dir_of(args.cache_dir) / "catalogs" if "cache_dir" in vars(args) else None


def _catalog(args: argparse.Namespace) -> Catalog:
    return load_catalog(Path(args.catalog), validated_dir=_validated_dir(args))


def _catalog_and_plan(args: argparse.Namespace) -> tuple[Catalog, Plan]:
    """The catalog and its plan, the catalog's schema validation beside the expansion."""
    return load_catalog_then(Path(args.catalog), lambda catalog: _plan(args, catalog),
                             validated_dir=_validated_dir(args))


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
