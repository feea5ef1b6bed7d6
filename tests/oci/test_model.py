"""The OCI model: canonical bytes, digests, parsing, and conformance to the image-spec schemas."""

from __future__ import annotations

import json

import pytest

from monogres_oci.errors import VerifyError
from monogres_oci.oci.digest import sha256_digest
from monogres_oci.oci.model import (
    DOCKER_MANIFEST_LIST,
    EMPTY_BLOB,
    OCI_INDEX,
    OCI_LAYER_TAR_GZIP,
    OCI_MANIFEST,
    Blob,
    Descriptor,
    History,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    canonical_json,
    rfc3339,
)
from monogres_oci.oci.parse import (
    parse_descriptor,
    parse_image_config,
    parse_index,
    parse_manifest,
    parse_manifest_or_index,
)
from tests.support.oci_schemas import validate

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def _config() -> ImageConfig:
    return ImageConfig(
        architecture="arm64",
        variant="v8",
        created=rfc3339(1_750_000_000),
        user="26:26",
        env=("PATH=/usr/lib/postgresql/18/bin:/usr/bin", "LANG=C.UTF-8"),
        cmd=("postgres",),
        working_dir="/var/lib/postgresql",
        labels={"z": "last", "a": "first", "org.opencontainers.image.title": "pg"},
        exposed_ports=("5432/tcp",),
        volumes=("/var/lib/postgresql/data",),
        stop_signal="SIGINT",
        diff_ids=(D1, D2),
        history=(History(created=rfc3339(0), created_by="debootstrap"), History(comment="pg")),
    )


def _manifest() -> Manifest:
    config = _config()
    return Manifest(
        config=config.descriptor(),
        layers=(
            Descriptor(OCI_LAYER_TAR_GZIP, D1, 10, {"org.opencontainers.image.title": "."}),
            Descriptor(OCI_LAYER_TAR_GZIP, D2, 20),
        ),
        annotations={"org.opencontainers.image.created": rfc3339(0)},
    )


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": ["é", {"d": 2, "c": 3}]}) == (
        '{"a":["é",{"c":3,"d":2}],"b":1}'.encode()
    )


def test_rfc3339() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1_750_000_000) == "2025-06-15T15:06:40Z"


def test_same_value_same_bytes_and_digest() -> None:
    first, second = _manifest(), _manifest()
    assert first == second
    assert first.to_json() == second.to_json()
    assert first.digest == sha256_digest(first.to_json())
    desc = first.descriptor(platform=Platform("amd64"))
    assert (desc.media_type, desc.digest, desc.size) == (
        OCI_MANIFEST,
        first.digest,
        len(first.to_json()),
    )


def test_annotation_order_does_not_matter() -> None:
    a = Descriptor(OCI_LAYER_TAR_GZIP, D1, 1, {"x": "1", "a": "2"})
    b = Descriptor(OCI_LAYER_TAR_GZIP, D1, 1, {"a": "2", "x": "1"})
    assert a == b and canonical_json(a.to_dict()) == canonical_json(b.to_dict())
    assert list(a.annotations) == ["a", "x"]


def test_values_are_immutable() -> None:
    desc = Descriptor(OCI_LAYER_TAR_GZIP, D1, 1, {"a": "b"})
    with pytest.raises(AttributeError):
        desc.size = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        desc.annotations["a"] = "c"  # type: ignore[index]
    assert hash(desc) == hash(Descriptor(OCI_LAYER_TAR_GZIP, D1, 1, {"a": "b"}))


def test_descriptor_rejects_bad_digest_and_size() -> None:
    with pytest.raises(VerifyError):
        Descriptor(OCI_LAYER_TAR_GZIP, "sha256:abc", 1)
    with pytest.raises(ValueError):
        Descriptor(OCI_LAYER_TAR_GZIP, D1, -1)


def test_config_serialisation_and_schema() -> None:
    config = _config()
    doc = json.loads(config.to_json())
    validate("config", doc)
    assert doc["rootfs"] == {"type": "layers", "diff_ids": [D1, D2]}
    assert doc["config"]["Labels"] == {
        "a": "first",
        "org.opencontainers.image.title": "pg",
        "z": "last",
    }
    assert doc["config"]["Env"][0].startswith("PATH=")  # order kept: it is meaningful
    assert "Entrypoint" not in doc["config"]
    assert doc["variant"] == "v8"


def test_minimal_config_validates() -> None:
    validate("config", ImageConfig(architecture="amd64").to_json())


def test_manifest_and_index_validate() -> None:
    manifest = _manifest()
    validate("manifest", manifest.to_json())
    index = Index(
        manifests=(
            manifest.descriptor(platform=Platform("amd64")),
            manifest.descriptor(platform=Platform.parse("linux/arm64/v8")),
        ),
        annotations={"org.opencontainers.image.created": rfc3339(0)},
    )
    validate("index", index.to_json())
    validate("descriptor", index.descriptor().to_dict())


def test_artifact_with_subject_validates() -> None:
    subject = _manifest().descriptor()
    artifact = Manifest(
        config=EMPTY_BLOB.descriptor(),
        layers=(Blob(b'{"spdxVersion":"SPDX-2.3"}', "application/spdx+json").descriptor(),),
        subject=subject,
        artifact_type="application/spdx+json",
    )
    validate("manifest", artifact.to_json())
    assert artifact.descriptor().artifact_type == "application/spdx+json"
    assert EMPTY_BLOB.digest == (
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )
    referrers = Index(manifests=(artifact.descriptor(),), subject=subject)
    validate("index", referrers.to_json())


def test_round_trips() -> None:
    manifest = _manifest()
    assert parse_manifest(manifest.to_json()) == manifest
    assert parse_image_config(_config().to_json()) == _config()
    index = Index(manifests=(manifest.descriptor(platform=Platform("amd64", os_features=("x",))),))
    assert parse_index(index.to_json()) == index
    assert parse_manifest_or_index(index.to_json()) == index
    assert parse_manifest_or_index(manifest.to_json(), OCI_MANIFEST) == manifest
    with_data = Descriptor("application/json", sha256_digest(b"{}"), 2, data=b"{}")
    assert parse_descriptor(with_data.to_dict()) == with_data


def test_docker_manifest_list_parses_as_index() -> None:
    data = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST_LIST,
            "manifests": [
                {
                    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "digest": D1,
                    "size": 5,
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        }
    )
    parsed = parse_manifest_or_index(data)
    assert isinstance(parsed, Index) and parsed.media_type == DOCKER_MANIFEST_LIST
    assert parsed.manifests[0].platform == Platform("amd64")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"schemaVersion":1,"config":{},"layers":[]}', "schemaVersion"),
        (b'{"schemaVersion":2,"layers":[]}', "missing 'config'"),
        (
            b'{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"md5:x","size":1},"layers":[]}',
            "manifest.config",
        ),
        (
            b'{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"'
            + D1.encode()
            + b'","size":true},"layers":[]}',
            "size",
        ),
        (
            b'{"schemaVersion":2,"mediaType":"' + OCI_INDEX.encode() + b'","manifests":[]}',
            "not an image manifest",
        ),
    ],
)
def test_parse_errors_name_the_problem(document: bytes, message: str) -> None:
    with pytest.raises(VerifyError, match=message):
        parse_manifest(document)


def test_platform_text() -> None:
    assert str(Platform.parse("linux/arm64/v8")) == "linux/arm64/v8"
    assert Platform.parse("linux/amd64") == Platform("amd64")
    with pytest.raises(ValueError):
        Platform.parse("amd64")
    ordered = sorted([Platform("arm64"), Platform("amd64")], key=Platform.sort_key)
    assert [p.architecture for p in ordered] == ["amd64", "arm64"]
