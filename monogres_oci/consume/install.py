"""Install artifacts on bare metal: pull the right platform, verify, extract, print the GUCs.

An extension lands in ``DEST/<name>`` (the layout CloudNativePG mounts at ``/extensions/<name>``),
the Postgres artifact in ``DEST`` (its tree is ``usr/lib/postgresql/<major>``). Extraction goes
through a staging directory and every layer is checked against its digest and diff_id before
anything appears in place.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from monogres_oci.consume.pull import PulledImage, resolve
from monogres_oci.errors import UsageError, VerifyError
from monogres_oci.oci.extract import extract_layer
from monogres_oci.oci.model import Platform
from monogres_oci.oci.reference import Reference
from monogres_oci.oci.registry import RegistryClient
from monogres_oci.package.contract import FIRST_MAJOR_WITH_CONTROL_PATH, RuntimeContract
from monogres_oci.package.relocate import is_text
from monogres_oci.swap import staging_dir, swap_in

# The labels that tie an extension to the exact Postgres build it was compiled against.
BUILD_KEYS = ("org.monogres.postgres.version", "org.monogres.postgres.option_set",
              "org.monogres.distro")


@dataclass(frozen=True)
class Installed:
    """One installed artifact."""

    reference: str
    digest: str
    manifest_digest: str
    kind: str  # extension | postgres | other
    name: str
    path: Path
    labels: dict[str, str]

    @property
    def contract(self) -> RuntimeContract:
        return RuntimeContract.from_labels(self.labels)

    @property
    def preload(self) -> tuple[str, ...]:
        return self.contract.shared_preload_libraries


def install_one(client: RegistryClient, ref: Reference, dest: Path, platform: Platform,
                progress: Callable[[str], None] = lambda _: None,
                check: Callable[[RegistryClient, PulledImage], None] | None = None) -> Installed:
    """Pull and extract one artifact; replaces an extension directory only once all is verified.

    ``check`` (signature verification) runs on the resolved digests before anything is pulled,
    and extraction reads those same digests, so a tag moved in between changes nothing.
    """
    image = resolve(client, ref, platform)
    if check is not None:
        check(client, image)
    labels = dict(image.config.labels)
    kind = labels.get("org.monogres.artifact", "other")
    if kind == "postgres-image":
        raise UsageError(f"{ref} is the runnable Postgres image (for docker/Kubernetes); for bare "
                         "metal install the postgresql-dist artifact with the same tag")
    name = labels.get("org.monogres.extension.name") or ref.repository.rsplit("/", 1)[-1]
    target = dest / name if kind == "extension" else dest
    staging = staging_dir(dest, name)
    # mkdtemp makes it 0700; the extension directory must be readable by the postgres user.
    staging.chmod(0o755)
    try:
        _extract(client, image, staging, progress)
        mount = RuntimeContract.from_labels(labels).mount
        if kind == "extension" and mount and str(target) != mount:
            moved = repoint(staging, mount, str(target))
            progress(f"{ref}: its files name {mount}; rewrote {moved} file(s) for {target}")
        if kind == "extension":
            swap_in(staging, target)
        else:
            _merge_into(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # what is left: nothing, or the old tree
    progress(f"installed {ref} ({image.manifest_digest[:19]}) into {target}")
    return Installed(str(ref), image.digest, image.manifest_digest, kind, name, target, labels)


def _extract(client: RegistryClient, image: PulledImage, into: Path,
             progress: Callable[[str], None]) -> None:
    repo = image.reference.repository
    for layer, diff_id in zip(image.manifest.layers, image.config.diff_ids, strict=True):
        progress(f"pulling {repo} layer {layer.digest[:19]} ({layer.size / 1e6:.1f} MB)")
        with client.open_blob(repo, layer.digest, layer.size) as blob:
            # BlobReader is a read-only stream: all that gzip needs of a BinaryIO.
            extract_layer(cast(BinaryIO, blob), into, digest=layer.digest, size=layer.size, diff_id=diff_id)


def repoint(root: Path, mount: str, where: str) -> int:
    """Rewrite the mount point an image's text files name (see relocate) to where it is
    installed; return how many files changed. Only ``share/`` holds such files."""
    changed = 0
    old, new = f"{mount}/".encode(), f"{where}/".encode()
    for path in sorted((root / "share").rglob("*")) if (root / "share").is_dir() else ():
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if old in data and is_text(data):
            path.write_bytes(data.replace(old, new))
            changed += 1
    return changed


def _merge_into(source: Path, dest: Path) -> None:
    """Move each staged entry into ``dest``: a directory that holds a single directory is
    descended into (``usr/lib/postgresql``), any other entry (the Postgres prefix ``18``) is put
    in place in one step, replacing what was there whole, never mixing old and new files."""
    for item in sorted(source.iterdir()):
        target = dest / item.name
        inner = list(item.iterdir()) if item.is_dir() and not item.is_symlink() else []
        if (len(inner) == 1 and inner[0].is_dir() and not inner[0].is_symlink()
                and target.is_dir() and not target.is_symlink()):
            _merge_into(item, target)
        else:
            swap_in(item, target)


def check_married(items: Sequence[Installed]) -> None:
    """Extensions must come from the same Postgres build as the Postgres installed beside them."""
    builds = {tuple(i.labels.get(k, "") for k in BUILD_KEYS): i for i in items
              if i.kind in ("extension", "postgres")}
    if len(builds) > 1:
        lines = [f"  {i.reference}: PostgreSQL {' / '.join(k)}" for k, i in builds.items()]
        raise VerifyError("these artifacts were built against different Postgres builds and "
                          "must not be loaded together:\n" + "\n".join(lines))


def check_bundled(items: Sequence[Installed]) -> None:
    """Two extensions loaded by one server must not bundle different files under one soname:
    the dynamic loader keeps the first library of a soname a process loads, so the second
    extension would run against the other's copy. (Builds in one base bundle the same package
    versions, so this holds unless the archive moved between their builds.)"""
    seen: dict[str, tuple[str, Installed]] = {}
    clashes = []
    for item in items:
        system = item.path / "system"
        if item.kind != "extension" or not system.is_dir():
            continue
        for lib in sorted(system.iterdir()):
            digest = hashlib.sha256(lib.read_bytes()).hexdigest()
            first = seen.setdefault(lib.name, (digest, item))
            if first[0] != digest:
                clashes.append(f"  {lib.name}: {first[1].reference} and {item.reference}")
    if clashes:
        raise VerifyError("these extensions bundle different builds of the same libraries and "
                          "must not be loaded by one server (rebuild them against the same "
                          "archive state):\n" + "\n".join(clashes))


def postgresql_conf(items: Sequence[Installed]) -> list[str]:
    """The postgresql.conf lines that make Postgres find (and preload) the installed extensions."""
    exts = [i for i in items if i.kind == "extension"]
    if not exts:
        return []
    old = [e for e in exts if int(e.labels.get("org.monogres.postgres.major")
                                  or FIRST_MAJOR_WITH_CONTROL_PATH) < FIRST_MAJOR_WITH_CONTROL_PATH]
    if old:
        # extension_control_path is new in PostgreSQL 18; before it, and since control files
        # say $libdir/NAME, an extension only loads from inside the Postgres tree. All of share/:
        # a control file's `directory` may name a sibling of share/extension (pgfincore's).
        lines = [f"# PostgreSQL {old[0].labels['org.monogres.postgres.major']} cannot load "
                 "extensions from outside its tree (extension_control_path is new in 18); "
                 "copy them in:"]
        lines += [f"#   cp -r {e.path}/share/. \"$(pg_config --sharedir)/\" "
                  f"&& cp -r {e.path}/lib/. \"$(pg_config --pkglibdir)/\"" for e in exts]
    else:
        lines = [
            "extension_control_path = '$system:" + ":".join(f"{e.path}/share" for e in exts)
            + "'",
            "dynamic_library_path = '$libdir:" + ":".join(f"{e.path}/lib" for e in exts) + "'",
        ]
    preload = list(dict.fromkeys(lib for e in exts for lib in e.preload))
    if preload:
        lines.append(f"shared_preload_libraries = '{','.join(preload)}'")
    for e in exts:
        # Modules have no control file, so nothing to CREATE: a session loads them.
        loadable = [m for m in e.contract.modules if m not in preload]
        if loadable:
            lines.append(f"# {e.contract.name}: no control file; load with "
                         + ", ".join(f"LOAD '{m}'" for m in loadable)
                         + " (or list it in session_preload_libraries)")
    return lines


def server_environment(items: Sequence[Installed]) -> dict[str, str]:
    """The environment the postgres process needs for the installed extensions, as CloudNativePG
    sets it: their ``env`` (``${image_root}`` = where each is), ``PATH`` with their ``bin_path``,
    ``LD_LIBRARY_PATH`` with their ``ld_library_path`` (on bare metal the bundled libraries are
    also found without it: the extension's objects carry an RPATH to ``system/``)."""
    env: dict[str, str] = {}
    ld: list[str] = []
    bins: list[str] = []
    for e in items:
        if e.kind != "extension":
            continue
        contract = e.contract
        env.update(contract.env_at(str(e.path)))
        ld += contract.paths_at(str(e.path), contract.ld_library_path)
        bins += contract.paths_at(str(e.path), contract.bin_path)
    if ld:
        env["LD_LIBRARY_PATH"] = ":".join(ld)
    if bins:
        env["PATH"] = ":".join(bins) + ":$PATH"
    return env
