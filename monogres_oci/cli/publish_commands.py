"""The publish commands: keygen, publish, merge."""


from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monogres_oci.errors import UsageError
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import Descriptor
from monogres_oci.oci.reference import parse_target, split_ref_name
from monogres_oci.oci.registry import RegistryClient
from monogres_oci.progress import Progress, TransferMeter

if TYPE_CHECKING:
    from monogres_oci.publish.push import PublishEvent
from monogres_oci.cli.common import _client, _print_json

IMMUTABLE_TAG = re.compile(r"-\d{12}-")


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


def _retried(client: RegistryClient | None) -> str:
    made = client.retries_made if client is not None else 0
    return f"; {made} request(s) repeated after transient failures" if made else ""


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
