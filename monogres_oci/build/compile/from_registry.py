"""A Postgres build taken from a registry instead of compiled: the registry as the build cache.

A machine with an empty cache that builds extensions needs the Postgres build they compile
against. When a registry holds it from the same inputs (its platform manifests record the
target's input digest), it is put together from what was published:

* ``install/``: the postgresql-dist image's layer (the install tree);
* ``runtime/``: the runnable postgresql image's runtime-overlay layer (the one between the base
  image's layers and the install tree), which says which libraries an extension never bundles;
* ``meta/``: the build-record files the postgresql-dist provenance carries as byproducts.

Both images' signatures and attestations are verified with the given key first, and every layer
is checked against its digest and diff_id as it is extracted. The result lands in the cache
directory of the target's key with the marker of a finished compile, so what follows (packaging,
extension builds) cannot tell it from a local compile: packaging the same trees gives the same
layers, and the same extension images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from monogres_oci.attest.provenance import PREDICATE_TYPE as SLSA_PREDICATE
from monogres_oci.attest.provenance import byproduct_files
from monogres_oci.attest.sign import PublicKey
from monogres_oci.build.compile.engine import is_done, key_lock, new_staging, swap_in
from monogres_oci.build.compile.postgres import RECORD_FILES, PostgresBuildOutput
from monogres_oci.consume.pull import PulledImage, resolve
from monogres_oci.consume.verify import verified_statements
from monogres_oci.errors import VerifyError
from monogres_oci.oci.extract import extract_layer
from monogres_oci.oci.model import Platform
from monogres_oci.oci.reference import Reference
from monogres_oci.oci.registry import RegistryClient
from monogres_oci.package.images import INPUT_DIGEST
from monogres_oci.package.tags import postgres_tags
from monogres_oci.plan.targets import PostgresTarget


@dataclass(frozen=True)
class RegistrySource:
    """Where published Postgres builds may be taken from, and the key they must be signed with."""

    client: RegistryClient
    namespace: str
    key: PublicKey

    def repository(self, name: str) -> str:
        return f"{self.namespace}/{name}" if self.namespace else name


def take_postgres(source: RegistrySource, pg: PostgresTarget, out_dir: Path,
                  progress: Callable[[str], None]) -> PostgresBuildOutput | None:
    """The Postgres build of ``pg`` from the registry, in ``out_dir``; None when the registry
    does not hold it from the same inputs. A published build that does not verify is an error."""
    dist = _published(source, pg, runnable=False)
    runnable = _published(source, pg, runnable=True)
    if dist is None or runnable is None:
        return None
    where = f"{source.client.host}/{dist.reference.repository}@{dist.manifest_digest}"
    progress(f"{pg.name}: taking the Postgres build from {where}")
    provenance = verified_statements(source.client, dist, source.key)[SLSA_PREDICATE]
    verified_statements(source.client, runnable, source.key)
    files = byproduct_files(provenance.get("predicate", {}))
    missing = [name for name in ("toolchain-packages.tsv", "compiler.txt")
               if f"meta/{name}" not in files]
    if missing:
        raise VerifyError(f"{where}: its provenance carries no {', '.join(missing)} (published "
                          "by an older monogres-oci?): compile Postgres instead (build without "
                          "--registry-key)")
    # The runtime overlay is the runnable image's layer before the install tree's.
    if len(runnable.manifest.layers) < 2 or \
            runnable.manifest.layers[-1].digest != dist.manifest.layers[0].digest:
        raise VerifyError(f"{runnable.reference}: its last layer is not the install tree of "
                          f"{where}: not one build")
    out = PostgresBuildOutput(install_root=out_dir / "install", runtime_root=out_dir / "runtime",
                              meta_dir=out_dir / "meta", pg_major=pg.release.major)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with key_lock(out_dir, pg.key, pg.name, progress) as needed:
        if not needed:
            return out
        staging = new_staging(out_dir)
        _extract(source.client, dist, 0, staging / "install", progress)
        # The overlay is part of a root file system: its absolute symlinks name paths in it.
        _extract(source.client, runnable, len(runnable.manifest.layers) - 2,
                 staging / "runtime", progress, rooted=True)
        (staging / "meta").mkdir()
        for name in RECORD_FILES:
            if f"meta/{name}" in files:
                (staging / "meta" / name).write_bytes(files[f"meta/{name}"])
        swap_in(staging, out_dir, {
            "cache_key": pg.key, "target": pg.name, "from": where,
            "runnable": f"{runnable.reference.repository}@{runnable.manifest_digest}"})
    if not is_done(out_dir, pg.key):
        raise VerifyError(f"{out_dir}: not complete after taking {where}")
    progress(f"{pg.name}: taken from the registry, signatures and digests verified; "
             "not compiled")
    return out


def _published(source: RegistrySource, pg: PostgresTarget,
               runnable: bool) -> PulledImage | None:
    """The platform image published under the target's rolling tag, if it has the target's input
    digest."""
    tags = postgres_tags(pg, 0, runnable=runnable)  # rolling tags do not name the epoch
    repo = source.repository(tags.repository)
    if source.client.head_manifest(repo, tags.rolling[0]) is None:
        return None
    ref = Reference(source.client.host, repo, tags.rolling[0])
    try:
        image = resolve(source.client, ref, Platform(architecture=pg.arch, os="linux"))
    except VerifyError:
        return None  # published, but not for this architecture
    if image.manifest.annotations.get(INPUT_DIGEST) != f"sha256:{pg.key}":
        return None
    return image


def _extract(client: RegistryClient, image: PulledImage, index: int, dest: Path,
             progress: Callable[[str], None], rooted: bool = False) -> None:
    layer, diff_id = image.manifest.layers[index], image.config.diff_ids[index]
    progress(f"pulling {image.reference.repository} layer {layer.digest[:19]} "
             f"({layer.size / 1e6:.1f} MB)")
    with client.open_blob(image.reference.repository, layer.digest, layer.size) as blob:
        extract_layer(cast(BinaryIO, blob), dest, digest=layer.digest, size=layer.size,
                      diff_id=diff_id, rooted=rooted)
