"""Artifacts attached to an image by ``subject``: SBOM, provenance and signatures in the layout.

Each attachment is an OCI 1.1 artifact manifest (empty config, one layer holding the document,
``artifactType``, ``subject``) written into the layout and listed, unnamed, in its index.json
with the descriptor a referrers list would show. Publishing pushes them after their subjects and
makes them discoverable through the referrers API or the ``sha256-<hex>`` fallback tag.

Attachments are derived from the image and its build record only, so packaging the same build
outputs twice writes the same attachment digests.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from monogres_oci.attest.sign import BUNDLE_MEDIA_TYPE
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import (
    ANNOTATION_REF_NAME,
    EMPTY_BLOB,
    MANIFEST_TYPES,
    Blob,
    Descriptor,
    Manifest,
)

SPDX_TYPE = "application/spdx+json"
INTOTO_TYPE = "application/vnd.in-toto+json"
PREDICATE_ANNOTATION = "in-toto.io/predicate-type"  # on raw SBOM/provenance (BuildKit's key)
BUNDLE_PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"  # on bundles (cosign's key)
BUNDLE_CONTENT_ANNOTATION = "dev.sigstore.bundle.content"


@dataclass(frozen=True)
class Attachment:
    """A referrer in the layout: its descriptor (as index.json lists it) and its manifest."""

    descriptor: Descriptor
    manifest: Manifest

    @property
    def subject_digest(self) -> str:
        assert self.manifest.subject is not None
        return self.manifest.subject.digest

    @property
    def payload(self) -> Descriptor:
        return self.manifest.layers[0]


def _bare(subject: Descriptor) -> Descriptor:
    # A subject names content only: no platform, annotations or artifact type.
    return Descriptor(subject.media_type, subject.digest, subject.size)


def attach(layout: Layout, subject: Descriptor, artifact_type: str, payload: Blob,
           annotations: Mapping[str, str]) -> Attachment:
    """Write ``payload`` as an artifact that refers to ``subject``; list it in index.json."""
    layout.add_blob(EMPTY_BLOB)
    layer = layout.add_blob(payload)
    manifest = Manifest(config=EMPTY_BLOB.descriptor(), layers=(layer,),
                        annotations=dict(annotations), subject=_bare(subject),
                        artifact_type=artifact_type)
    written = layout.add_manifest(manifest)
    entry = Descriptor(written.media_type, written.digest, written.size, dict(annotations),
                       artifact_type=artifact_type)
    layout.add_unnamed(entry)
    return Attachment(entry, manifest)


def attach_bundle(layout: Layout, subject: Descriptor, bundle: bytes,
                  predicate_type: str) -> Attachment:
    """Attach a signed Sigstore bundle the way cosign 3 stores its own."""
    return attach(layout, subject, BUNDLE_MEDIA_TYPE, Blob(bundle, BUNDLE_MEDIA_TYPE), {
        BUNDLE_CONTENT_ANNOTATION: "dsse-envelope",
        BUNDLE_PREDICATE_ANNOTATION: predicate_type,
    })


def attachments(layout: Layout) -> Iterator[Attachment]:
    """Every artifact with a subject that index.json lists unnamed."""
    for desc in layout.index().manifests:
        if ANNOTATION_REF_NAME in desc.annotations or desc.media_type not in MANIFEST_TYPES:
            continue
        manifest = layout.read_manifest(desc.digest)
        if manifest.subject is not None and manifest.layers:
            yield Attachment(desc, manifest)


def attachments_by_subject(layout: Layout) -> dict[str, list[Attachment]]:
    """Attachments grouped by the digest they refer to, in index.json order."""
    out: dict[str, list[Attachment]] = {}
    for item in attachments(layout):
        out.setdefault(item.subject_digest, []).append(item)
    return out
