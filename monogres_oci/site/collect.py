"""What the catalog site shows, read from an OCI layout: every named image, its platforms, and
what is attached to each (SBOM, provenance, the gate's test result).

Only the layout is read (no registry, no build cache), so a site made from a layout describes
exactly the bytes that are, or are about to be, published.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from monogres_oci.attest.attach import Attachment, attachments_by_subject
from monogres_oci.attest.sign import BUNDLE_MEDIA_TYPE
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import ANNOTATION_REF_NAME, INDEX_TYPES, Descriptor
from monogres_oci.package.contract import RuntimeContract

SLSA = "https://slsa.dev/provenance/v1"
TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"


@dataclass(frozen=True)
class Bundled:
    """A Debian package whose files the image ships (its ``system/`` or data directories)."""

    name: str
    version: str
    license: str


@dataclass(frozen=True)
class Tests:
    """The gate's result for one platform image."""

    verdict: str  # PASSED, WARNED, FAILED, SKIPPED...
    passed: int
    total: int
    skipped: str  # why the suite did not run, when it did not
    created: tuple[str, ...]  # SQL names CREATE EXTENSION made


@dataclass(frozen=True)
class PlatformImage:
    """One platform's manifest of an artifact, with what is attached to it."""

    arch: str
    digest: str
    labels: Mapping[str, str] = field(repr=False)
    bundled: tuple[Bundled, ...] = ()
    system_files: tuple[str, ...] = ()
    toolchain_packages: int = 0
    sbom_packages: int = 0
    builder: str = ""
    dependencies: int = 0
    tests: Tests | None = None
    signed: bool = False


@dataclass(frozen=True)
class Artifact:
    """One image index of the layout and every tag that names it."""

    repository: str
    tags: tuple[str, ...]
    digest: str
    platforms: tuple[PlatformImage, ...]

    @property
    def labels(self) -> Mapping[str, str]:
        return self.platforms[0].labels

    def label(self, key: str) -> str:
        return self.labels.get(key, "")

    @property
    def kind(self) -> str:
        return self.label("org.monogres.artifact")

    @property
    def name(self) -> str:
        return self.label("org.opencontainers.image.title") or self.repository

    @cached_property  # read on every page that mounts it
    def contract(self) -> RuntimeContract | None:
        if self.kind != "extension":
            return None
        return RuntimeContract.from_labels(self.labels)

    @property
    def rolling_tag(self) -> str:
        """The tag a user would write: the shortest."""
        return min(self.tags, key=lambda t: (len(t), t))


def collect(layout: Layout) -> list[Artifact]:
    """Every named image index of the layout (postgres and extensions), sorted by name."""
    attached = attachments_by_subject(layout)
    tags: dict[str, list[str]] = {}
    entries: dict[str, Descriptor] = {}
    for desc in layout.index().manifests:
        name = desc.annotations.get(ANNOTATION_REF_NAME)
        if name and desc.media_type in INDEX_TYPES:
            tags.setdefault(desc.digest, []).append(name)
            entries[desc.digest] = desc
    artifacts = []
    for digest, names in tags.items():
        repository = names[0].rpartition(":")[0]
        index = layout.read_index(digest)
        platforms = tuple(_platform(layout, d, attached.get(d.digest, []))
                          for d in index.manifests if d.platform is not None)
        if platforms:
            artifacts.append(Artifact(repository, tuple(sorted(n.rpartition(":")[2]
                                                               for n in names)),
                                      digest, platforms))
    return sorted(artifacts, key=lambda a: (a.name, a.label("org.monogres.postgres.version"),
                                            a.label("org.monogres.distro"), a.rolling_tag))


def _platform(layout: Layout, desc: Descriptor, attached: list[Attachment]) -> PlatformImage:
    assert desc.platform is not None
    labels = dict(layout.read_manifest(desc.digest).annotations)
    found: dict[str, Any] = {"arch": desc.platform.architecture, "digest": desc.digest,
                             "labels": labels}
    for item in attached:
        if item.descriptor.artifact_type == BUNDLE_MEDIA_TYPE:
            found["signed"] = True
            continue
        doc = json.loads(layout.read_blob(item.payload.digest))
        if "spdxVersion" in doc:
            found.update(_sbom(doc))
        elif doc.get("predicateType") == SLSA:
            run = doc["predicate"].get("runDetails", {})
            found["builder"] = run.get("builder", {}).get("id", "")
            found["dependencies"] = len(doc["predicate"].get("buildDefinition", {})
                                        .get("resolvedDependencies", []))
        elif doc.get("predicateType") == TEST_RESULT:
            found["tests"] = _tests(doc["predicate"])
    return PlatformImage(**found)


def _sbom(doc: dict[str, Any]) -> dict[str, Any]:
    packages = {p["SPDXID"]: p for p in doc.get("packages", [])}
    contained, toolchain = [], 0
    for rel in doc.get("relationships", []):
        if rel["relationshipType"] == "CONTAINS" and rel["relatedSpdxElement"].startswith(
                "SPDXRef-deb-"):
            contained.append(packages[rel["relatedSpdxElement"]])
        elif rel["relationshipType"] == "BUILD_DEPENDENCY_OF" and rel["spdxElementId"].startswith(
                "SPDXRef-deb-"):
            toolchain += 1
    bundled = tuple(sorted({Bundled(p["name"], p.get("versionInfo", ""),
                                    p.get("licenseDeclared", "NOASSERTION"))
                            for p in contained}, key=lambda b: b.name))
    system = tuple(sorted(f["fileName"].removeprefix("./") for f in doc.get("files", [])
                          if f["fileName"].startswith("./system/")))
    return {"bundled": bundled, "system_files": system, "toolchain_packages": toolchain,
            "sbom_packages": len(packages)}


def _tests(predicate: dict[str, Any]) -> Tests:
    own = predicate.get("monogres", {})
    suite = own.get("suite") or {}
    return Tests(verdict=str(predicate.get("result", "")),
                 passed=int(suite.get("passed", 0)),
                 total=int(suite.get("passed", 0)) + int(suite.get("failed", 0))
                 + int(suite.get("known_failures", 0)),
                 skipped=str(suite.get("skipped") or own.get("skipped") or ""),
                 created=tuple(c["sql_name"] for c in own.get("create_extension", [])
                               if c.get("ok")))


def by_extension(artifacts: list[Artifact]) -> Iterator[tuple[str, list[Artifact]]]:
    """The extension artifacts grouped by extension name, in name order."""
    groups: dict[str, list[Artifact]] = {}
    for a in artifacts:
        if a.kind == "extension":
            groups.setdefault(a.name, []).append(a)
    yield from sorted(groups.items())
