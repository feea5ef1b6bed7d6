"""Merging per-architecture builds into one index per tag, as the last job of a fan-out build.

Each architecture is built (on its own machine, with its own cache) and pushed by digest with
``publish --by-digest --json``; that JSON names, for every tag it would have written, the digest
of its one-platform index. ``merge`` reads those files, fetches the indexes and their platform
manifests from the registry, and assembles each artifact's index with the very function the
packager uses (``package.assemble_index``), so two architectures merged give the same bytes, and
the same digest, as both built in one invocation. The new indexes are signed when a key is
given, then pushed with their tags; nothing below the platform manifests is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from monogres_oci.errors import UsageError, VerifyError
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import INDEX_TYPES, Descriptor, Index
from monogres_oci.oci.parse import parse_manifest, parse_manifest_or_index
from monogres_oci.oci.reference import parse_target
from monogres_oci.oci.registry import RegistryClient
from monogres_oci.package.images import assemble_index


@dataclass(frozen=True)
class PartRef:
    """One tag of one architecture's publish: where its one-platform index was pushed."""

    source: str  # the JSON file it came from
    repository: str  # inside the namespace, as in the layout (``pgaudit``)
    tag: str
    digest: str


@dataclass(frozen=True)
class Merged:
    """One assembled index and the tags it gets."""

    repository: str
    digest: str
    platforms: tuple[str, ...]
    tags: tuple[str, ...]
    parts: tuple[str, ...]  # the digests it was made from


def read_parts(paths: Sequence[Path], target: str) -> list[PartRef]:
    """The tags listed by ``publish --by-digest --json`` outputs, for repositories of ``target``."""
    host, namespace = parse_target(target)
    prefix = f"{host}/{namespace}/" if namespace else f"{host}/"
    parts: list[PartRef] = []
    for path in paths:
        try:
            doc = json.loads(path.read_text())
            refs = doc["refs"]
            items = [(r["repository"], r["tag"], r["digest"]) for r in refs]
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path} is not the JSON of `monogres-oci publish --by-digest --json` "
                             f"(it needs refs[].repository, .tag, .digest): {exc}") from exc
        if not doc.get("by_digest"):
            raise UsageError(f"{path} comes from a publish that wrote tags; merge the outputs of "
                             "`publish --by-digest --json`")
        for repository, tag, digest in items:
            if not str(repository).startswith(prefix):
                raise UsageError(f"{path}: {repository} is not under {target}; merge into the "
                                 "registry and namespace the parts were published to")
            parts.append(PartRef(str(path), repository[len(prefix):], tag, digest))
    if not parts:
        raise UsageError("nothing to merge: the files list no references")
    return parts


def merge(parts: Sequence[PartRef], client: RegistryClient, target: str, layout: Layout,
          progress: Callable[[str], None] = lambda _: None) -> tuple[list[Merged], frozenset[str]]:
    """Assemble one index per artifact into ``layout`` and name it with its tags.

    Returns what was assembled and the platform manifests it points to, which are in the registry
    already (publish needs not, and cannot, send what is below them).
    """
    _, namespace = parse_target(target)
    by_tag: dict[tuple[str, str], set[str]] = {}
    for part in parts:
        by_tag.setdefault((part.repository, part.tag), set()).add(part.digest)
    artifacts: dict[tuple[str, frozenset[str]], list[str]] = {}
    for (repository, tag), digests in sorted(by_tag.items()):
        artifacts.setdefault((repository, frozenset(digests)), []).append(tag)

    merged: list[Merged] = []
    present: set[str] = set()
    for (repository, sources), tags in artifacts.items():
        path = f"{namespace}/{repository}" if namespace else repository
        images = _platform_images(client, path, sorted(sources), layout, parts)
        index = assemble_index(list(images.values()))
        desc = layout.add_manifest(index)
        for tag in tags:
            layout.set_ref(f"{repository}:{tag}", desc)
        present.update(d.digest for d, _ in images.values())
        merged.append(Merged(repository, desc.digest,
                             tuple(str(d.platform) for d in index.manifests), tuple(tags),
                             tuple(sorted(sources))))
        progress(f"{repository}: {', '.join(images)} -> {desc.digest} ({len(tags)} tag(s))")
    return merged, frozenset(present)


def _platform_images(client: RegistryClient, path: str, digests: Sequence[str], layout: Layout,
                     parts: Sequence[PartRef]) -> dict[str, tuple[Descriptor, dict[str, str]]]:
    """Platform -> (descriptor, annotations) over the given indexes; a platform built twice
    with different results is an error, the same result twice is one entry."""
    images: dict[str, tuple[Descriptor, dict[str, str]]] = {}
    origin: dict[str, str] = {}
    for digest in digests:
        source = next(p.source for p in parts if p.digest == digest)
        data, media_type, got = client.get_manifest(path, digest)
        if got != digest:
            raise VerifyError(f"{path}@{digest} arrived as {got}")
        node = parse_manifest_or_index(data, media_type)
        if not isinstance(node, Index) or media_type not in INDEX_TYPES:
            raise UsageError(f"{path}@{digest} (from {source}) is not an image index; publish "
                             "writes one per artifact, merge joins those")
        for entry in node.manifests:
            if entry.platform is None:
                raise UsageError(f"{path}@{digest} lists {entry.digest} without a platform")
            platform = str(entry.platform)
            if platform in images:
                if images[platform][0].digest != entry.digest:
                    raise UsageError(
                        f"{path}: {platform} was built twice with different results: "
                        f"{images[platform][0].digest} (in {origin[platform]}) and "
                        f"{entry.digest} (in {source}); merge one build per architecture")
                continue
            mdata, mtype, mdigest = client.get_manifest(path, entry.digest)
            if mdigest != entry.digest:
                raise VerifyError(f"{path}@{entry.digest} arrived as {mdigest}")
            manifest = parse_manifest(mdata, mtype)
            layout.add_bytes(mdata)
            images[platform] = (entry, dict(manifest.annotations))
            origin[platform] = source
    return images
