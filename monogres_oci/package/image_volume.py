"""What an extension image holds: its build output in CloudNativePG's image-volume layout.

The layer root holds ``lib/`` (shared objects, ``lib/bitcode/``), ``share/`` (``extension/``
and the catalog's data directories), ``bin/`` (client programs), ``system/`` (bundled shared
libraries), ``licenses/<name>/`` (the extension's own licence files) and
``licenses/<package>/copyright`` for every bundled Debian package. Nothing else: headers, man
pages and the like are left out and reported.

Staging also checks and relocates the files (``relocate``) and derives the runtime contract and
the licence expression from what the image holds, so that none of them can disagree with it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from monogres_oci.attest.buildinfo import BundledPackage
from monogres_oci.attest.deb_license import license_ids
from monogres_oci.attest.sbom import BUNDLED_LICENSE_REF
from monogres_oci.build.compile import ExtensionBuildOutput
from monogres_oci.catalog.model import Extension
from monogres_oci.errors import BuildError
from monogres_oci.oci.layer import LayerEntry, tree_entries
from monogres_oci.package.contract import MOUNT_ROOT, RuntimeContract
from monogres_oci.package.relocate import Relocated, kept_files, relocate

# Annotation values stay under 256 characters: past that, the bundled packages' licences are
# named by reference; the SBOM states each package's expression and licenses/ holds the texts.
MAX_LABEL = 255
SHIPPED = ("lib", "share", "bin")


@dataclass(frozen=True)
class StagedExtension:
    """An extension's layer entries, ready to write, with what staging found out about them."""

    entries: tuple[LayerEntry, ...]
    dropped: tuple[str, ...]  # install output left out of the image
    relocated: Relocated
    kept: tuple[str, ...]  # files the catalog's keep_paths ship as built
    contract: RuntimeContract
    license: str  # SPDX expression over the extension and what it bundles


def stage_extension(ext: Extension, out: ExtensionBuildOutput, *, major: int,
                    postgres_tree: Path, bundled: tuple[BundledPackage, ...],
                    scratch: Path) -> StagedExtension:
    """Lay out ``out`` for the image, relocating files; rewritten files are written under
    ``scratch``, which must outlive the layer's writing."""
    entries, dropped = _entries(out, major, ext.name)
    mount = f"{MOUNT_ROOT}/{ext.name}"
    files = {e.path: e.source for e in entries
             if e.source is not None and stat.S_ISREG(os.lstat(e.source).st_mode)}
    keep = dict(ext.build.keep_paths)
    relocated = relocate(files, prefix=f"/usr/lib/postgresql/{major}", mount=mount,
                         postgres_tree=postgres_tree, keep=keep, extension=ext.name)
    replaced: dict[str, Path] = {}
    for path, data in relocated.contents.items():
        target = scratch / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        source = files[path]
        target.chmod(stat.S_IMODE(os.lstat(source).st_mode))
        replaced[path] = target
    entries = [LayerEntry(e.path, replaced.get(e.path, e.source)) for e in entries]
    paths = {e.path for e in entries}
    _check_contents(ext, paths)
    has = {top: any(p.startswith(f"{top}/") for p in paths) for top in ("system", "bin")}
    contract = RuntimeContract(
        name=ext.name, sql_names=ext.sql_names,
        shared_preload_libraries=ext.runtime.shared_preload_libraries,
        ld_library_path=("system",) if has["system"] else (),
        bin_path=("bin",) if has["bin"] else (),
        env=ext.runtime.env, requires=ext.runtime.requires, modules=ext.runtime.modules,
        mount=mount if any(r.after.startswith(f"{mount}/") for r in relocated.rewrites) else "")
    return StagedExtension(tuple(entries), tuple(sorted(dropped)), relocated,
                           tuple(kept_files(sorted(files), keep)), contract,
                           license_expression(ext.license, bundled))


def license_expression(own: str, bundled: tuple[BundledPackage, ...]) -> str:
    """The extension's licence AND those of the packages it bundles, each identifier once."""
    if not bundled:
        return own
    ids = sorted(set().union(*(license_ids(p.license) for p in bundled)) - license_ids(own))
    wrapped = f"({own})" if " OR " in own else own
    full = " AND ".join([wrapped, *ids])
    return full if len(full) <= MAX_LABEL else f"{wrapped} AND {BUNDLED_LICENSE_REF}"


def _entries(out: ExtensionBuildOutput, major: int, name: str) -> tuple[list[LayerEntry], set[str]]:
    """Map the build output onto the image-volume layout; report what is left out."""
    prefix = out.install_root / f"usr/lib/postgresql/{major}"
    entries: list[LayerEntry] = []
    dropped: set[str] = set()
    if not prefix.is_dir():
        raise BuildError(f"{name}: the install step put nothing under usr/lib/postgresql/{major}")
    for child in sorted(prefix.iterdir()):
        if child.name in SHIPPED and child.is_dir():
            entries += tree_entries(child, child.name)
        else:
            dropped.add(child.name + ("/" if child.is_dir() else ""))
    for other in sorted(out.install_root.iterdir()):
        if other.name != "usr":
            dropped.add(other.name)
    usr = out.install_root / "usr"
    dropped.update(f"usr/{c.name}" for c in sorted(usr.iterdir()) if c.name != "lib")
    dropped.update(f"usr/lib/{c.name}" for c in sorted((usr / "lib").iterdir())
                   if c.name != "postgresql")
    taken = {e.path for e in entries}
    if out.data_dir.is_dir():
        for data in sorted(out.data_dir.iterdir()):
            if f"share/{data.name}" in taken:
                raise BuildError(f"{name}: data directory share/{data.name} is also installed by "
                                 "the build; give it another name (build.data[].to)")
            entries += tree_entries(data, f"share/{data.name}")
    if out.system_dir.is_dir() and any(out.system_dir.iterdir()):
        entries += tree_entries(out.system_dir, "system")
    if out.licenses_dir.is_dir() and any(out.licenses_dir.iterdir()):
        entries += tree_entries(out.licenses_dir, f"licenses/{name}")
    if out.system_licenses_dir.is_dir():
        for package in sorted(out.system_licenses_dir.iterdir()):
            if package.name == name:
                raise BuildError(f"{name}: a bundled Debian package has the extension's own "
                                 "name; its licences would share licenses/{name}/")
            entries += tree_entries(package, f"licenses/{package.name}")
    return entries, dropped


def _check_contents(ext: Extension, paths: set[str]) -> None:
    """Every extension the catalog names has a control file; every module a library."""
    for sql_name in ext.sql_names:
        if f"share/extension/{sql_name}.control" not in paths:
            controls = sorted(p.rsplit("/", 1)[1] for p in paths
                              if p.startswith("share/extension/") and p.endswith(".control"))
            raise BuildError(f"{ext.name}: the build installed no share/extension/{sql_name}"
                             f".control (control files: {', '.join(controls) or 'none'}); fix "
                             f"extensions.{ext.name}.sql_name")
    for module in ext.runtime.modules:
        if f"lib/{module}.so" not in paths:
            raise BuildError(f"{ext.name}: runtime.modules names {module}, but the image has no "
                             f"lib/{module}.so")
