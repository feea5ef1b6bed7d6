"""Attach the SBOM and the provenance of one platform image to it, in the layout."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from monogres_oci import __version__
from monogres_oci.attest.attach import INTOTO_TYPE, PREDICATE_ANNOTATION, SPDX_TYPE, Attachment, attach
from monogres_oci.attest.buildinfo import BuildRecord
from monogres_oci.attest.provenance import PREDICATE_TYPE as SLSA_PREDICATE
from monogres_oci.attest.provenance import provenance_statement
from monogres_oci.attest.sbom import ImageSubject, layer_files, spdx_bytes, spdx_document
from monogres_oci.attest.sign import canonical
from monogres_oci.catalog.model import Publisher
from monogres_oci.oci.layer import LayerEntry
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import Blob, Descriptor

SPDX_PREDICATE = "https://spdx.dev/Document"
TOOL = f"monogres-oci-{__version__}"


def attest_image(layout: Layout, image: Descriptor, labels: dict[str, str], record: BuildRecord,
                 entries: Iterable[LayerEntry], catalog_entry: dict[str, Any],
                 publisher: Publisher, *, bundled: bool = False,
                 byproducts: Sequence[tuple[str, bytes]] = ()) -> tuple[Attachment, Attachment]:
    """Write the image's SPDX SBOM and SLSA provenance as artifacts referring to it."""
    name = labels["org.opencontainers.image.title"]
    subject = ImageSubject(
        name=name,
        version=labels["org.opencontainers.image.version"],
        description=labels["org.opencontainers.image.description"],
        manifest_digest=image.digest,
        platform=record.platform,
        license=labels["org.opencontainers.image.licenses"],
        created=labels["org.opencontainers.image.created"],
        supplier=publisher.vendor,
        homepage=labels["org.opencontainers.image.url"],
        namespace_base=publisher.url,
    )
    sbom = spdx_document(subject, record, layer_files(entries), tool=TOOL, bundled=bundled)
    created = {"org.opencontainers.image.created": subject.created}
    sbom_item = attach(layout, image, SPDX_TYPE, Blob(spdx_bytes(sbom), SPDX_TYPE),
                       {PREDICATE_ANNOTATION: SPDX_PREDICATE, **created})
    stmt = provenance_statement(name, image.digest, record, catalog_entry, byproducts)
    prov_item = attach(layout, image, INTOTO_TYPE, Blob(canonical(stmt), INTOTO_TYPE),
                       {PREDICATE_ANNOTATION: SLSA_PREDICATE, **created})
    return sbom_item, prov_item
