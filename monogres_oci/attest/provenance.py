"""SLSA provenance v1 for one platform image, as an in-toto Statement v1.

The build type is this project's own, documented in README.md ("Build type"): external
parameters are the catalog entry and the target; resolved dependencies are the pinned sources,
the base image, the build recipe, the Postgres build an extension was compiled against and every
Debian package installed in the build container. Nothing in it names a time or a machine (no
``startedOn``), so packaging the same build outputs twice gives the same bytes; the builder id
comes from ``MONOGRES_BUILDER_ID`` (a CI workflow sets its own URI), or names a local build.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
from collections.abc import Sequence
from typing import Any

from monogres_oci import __version__
from monogres_oci.attest.buildinfo import BuildRecord
from monogres_oci.attest.sign import digest_set, statement
from monogres_oci.errors import VerifyError

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/monogres/monogres-oci/blob/main/README.md#build-type-v1"
LOCAL_BUILDER = "https://github.com/monogres/monogres-oci/blob/main/README.md#local-builder"
BUILDER_ENV = "MONOGRES_BUILDER_ID"
MEDIA_TYPE = "application/vnd.in-toto+json"


def _entry(value: Any) -> Any:
    """A catalog dataclass as plain JSON (tuples as lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _dependencies(record: BuildRecord) -> list[dict[str, Any]]:
    deps: list[dict[str, Any]] = []
    for source in record.sources:
        deps.append({"name": source.file, "uri": source.download_location,
                     "digest": {"sha256": source.sha256}})
    name, _, digest = record.base_image.partition("@")
    deps.append({"name": "base-image", "uri": f"oci://{name}", "digest": digest_set(digest)})
    deps.append({"name": record.recipe, "digest": digest_set(record.recipe_digest)})
    if record.postgres is not None:
        deps.append({"name": record.postgres.target,
                     "annotations": {"input_digest": record.postgres.input_digest}})
    for target, input_digest in record.built_against:
        deps.append({"name": target, "annotations": {"input_digest": input_digest}})
    for pkg in record.toolchain:
        deps.append({"name": pkg.name, "uri": pkg.purl(record.suite)})
    return deps


def _packaging(record: BuildRecord) -> dict[str, Any]:
    """What packaging did to an extension's build output: the libraries it bundled, the RPATHs
    it set, the paths it rewrote to the mount point and the files it shipped as built."""
    if record.kind != "extension":
        return {}
    return {
        "bundledPackages": [{"name": b.name, "uri": b.deb.purl(record.suite),
                             "digest": {"sha256": b.sha256}} for b in record.bundled],
        "rpaths": dict(record.rpaths),
        "relocations": [dataclasses.asdict(r) for r in record.relocations],
        "keptPaths": list(record.kept_paths),
    }


def byproduct(name: str, content: bytes) -> dict[str, Any]:
    """A file the build made, carried whole in the provenance (SLSA ResourceDescriptor)."""
    return {"name": name, "digest": {"sha256": hashlib.sha256(content).hexdigest()},
            "content": base64.b64encode(content).decode(), "mediaType": "text/plain"}


def byproduct_files(predicate: dict[str, Any]) -> dict[str, bytes]:
    """The files a provenance carries as byproducts, each checked against its digest."""
    files = {}
    for item in predicate.get("runDetails", {}).get("byproducts", []):
        try:
            content = base64.b64decode(item.get("content", ""), validate=True)
        except binascii.Error as exc:
            raise VerifyError(f"provenance byproduct {item.get('name')!r}: {exc}") from None
        if hashlib.sha256(content).hexdigest() != item.get("digest", {}).get("sha256"):
            raise VerifyError(f"provenance byproduct {item.get('name')!r}: content and digest differ")
        files[str(item["name"])] = content
    return files


def provenance_predicate(record: BuildRecord, catalog_entry: dict[str, Any],
                         byproducts: Sequence[tuple[str, bytes]] = ()) -> dict[str, Any]:
    """The SLSA v1 predicate for a target's build record and its catalog entry; ``byproducts``
    (name, content) are files of the build carried whole (a Postgres build's toolchain record,
    which an extension build that takes the Postgres build from a registry needs)."""
    run_details: dict[str, Any] = {
        "builder": {
            "id": os.environ.get(BUILDER_ENV) or LOCAL_BUILDER,
            "version": {"monogres-oci": __version__},
        },
        "metadata": {"invocationId": record.input_digest},
    }
    if byproducts:
        run_details["byproducts"] = [byproduct(name, content) for name, content in byproducts]
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "catalog": {key: _entry(value) for key, value in sorted(catalog_entry.items())},
                "target": {"name": record.target, "kind": record.kind,
                           "platform": record.platform, "distro": record.distro},
            },
            "internalParameters": {
                "buildArgs": dict(record.build_args),
                "sourceDateEpoch": record.source_date_epoch,
                "compilers": list(record.compilers),
                **_packaging(record),
            },
            "resolvedDependencies": _dependencies(record),
        },
        "runDetails": run_details,
    }


def provenance_statement(subject_name: str, manifest_digest: str, record: BuildRecord,
                         catalog_entry: dict[str, Any],
                         byproducts: Sequence[tuple[str, bytes]] = ()) -> dict[str, Any]:
    """The in-toto Statement v1 whose subject is one platform manifest."""
    return statement(subject_name, manifest_digest, PREDICATE_TYPE,
                     provenance_predicate(record, catalog_entry, byproducts))
