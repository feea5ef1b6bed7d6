"""Signing keys and Sigstore bundles, natively in Python, in the form cosign 3 verifies.

A signature is a Sigstore bundle (v0.3) holding a DSSE envelope around an in-toto Statement v1
whose subject is the signed manifest's digest: predicate ``https://sigstore.dev/cosign/sign/v1``
for a plain signature (``cosign verify``), the SPDX document or the SLSA provenance for an
attestation (``cosign verify-attestation --type spdxjson|slsaprovenance1``). Blobs (a generated
ImageCatalog) get a bundle with a message signature (``cosign verify-blob --bundle``).

Keys are ECDSA P-256 (what ``cosign generate-key-pair`` makes too), stored as PKCS#8 PEM and
encrypted when a password is given; the public key is a PEM SubjectPublicKeyInfo, which
``cosign verify --key`` accepts as is. Signatures are deterministic (RFC 6979), so signing the
same content twice gives the same bundle bytes, and republishing changes nothing.

Signing in-process keeps a catalog of many images from paying a cosign subprocess per artifact.
Key-based bundles carry no transparency-log entry: verify them offline (cosign needs
``--insecure-ignore-tlog``); keyless signing (OIDC, Fulcio, Rekor) is done by cosign in CI.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from monogres_oci.errors import UsageError, VerifyError

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
PASSWORD_ENV = "MONOGRES_SIGNING_PASSWORD"


def canonical(value: Any) -> bytes:
    """Compact JSON with sorted keys: the bytes that are hashed and signed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise VerifyError(f"{what}: not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerifyError(f"{what}: invalid base64") from exc


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what the signature is computed over."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class PublicKey:
    """A verification key: an ECDSA P-256 public key and cosign's hint for it."""

    key: ec.EllipticCurvePublicKey

    @property
    def hint(self) -> str:
        """base64 sha256 of the DER SubjectPublicKeyInfo, as cosign writes it into bundles."""
        der = self.key.public_bytes(serialization.Encoding.DER,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)
        return _b64(hashlib.sha256(der).digest())

    def pem(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self.key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """A private ECDSA P-256 key that signs deterministically."""

    key: ec.EllipticCurvePrivateKey

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key.public_key())

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))


# --- key files -------------------------------------------------------------------------------

def generate_key_pair(private_path: Path, password: str | None) -> tuple[Path, Path]:
    """Write a new key pair: PKCS#8 PEM (0600, encrypted if ``password``) and ``.pub`` beside it."""
    public_path = private_path.with_suffix(".pub")
    for path in (private_path, public_path):
        if path.exists():
            raise UsageError(f"{path} already exists; remove it or choose another --out")
    key = ec.generate_private_key(ec.SECP256R1())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password
        else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            encryption)
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public_path.write_bytes(PublicKey(key.public_key()).pem())
    return private_path, public_path


def load_signing_key(path: Path, password: str | None = None) -> SigningKey:
    """Read a PKCS#8 PEM private key (the password comes from the argument or the environment)."""
    if password is None:
        password = os.environ.get(PASSWORD_ENV) or None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"signing key {path}: {exc.strerror}") from exc
    if b"ENCRYPTED SIGSTORE PRIVATE KEY" in data or b"ENCRYPTED COSIGN PRIVATE KEY" in data:
        raise UsageError(f"signing key {path} is in cosign's own encrypted format, which this tool "
                         "does not read; make a key with `monogres-oci keygen` (cosign verifies "
                         "its signatures with the .pub file)")
    try:
        key = serialization.load_pem_private_key(
            data, password.encode() if password else None)
    except TypeError as exc:
        raise UsageError(f"signing key {path} is encrypted: set {PASSWORD_ENV}") from exc
    except ValueError as exc:
        raise UsageError(f"signing key {path}: cannot read it (wrong {PASSWORD_ENV}, or not a "
                         "PEM private key)") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise UsageError(f"signing key {path}: must be an ECDSA P-256 key")
    return SigningKey(key)


def load_public_key(path: Path) -> PublicKey:
    """Read a PEM public key (``monogres-oci keygen``'s or ``cosign generate-key-pair``'s .pub)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"public key {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise UsageError(f"public key {path}: not a PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise UsageError(f"public key {path}: must be an ECDSA key")
    return PublicKey(key)


# --- statements and bundles ------------------------------------------------------------------

def digest_set(digest: str) -> dict[str, str]:
    """``sha256:<hex>`` as in-toto's DigestSet: ``{"sha256": "<hex>"}``."""
    algorithm, _, hex_digest = digest.partition(":")
    return {algorithm: hex_digest}


def statement(subject_name: str, subject_digest: str, predicate_type: str,
              predicate: dict[str, Any]) -> dict[str, Any]:
    """An in-toto Statement v1 about one subject, given as ``sha256:<hex>``."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": digest_set(subject_digest)}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def sign_statement(key: SigningKey, stmt: dict[str, Any]) -> bytes:
    """A Sigstore bundle holding ``stmt`` in a DSSE envelope signed with ``key``."""
    payload = canonical(stmt)
    signature = key.sign(pae(INTOTO_PAYLOAD_TYPE, payload))
    return canonical({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key.public.hint}},
        "dsseEnvelope": {"payload": _b64(payload), "payloadType": INTOTO_PAYLOAD_TYPE,
                         "signatures": [{"sig": _b64(signature)}]},
    })


def _parse_bundle(data: bytes, what: str) -> dict[str, Any]:
    try:
        bundle = json.loads(data)
    except ValueError as exc:
        raise VerifyError(f"{what}: not JSON") from exc
    if not isinstance(bundle, dict) or bundle.get("mediaType") != BUNDLE_MEDIA_TYPE:
        raise VerifyError(f"{what}: not a Sigstore bundle v0.3")
    return bundle


def verify_statement(key: PublicKey, data: bytes, what: str) -> dict[str, Any]:
    """Check a bundle's DSSE signature with ``key``; return the statement it signs."""
    bundle = _parse_bundle(data, what)
    envelope = bundle.get("dsseEnvelope")
    if not isinstance(envelope, dict) or envelope.get("payloadType") != INTOTO_PAYLOAD_TYPE:
        raise VerifyError(f"{what}: no in-toto DSSE envelope")
    payload = _unb64(envelope.get("payload"), f"{what}: payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise VerifyError(f"{what}: the envelope has no signature")
    message = pae(INTOTO_PAYLOAD_TYPE, payload)
    if not any(isinstance(s, dict) and key.verify(_unb64(s.get("sig"), f"{what}: signature"),
                                                  message) for s in signatures):
        hint = bundle.get("verificationMaterial", {}).get("publicKey", {}).get("hint")
        by = (f" (it names key {hint}; yours is {key.hint})" if hint and hint != key.hint
              else "")
        raise VerifyError(f"{what}: the signature does not verify with the given key{by}")
    try:
        stmt = json.loads(payload)
    except ValueError as exc:
        raise VerifyError(f"{what}: the signed payload is not JSON") from exc
    if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE:
        raise VerifyError(f"{what}: the signed payload is not an in-toto Statement v1")
    return stmt


def statement_subjects(stmt: dict[str, Any]) -> set[str]:
    """The ``sha256:<hex>`` digests a statement is about."""
    out = set()
    for subject in stmt.get("subject") or []:
        digest = subject.get("digest", {}) if isinstance(subject, dict) else {}
        if isinstance(digest.get("sha256"), str):
            out.add(f"sha256:{digest['sha256']}")
    return out


def sign_blob(key: SigningKey, data: bytes) -> bytes:
    """A Sigstore bundle with a message signature over ``data`` (``cosign verify-blob --bundle``)."""
    return canonical({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key.public.hint}},
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256",
                              "digest": _b64(hashlib.sha256(data).digest())},
            "signature": _b64(key.sign(data)),
        },
    })


def verify_blob(key: PublicKey, data: bytes, bundle_bytes: bytes, what: str) -> None:
    """Check a blob bundle; raise VerifyError saying what does not match."""
    bundle = _parse_bundle(bundle_bytes, what)
    message = bundle.get("messageSignature")
    if not isinstance(message, dict):
        raise VerifyError(f"{what}: no message signature in the bundle")
    digest = _unb64(message.get("messageDigest", {}).get("digest"), f"{what}: digest")
    if digest != hashlib.sha256(data).digest():
        raise VerifyError(f"{what}: the file's sha256 is not the signed one (changed since signing)")
    if not key.verify(_unb64(message.get("signature"), f"{what}: signature"), data):
        raise VerifyError(f"{what}: the signature does not verify with the given key")
