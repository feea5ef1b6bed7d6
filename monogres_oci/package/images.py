"""The package stage: build outputs become deterministic OCI images in a layout, in pure Python.

Per target and platform it writes one image manifest; ``finish`` then groups the platforms of an
artifact into one multi-arch index and names it with every tag. Three kinds of artifact:

* extension image: one layer in CloudNativePG's image-volume layout: ``lib/``, ``share/``,
  ``licenses/<name>/``; nothing else (headers and binaries are dropped);
* ``postgresql-dist``: the Postgres install tree (``usr/lib/postgresql/<major>``) as a scratch
  artifact for bare metal;
* ``postgresql``: the runnable image = the base image's layers + a runtime layer (the Debian
  libraries Postgres links against, the postgres user with UID/GID 26) + the very same Postgres
  layer blob as ``postgresql-dist``.

Every layer carries the annotations that make ``oras pull -o DIR`` unpack it at DIR's root.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monogres_oci.attest.attach import Attachment
from monogres_oci.attest.buildinfo import BuildRecord
from monogres_oci.attest.image import attest_image
from monogres_oci.build.compile import PostgresBuildOutput
from monogres_oci.catalog import Catalog
from monogres_oci.errors import BuildError
from monogres_oci.oci.digest import sha256_digest
from monogres_oci.oci.layer import LayerEntry, LayerInfo, Override, tree_entries, write_layer
from monogres_oci.oci.layout import Layout
from monogres_oci.oci.model import Descriptor, ImageConfig, Index, Manifest, Platform
from monogres_oci.package.cache import Packaged, PackagedStore, packaged_key
from monogres_oci.package.image_volume import StagedExtension
from monogres_oci.package.labels import extension_labels, postgres_labels, rfc3339
from monogres_oci.package.tags import Tags, extension_tags, postgres_tags
from monogres_oci.plan.targets import ExtensionTarget, PostgresTarget

POSTGRES_UID = 26


@dataclass(frozen=True)
class BaseImage:
    """The platform image of a base, with its layers already copied into the layout."""

    reference: str
    config: ImageConfig
    layers: tuple[Descriptor, ...]


BaseResolver = Callable[[str, Platform], BaseImage]


@dataclass(frozen=True)
class PlatformImage:
    """One platform's manifest of an artifact, with the labels it carries."""

    descriptor: Descriptor
    labels: dict[str, str]


@dataclass
class _Group:
    tags: Tags
    images: list[PlatformImage] = field(default_factory=list)
    withdrawn: bool = False  # failed the gate on some platform: never tagged


class Packager:
    """Writes images into a layout as targets finish; ``finish`` writes indexes and tags."""

    def __init__(self, catalog: Catalog, layout: Layout, resolve_base: BaseResolver,
                 progress: Callable[[str], None] = lambda _: None,
                 store: PackagedStore | None = None) -> None:
        self.catalog = catalog
        self.layout = layout
        self.resolve_base = resolve_base
        self.progress = progress
        self.store = store  # packaged results to reuse and keep; None: package everything
        self._groups: dict[tuple[str, str], _Group] = {}
        self._pg_image_tags: dict[str, Tags] = {}

    # --- layers -----------------------------------------------------------------------------

    def _layer(self, entries: list[LayerEntry], epoch: int,
               overrides: dict[str, Override] | None = None) -> Descriptor:
        _, _, info = self.layout.add_streamed(
            lambda out: write_layer(entries, out, epoch=epoch, overrides=overrides))
        assert isinstance(info, LayerInfo)
        return info.descriptor(info.oras_annotations())

    def _image(self, platform: Platform, layers: list[Descriptor], diff_ids: list[str],
               labels: dict[str, str], epoch: int, *, env: tuple[str, ...] = (),
               user: str = "") -> Descriptor:
        config = ImageConfig(
            architecture=platform.architecture, os=platform.os, variant=platform.variant,
            created=rfc3339(epoch), labels=labels, env=env, user=user,
            diff_ids=tuple(diff_ids),
        )
        manifest = Manifest(config=self.layout.add_config(config), layers=tuple(layers),
                            annotations=labels)
        return self.layout.add_manifest(manifest).with_platform(platform)

    def _add(self, tags: Tags, image: PlatformImage) -> None:
        group = self._groups.setdefault((tags.repository, tags.immutable), _Group(tags))
        if not group.withdrawn:
            group.images.append(image)

    # --- artifacts --------------------------------------------------------------------------

    def add_postgres(self, pg: PostgresTarget, out: PostgresBuildOutput,
                     record: BuildRecord) -> Descriptor:
        """Package the install tree twice: scratch artifact and runnable image, one layer blob.
        Return the runnable image's manifest (what the gate runs extensions in)."""
        epoch = record.source_date_epoch
        key = self._key(pg.key, epoch, (pg.release, pg.option_set, pg.distro), pg.base_image)
        if (packaged := self._reuse(key)) is not None:
            (dist, dist_labels), (runnable, runnable_labels) = packaged.images
            self._add(postgres_tags(pg, epoch, runnable=False), PlatformImage(dist, dist_labels))
            image_tags = postgres_tags(pg, epoch, runnable=True)
            self._add(image_tags, PlatformImage(runnable, runnable_labels))
            self._pg_image_tags[pg.key] = image_tags
            self.progress(f"packaged {pg.name}: reused, packaged before from the same inputs")
            return runnable
        platform = Platform(architecture=pg.arch, os="linux")
        prefix = f"usr/lib/postgresql/{pg.release.major}"
        tree = out.install_root / prefix
        if not (tree / "bin" / "postgres").is_file():
            raise BuildError(f"{pg.name}: build output has no {prefix}/bin/postgres")
        entry = {"postgres": pg.release, "option_set": pg.option_set, "distro": pg.distro}
        pg_entries = tree_entries(tree, prefix)
        pg_layer = self._layer(pg_entries, epoch)
        pg_diff_id = pg_layer.annotations["io.deis.oras.content.digest"]

        dist_tags = postgres_tags(pg, epoch, runnable=False)
        labels = postgres_labels(self.catalog, pg, epoch, runnable=False)
        desc = self._image(platform, [pg_layer], [pg_diff_id], labels, epoch)
        attached = list(attest_image(self.layout, desc, labels, record, pg_entries, entry,
                                     self.catalog.publisher, byproducts=out.record_files()))
        self._add(dist_tags, PlatformImage(desc, labels))
        images = [(desc, labels)]

        base = self.resolve_base(pg.base_image, platform)
        runtime_entries = _runtime_entries(out.runtime_root)
        runtime_layer = self._layer(runtime_entries, epoch, _RUNTIME_OWNERS)
        runtime_diff_id = runtime_layer.annotations["io.deis.oras.content.digest"]
        image_tags = postgres_tags(pg, epoch, runnable=True)
        labels = postgres_labels(self.catalog, pg, epoch, runnable=True)
        env = _runnable_env(base.config.env, f"/{prefix}/bin")
        desc = self._image(
            platform,
            [*base.layers, runtime_layer, pg_layer],
            [*base.config.diff_ids, runtime_diff_id, pg_diff_id],
            labels, epoch, env=env, user=str(POSTGRES_UID),
        )
        attached += attest_image(self.layout, desc, labels, record,
                                 [*runtime_entries, *pg_entries], entry, self.catalog.publisher,
                                 bundled=True)
        self._add(image_tags, PlatformImage(desc, labels))
        self._pg_image_tags[pg.key] = image_tags
        self._keep(key, [*images, (desc, labels)], attached)
        self.progress(f"packaged {pg.name}: postgresql-dist and postgresql "
                      f"(layer {pg_layer.digest[:19]}, {pg_layer.size / 1e6:.1f} MB)")
        return desc

    def _extension_key(self, ext: ExtensionTarget, epoch: int) -> str:
        return self._key(ext.key, epoch, (ext.extension, ext.version), ext.postgres.base_image)

    def packaged_extension(self, ext: ExtensionTarget, epoch: int) -> Descriptor | None:
        """The extension's image, taken from what was packaged before from the same inputs;
        None when it must be packaged (``add_extension``)."""
        packaged = self._reuse(self._extension_key(ext, epoch))
        if packaged is None:
            return None
        ((desc, labels),) = packaged.images
        self._add(extension_tags(ext, epoch), PlatformImage(desc, labels))
        self.progress(f"packaged {ext.name}: reused, packaged before from the same inputs")
        return desc

    def add_extension(self, ext: ExtensionTarget, staged: StagedExtension,
                      record: BuildRecord) -> Descriptor:
        """Package an extension in CloudNativePG's image-volume layout; return its manifest."""
        epoch = record.source_date_epoch
        pg = ext.postgres
        platform = Platform(architecture=pg.arch, os="linux")
        if staged.dropped:
            self.progress(f"{ext.name}: not packaged (outside lib/, share/ and bin/): "
                          f"{', '.join(staged.dropped)}")
        for rewrite in staged.relocated.rewrites:
            self.progress(f"{ext.name}: {rewrite.path}:{rewrite.line}: {rewrite.before} -> "
                          f"{rewrite.after}")
        entries = list(staged.entries)
        layer = self._layer(entries, epoch)
        pg_tags = self._pg_image_tags.get(pg.key) or postgres_tags(pg, epoch, runnable=True)
        labels = extension_labels(self.catalog, ext, epoch,
                                  f"{pg_tags.repository}:{pg_tags.rolling[0]}", staged.contract,
                                  staged.license)
        desc = self._image(platform, [layer],
                           [layer.annotations["io.deis.oras.content.digest"]], labels, epoch)
        entry = {"extension": {k: v for k, v in dataclasses.asdict(ext.extension).items() if k != "versions"},
                 "version": ext.version, "postgres": pg.release, "option_set": pg.option_set,
                 "distro": pg.distro}
        attached = attest_image(self.layout, desc, labels, record, entries, entry,
                                self.catalog.publisher)
        self._add(extension_tags(ext, epoch), PlatformImage(desc, labels))
        self._keep(self._extension_key(ext, epoch), [(desc, labels)], attached)
        bundled = sum(1 for e in entries if e.path.startswith("system/") and e.source)
        self.progress(f"packaged {ext.name} ({layer.size / 1e3:.0f} kB"
                      + (f", {bundled} bundled libraries" if bundled else "") + ")")
        return desc

    # --- packaged before ----------------------------------------------------------------------

    def _key(self, target_key: str, epoch: int, inputs: object, base_image: str) -> str:
        # Labels and attestations also carry catalog text (descriptions, licences, the
        # publisher) that the target's input digest leaves out: they are in the key too. So is
        # the base image's whole reference: the input digest names only its content, but the
        # base.name label and the SBOM say where it was taken from.
        return packaged_key(target_key, epoch,
                            repr((inputs, base_image, self.catalog.publisher)))

    def _reuse(self, key: str) -> Packaged | None:
        if self.store is None or (packaged := self.store.get(key)) is None:
            return None
        self.store.restore(packaged, self.layout)
        return packaged

    def _keep(self, key: str, images: Sequence[tuple[Descriptor, dict[str, str]]],
              attached: Sequence[Attachment]) -> None:
        if self.store is not None:
            self.store.put(key, Packaged(tuple(images), tuple(a.descriptor for a in attached)),
                           self.layout)

    def withdraw(self, ext: ExtensionTarget) -> None:
        """Leave an artifact out of the tags (one of its images failed the gate), every platform
        of it: a tag promises all of them. The blobs stay in the layout, named by no tag, so
        nothing publishes them."""
        epoch_free = extension_tags(ext, 0)
        for group in self._groups.values():
            if (group.tags.repository, group.tags.rolling) == (epoch_free.repository,
                                                                 epoch_free.rolling):
                group.images.clear()
                group.withdrawn = True

    # --- indexes and tags -------------------------------------------------------------------

    def finish(self) -> list[str]:
        """Write one index per artifact over its platforms, then every tag; return ref names."""
        names: list[str] = []
        for (repository, _), group in sorted(self._groups.items()):
            if group.withdrawn:
                # A tag an earlier build of this layout wrote must not stay on older content.
                for tag in group.tags.all:
                    if f"{repository}:{tag}" in self.layout.refs():
                        self.layout.remove_ref(f"{repository}:{tag}")
            if not group.images:
                continue
            index = assemble_index([(i.descriptor, i.labels) for i in group.images])
            desc = self.layout.add_manifest(index)
            for tag in group.tags.all:
                name = f"{repository}:{tag}"
                self.layout.set_ref(name, desc)
                names.append(name)
        return names


INPUT_DIGEST = "org.monogres.input.digest"


def assemble_index(images: Sequence[tuple[Descriptor, Mapping[str, str]]]) -> Index:
    """The index of one artifact over its platform images (descriptor with platform, labels).

    The same images give the same bytes whether they were packaged in one invocation or built on
    separate machines and merged later: platforms sorted, annotations those of the first
    platform's image, but for the input digest, which stands for all of them.
    """
    ordered = sorted(images, key=lambda i: i[0].platform.sort_key() if i[0].platform else ("",))
    annotations = dict(ordered[0][1])
    inputs = sorted(labels[INPUT_DIGEST].removeprefix("sha256:") for _, labels in ordered)
    annotations[INPUT_DIGEST] = sha256_digest(",".join(inputs).encode())
    return Index(manifests=tuple(d for d, _ in ordered), annotations=annotations)


# Owned by the postgres user in the runnable image, as Debian's postgresql-common sets them up.
# The socket directory is named through /run, not /var/run: a var/run directory entry in a layer
# would replace the base's /var/run -> /run symlink.
_RUNTIME_OWNERS = {
    "var/lib/postgresql": Override(uid=POSTGRES_UID, gid=POSTGRES_UID, mode=0o755),
    "run/postgresql": Override(uid=POSTGRES_UID, gid=POSTGRES_UID, mode=0o2775),
}


def _runtime_entries(runtime_root: Path) -> list[LayerEntry]:
    entries = tree_entries(runtime_root)
    present = {e.path for e in entries}
    entries += [LayerEntry(p, None) for p in _RUNTIME_OWNERS if p not in present]
    return entries


def _runnable_env(base_env: tuple[str, ...], bindir: str) -> tuple[str, ...]:
    env = dict(item.split("=", 1) for item in base_env if "=" in item)
    path = env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env["PATH"] = f"{bindir}:{path}"
    env.setdefault("LANG", "C.UTF-8")
    env["PGDATA"] = "/var/lib/postgresql/data"
    return tuple(f"{k}={v}" for k, v in sorted(env.items()))
