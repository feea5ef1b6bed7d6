"""Publishing: copy named references of an OCI image layout to a registry, tags last.

Naming convention: every reference to publish is an entry of the layout's ``index.json`` whose
``org.opencontainers.image.ref.name`` annotation is ``REPO:TAG``, for example
``pgaudit:18.1-18.0-1750000000-bookworm``. Publishing to ``HOST[:PORT]/NAMESPACE`` pushes it
as ``HOST[:PORT]/NAMESPACE/pgaudit:18.1-18.0-1750000000-bookworm``. REPO may itself contain
``/``; entries without a name are not published.

Order, so that a tag never points to something incomplete:

1. Before anything is sent, every blob reachable from the selected references is checked to be
   in the layout with its recorded size.
2. For each reference, depth first: blobs (config, layers) that the registry lacks, then each
   image manifest by digest, then the index by digest. A manifest the registry already has (by
   digest) is skipped with everything below it, since a registry only accepts a manifest whose
   content it has. A blob already pushed to another repository in this run is mounted from
   there instead of uploaded again.
3. Then what is attached to that content (SBOM, provenance, signatures: layout entries with a
   ``subject``, and what is attached to those in turn): its blobs, its manifest, and its entry in
   the subject's referrers (the registry indexes it, or the ``sha256-<hex>`` fallback tag index
   is updated).
4. Only when the content of *every* selected reference is in place are the tags written, so a
   failed run moves no tag at all.

A dry run contacts nothing and reports what would be sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from monogres_oci.attach import Attachment, attachments_by_subject
from monogres_oci.errors import UsageError, VerifyError
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import INDEX_TYPES, MANIFEST_TYPES, Descriptor
from monogres_oci.oci.reference import parse_target, split_ref_name
from monogres_oci.oci.registry import RegistryClient

Kind = Literal["blob", "manifest", "referrer", "tag"]
Status = Literal["pushed", "exists", "mounted", "would push"]


@dataclass(frozen=True)
class PublishEvent:
    """One step of a publish: a blob, manifest or tag sent (or found, or only planned)."""

    kind: Kind
    repository: str
    reference: str
    size: int
    status: Status

    def __str__(self) -> str:
        where = f"{self.repository}:{self.reference}" if self.kind == "tag" else self.repository
        what = "" if self.kind == "tag" else f" {self.reference}"
        return f"{self.status:<10} {self.kind:<8} {where}{what} ({self.size} bytes)"


@dataclass(frozen=True)
class PublishedRef:
    """A reference as it now exists in the registry: ``host/ns/repo:tag@sha256:...``."""

    repository: str
    tag: str
    digest: str
    media_type: str

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}@{self.digest}"


@dataclass(frozen=True)
class PublishResult:
    """What a publish did: the references now in the registry and every step taken."""

    refs: tuple[PublishedRef, ...]
    events: tuple[PublishEvent, ...]
    dry_run: bool = False

    def count(self, kind: Kind, status: Status) -> int:
        """Return how many ``kind`` steps ended with ``status``."""
        return sum(1 for e in self.events if e.kind == kind and e.status == status)


@dataclass(frozen=True)
class _Target:
    name: str
    repository: str  # path inside the registry, with the namespace
    tag: str
    descriptor: Descriptor


class _Publisher:
    """The state of one publish run."""

    def __init__(
        self,
        layout: Layout,
        client: RegistryClient | None,
        host: str,
        progress: Callable[[PublishEvent], None] | None,
    ) -> None:
        self.layout = layout
        self.client = client
        self.host = host
        self.progress = progress
        self.events: list[PublishEvent] = []
        self.done: set[tuple[str, str]] = set()
        self.blob_home: dict[str, str] = {}

    def report(self, kind: Kind, repo: str, reference: str, size: int, status: Status) -> None:
        event = PublishEvent(kind, f"{self.host}/{repo}", reference, size, status)
        self.events.append(event)
        if self.progress is not None:
            self.progress(event)

    def content(self, repo: str, desc: Descriptor) -> None:
        """Push ``desc`` and everything below it to ``repo``, children first."""
        if (repo, desc.digest) in self.done:
            return
        self.done.add((repo, desc.digest))
        is_manifest = desc.media_type in MANIFEST_TYPES | INDEX_TYPES
        if not is_manifest:
            self.blob(repo, desc)
            return
        if self.client is not None and self.client.head_manifest(repo, desc.digest) is not None:
            self.report("manifest", repo, desc.digest, desc.size, "exists")
            return
        for child in self.layout.children(desc):
            self.content(repo, child)
        if self.client is None:
            self.report("manifest", repo, desc.digest, desc.size, "would push")
            return
        data = self.layout.read_blob(desc.digest)
        self.client.push_manifest(repo, desc.digest, data, desc.media_type)
        self.report("manifest", repo, desc.digest, desc.size, "pushed")

    def referrers(self, repo: str, subject: str, items: Sequence[Attachment]) -> None:
        """Push attachments after their subject and list them among the subject's referrers."""
        for item in items:
            for child in self.layout.children(item.descriptor):
                self.content(repo, child)
        if self.client is not None:
            self.client.push_referrers(repo, subject, [
                (self.layout.read_blob(i.descriptor.digest), i.descriptor) for i in items])
        for item in items:
            desc = item.descriptor
            self.report("referrer", repo, desc.digest, desc.size,
                        "would push" if self.client is None else "pushed")

    def blob(self, repo: str, desc: Descriptor) -> None:
        if self.client is None:
            self.report("blob", repo, desc.digest, desc.size, "would push")
            return
        home = self.blob_home.get(desc.digest)
        mount_from = home if home is not None and home != repo else None
        status = self.client.push_blob(
            repo, self.layout.blob_path(desc.digest), desc.digest, desc.size, mount_from=mount_from
        )
        self.blob_home.setdefault(desc.digest, repo)
        self.report("blob", repo, desc.digest, desc.size, status)

    def tag(self, target: _Target) -> PublishedRef:
        desc = target.descriptor
        if self.client is None:
            self.report("tag", target.repository, target.tag, desc.size, "would push")
        else:
            data = self.layout.read_blob(desc.digest)
            self.client.push_manifest(target.repository, target.tag, data, desc.media_type)
            self.report("tag", target.repository, target.tag, desc.size, "pushed")
        return PublishedRef(
            f"{self.host}/{target.repository}", target.tag, desc.digest, desc.media_type
        )


def _select(layout: Layout, namespace: str, names: Sequence[str] | None) -> list[_Target]:
    refs = layout.refs()
    wanted = list(refs) if names is None else list(dict.fromkeys(names))
    missing = [name for name in wanted if name not in refs]
    if missing:
        known = ", ".join(refs) or "none"
        raise UsageError(f"not in the layout {layout.root}: {', '.join(missing)} (it has: {known})")
    targets = []
    for name in wanted:
        repo, tag = split_ref_name(name)
        path = f"{namespace}/{repo}" if namespace else repo
        targets.append(_Target(name, path, tag, refs[name]))
    return targets


def _attached(layout: Layout, targets: Sequence[_Target]) -> list[tuple[str, Attachment]]:
    """What refers to the targets' manifests and indexes (transitively), in a fixed order."""
    by_subject = attachments_by_subject(layout)
    out: list[tuple[str, Attachment]] = []
    seen: set[tuple[str, str]] = set()
    for target in targets:
        queue = [d.digest for d in layout.walk(target.descriptor)
                 if d.media_type in MANIFEST_TYPES | INDEX_TYPES]
        while queue:
            for item in by_subject.get(queue.pop(0), []):
                key = (target.repository, item.descriptor.digest)
                if key not in seen:
                    seen.add(key)
                    out.append((target.repository, item))
                    queue.append(item.descriptor.digest)
    return out


def _check_complete(layout: Layout, targets: Sequence[_Target],
                    attached: Sequence[tuple[str, Attachment]], present: frozenset[str]) -> None:
    roots = [(t.name, t.descriptor) for t in targets]
    roots += [(f"{repo} referrer {item.descriptor.digest}", item.descriptor)
              for repo, item in attached]
    checked: set[str] = set()  # images share blobs (base layers): check each once
    for name, root in roots:
        queue = [root]
        while queue:
            desc = queue.pop()
            if desc.digest in present or desc.digest in checked:
                continue  # in the registry already (with all below it), or seen
            checked.add(desc.digest)
            if not layout.has_blob(desc.digest, desc.size):
                raise VerifyError(
                    f"layout {layout.root} is incomplete: {name} needs {desc.digest} "
                    f"({desc.media_type}, {desc.size} bytes); nothing was pushed"
                )
            queue += layout.children(desc)


def publish(
    layout: Layout,
    target: str,
    client: RegistryClient | None,
    *,
    refs: Sequence[str] | None = None,
    progress: Callable[[PublishEvent], None] | None = None,
    dry_run: bool = False,
    tags: bool = True,
    present: frozenset[str] = frozenset(),
) -> PublishResult:
    """Push the references ``refs`` (default: all named ones) of ``layout`` to ``target``.

    ``target`` is ``HOST[:PORT]/NAMESPACE`` (the namespace may be empty); ``client`` must speak
    to that host, and may be None for a dry run, which contacts nothing. Without ``tags`` the
    content is pushed by digest only (each architecture's job of a fan-out build; ``merge``
    writes the tags). ``present`` names manifests the caller knows the registry has: the layout
    need not hold what is below them.
    """
    host, namespace = parse_target(target)
    if client is None and not dry_run:
        raise UsageError("publishing needs a registry client (only a dry run can do without)")
    if client is not None and client.host != host:
        raise UsageError(f"the registry client speaks to {client.host}, not to {host}")
    targets = _select(layout, namespace, refs)
    attached = _attached(layout, targets)
    _check_complete(layout, targets, attached, present)
    publisher = _Publisher(layout, None if dry_run else client, host, progress)
    for item in targets:
        publisher.content(item.repository, item.descriptor)
    grouped: dict[tuple[str, str], list[Attachment]] = {}
    for repo, attachment in attached:
        grouped.setdefault((repo, attachment.subject_digest), []).append(attachment)
    for (repo, subject), items in grouped.items():
        publisher.referrers(repo, subject, items)
    if tags:
        published = tuple(publisher.tag(item) for item in targets)
    else:
        published = tuple(PublishedRef(f"{host}/{t.repository}", t.tag, t.descriptor.digest,
                                       t.descriptor.media_type) for t in targets)
    return PublishResult(published, tuple(publisher.events), dry_run)
