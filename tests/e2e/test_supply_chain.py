"""Supply chain, end to end: SBOM, provenance and signatures checked by the real oras and cosign,
by `monogres-oci verify` and `install`, and tampering of each kind refused."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from monogres_oci.attest.attach import INTOTO_TYPE, PREDICATE_ANNOTATION, SPDX_TYPE, attachments_by_subject
from monogres_oci.attest.image import SPDX_PREDICATE
from monogres_oci.attest.provenance import BUILD_TYPE
from monogres_oci.attest.provenance import PREDICATE_TYPE as SLSA_PREDICATE
from monogres_oci.attest.sign import BUNDLE_MEDIA_TYPE
from monogres_oci.oci.layout import Layout
from tests.e2e.conftest import (
    Built,
    Keys,
    Published,
    cli,
    make_keys,
    publish_signed,
    rolling,
)
from tests.support.registry import RunningRegistry, start_registry

pytestmark = pytest.mark.e2e

COSIGN_OFFLINE = ("--insecure-ignore-tlog", "--allow-insecure-registry")


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=300)


def _platform_manifests(built: Built, repo_tag: str) -> list[str]:
    layout = Layout.open(built.layout)
    index = layout.read_index(layout.refs()[repo_tag].digest)
    return [d.digest for d in index.manifests]


def _repo(published: Published, repo_tag: str) -> str:
    return published.tag_ref(repo_tag).rsplit(":", 1)[0]


def test_oras_discover_lists_sbom_provenance_and_signatures(built: Built,
                                                            published: Published) -> None:
    tag = rolling("hello")
    manifest = _platform_manifests(built, tag)[0]
    proc = _run("oras", "discover", "--plain-http", "--format", "json",
                f"{_repo(published, tag)}@{manifest}")
    assert proc.returncode == 0, proc.stderr
    referrers = json.loads(proc.stdout)["referrers"]
    types = sorted(r["artifactType"] for r in referrers)
    # raw SBOM, raw provenance and test result, and four bundles: the signature and the SPDX,
    # SLSA and test-result attestations
    assert types == sorted([SPDX_TYPE, INTOTO_TYPE, INTOTO_TYPE] + [BUNDLE_MEDIA_TYPE] * 4), types


def test_cosign_verifies_every_index_and_platform_manifest(built: Built,
                                                           published: Published) -> None:
    for tag in (rolling("hello"), rolling("pgaudit"), rolling("postgresql"),
                rolling("postgresql-dist")):
        index = published.ref(tag).rsplit("@", 1)[1]
        for digest in (index, *_platform_manifests(built, tag)):
            proc = _run("cosign", "verify", "--key", str(published.keys.public), *COSIGN_OFFLINE,
                        f"{_repo(published, tag)}@{digest}")
            assert proc.returncode == 0, f"{tag}@{digest}: {proc.stderr}"


@pytest.mark.parametrize("cosign_type,predicate_type", [
    ("spdxjson", "https://spdx.dev/Document"),
    ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
])
def test_cosign_verifies_the_attestations(built: Built, published: Published, cosign_type: str,
                                          predicate_type: str) -> None:
    tag = rolling("postgresql")
    manifest = _platform_manifests(built, tag)[0]
    proc = _run("cosign", "verify-attestation", "--key", str(published.keys.public),
                "--type", cosign_type, *COSIGN_OFFLINE, f"{_repo(published, tag)}@{manifest}")
    assert proc.returncode == 0, proc.stderr
    envelope = json.loads(proc.stdout.splitlines()[0])
    stmt = json.loads(base64.b64decode(envelope["payload"]))
    assert stmt["predicateType"] == predicate_type
    assert stmt["subject"][0]["digest"]["sha256"] == manifest.split(":")[1]


def test_cosign_rejects_signatures_made_with_another_key(built: Built, published: Published,
                                                         tmp_path: Path) -> None:
    other = make_keys(tmp_path)
    tag = rolling("hello")
    proc = _run("cosign", "verify", "--key", str(other.public), *COSIGN_OFFLINE,
                published.ref(tag).replace(f":{tag.split(':')[1]}@", "@"))
    assert proc.returncode != 0


def test_verify_checks_signatures_attestations_and_blobs(published: Published) -> None:
    refs = [published.tag_ref(rolling(r)) for r in ("hello", "postgresql")]
    out = json.loads(cli("verify", *refs, "--key", str(published.keys.public), "--json").stdout)
    expected = {"hello": ["SLSA provenance", "SPDX SBOM", "test result"],  # gated extension
                "postgresql": ["SLSA provenance", "SPDX SBOM"]}
    for result, repo in zip(out["results"], ("hello", "postgresql"), strict=True):
        index, *manifests = result["verified"]
        assert index["platform"] == "" and index["signed"]
        assert manifests, result
        for item in manifests:
            assert item["platform"] == "linux/amd64"
            assert sorted(item["attestations"]) == expected[repo]
            assert item["blobs_checked"] >= 2  # config + every layer


def _attachment(layout: Layout, manifest: str, predicate_type: str) -> bytes:
    items = [a for a in attachments_by_subject(layout)[manifest]
             if a.descriptor.annotations.get(PREDICATE_ANNOTATION) == predicate_type]
    assert len(items) == 1, [a.descriptor for a in items]
    return layout.read_blob(items[0].payload.digest)


@pytest.mark.parametrize("repo", ["hello", "postgresql", "postgresql-dist"])
def test_sbom_is_valid_spdx_and_lists_every_file_of_the_layer(built: Built, repo: str,
                                                              tmp_path: Path) -> None:
    layout = Layout.open(built.layout)
    manifest_digest = _platform_manifests(built, rolling(repo))[0]
    raw = _attachment(layout, manifest_digest, SPDX_PREDICATE)
    path = tmp_path / "sbom.spdx.json"
    path.write_bytes(raw)
    messages = validate_full_spdx_document(parse_file(str(path)))
    assert messages == [], [m.validation_message for m in messages][:10]

    doc = json.loads(raw)
    assert manifest_digest.split(":")[1] in doc["documentNamespace"]
    files = {f["fileName"].removeprefix("./"): {c["algorithm"]: c["checksumValue"]
                                                for c in f["checksums"]}
             for f in doc.get("files", [])}
    # Our own layers (the last one, and the runtime layer of the runnable image): every regular
    # file is listed with its real sha256.
    manifest = layout.read_manifest(manifest_digest)
    own = manifest.layers[-2:] if repo == "postgresql" else manifest.layers
    seen = 0
    for layer in own:
        with tarfile.open(layout.blob_path(layer.digest)) as tar:
            for member in tar:
                if member.isfile():
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]
                    assert files[member.name]["SHA256"] == hashlib.sha256(data).hexdigest()
                    seen += 1
    assert seen == len(files)
    names = {p["name"] for p in doc["packages"]}
    if repo == "postgresql":
        assert "libssl3" in names, "bundled Debian libraries are listed"
    assert "gcc-12" in names or "gcc" in names, "the build toolchain is listed"


def test_provenance_names_the_pushed_digest_and_the_pinned_inputs(built: Built,
                                                                  published: Published) -> None:
    layout = Layout.open(built.layout)
    tag = rolling("pgaudit")
    manifest_digest = _platform_manifests(built, tag)[0]
    stmt = json.loads(_attachment(layout, manifest_digest, SLSA_PREDICATE))
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["subject"][0]["digest"] == {"sha256": manifest_digest.split(":")[1]}
    # what was pushed is what the provenance names
    head = requests.head(f"http://{published.registry.host}/v2/{published.namespace}/pgaudit/"
                         f"manifests/{manifest_digest}", timeout=30,
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert head.status_code == 200
    definition = stmt["predicate"]["buildDefinition"]
    assert definition["buildType"] == BUILD_TYPE
    deps = {d["name"]: d for d in definition["resolvedDependencies"]}
    catalog_entry = definition["externalParameters"]["catalog"]
    source_sha = catalog_entry["version"]["source"]["sha256"]
    assert any(d.get("digest") == {"sha256": source_sha} for d in deps.values())
    assert deps["base-image"]["digest"]["sha256"] == built.base_image.split("@sha256:")[1]
    assert any(d.get("uri", "").startswith("pkg:deb/debian/gcc-12@") for d in deps.values())


def test_signed_image_catalog(built: Built, published: Published, tmp_path: Path) -> None:
    out = tmp_path / "cluster.yaml"
    cli("cnpg", "--catalog", str(built.catalog), "--registry",
        f"{published.registry.host}/{published.namespace}", "--postgres", "18.6",
        "--extension", "pgaudit", "--output", str(out), "--sign-key", str(published.keys.private))
    bundle = out.with_name("cluster.yaml.sigstore.json")
    assert "kind: ImageCatalog" in out.read_text()
    cli("verify-blob", str(out), "--key", str(published.keys.public))
    cosign = ("cosign", "verify-blob", "--key", str(published.keys.public), "--bundle",
              str(bundle), "--insecure-ignore-tlog", str(out))
    assert _run(*cosign).returncode == 0
    out.write_text(out.read_text().replace("pgaudit", "pgaudlt"))
    refused = cli("verify-blob", str(out), "--key", str(published.keys.public), check=False)
    assert refused.returncode == 1 and "changed since signing" in refused.stderr
    assert _run(*cosign).returncode != 0


# --- tampering: a registry of its own, so the shared one stays intact -------------------------

@pytest.fixture(scope="module")
def tamper_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    reg = start_registry(tmp_path_factory.mktemp("tamper-registry"))
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def tampered(built: Built, tamper_registry: RunningRegistry, keys: Keys) -> Published:
    return publish_signed(built.layout, tamper_registry, "t", keys)


def _refused(published: Published, ref: str, tmp_path: Path, keys: Keys | None = None,
             ) -> tuple[str, str]:
    key = str((keys or published.keys).public)
    verify = cli("verify", ref, "--key", key, check=False)
    install = cli("install", ref, "--dest", str(tmp_path / "dest"), "--key", key, check=False)
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert install.returncode == 1, install.stdout + install.stderr
    assert "Traceback" not in verify.stderr + install.stderr
    assert not (tmp_path / "dest" / "hello").exists()
    return verify.stderr, install.stderr


def _registry_json(reg: RunningRegistry, path: str, media_type: str) -> Any:
    response = requests.get(f"http://{reg.host}/v2/{path}", headers={"Accept": media_type},
                            timeout=30)
    response.raise_for_status()
    return response.json()


def _put(reg: RunningRegistry, path: str, doc: Any, media_type: str) -> str:
    data = json.dumps(doc).encode()
    response = requests.put(f"http://{reg.host}/v2/{path}", data=data,
                            headers={"Content-Type": media_type}, timeout=30)
    response.raise_for_status()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_tampered_layer_is_refused(built: Built, tampered: Published,
                                   tamper_registry: RunningRegistry, tmp_path: Path) -> None:
    tag = rolling("hello")
    manifest = Layout.open(built.layout).read_manifest(_platform_manifests(built, tag)[0])
    hex_digest = manifest.layers[0].digest.split(":")[1]
    data = (tamper_registry.root / "storage/docker/registry/v2/blobs/sha256" / hex_digest[:2]
            / hex_digest / "data")
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    data.write_bytes(bytes(blob))
    verify_err, install_err = _refused(tampered, tampered.tag_ref(tag), tmp_path)
    assert "digest" in verify_err and "digest" in install_err
    # cosign checks the signed manifest, not the layers, so it still passes here: the layer
    # digest check is what catches this.


def test_tag_moved_to_an_unsigned_index_is_refused(tampered: Published,
                                                   tamper_registry: RunningRegistry,
                                                   tmp_path: Path) -> None:
    tag = rolling("rum")
    repo, version = f"{tampered.namespace}/rum", tag.split(":")[1]
    index_type = "application/vnd.oci.image.index.v1+json"
    index = _registry_json(tamper_registry, f"{repo}/manifests/{version}", index_type)
    index["annotations"]["org.opencontainers.image.description"] = "not what was signed"
    _put(tamper_registry, f"{repo}/manifests/{version}", index, index_type)
    verify_err, install_err = _refused(tampered, tampered.tag_ref(tag), tmp_path)
    assert "no valid signature" in verify_err and "no valid signature" in install_err
    cosign = _run("cosign", "verify", "--key", str(tampered.keys.public), *COSIGN_OFFLINE,
                  tampered.tag_ref(tag))
    assert cosign.returncode != 0


def test_another_key_is_refused(tampered: Published, tmp_path: Path) -> None:
    other = make_keys(tmp_path)
    verify_err, _ = _refused(tampered, tampered.tag_ref(rolling("pgaudit")), tmp_path, other)
    assert "does not verify with the given key" in verify_err
    cosign = _run("cosign", "verify", "--key", str(other.public), *COSIGN_OFFLINE,
                  tampered.tag_ref(rolling("pgaudit")))
    assert cosign.returncode != 0


def test_stripped_sbom_is_refused(built: Built, tampered: Published,
                                  tamper_registry: RunningRegistry, tmp_path: Path) -> None:
    tag = rolling("postgresql-dist")
    manifest = _platform_manifests(built, tag)[0]
    repo = f"{tampered.namespace}/postgresql-dist"
    index_type = "application/vnd.oci.image.index.v1+json"
    fallback = manifest.replace(":", "-")
    referrers = _registry_json(tamper_registry, f"{repo}/manifests/{fallback}", index_type)
    kept = [d for d in referrers["manifests"]
            if d.get("annotations", {}).get("in-toto.io/predicate-type") != "https://spdx.dev/Document"
            and d.get("annotations", {}).get("dev.sigstore.bundle.predicateType")
            != "https://spdx.dev/Document"]
    assert len(kept) == len(referrers["manifests"]) - 2
    _put(tamper_registry, f"{repo}/manifests/{fallback}", {**referrers, "manifests": kept},
         index_type)
    verify_err, install_err = _refused(tampered, tampered.tag_ref(tag), tmp_path)
    assert "no signed SPDX SBOM attestation" in verify_err
    assert "no signed SPDX SBOM attestation" in install_err
    cosign = _run("cosign", "verify-attestation", "--key", str(tampered.keys.public), "--type",
                  "spdxjson", *COSIGN_OFFLINE, f"{tampered.tag_ref(tag).rsplit(':', 1)[0]}@{manifest}")
    assert cosign.returncode != 0


def test_install_of_unsigned_artifacts_needs_an_explicit_flag(built: Built,
                                                              registry: RunningRegistry,
                                                              tmp_path: Path) -> None:
    # The shared registry, not the tampered one: blobs are shared between repositories there.
    # The shared layout holds signatures by now (publish pushes those too): copy it without them.
    unsigned = tmp_path / "oci"
    shutil.copytree(built.layout, unsigned)
    index = json.loads((unsigned / "index.json").read_text())
    index["manifests"] = [d for d in index["manifests"]
                          if d.get("artifactType") != BUNDLE_MEDIA_TYPE]
    (unsigned / "index.json").write_text(json.dumps(index))
    ns = "unsigned"
    cli("publish", "--registry", f"{registry.host}/{ns}", "--layout", str(unsigned))
    ref = f"{registry.host}/{ns}/{rolling('hello')}"
    keys = make_keys(tmp_path)
    refused = cli("install", ref, "--dest", str(tmp_path / "a"), "--key", str(keys.public),
                  check=False)
    assert refused.returncode == 1 and "no signature is attached" in refused.stderr
    missing = cli("install", ref, "--dest", str(tmp_path / "b"), check=False)
    assert missing.returncode == 2 and "--allow-unsigned" in missing.stderr
    allowed = cli("install", ref, "--dest", str(tmp_path / "c"), "--allow-unsigned")
    assert "WARNING" in allowed.stderr and "NOT checked" in allowed.stderr
    assert (tmp_path / "c/hello/share/extension/hello.control").is_file()


def test_every_build_keeps_a_build_record(built: Built) -> None:
    """Like Debian's .buildinfo: base digest, every package in the build container, inputs."""
    from tests.e2e.conftest import CACHE

    # The record of the pgaudit build the shared build packaged: the one with its input digest
    # (the cache holds other builds, e.g. against other option sets or older recipes).
    index = json.loads((built.layout / "index.json").read_text())
    entry = next(m for m in index["manifests"] if m.get("annotations", {}).get(
        "org.opencontainers.image.ref.name", "").startswith("pgaudit:"))
    image = json.loads((built.layout / "blobs/sha256" / entry["digest"][7:]).read_text())
    manifest = json.loads((built.layout / "blobs/sha256"
                           / image["manifests"][0]["digest"][7:]).read_text())
    wanted = manifest["annotations"]["org.monogres.input.digest"]
    records = [json.loads(path.read_text())
               for path in (CACHE / "builds").glob("*/meta/buildinfo.json")]
    (pgaudit,) = [r for r in records if r["input_digest"] == wanted]
    assert pgaudit["base_image"] == built.base_image
    # The image names the base it was built on as this build took it (packaged before from a
    # base served elsewhere, e.g. another run's registry, it would name that one).
    config = json.loads((built.layout / "blobs/sha256"
                         / manifest["config"]["digest"][7:]).read_text())
    assert config["config"]["Labels"]["org.opencontainers.image.base.name"] \
        == built.base_image.partition("@")[0]
    assert pgaudit["postgres"]["target"].startswith("postgres-18.6-regular-bookworm")
    packages = {p["name"]: p for p in pgaudit["installed_build_depends"]}
    assert packages["gcc-12"]["version"] and packages["gcc-12"]["architecture"] == "amd64"
    assert pgaudit["build_args"]["SOURCE_DATE_EPOCH"] == str(pgaudit["source_date_epoch"])
    assert len(pgaudit["sources"][0]["sha256"]) == 64
