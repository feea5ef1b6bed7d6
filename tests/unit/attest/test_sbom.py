"""The SPDX SBOM: spdx-tools accepts it, its bytes are reproducible and its checksums are the files'."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from monogres_oci.attest.buildinfo import BuildRecord, DebPackage, SourceRecord
from monogres_oci.attest.sbom import (
    SPDX_MEDIA_TYPE,
    FileRecord,
    ImageSubject,
    layer_files,
    spdx_bytes,
    spdx_document,
    verification_code,
)
from monogres_oci.oci.layer import LayerEntry, tree_entries

TOOL = "monogres-oci-0.1.0"
PG_DIGEST = "sha256:" + "11" * 32
EXT_DIGEST = "sha256:" + "22" * 32
MANIFEST = "sha256:" + "ab" * 32
BASE = "docker.io/library/debian:bookworm-slim@sha256:" + "cd" * 32

LIBC = DebPackage("libc6", "2.36-9+deb12u10", "amd64")
TOOLCHAIN = (
    DebPackage("g++", "4:12.2.0-3", "amd64"),
    LIBC,
    DebPackage("libstdc++6", "12.2.0-14", "amd64"),
    DebPackage("libstdc++6", "12.2.0-14", "i386"),
    DebPackage("make", "4.3-4.1", "amd64"),
)
RUNTIME = (
    DebPackage("libicu72", "72.1-3", "amd64"),
    DebPackage("libssl3", "1:2.3~rc1+deb12u1", "amd64"),
)
BASE_PACKAGES = (DebPackage("base-files", "12.4+deb12u7", "amd64"), LIBC)


def _source(name: str, version: str, location: str, license_: str) -> SourceRecord:
    return SourceRecord(name, version, f"{name}-{version}.tar.gz", hashlib.sha256(name.encode()).hexdigest(),
                        location, license_)


def _pg_record(**changes: Any) -> BuildRecord:
    record = BuildRecord(
        kind="postgres", target="postgres-18.0-regular-bookworm-amd64", input_digest=PG_DIGEST,
        platform="linux/amd64", distro="bookworm", suite="bookworm", base_image=BASE,
        recipe="dockerfiles/postgres.Dockerfile", recipe_digest="sha256:" + "33" * 32,
        build_args=(("PG_MAJOR", "18"),),
        sources=(_source("postgresql", "18.0",
                         "https://ftp.postgresql.org/pub/source/v18.0/postgresql-18.0.tar.bz2",
                         "PostgreSQL"),),
        toolchain=TOOLCHAIN, compilers=("gcc 12.2.0",), source_date_epoch=1762776000,
        base_packages=BASE_PACKAGES, runtime_packages=RUNTIME,
    )
    return replace(record, **changes)


def _ext_record(**changes: Any) -> BuildRecord:
    record = BuildRecord(
        kind="extension", target="pgaudit-18.0-pg18.0-regular-bookworm-amd64", input_digest=EXT_DIGEST,
        platform="linux/amd64", distro="bookworm", suite="bookworm", base_image=BASE,
        recipe="dockerfiles/extension.Dockerfile", recipe_digest="sha256:" + "44" * 32,
        build_args=(("PG_MAJOR", "18"),),
        sources=(_source("pgaudit", "18.0",
                         "https://github.com/pgaudit/pgaudit/archive/refs/tags/18.0.tar.gz",
                         "PostgreSQL"),),
        toolchain=TOOLCHAIN[:2], compilers=("gcc 12.2.0",), source_date_epoch=1762776000,
        postgres=_pg_record(),
    )
    return replace(record, **changes)


def _subject(**changes: Any) -> ImageSubject:
    subject = ImageSubject(
        name="pgaudit", version="18.0", description="pgaudit for PostgreSQL 18", manifest_digest=MANIFEST,
        platform="linux/amd64", license="PostgreSQL", created="2025-11-10T12:00:00Z", supplier="Monogres",
        homepage="https://github.com/monogres/monogres-oci",
        namespace_base="https://github.com/monogres/monogres-oci",
    )
    return replace(subject, **changes)


def _tree(root: Path) -> list[LayerEntry]:
    """A small install tree with a subdirectory, a symlink, a hard link and an empty file."""
    (root / "lib").mkdir(parents=True)
    (root / "share" / "extension").mkdir(parents=True)
    (root / "lib" / "pgaudit.so").write_bytes(b"\x7fELF" + bytes(range(256)) * 64)
    (root / "share" / "extension" / "pgaudit.control").write_text("comment = 'audit'\n")
    (root / "share" / "extension" / "pgaudit--18.0.sql").write_text("")
    (root / "lib" / "pgaudit.so.1").symlink_to("pgaudit.so")
    os.link(root / "lib" / "pgaudit.so", root / "lib" / "copy.so")
    return tree_entries(root)


def _validate(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "sbom.spdx.json"
    path.write_bytes(data)
    messages = validate_full_spdx_document(parse_file(str(path)))
    assert messages == [], "\n".join(m.validation_message for m in messages)


def _by_id(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["SPDXID"]: item for item in [*document["packages"], *document["files"]]}


def _relations(document: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"])
            for r in document["relationships"]}


def _purl(document: dict[str, Any], spdx_id: str) -> str:
    refs = _by_id(document)[spdx_id]["externalRefs"]
    assert [r["referenceType"] for r in refs] == ["purl"]
    locator: str = refs[0]["referenceLocator"]
    return locator


def _parse_purl(purl: str) -> dict[str, Any]:
    """Split a purl as the purl spec's parsing rules do and percent-decode its parts."""
    assert purl.startswith("pkg:")
    rest, _, subpath = purl[4:].partition("#")
    rest, _, query = rest.partition("?")
    path, _, version = rest.rpartition("@") if "@" in rest else (rest, "", "")
    kind, *namespace, name = path.split("/")
    qualifiers = dict(item.split("=", 1) for item in query.split("&")) if query else {}
    return {"type": kind, "namespace": "/".join(unquote(n) for n in namespace), "name": unquote(name),
            "version": unquote(version), "qualifiers": {k: unquote(v) for k, v in qualifiers.items()},
            "subpath": subpath}


def _deb_id(document: dict[str, Any], pkg: DebPackage) -> str:
    ids: list[str] = [p["SPDXID"] for p in document["packages"]
           if p["name"] == pkg.name and p.get("versionInfo") == pkg.version
           and any(pkg.arch in r["referenceLocator"] for r in p.get("externalRefs", []))]
    assert len(ids) == 1, (pkg, ids)
    return ids[0]


# --- layer_files ------------------------------------------------------------------------------


def test_layer_files_hashes_regular_files_only(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    entries = [*_tree(root), LayerEntry("share", None)]
    files = layer_files(entries)
    assert [f.path for f in files] == [
        "lib/copy.so", "lib/pgaudit.so", "share/extension/pgaudit--18.0.sql",
        "share/extension/pgaudit.control",
    ]
    for record in files:
        content = (root / record.path).read_bytes()
        assert record.sha1 == hashlib.sha1(content).hexdigest()
        assert record.sha256 == hashlib.sha256(content).hexdigest()


def test_layer_files_refuses_a_path_listed_twice(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    with pytest.raises(ValueError, match="listed twice"):
        layer_files([LayerEntry("x", tmp_path / "a"), LayerEntry("./x", tmp_path / "a")])


# --- validation -------------------------------------------------------------------------------


def test_extension_document_is_valid_spdx(tmp_path: Path) -> None:
    files = layer_files(_tree(tmp_path / "tree"))
    document = spdx_document(_subject(), _ext_record(), files, tool=TOOL)
    _validate(tmp_path, spdx_bytes(document))
    assert SPDX_MEDIA_TYPE == "application/spdx+json"
    assert document["spdxVersion"] == "SPDX-2.3"
    assert document["creationInfo"] == {"created": "2025-11-10T12:00:00Z",
                                        "creators": [f"Tool: {TOOL}", "Organization: Monogres"]}
    image = _by_id(document)["SPDXRef-Image"]
    assert image["primaryPackagePurpose"] == "CONTAINER"
    assert image["supplier"] == "Organization: Monogres"
    assert image["licenseDeclared"] == "PostgreSQL"
    assert _purl(document, "SPDXRef-Image") == "pkg:oci/pgaudit@sha256%3A" + "ab" * 32 + "?arch=amd64"
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image") in _relations(document)


def test_bundled_postgres_document_is_valid_spdx(tmp_path: Path) -> None:
    files = layer_files(_tree(tmp_path / "tree"))
    subject = _subject(name="postgresql", version="18.0", description="PostgreSQL 18")
    document = spdx_document(subject, _pg_record(), files, tool=TOOL, bundled=True)
    _validate(tmp_path, spdx_bytes(document))

    ids = [item["SPDXID"] for item in [*document["packages"], *document["files"]]]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"SPDXRef-[A-Za-z0-9.-]+", i) for i in ids)
    relations = _relations(document)
    for pkg in (*RUNTIME, *BASE_PACKAGES):
        assert ("SPDXRef-Image", "CONTAINS", _deb_id(document, pkg)) in relations
    for pkg in TOOLCHAIN:
        assert (_deb_id(document, pkg), "BUILD_DEPENDENCY_OF", "SPDXRef-Image") in relations
    # libc6 is in the image and in the build container: one package, both relationships.
    assert [p["name"] for p in document["packages"]].count("libc6") == 1
    purposes = {p["name"]: p.get("primaryPackagePurpose") for p in document["packages"]}
    assert purposes["libssl3"] == "LIBRARY"
    assert purposes["base-files"] == "OPERATING-SYSTEM"
    base = [p for p in document["packages"] if p["name"] == "docker.io/library/debian"]
    assert len(base) == 1
    assert ("SPDXRef-Image", "CONTAINS", base[0]["SPDXID"]) in relations
    assert _parse_purl(_purl(document, base[0]["SPDXID"]))["qualifiers"] == {
        "arch": "amd64", "repository_url": "docker.io/library/debian", "tag": "bookworm-slim"}


def test_unbundled_image_lists_no_runtime_or_base_packages(tmp_path: Path) -> None:
    document = spdx_document(_subject(name="postgresql-dist"), _pg_record(), [], tool=TOOL)
    _validate(tmp_path, spdx_bytes(document))
    names = {p["name"] for p in document["packages"]}
    assert not names & {p.name for p in (*RUNTIME, *BASE_PACKAGES) if p not in TOOLCHAIN}
    assert not any(r[1] == "CONTAINS" for r in _relations(document))


def test_image_without_files_is_not_analyzed(tmp_path: Path) -> None:
    document = spdx_document(_subject(), _ext_record(), [], tool=TOOL)
    _validate(tmp_path, spdx_bytes(document))
    image = _by_id(document)["SPDXRef-Image"]
    assert image["filesAnalyzed"] is False
    assert "hasFiles" not in image and "packageVerificationCode" not in image
    assert document["files"] == []


def test_ids_of_colliding_names_stay_unique(tmp_path: Path) -> None:
    toolchain = (DebPackage("a+b", "1", "amd64"), DebPackage("a-b", "1", "amd64"),
                 DebPackage("a.b", "1:0~1", "amd64"))
    document = spdx_document(_subject(), _ext_record(toolchain=toolchain), [], tool=TOOL)
    _validate(tmp_path, spdx_bytes(document))
    ids = [_deb_id(document, pkg) for pkg in toolchain]
    assert len(set(ids)) == 3


def test_license_refs_are_declared(tmp_path: Path) -> None:
    source = _source("custom", "1.0", "https://example.org/custom-1.0.tar.gz",
                     "LicenseRef-Custom OR MIT")
    document = spdx_document(_subject(license="LicenseRef-Custom OR MIT"),
                             _ext_record(sources=(source,)), [], tool=TOOL)
    _validate(tmp_path, spdx_bytes(document))
    assert [i["licenseId"] for i in document["hasExtractedLicensingInfos"]] == ["LicenseRef-Custom"]


# --- determinism ------------------------------------------------------------------------------


def test_same_inputs_same_bytes(tmp_path: Path) -> None:
    files = layer_files(_tree(tmp_path / "tree"))
    first = spdx_bytes(spdx_document(_subject(), _ext_record(), files, tool=TOOL))
    again = spdx_bytes(spdx_document(_subject(), _ext_record(), tuple(reversed(files)), tool=TOOL))
    assert first == again
    assert first == spdx_bytes(json.loads(first))  # canonical form is a fixed point
    other = spdx_document(_subject(manifest_digest="sha256:" + "ef" * 32), _ext_record(), files, tool=TOOL)
    namespace = json.loads(first)["documentNamespace"]
    assert namespace == "https://github.com/monogres/monogres-oci/spdx/pgaudit/" + "ab" * 32
    assert other["documentNamespace"] == "https://github.com/monogres/monogres-oci/spdx/pgaudit/" + "ef" * 32


# --- content ----------------------------------------------------------------------------------


def test_file_checksums_are_the_files(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    files = layer_files(_tree(root))
    document = spdx_document(_subject(), _ext_record(), files, tool=TOOL)
    listed = {f["fileName"]: {c["algorithm"]: c["checksumValue"] for c in f["checksums"]}
              for f in document["files"]}
    on_disk = {f"./{p.relative_to(root).as_posix()}": p.read_bytes()
               for p in root.rglob("*") if p.is_file() and not p.is_symlink()}
    assert listed == {name: {"SHA1": hashlib.sha1(data).hexdigest(),
                             "SHA256": hashlib.sha256(data).hexdigest()}
                      for name, data in on_disk.items()}
    image = _by_id(document)["SPDXRef-Image"]
    assert image["hasFiles"] == [f["SPDXID"] for f in document["files"]]
    assert [f["SPDXID"] for f in document["files"]] == [f"SPDXRef-File-{n}" for n in range(len(files))]
    expected = hashlib.sha1("".join(sorted(hashlib.sha1(d).hexdigest() for d in on_disk.values()))
                            .encode()).hexdigest()
    assert image["packageVerificationCode"] == {"packageVerificationCodeValue": expected}


def test_verification_code_ignores_order() -> None:
    a, b = FileRecord("a", "1" * 40, "x"), FileRecord("b", "0" * 40, "y")
    assert verification_code([a, b]) == verification_code([b, a])
    assert verification_code([a, b]) == hashlib.sha1(("0" * 40 + "1" * 40).encode()).hexdigest()


def test_deb_purls_are_percent_encoded_and_parse_back(tmp_path: Path) -> None:
    document = spdx_document(_subject(name="postgresql"), _pg_record(), [], tool=TOOL, bundled=True)
    for pkg in (*TOOLCHAIN, *RUNTIME, *BASE_PACKAGES):
        purl = _purl(document, _deb_id(document, pkg))
        parsed = _parse_purl(purl)
        assert parsed == {"type": "deb", "namespace": "debian", "name": pkg.name, "version": pkg.version,
                          "qualifiers": {"arch": pkg.arch, "distro": "bookworm"}, "subpath": ""}
        assert ":" not in purl[4:] and "+" not in purl
    assert _purl(document, _deb_id(document, RUNTIME[1])) == (
        "pkg:deb/debian/libssl3@1%3A2.3~rc1%2Bdeb12u1?arch=amd64&distro=bookworm")
    assert _purl(document, _deb_id(document, TOOLCHAIN[0])).startswith("pkg:deb/debian/g%2B%2B@4%3A12.2.0-3?")


def test_sources_and_build_dependencies(tmp_path: Path) -> None:
    record = _ext_record()
    document = spdx_document(_subject(), record, [], tool=TOOL)
    packages = _by_id(document)
    source = next(p for p in document["packages"] if p.get("primaryPackagePurpose") == "SOURCE")
    assert source["name"] == "pgaudit" and source["versionInfo"] == "18.0"
    assert source["checksums"] == [{"algorithm": "SHA256", "checksumValue": record.sources[0].sha256}]
    assert source["licenseDeclared"] == "PostgreSQL"
    assert source["downloadLocation"] == record.sources[0].download_location
    relations = _relations(document)
    assert ("SPDXRef-Image", "GENERATED_FROM", source["SPDXID"]) in relations

    postgres = next(p for p in document["packages"] if p["name"] == "postgresql")
    assert postgres["versionInfo"] == "18.0"
    assert PG_DIGEST in postgres["comment"] and record.postgres is not None
    assert record.postgres.target in postgres["comment"]
    assert (postgres["SPDXID"], "BUILD_DEPENDENCY_OF", "SPDXRef-Image") in relations
    assert (postgres["SPDXID"], "RUNTIME_DEPENDENCY_OF", "SPDXRef-Image") in relations
    for pkg in record.toolchain:
        assert (_deb_id(document, pkg), "BUILD_DEPENDENCY_OF", "SPDXRef-Image") in relations
    assert set(packages) >= {"SPDXRef-Image", source["SPDXID"], postgres["SPDXID"]}


def test_debian_source_location_goes_to_source_info(tmp_path: Path) -> None:
    source = _source("pgaudit", "18.0", "debian:pgaudit-18=18.0-1/pgaudit-18_18.0.orig.tar.gz",
                     "PostgreSQL")
    document = spdx_document(_subject(), _ext_record(sources=(source,)), [], tool=TOOL)
    _validate(tmp_path, spdx_bytes(document))
    package = next(p for p in document["packages"] if p.get("primaryPackagePurpose") == "SOURCE")
    assert package["downloadLocation"] == "NOASSERTION"
    assert source.download_location in package["sourceInfo"]


def test_validation_catches_what_the_generator_avoids(tmp_path: Path) -> None:
    """Guard the helper: spdx-tools does flag the mistakes the generator is written to avoid."""
    document = spdx_document(_subject(), _ext_record(), [], tool=TOOL)
    source = next(p for p in document["packages"] if p.get("primaryPackagePurpose") == "SOURCE")
    source["downloadLocation"] = "debian:pgaudit-18=18.0-1/pgaudit-18_18.0.orig.tar.gz"
    source["SPDXID"] = "SPDXRef-Source-libstdc++6"
    with pytest.raises(AssertionError, match="download_location") as failure:
        _validate(tmp_path, spdx_bytes(document))
    assert "spdx_id must only contain" in str(failure.value)
