"""Publishing: copy named references of an OCI image layout to a registry, tags last.

Naming convention: every reference to publish is an entry of the layout's ``index.json`` whose
``org.opencontainers.image.ref.name`` annotation is ``REPO:TAG``, for example
``pgaudit:18.1-18.0-1750000000-bookworm``. Publishing to ``HOST[:PORT]/NAMESPACE`` pushes it
as ``HOST[:PORT]/NAMESPACE/pgaudit:18.1-18.0-1750000000-bookworm``. REPO may itself contain
``/``; entries without a name are not published.

Order, so that a tag never points to something incomplete; each stage starts when the one
before it has ended, and the steps within a stage run ``jobs`` at a time:

1. Before anything is sent, every blob reachable from the selected references is checked to be
   in the layout with its recorded size.
2. Every manifest and index below the references (and below what is attached to them) is looked
   up by digest. One the registry has is skipped with everything below it, since a registry
   only accepts a manifest whose content it has.
3. The blobs (configs, layers) the registry lacks: each uploaded once, and mounted from there
   into the other repositories of this run that need it.
4. The missing manifests, image manifests first, then the indexes over them.
5. What is attached to that content (SBOM, provenance, signatures: layout entries with a
   ``subject``): its manifest, and its entry in the subject's referrers (the registry indexes
   it, or the ``sha256-<hex>`` fallback tag index is updated); attachments of attachments after.
6. Only when the content of *every* selected reference is in place are the tags written, so a
   failed run moves no tag at all.

A dry run contacts nothing and reports what would be sent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

from monogres_oci.attest.attach import Attachment, attachments_by_subject
from monogres_oci.errors import UsageError, VerifyError
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import INDEX_TYPES, MANIFEST_TYPES, Descriptor
from monogres_oci.oci.reference import parse_target, split_ref_name
from monogres_oci.oci.registry import RegistryClient

Kind = Literal["blob", "manifest", "referrer", "tag"]
DEFAULT_JOBS = 4
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
    """The state of one publish run; steps of one stage run on a bounded pool of threads."""

    def __init__(
        self,
        layout: Layout,
        client: RegistryClient | None,
        host: str,
        progress: Callable[[PublishEvent], None] | None,
        jobs: int,
    ) -> None:
        self.layout = layout
        self.client = client
        self.host = host
        self.progress = progress
        self.jobs = jobs
        self.events: list[PublishEvent] = []
        self._lock = threading.Lock()

    def report(self, kind: Kind, repo: str, reference: str, size: int, status: Status) -> None:
        event = PublishEvent(kind, f"{self.host}/{repo}", reference, size, status)
        with self._lock:
            self.events.append(event)
            if self.progress is not None:
                self.progress(event)

    def stage(self, steps: Sequence[Callable[[], object]]) -> None:
        """Run ``steps`` at most ``jobs`` at a time; the first failure stops what has not
        started and is raised once the running ones have ended."""
        if self.jobs <= 1 or len(steps) <= 1:
            for step in steps:
                step()
            return
        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="publish") as pool:
            futures = [pool.submit(step) for step in steps]
            try:
                for future in as_completed(futures):
                    future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    def missing(self, roots: Sequence[tuple[str, Descriptor]]) -> _Missing:
        """What the registry lacks below ``roots``: manifests by height (image manifests
        first), and blobs with the repositories that need them. A manifest the registry has
        is skipped with everything below it: a registry only accepts a manifest whose content
        it has."""
        manifests: dict[tuple[str, str], Descriptor] = {}
        for repo, root in roots:
            for desc in self.layout.walk(root):
                if desc.media_type in MANIFEST_TYPES | INDEX_TYPES:
                    manifests.setdefault((repo, desc.digest), desc)
        present: set[tuple[str, str]] = set()
        if self.client is not None:
            self.stage([partial(self._check, repo, desc, present)
                        for (repo, _), desc in manifests.items()])
        result = _Missing()
        seen: set[tuple[str, str]] = set()

        def visit(repo: str, desc: Descriptor) -> int:
            """Record what is missing below ``desc``; return its height."""
            key = (repo, desc.digest)
            if desc.media_type not in MANIFEST_TYPES | INDEX_TYPES:
                if key not in seen:
                    seen.add(key)
                    result.blobs.setdefault(desc.digest, (desc, []))[1].append(repo)
                return -1
            if key in present:
                if key not in seen:
                    seen.add(key)
                    self.report("manifest", repo, desc.digest, desc.size, "exists")
                return -1
            height = 1 + max([visit(repo, child) for child in self.layout.children(desc)],
                             default=-1)
            if key not in seen:
                seen.add(key)
                result.manifests.setdefault(max(height, 0), []).append((repo, desc))
            return height

        for repo, root in roots:
            visit(repo, root)
        return result

    def _check(self, repo: str, desc: Descriptor, present: set[tuple[str, str]]) -> None:
        assert self.client is not None
        if self.client.head_manifest(repo, desc.digest) is not None:
            with self._lock:
                present.add((repo, desc.digest))

    def blobs(self, missing: _Missing) -> None:
        """Upload each missing blob once and mount it into the other repositories that need it
        (one step per blob, so the mounts follow their upload)."""
        self.stage([partial(self._blob_everywhere, desc, repos)
                    for desc, repos in missing.blobs.values()])

    def _blob_everywhere(self, desc: Descriptor, repos: list[str]) -> None:
        for i, repo in enumerate(repos):
            self.blob(repo, desc, mount_from=repos[0] if i else None)

    def blob(self, repo: str, desc: Descriptor, mount_from: str | None) -> None:
        if self.client is None:
            self.report("blob", repo, desc.digest, desc.size, "would push")
            return
        status = self.client.push_blob(
            repo, self.layout.blob_path(desc.digest), desc.digest, desc.size, mount_from=mount_from
        )
        self.report("blob", repo, desc.digest, desc.size, status)

    def manifests(self, missing: _Missing) -> None:
        """Push the missing manifests, each height after the one below it."""
        for height in sorted(missing.manifests):
            self.stage([partial(self._manifest, repo, desc)
                        for repo, desc in missing.manifests[height]])

    def _manifest(self, repo: str, desc: Descriptor) -> None:
        if self.client is None:
            self.report("manifest", repo, desc.digest, desc.size, "would push")
            return
        data = self.layout.read_blob(desc.digest)
        self.client.push_manifest(repo, desc.digest, data, desc.media_type)
        self.report("manifest", repo, desc.digest, desc.size, "pushed")

    def referrers(self, repo: str, subject: str, items: Sequence[Attachment]) -> None:
        """List attachments (whose content is pushed) among the subject's referrers."""
        if self.client is not None:
            self.client.push_referrers(repo, subject, [
                (self.layout.read_blob(i.descriptor.digest), i.descriptor) for i in items])
        for item in items:
            desc = item.descriptor
            self.report("referrer", repo, desc.digest, desc.size,
                        "would push" if self.client is None else "pushed")

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


@dataclass
class _Missing:
    """What a registry lacks: blobs by digest (with the repositories that need each, in order)
    and manifests by height (0: image manifests; 1: indexes over them; ...)."""

    blobs: dict[str, tuple[Descriptor, list[str]]] = field(default_factory=dict)
    manifests: dict[int, list[tuple[str, Descriptor]]] = field(default_factory=dict)


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
    jobs: int = DEFAULT_JOBS,
) -> PublishResult:
    """Push the references ``refs`` (default: all named ones) of ``layout`` to ``target``.

    ``target`` is ``HOST[:PORT]/NAMESPACE`` (the namespace may be empty); ``client`` must speak
    to that host, and may be None for a dry run, which contacts nothing. Without ``tags`` the
    content is pushed by digest only (each architecture's job of a fan-out build; ``merge``
    writes the tags). ``present`` names manifests the caller knows the registry has: the layout
    need not hold what is below them. ``jobs`` requests run at once within each stage.
    """
    host, namespace = parse_target(target)
    if client is None and not dry_run:
        raise UsageError("publishing needs a registry client (only a dry run can do without)")
    if client is not None and client.host != host:
        raise UsageError(f"the registry client speaks to {client.host}, not to {host}")
    targets = _select(layout, namespace, refs)
    attached = _attached(layout, targets)
    _check_complete(layout, targets, attached, present)
    publisher = _Publisher(layout, None if dry_run else client, host, progress, jobs)
    # Content: the targets, and what is attached to them below its attachment manifest (that
    # manifest itself is pushed as a referrer, after its subject).
    roots = [(t.repository, t.descriptor) for t in targets]
    roots += [(repo, child) for repo, item in attached
              for child in layout.children(item.descriptor)]
    missing = publisher.missing(roots)
    publisher.blobs(missing)
    publisher.manifests(missing)
    # Referrers by depth: those of the targets' manifests, then those of attachments (a
    # signature of an SBOM), so that every subject is in place before what refers to it.
    grouped: dict[tuple[str, str], list[Attachment]] = {}
    for repo, attachment in attached:
        grouped.setdefault((repo, attachment.subject_digest), []).append(attachment)
    depth = _attachment_depths(attached)
    for level in sorted(set(depth.values())):
        publisher.stage([
            partial(publisher.referrers, repo, subject, items)
            for (repo, subject), items in grouped.items() if depth[(repo, subject)] == level])
    if tags:
        publisher.stage([partial(publisher.tag, item) for item in targets])
    published = tuple(PublishedRef(f"{host}/{t.repository}", t.tag, t.descriptor.digest,
                                   t.descriptor.media_type) for t in targets)
    return PublishResult(published, tuple(publisher.events), dry_run)


def _attachment_depths(attached: Sequence[tuple[str, Attachment]]) -> dict[tuple[str, str], int]:
    """(repository, subject) -> 0 when the subject is no attachment, else 1 + the subject's."""
    subject_of = {(repo, a.descriptor.digest): (repo, a.subject_digest) for repo, a in attached}
    depths: dict[tuple[str, str], int] = {}
    for repo, attachment in attached:
        key = (repo, attachment.subject_digest)
        level, cursor = 0, key
        while cursor in subject_of:
            level, cursor = level + 1, subject_of[cursor]
        depths[key] = level
    return depths
