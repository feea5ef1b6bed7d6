"""The SPDX 2.3 SBOM of one platform image: its files, the sources it was built from, the packages it used.

The document describes one package, the image (``SPDXRef-Image``), and relates everything else to it:

* every regular file of the image's own layer(s) is a file the image ``hasFiles`` (so its package
  verification code can be checked), with SHA1 and SHA256 checksums;
* the pinned sources: image ``GENERATED_FROM`` source, with the tarball's SHA256 and declared license;
* for an extension, the Postgres build it was compiled against (``BUILD_DEPENDENCY_OF`` and
  ``RUNTIME_DEPENDENCY_OF`` the image);
* the base image and every Debian package installed in the build container, ``BUILD_DEPENDENCY_OF``
  the image;
* for a runnable image (``bundled``), the base image and the Debian packages it carries, which
  the image ``CONTAINS``.

Nothing in it comes from the clock or the machine: the creation time is SOURCE_DATE_EPOCH's, the
namespace is derived from the manifest digest, IDs are assigned in sorted order and the bytes are
canonical JSON, so the same inputs always give the same document.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from monogres_oci.attest.buildinfo import BuildRecord, DebPackage
from monogres_oci.oci.digest import CHUNK_SIZE, encoded
from monogres_oci.oci.layer import LayerEntry, archive_path

SPDX_MEDIA_TYPE = "application/spdx+json"
# The licence reference an image's annotation uses for its bundled packages when their
# expression is too long for an annotation (see image_volume).
BUNDLED_LICENSE_REF = "LicenseRef-bundled-debian-packages"
SPDX_VERSION = "SPDX-2.3"
NOASSERTION = "NOASSERTION"
DOCUMENT_ID = "SPDXRef-DOCUMENT"
IMAGE_ID = "SPDXRef-Image"

# Characters an SPDX ID may not hold (the spec allows letters, digits, "." and "-").
_INVALID_ID_CHARS = re.compile(r"[^A-Za-z0-9.-]+")
_LICENSE_REF = re.compile(r"\bLicenseRef-[A-Za-z0-9.-]+")
# A download location SPDX 2.3 accepts: an http(s) URL whose host has a DNS name with a top-level
# domain (the spec's pattern rejects bare IP addresses). Anything else (debian:..., a URL on
# 127.0.0.1) goes to sourceInfo.
_HTTP_URL = re.compile(r"^https?://([^/@]+@)?[a-z0-9]+([.-][a-z0-9]+)*\.[a-z]{2,5}(:[0-9]{1,5})?(/.*)?$",
                       re.IGNORECASE)


@dataclass(frozen=True)
class FileRecord:
    """One regular file of a layer and its checksums (hex)."""

    path: str  # inside the layer, e.g. lib/pgaudit.so
    sha1: str
    sha256: str


@dataclass(frozen=True)
class ImageSubject:
    """The platform image an SBOM describes, as its labels and publisher name it."""

    name: str  # repository name: pgaudit, postgresql, postgresql-dist
    version: str  # the packaged software's version
    description: str
    manifest_digest: str  # sha256:<hex> of the platform image manifest
    platform: str  # linux/amd64
    license: str  # SPDX expression
    created: str  # RFC 3339 UTC, from SOURCE_DATE_EPOCH
    supplier: str  # publisher vendor
    homepage: str  # URL
    namespace_base: str  # URL the document namespace is built under


def _layer_key(path: str) -> tuple[str, ...]:
    # The layer's own order (component by component), so files read in the order the tar holds them.
    return tuple(path.split("/"))


def _hash_file(path: os.PathLike[str] | str) -> tuple[str, str]:
    sha1, sha256 = hashlib.sha1(), hashlib.sha256()
    with open(path, "rb") as content:
        while chunk := content.read(CHUNK_SIZE):
            sha1.update(chunk)
            sha256.update(chunk)
    return sha1.hexdigest(), sha256.hexdigest()


def layer_files(entries: Iterable[LayerEntry]) -> tuple[FileRecord, ...]:
    """Hash the regular files among ``entries``; directories and symlinks are not files in SPDX terms."""
    files: dict[str, FileRecord] = {}
    for entry in entries:
        if entry.source is None or not stat.S_ISREG(os.lstat(entry.source).st_mode):
            continue
        path = archive_path(entry.path)
        if path in files:
            raise ValueError(f"layer path {path!r} is listed twice")
        files[path] = FileRecord(path, *_hash_file(entry.source))
    return tuple(sorted(files.values(), key=lambda f: _layer_key(f.path)))


def verification_code(files: Iterable[FileRecord]) -> str:
    """The SPDX 2.3 package verification code: SHA1 of the sorted, concatenated file SHA1s."""
    return hashlib.sha1("".join(sorted(f.sha1 for f in files)).encode("ascii")).hexdigest()


class _Ids:
    """Hands out valid, unique SPDX IDs; deterministic as long as it is asked in a fixed order."""

    def __init__(self) -> None:
        self._used = {DOCUMENT_ID, IMAGE_ID}

    def new(self, *parts: str) -> str:
        base = "SPDXRef-" + "-".join(_INVALID_ID_CHARS.sub("-", part).strip("-") or "x" for part in parts)
        candidate, counter = base, 1
        while candidate in self._used:
            counter += 1
            candidate = f"{base}-{counter}"
        self._used.add(candidate)
        return candidate


def _purl_ref(purl: str) -> dict[str, str]:
    return {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}


def _oci_purl(name: str, digest: str | None, qualifiers: dict[str, str]) -> str:
    """A purl of type ``oci``; the name is the repository's last path segment, lowercased."""
    purl = f"pkg:oci/{quote(name.lower(), safe='')}"
    if digest:
        purl += "@" + quote(digest, safe="")
    query = "&".join(f"{key}={quote(value, safe='/')}" for key, value in sorted(qualifiers.items()) if value)
    return f"{purl}?{query}" if query else purl


def _arch(platform: str) -> str:
    parts = platform.split("/")
    return parts[1] if len(parts) > 1 else parts[0]


def _split_reference(reference: str) -> tuple[str, str, str]:
    """Split ``REPO[:TAG][@DIGEST]`` into repository, tag and digest (either may be empty)."""
    name, _, digest = reference.partition("@")
    repo, colon, tag = name.rpartition(":")
    if not colon or "/" in tag:  # no tag; the colon (if any) is a registry port
        repo, tag = name, ""
    return repo, tag, digest


def _unanalyzed(spdx_id: str, name: str, **fields: Any) -> dict[str, Any]:
    """A package whose files are not listed, with the fields SPDX 2.3 wants stated explicitly."""
    return {
        "SPDXID": spdx_id,
        "name": name,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        **fields,
    }


def _relationship(element: str, kind: str, related: str) -> dict[str, str]:
    return {"spdxElementId": element, "relationshipType": kind, "relatedSpdxElement": related}


def _image_package(subject: ImageSubject, files: Sequence[FileRecord],
                   file_ids: Sequence[str]) -> dict[str, Any]:
    purl = _oci_purl(subject.name, subject.manifest_digest, {"arch": _arch(subject.platform)})
    package: dict[str, Any] = {
        "SPDXID": IMAGE_ID,
        "name": subject.name,
        "versionInfo": subject.version,
        "description": subject.description,
        "supplier": f"Organization: {subject.supplier}",
        "homepage": subject.homepage,
        "downloadLocation": NOASSERTION,
        "primaryPackagePurpose": "CONTAINER",
        "builtDate": subject.created,
        "externalRefs": [_purl_ref(purl)],
        "licenseDeclared": subject.license or NOASSERTION,
        "licenseConcluded": NOASSERTION,
        "copyrightText": NOASSERTION,
        "filesAnalyzed": bool(files),
    }
    if files:
        package["hasFiles"] = list(file_ids)
        package["packageVerificationCode"] = {"packageVerificationCodeValue": verification_code(files)}
    return package


def _file(spdx_id: str, record: FileRecord) -> dict[str, Any]:
    return {
        "SPDXID": spdx_id,
        "fileName": f"./{record.path}",
        "checksums": [{"algorithm": "SHA1", "checksumValue": record.sha1},
                      {"algorithm": "SHA256", "checksumValue": record.sha256}],
        "licenseConcluded": NOASSERTION,
        "copyrightText": NOASSERTION,
    }


def _deb_packages(record: BuildRecord, bundled: bool) -> list[tuple[DebPackage, str, bool, bool]]:
    """Each distinct Debian package once: (package, purpose, bundled in the image, in the toolchain).

    A package both in the image and in the build container (libc6) is one SPDX package with two
    relationships rather than two packages with one ID each.
    """
    purposes: dict[DebPackage, str] = {}
    if bundled:
        # Runtime libraries were installed for Postgres; the rest is the base system.
        for pkg in record.base_packages:
            purposes[pkg] = "OPERATING-SYSTEM"
        for pkg in record.runtime_packages:
            purposes[pkg] = "LIBRARY"
    # An extension image's system/ libraries and share/ data, from these exact packages.
    for shipped in record.bundled:
        purposes[shipped.deb] = "LIBRARY"
    toolchain = set(record.toolchain)
    every = set(purposes) | toolchain
    return [(pkg, purposes.get(pkg, ""), pkg in purposes, pkg in toolchain)
            for pkg in sorted(every, key=lambda p: (p.name, p.arch, p.version))]


def _extracted_licenses(packages: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """Declare every ``LicenseRef-`` the expressions use, which SPDX requires of a document."""
    refs = sorted({ref for package in packages
                   for ref in _LICENSE_REF.findall(str(package.get("licenseDeclared", "")))})
    return [{"licenseId": ref, "name": ref, "extractedText": _extracted_text(ref)} for ref in refs]


def _extracted_text(ref: str) -> str:
    if ref == BUNDLED_LICENSE_REF:
        return ("The licences of the Debian packages this image bundles (system/, share/): each "
                "package's licenseDeclared in this document, and its copyright file under "
                "licenses/<package>/ in the image.")
    if ref.startswith("LicenseRef-deb-"):
        name = ref.removeprefix("LicenseRef-deb-")
        return (f"The licence stated in the Debian copyright file of {name}, which is not "
                f"machine-readable; the image holds it as licenses/{name}/copyright.")
    return f"{ref}: see the license files in the package's source distribution."


def spdx_document(subject: ImageSubject, record: BuildRecord, files: Sequence[FileRecord], *,
                  tool: str, bundled: bool = False) -> dict[str, Any]:
    """The SPDX 2.3 document (JSON form) describing ``subject``, built as ``record`` says.

    ``bundled`` marks a runnable image: it carries the base image and the record's runtime and base
    Debian packages, which become packages the image contains.
    """
    ids = _Ids()
    ordered = sorted(files, key=lambda f: _layer_key(f.path))
    file_ids = [f"SPDXRef-File-{index}" for index in range(len(ordered))]
    packages = [_image_package(subject, ordered, file_ids)]
    relationships = [_relationship(DOCUMENT_ID, "DESCRIBES", IMAGE_ID)]

    for source in record.sources:
        source_id = ids.new("Source", source.name)
        location = source.download_location
        fields: dict[str, Any] = {
            "versionInfo": source.version,
            "packageFileName": source.file,
            "primaryPackagePurpose": "SOURCE",
            "checksums": [{"algorithm": "SHA256", "checksumValue": source.sha256}],
            "licenseDeclared": source.license or NOASSERTION,
        }
        if _HTTP_URL.match(location):
            fields["downloadLocation"] = location
        else:
            # debian:PACKAGE=VERSION/FILE (or a URL on an IP address) is no location SPDX accepts;
            # keep it where people can read it.
            origin = ("the Debian archive" if location.startswith("debian:") else "")
            fields["sourceInfo"] = (f"fetched from {origin} as {location}" if origin
                                    else f"fetched from {location}")
        packages.append(_unanalyzed(source_id, source.name, **fields))
        relationships.append(_relationship(IMAGE_ID, "GENERATED_FROM", source_id))

    if record.postgres is not None:
        pg = record.postgres
        pg_id = ids.new("Postgres")
        fields = {
            "primaryPackagePurpose": "APPLICATION",
            "comment": (f"The Postgres build this extension was compiled against and runs in: "
                        f"target {pg.target}, input digest {pg.input_digest}."),
        }
        if pg.sources:
            fields["versionInfo"] = pg.sources[0].version
            fields["licenseDeclared"] = pg.sources[0].license or NOASSERTION
        packages.append(_unanalyzed(pg_id, "postgresql", **fields))
        relationships.append(_relationship(pg_id, "BUILD_DEPENDENCY_OF", IMAGE_ID))
        relationships.append(_relationship(pg_id, "RUNTIME_DEPENDENCY_OF", IMAGE_ID))

    if record.base_image:
        repo, tag, digest = _split_reference(record.base_image)
        name = repo.rsplit("/", 1)[-1]
        base_id = ids.new("BaseImage", name)
        purl = _oci_purl(name, digest, {"arch": _arch(record.platform), "repository_url": repo, "tag": tag})
        fields = {"primaryPackagePurpose": "CONTAINER", "externalRefs": [_purl_ref(purl)],
                  "comment": f"The base image {record.base_image}."}
        if digest or tag:
            fields["versionInfo"] = digest or tag
        packages.append(_unanalyzed(base_id, repo, **fields))
        # The build ran in it; a runnable image also carries its layers.
        relationships.append(_relationship(base_id, "BUILD_DEPENDENCY_OF", IMAGE_ID))
        if bundled:
            relationships.append(_relationship(IMAGE_ID, "CONTAINS", base_id))

    shipped = {b.deb: b for b in record.bundled}
    for pkg, purpose, contained, built_with in _deb_packages(record, bundled):
        pkg_id = ids.new("deb", pkg.name, pkg.arch)
        fields = {"versionInfo": pkg.version, "externalRefs": [_purl_ref(pkg.purl(record.suite))]}
        if purpose:
            fields["primaryPackagePurpose"] = purpose
        if pkg in shipped:
            # The .deb as the archive's signed index names it; its licence from its copyright
            # file, which the image carries under licenses/<package>/.
            fields["checksums"] = [{"algorithm": "SHA256", "checksumValue": shipped[pkg].sha256}]
            fields["licenseDeclared"] = shipped[pkg].license
            fields["packageFileName"] = f"{pkg.name}_{pkg.version.split(':')[-1]}_{pkg.arch}.deb"
        packages.append(_unanalyzed(pkg_id, pkg.name, **fields))
        if contained or pkg in shipped:
            relationships.append(_relationship(IMAGE_ID, "CONTAINS", pkg_id))
        if built_with:
            relationships.append(_relationship(pkg_id, "BUILD_DEPENDENCY_OF", IMAGE_ID))

    document: dict[str, Any] = {
        "spdxVersion": SPDX_VERSION,
        "dataLicense": "CC0-1.0",
        "SPDXID": DOCUMENT_ID,
        "name": f"{subject.name}-{subject.version}-{subject.platform.replace('/', '-')}",
        "documentNamespace": (f"{subject.namespace_base.rstrip('/')}/spdx/{quote(subject.name, safe='')}/"
                              f"{encoded(subject.manifest_digest)}"),
        "creationInfo": {
            "created": subject.created,
            "creators": [f"Tool: {tool}", f"Organization: {subject.supplier}"],
        },
        "packages": packages,
        "files": [_file(file_id, f) for file_id, f in zip(file_ids, ordered, strict=True)],
        "relationships": relationships,
    }
    extracted = _extracted_licenses(packages)
    if extracted:
        document["hasExtractedLicensingInfos"] = extracted
    return document


def spdx_bytes(document: dict[str, Any]) -> bytes:
    """The canonical JSON bytes of a document: sorted keys, no whitespace, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
