"""Consumer-side verification: signatures, attestations and digests of a published artifact.

For the index a tag points to and for each platform manifest checked, it requires, among the
subject's referrers (API or fallback tag):

* a signature bundle (``https://sigstore.dev/cosign/sign/v1``) that verifies with the given key
  and whose statement names that digest;
* for platform manifests, signed SPDX and SLSA attestations about that digest, a provenance of
  this project's build type, and the published raw SBOM identical to the signed one;
* for extension images also a signed test result of the gate that passed (the image worked in
  its runnable Postgres image, its upstream suite passing but for known failures);
* with ``blobs``, that config and layers download with the digests the manifest records.

Bundles that do not verify with the key are skipped (someone else may have signed too); if none
verifies, the reason of each failure is reported. Nothing is trusted from a bundle before its
signature checks out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from monogres_oci.attest.attach import SPDX_TYPE
from monogres_oci.attest.image import SPDX_PREDICATE
from monogres_oci.attest.provenance import BUILD_TYPE
from monogres_oci.attest.provenance import PREDICATE_TYPE as SLSA_PREDICATE
from monogres_oci.attest.sign import (
    BUNDLE_MEDIA_TYPE,
    COSIGN_SIGN_PREDICATE,
    PublicKey,
    canonical,
    statement_subjects,
    verify_statement,
)
from monogres_oci.consume.pull import PulledImage
from monogres_oci.errors import VerifyError
from monogres_oci.gate.results import TEST_RESULT_PREDICATE
from monogres_oci.oci.digest import CHUNK_SIZE
from monogres_oci.oci.model import MANIFEST_TYPES, Platform
from monogres_oci.oci.parse import parse_index, parse_manifest
from monogres_oci.oci.reference import Reference
from monogres_oci.oci.registry import RegistryClient

ATTESTATIONS = {"SPDX SBOM": SPDX_PREDICATE, "SLSA provenance": SLSA_PREDICATE}
TEST_RESULT = "test result"
PASSING = ("PASSED", "WARNED")


@dataclass(frozen=True)
class Checked:
    """What was verified about one digest."""

    digest: str
    platform: str  # "" for the index
    signed: bool
    attestations: tuple[str, ...] = ()
    blobs: int = 0


@dataclass
class _Referrers:
    """The verified statements and the raw SBOM found among one digest's referrers."""

    statements: dict[str, dict[str, Any]] = field(default_factory=dict)  # predicateType -> stmt
    rejected: list[str] = field(default_factory=list)
    raw_sbom: bytes | None = None


def _read_referrers(client: RegistryClient, repo: str, digest: str,
                    key: PublicKey) -> _Referrers:
    found = _Referrers()
    for entry in client.referrers(repo, digest).index.manifests:
        if entry.media_type not in MANIFEST_TYPES:
            continue
        data, _, _ = client.get_manifest(repo, entry.digest, (entry.media_type,))
        manifest = parse_manifest(data)
        if manifest.subject is None or manifest.subject.digest != digest or not manifest.layers:
            continue
        layer = manifest.layers[0]
        if manifest.artifact_type == SPDX_TYPE and layer.media_type == SPDX_TYPE:
            found.raw_sbom = client.get_blob(repo, layer.digest, layer.size)
        elif layer.media_type == BUNDLE_MEDIA_TYPE:
            what = f"bundle {entry.digest[:19]}"
            try:
                stmt = verify_statement(key, client.get_blob(repo, layer.digest, layer.size), what)
            except VerifyError as exc:
                found.rejected.append(str(exc))
                continue
            if digest not in statement_subjects(stmt):
                found.rejected.append(f"{what}: signed, but about another digest")
                continue
            found.statements.setdefault(str(stmt.get("predicateType")), stmt)
    return found


def _problems(found: _Referrers, *, attestations: bool, gated: bool = False) -> list[str]:
    problems = []
    if COSIGN_SIGN_PREDICATE not in found.statements:
        why = "; ".join(found.rejected) if found.rejected else "no signature is attached"
        problems.append(f"no valid signature ({why})")
    if not attestations:
        return problems
    for name, predicate_type in ATTESTATIONS.items():
        if predicate_type not in found.statements:
            problems.append(f"no signed {name} attestation")
    provenance = found.statements.get(SLSA_PREDICATE)
    if provenance is not None:
        build_type = provenance.get("predicate", {}).get("buildDefinition", {}).get("buildType")
        if build_type != BUILD_TYPE:
            problems.append(f"provenance has build type {build_type!r}, not {BUILD_TYPE}")
    if gated:
        result = found.statements.get(TEST_RESULT_PREDICATE)
        verdict = result.get("predicate", {}).get("result") if result is not None else None
        if verdict is None:
            problems.append("no signed test result (the gate's): nothing proves the image works")
        elif verdict not in PASSING:
            problems.append(f"its signed test result says {verdict}")
    sbom = found.statements.get(SPDX_PREDICATE)
    if sbom is not None:
        if found.raw_sbom is None:
            problems.append("the SPDX SBOM artifact is missing")
        elif found.raw_sbom != canonical(sbom.get("predicate")):
            problems.append("the published SPDX SBOM differs from the signed one")
    return problems


def _verified(client: RegistryClient, repo: str, digest: str, key: PublicKey, *,
              attestations: bool, gated: bool = False) -> _Referrers:
    """The digest's referrers, once nothing is missing or wrong among them."""
    found = _read_referrers(client, repo, digest, key)
    problems = _problems(found, attestations=attestations, gated=gated)
    if problems:
        raise VerifyError(f"{client.host}/{repo}@{digest}: " + "; ".join(problems))
    return found


def check_digest(client: RegistryClient, repo: str, digest: str, key: PublicKey, *,
                 attestations: bool, gated: bool = False) -> tuple[str, ...]:
    """Verify one digest's signature (and attestations, and for an extension image its passing
    test result); return the attestation kinds found."""
    found = _verified(client, repo, digest, key, attestations=attestations, gated=gated)
    kinds = [name for name, p in ATTESTATIONS.items() if p in found.statements]
    return tuple(kinds + ([TEST_RESULT] if TEST_RESULT_PREDICATE in found.statements else []))


def verified_statements(client: RegistryClient, image: PulledImage,
                        key: PublicKey) -> dict[str, dict[str, Any]]:
    """The signed statements about a pulled platform image (by predicate type), once its
    signature and attestations verify with ``key`` (and its index's signature, if any)."""
    repo = image.reference.repository
    if image.digest != image.manifest_digest:
        check_digest(client, repo, image.digest, key, attestations=False)
    return _verified(client, repo, image.manifest_digest, key, attestations=True).statements


def _is_extension(client: RegistryClient, repo: str, manifest_digest: str) -> bool:
    data, _, _ = client.get_manifest(repo, manifest_digest)
    return parse_manifest(data).annotations.get("org.monogres.artifact") == "extension"


def _check_blobs(client: RegistryClient, repo: str, manifest_digest: str) -> int:
    data, _, _ = client.get_manifest(repo, manifest_digest)
    manifest = parse_manifest(data)
    count = 0
    for desc in (manifest.config, *manifest.layers):
        with client.open_blob(repo, desc.digest, desc.size) as reader:
            while reader.read(CHUNK_SIZE):
                pass  # the reader raises VerifyError at the end on a digest or size mismatch
        count += 1
    return count


def verify_pulled(client: RegistryClient, image: PulledImage, key: PublicKey) -> list[Checked]:
    """Verify what ``install`` is about to extract: the index (if any) and the chosen manifest."""
    repo = image.reference.repository
    checked = []
    if image.digest != image.manifest_digest:
        check_digest(client, repo, image.digest, key, attestations=False)
        checked.append(Checked(image.digest, "", signed=True))
    gated = image.config.labels.get("org.monogres.artifact") == "extension"
    found = check_digest(client, repo, image.manifest_digest, key, attestations=True, gated=gated)
    checked.append(Checked(image.manifest_digest, "", signed=True, attestations=found))
    return checked


def verify_reference(client: RegistryClient, ref: Reference, key: PublicKey, *,
                     platform: Platform | None = None, blobs: bool = True,
                     progress: Callable[[str], None] = lambda _: None) -> list[Checked]:
    """Verify a tag or digest: its index, every platform manifest (or one), and their blobs."""
    repo = ref.repository
    data, media_type, digest = client.get_manifest(repo, ref.digest or ref.tag or "latest")
    checked: list[Checked] = []
    if media_type in MANIFEST_TYPES:
        manifests = [(digest, "")]
    else:
        check_digest(client, repo, digest, key, attestations=False)
        checked.append(Checked(digest, "", signed=True))
        progress(f"index {digest[:19]}: signature verified")
        manifests = [(d.digest, str(d.platform) if d.platform else "")
                     for d in parse_index(data).manifests
                     if d.media_type in MANIFEST_TYPES
                     and (platform is None or d.platform == platform)]
        if not manifests:
            raise VerifyError(f"{ref}: the index has no manifest for {platform}")
    for manifest_digest, plat in manifests:
        found = check_digest(client, repo, manifest_digest, key, attestations=True,
                             gated=_is_extension(client, repo, manifest_digest))
        count = _check_blobs(client, repo, manifest_digest) if blobs else 0
        progress(f"{plat or 'manifest'} {manifest_digest[:19]}: signature, "
                 f"{', '.join(found)} verified; {count} blob digest(s) checked")
        checked.append(Checked(manifest_digest, plat, signed=True, attestations=found,
                               blobs=count))
    return checked
