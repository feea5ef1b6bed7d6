"""Which catalog target made an artifact: read from its annotations, in a registry or a layout.

``rebuild`` (rebuild it from scratch and compare) and ``test`` (run the gate on it) both start
here: the annotations name the Postgres release, option set, distro and extension, and the base
image, which is what a plan needs to build that target again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from monogres_oci.errors import VerifyError
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import INDEX_TYPES, Index
from monogres_oci.oci.parse import parse_index, parse_manifest
from monogres_oci.oci.reference import Reference, split_ref_name
from monogres_oci.oci.registry import RegistryClient
from monogres_oci.plan.targets import Selection

A = "org.monogres."
LAYOUT_HOST = "oci-layout"
# Annotations that name the target; two artifacts with the same values are the same target.
IDENTITY_KEYS = (A + "artifact", A + "postgres.version", A + "postgres.option_set", A + "distro",
                 A + "extension.name", A + "extension.version")


@dataclass(frozen=True)
class Published:
    """A published artifact: its reference, index and what its annotations say it is."""

    reference: Reference
    digest: str
    index: Index
    identity: tuple[tuple[str, str], ...]
    base: str  # base.name@base.digest, the base image it was built in
    input_digest: str
    shown: str = ""  # how messages name it, when not by its reference (a layout's entry)

    def __str__(self) -> str:
        return self.shown or str(self.reference)

    def get(self, key: str) -> str:
        return dict(self.identity).get(A + key, "")

    @property
    def local_repository(self) -> str:
        """The repository name in a layout: the published one without its namespace."""
        return self.reference.repository.rsplit("/", 1)[-1]

    @property
    def archs(self) -> tuple[str, ...]:
        return tuple(sorted(d.platform.architecture for d in self.index.manifests if d.platform))

    def group(self) -> tuple[str, str, str, str]:
        """Artifacts with the same group are rebuilt by one plan."""
        return (self.get("postgres.version"), self.get("postgres.option_set"), self.get("distro"),
                self.base)


def identify(client: RegistryClient, ref: Reference) -> Published:
    """Fetch the index ``ref`` names and read which target built it."""
    data, media_type, digest = client.get_manifest(ref.repository, ref.reference)
    return _published(ref, data, media_type, digest,
                      lambda d: client.get_manifest(ref.repository, d)[:2])


def identify_in_layout(layout: Layout, name: str) -> Published:
    """The same for a named reference (``REPO:TAG``) of an OCI layout."""
    desc = layout.resolve(name)
    repo, tag = split_ref_name(name)
    # A reference in no registry: the host only keeps the value well-formed.
    found = _published(Reference(LAYOUT_HOST, repo, tag), layout.read_blob(desc.digest),
                       desc.media_type, desc.digest, lambda d: (layout.read_blob(d), None))
    return dataclasses.replace(found, shown=f"{layout.root}:{name}")


def _published(ref: Reference, data: bytes, media_type: str | None, digest: str,
               fetch: Callable[[str], tuple[bytes, str | None]]) -> Published:
    if media_type not in INDEX_TYPES:
        raise VerifyError(f"{ref} is a single image, not an index: monogres-oci publishes an index "
                          "per tag, so this was not published by it")
    index = parse_index(data, media_type)
    if not index.manifests:
        raise VerifyError(f"{ref}: the index lists no image")
    # Identity annotations are on the index and every manifest; read them from the manifest,
    # which also carries the base image.
    first = index.manifests[0]
    manifest = parse_manifest(*fetch(first.digest))
    notes = manifest.annotations
    if A + "artifact" not in notes:
        raise VerifyError(f"{ref} carries no {A}artifact annotation: it was not built by "
                          "monogres-oci, so there is no catalog target to rebuild it from")
    base_name = notes.get("org.opencontainers.image.base.name", "")
    base_digest = notes.get("org.opencontainers.image.base.digest", "")
    return Published(
        reference=ref, digest=digest, index=index,
        identity=tuple((k, notes[k]) for k in IDENTITY_KEYS if k in notes),
        base=f"{base_name}@{base_digest}" if base_name and base_digest else "",
        input_digest=notes.get(A + "input.digest", ""),
    )


def selection_for(group: Sequence[Published]) -> Selection:
    """The plan selection that rebuilds every artifact of one group (and nothing else)."""
    first = group[0]
    extensions = sorted({f"{p.get('extension.name')}={p.get('extension.version')}"
                         for p in group if p.get("artifact") == "extension"})
    return Selection(
        postgres=(first.get("postgres.version"),),
        option_sets=(first.get("postgres.option_set"),),
        distros=(first.get("distro"),),
        archs=tuple(sorted({a for p in group for a in p.archs})),
        extensions=tuple(extensions),
        postgres_only=not extensions,
    )


