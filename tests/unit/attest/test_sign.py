"""Native signing: keys, DSSE bundles and blob bundles; the real cosign checks the blob bundles."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from monogres_oci.attest.sign import (
    COSIGN_SIGN_PREDICATE,
    generate_key_pair,
    load_public_key,
    load_signing_key,
    sign_blob,
    sign_statement,
    statement,
    statement_subjects,
    verify_blob,
    verify_statement,
)
from monogres_oci.errors import UsageError, VerifyError

DIGEST = "sha256:" + "ab" * 32


def _pair(tmp_path: Path, name: str = "k.key", password: str | None = None) -> tuple[Path, Path]:
    return generate_key_pair(tmp_path / name, password)


def test_key_pair_files(tmp_path: Path) -> None:
    private, public = _pair(tmp_path)
    assert public == tmp_path / "k.pub"
    assert private.stat().st_mode & 0o777 == 0o600
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    with pytest.raises(UsageError, match="already exists"):
        _pair(tmp_path)


def test_encrypted_key_needs_its_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONOGRES_SIGNING_PASSWORD", raising=False)
    private, _ = _pair(tmp_path, password="s3cret")
    assert b"ENCRYPTED PRIVATE KEY" in private.read_bytes()
    with pytest.raises(UsageError, match="MONOGRES_SIGNING_PASSWORD"):
        load_signing_key(private)
    with pytest.raises(UsageError, match="wrong MONOGRES_SIGNING_PASSWORD"):
        load_signing_key(private, "nope")
    monkeypatch.setenv("MONOGRES_SIGNING_PASSWORD", "s3cret")
    load_signing_key(private)


def test_cosign_key_format_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "cosign.key"
    path.write_text("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nxx\n")
    with pytest.raises(UsageError, match="keygen"):
        load_signing_key(path)


def test_statement_bundle_round_trip_and_determinism(tmp_path: Path) -> None:
    private, public = _pair(tmp_path)
    key = load_signing_key(private)
    stmt = statement("pgaudit", DIGEST, COSIGN_SIGN_PREDICATE, {})
    bundle = sign_statement(key, stmt)
    assert bundle == sign_statement(key, stmt), "signatures are deterministic (RFC 6979)"
    got = verify_statement(load_public_key(public), bundle, "b")
    assert got == stmt
    assert statement_subjects(got) == {DIGEST}
    doc = json.loads(bundle)
    assert doc["verificationMaterial"]["publicKey"]["hint"] == key.public.hint


def test_bundle_rejects_other_key_and_changed_payload(tmp_path: Path) -> None:
    private, _ = _pair(tmp_path)
    _, other_pub = _pair(tmp_path, "other.key")
    bundle = sign_statement(load_signing_key(private), statement("x", DIGEST, "p", {"a": 1}))
    with pytest.raises(VerifyError, match="does not verify with the given key"):
        verify_statement(load_public_key(other_pub), bundle, "b")
    doc = json.loads(bundle)
    payload = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    payload["subject"][0]["digest"]["sha256"] = "cd" * 32
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    pub = load_signing_key(private).public
    with pytest.raises(VerifyError, match="does not verify"):
        verify_statement(pub, json.dumps(doc).encode(), "b")


def test_blob_bundle(tmp_path: Path) -> None:
    private, public = _pair(tmp_path)
    data = b"kind: ImageCatalog\n"
    bundle = sign_blob(load_signing_key(private), data)
    verify_blob(load_public_key(public), data, bundle, "catalog.yaml")
    with pytest.raises(VerifyError, match="changed since signing"):
        verify_blob(load_public_key(public), data + b"#", bundle, "catalog.yaml")


@pytest.mark.skipif(shutil.which("cosign") is None, reason="cosign CLI not installed")
def test_cosign_verifies_blob_bundles(tmp_path: Path) -> None:
    private, public = _pair(tmp_path)
    _, other = _pair(tmp_path, "other.key")
    data_file = tmp_path / "catalog.yaml"
    data_file.write_bytes(b"apiVersion: postgresql.cnpg.io/v1\nkind: ImageCatalog\n")
    bundle = tmp_path / "catalog.yaml.sigstore.json"
    bundle.write_bytes(sign_blob(load_signing_key(private), data_file.read_bytes()))

    def cosign(pub: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["cosign", "verify-blob", "--key", str(pub), "--bundle", str(bundle),
                               "--insecure-ignore-tlog", str(data_file)],
                              capture_output=True, text=True, timeout=120)

    ok = cosign(public)
    assert ok.returncode == 0, ok.stderr
    assert cosign(other).returncode != 0
    data_file.write_bytes(data_file.read_bytes() + b"# changed\n")
    assert cosign(public).returncode != 0
