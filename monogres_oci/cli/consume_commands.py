"""The consume commands: verify, verify-blob, install, cnpg, site."""


from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from monogres_oci.build.recipes import recipe_digests
from monogres_oci.catalog import Catalog
from monogres_oci.consume.pull import resolve, this_platform
from monogres_oci.errors import UsageError
from monogres_oci.oci.model import Platform
from monogres_oci.oci.reference import Reference, parse_reference, parse_target
from monogres_oci.oci.registry import RegistryClient
from monogres_oci.plan.targets import Selection, expand
from monogres_oci.progress import Progress

if TYPE_CHECKING:
    pass
from monogres_oci.cli.common import _catalog, _client, _print_json


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
