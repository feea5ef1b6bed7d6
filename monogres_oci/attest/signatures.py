"""Sign what a layout will publish: every manifest and index, and the SBOM and provenance as
attestations, each as a Sigstore bundle attached to what it signs (see monogres_oci.attest.sign)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from monogres_oci.attest.attach import PREDICATE_ANNOTATION, attach_bundle, attachments_by_subject
from monogres_oci.attest.sign import (
    COSIGN_SIGN_PREDICATE,
    STATEMENT_TYPE,
    SigningKey,
    sign_statement,
    statement,
)
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import INDEX_TYPES, MANIFEST_TYPES
from monogres_oci.oci.reference import split_ref_name


def sign_layout(layout: Layout, key: SigningKey, names: Sequence[str] | None = None,
                progress: Callable[[str], None] = lambda _: None) -> int:
    """Attach signatures for the references ``names`` (default all); return how many were made.

    Deterministic signatures make this idempotent: signing again adds nothing new.
    """
    refs = layout.refs()
    by_subject = attachments_by_subject(layout)
    signed: set[str] = set()
    count = 0
    for name in names if names is not None else list(refs):
        repo, _ = split_ref_name(name)
        for desc in layout.walk(refs[name]):
            if desc.media_type not in MANIFEST_TYPES | INDEX_TYPES or desc.digest in signed:
                continue
            signed.add(desc.digest)
            bundle = sign_statement(key, statement(repo, desc.digest, COSIGN_SIGN_PREDICATE, {}))
            attach_bundle(layout, desc, bundle, COSIGN_SIGN_PREDICATE)
            count += 1
            # Attestations: the raw SBOM/provenance documents become signed predicates.
            for item in by_subject.get(desc.digest, []):
                predicate_type = item.descriptor.annotations.get(PREDICATE_ANNOTATION)
                if not predicate_type:
                    continue
                document = json.loads(layout.read_blob(item.payload.digest))
                # The provenance is stored as a whole statement, the SBOM as the bare document.
                is_statement = document.get("_type") == STATEMENT_TYPE
                predicate = document["predicate"] if is_statement else document
                bundle = sign_statement(key, statement(repo, desc.digest, predicate_type,
                                                       predicate))
                attach_bundle(layout, desc, bundle, predicate_type)
                count += 1
        progress(f"signed {name}")
    return count
