"""Base images made from Debian packages: debootstrap, a reproducible tar, a pushed image.

Builds run ``FROM`` a base pinned by digest. No public registry is reachable here, so the base is
made locally: ``debootstrap --variant=minbase`` against the host's own mirror, the rootfs
normalized and packed into a sorted tar with clamped mtimes, then turned into an image by BuildKit
(``FROM scratch`` + ``ADD rootfs.tar /``) and pushed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from pathlib import Path

from monogres_oci.build import buildkit
from monogres_oci.debian.sources import system_mirror
from monogres_oci.errors import BuildError
from monogres_oci.oci.model import Index, Platform
from monogres_oci.oci.registry import RegistryClient
from monogres_oci.runner import run

_REPO_RE = re.compile(r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+$")

# Files debootstrap leaves behind that differ from run to run or leak the build host.
_VOLATILE_GLOBS = (
    "var/log/**/*",
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "var/lib/apt/lists/*",
    "var/cache/ldconfig/aux-cache",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "etc/*-",
    "dev/*",
    "run/*",
    "tmp/*",
    "var/tmp/*",
    "root/.bash_history",
)


def create_base_image(
    suite: str,
    registry_repo: str,
    platform: str = "linux/amd64",
    *,
    workdir: Path,
    insecure: bool = True,
    source_date_epoch: int | None = None,
    mirror: str | None = None,
    include: Sequence[str] = (),
    progress: buildkit.Progress | None = None,
) -> str:
    """Make a Debian ``suite`` base image for ``platform``, push it, return ``REPO@sha256:...``.

    ``registry_repo`` is ``HOST[:PORT]/PATH`` without tag; the image is pushed as tag
    ``SUITE-ARCH``. ``workdir`` caches the rootfs tar: when it holds one for this suite and
    architecture (and epoch, if one is given), debootstrap is not run again. Without an explicit
    ``source_date_epoch`` the suite's Release date is used, so the tar depends only on the mirror's
    state. ``insecure`` allows a plain-HTTP registry (dockerd already does so for 127.0.0.0/8).
    """
    if not _REPO_RE.match(registry_repo):
        raise BuildError(f"registry_repo {registry_repo!r} must look like HOST:PORT/NAME, no tag")
    arch = buildkit.platform_arch(platform)
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    tar_path, epoch = rootfs_tar(
        suite,
        arch,
        workdir=workdir,
        mirror=mirror or system_mirror(),
        source_date_epoch=source_date_epoch,
        include=include,
        progress=progress,
    )

    context = workdir / f"context-{suite}-{arch}"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir()
    os.link(tar_path, context / "rootfs.tar")
    metadata = workdir / f"metadata-{suite}-{arch}.json"
    metadata.unlink(missing_ok=True)
    output = {
        "type": "image",
        "name": f"{registry_repo}:{suite}-{arch}",
        "push": "true",
        "oci-mediatypes": "true",
    }
    if insecure:
        output["registry.insecure"] = "true"
    buildkit.buildx_build(
        what=f"base image {suite} ({platform})",
        context=context,
        dockerfile_path=buildkit.dockerfile("base.Dockerfile"),
        platform=platform,
        output=output,
        build_args={"SOURCE_DATE_EPOCH": str(epoch)},
        metadata_file=metadata,
        progress=progress,
    )
    shutil.rmtree(context, ignore_errors=True)
    try:
        digest = json.loads(metadata.read_text())["containerimage.digest"]
    except (OSError, ValueError, KeyError) as exc:
        raise BuildError(f"buildx wrote no image digest to {metadata}: {exc}") from exc
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise BuildError(f"unexpected image digest {digest!r} in {metadata}")
    return f"{registry_repo}@{digest}"


def create_base_index(
    suite: str,
    registry_repo: str,
    archs: Sequence[str],
    client: RegistryClient,
    *,
    workdir: Path,
    progress: buildkit.Progress | None = None,
) -> str:
    """Make the base image for each of ``archs`` and an OCI index over them; return ``REPO@sha256``.

    Builds pin their base by this index digest: a cross-compiling stage asks for the build
    machine's platform of it, an emulated stage and the runnable image for the target's. Each
    platform image is pushed as tag ``SUITE-ARCH`` and the index as tag ``SUITE``.
    """
    _, _, repo_path = registry_repo.partition("/")
    entries = []
    for arch in sorted(set(archs)):
        ref = create_base_image(suite, registry_repo, f"linux/{arch}", workdir=workdir,
                                progress=progress)
        digest = ref.rpartition("@")[2]
        desc = client.head_manifest(repo_path, digest)
        if desc is None:
            raise BuildError(f"base image {ref} was pushed but the registry does not have it")
        entries.append(desc.with_platform(Platform(architecture=arch, os="linux")))
    index = Index(manifests=tuple(entries))
    data = index.to_json()
    client.push_manifest(repo_path, index.digest, data, index.media_type)
    client.push_manifest(repo_path, suite, data, index.media_type)
    return f"{registry_repo}@{index.digest}"


def rootfs_tar(
    suite: str,
    arch: str,
    *,
    workdir: Path,
    mirror: str,
    source_date_epoch: int | None = None,
    include: Sequence[str] = (),
    progress: buildkit.Progress | None = None,
) -> tuple[Path, int]:
    """The cached or freshly made rootfs tar for ``suite``/``arch`` and the epoch it is clamped to."""
    tar_path = workdir / f"rootfs-{suite}-{arch}.tar"
    info_path = workdir / f"rootfs-{suite}-{arch}.json"
    wanted = {"suite": suite, "arch": arch, "mirror": mirror, "include": sorted(include)}
    if tar_path.is_file() and info_path.is_file():
        info = json.loads(info_path.read_text())
        same = all(info.get(k) == v for k, v in wanted.items())
        if same and source_date_epoch in (None, info.get("source_date_epoch")):
            if progress:
                progress(f"reusing {tar_path}")
            return tar_path, int(info["source_date_epoch"])

    rootfs = workdir / f"rootfs-{suite}-{arch}"
    if rootfs.exists():
        shutil.rmtree(rootfs)
    argv = ["debootstrap", "--variant=minbase", f"--arch={arch}"]
    if include:
        argv.append("--include=" + ",".join(include))
    argv += [suite, str(rootfs), mirror]
    if progress:
        progress("running " + " ".join(argv))
    started = time.monotonic()
    run(argv, timeout=1800, what=f"debootstrap {suite} ({arch})")
    if progress:
        progress(f"debootstrap took {time.monotonic() - started:.0f} s")

    epoch = source_date_epoch if source_date_epoch is not None else _release_epoch(rootfs, suite)
    _normalize_rootfs(rootfs, suite=suite, mirror=mirror, epoch=epoch)
    tmp = tar_path.with_suffix(".tar.tmp")
    run(
        [
            "tar",
            "--create",
            "--file", str(tmp),
            "--directory", str(rootfs),
            "--sort=name",
            "--numeric-owner",
            "--format=posix",
            "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
            f"--mtime=@{epoch}",
            "--clamp-mtime",
            ".",
        ],
        what=f"tar of the {suite} rootfs",
    )
    os.replace(tmp, tar_path)
    info_path.write_text(json.dumps({**wanted, "source_date_epoch": epoch}, indent=2) + "\n")
    shutil.rmtree(rootfs)
    return tar_path, epoch


def _release_epoch(rootfs: Path, suite: str) -> int:
    """The ``Date:`` of the suite's Release file that debootstrap fetched, as a Unix time."""
    lists = rootfs / "var/lib/apt/lists"
    for path in sorted(lists.glob(f"*_dists_{suite}_*Release")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Date:"):
                return int(parsedate_to_datetime(line[5:].strip()).timestamp())
    raise BuildError(f"no Release file with a Date: for {suite} under {lists}; pass source_date_epoch")


def _normalize_rootfs(rootfs: Path, *, suite: str, mirror: str, epoch: int) -> None:
    """Point apt at ``mirror``, drop volatile and host-specific files, fix shadow dates."""
    for pattern in _VOLATILE_GLOBS:
        for path in sorted(rootfs.glob(pattern), reverse=True):
            if path.is_symlink() or path.is_file() or path.is_char_device() or path.is_block_device():
                path.unlink()
            elif path.is_dir() and pattern.startswith(("dev/", "run/", "tmp/", "var/tmp/")):
                shutil.rmtree(path)
    etc = rootfs / "etc"
    (etc / "apt/sources.list").write_text(f"deb {mirror} {suite} main\n")
    # The mirror may be a frozen snapshot whose Release files have expired.
    (etc / "apt/apt.conf.d/90monogres").write_text(
        'Acquire::Check-Valid-Until "false";\n'
        'APT::Install-Recommends "false";\n'
        'APT::Install-Suggests "false";\n'
    )
    # debootstrap copies the build host's names; the container runtime provides its own.
    (etc / "hostname").write_text("")
    resolv = etc / "resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("")
    (etc / "hosts").write_text("127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n")
    # Field 3 of shadow is "days since 1970 of the last password change": the day debootstrap ran.
    day = str(epoch // 86400)
    shadow = etc / "shadow"
    if shadow.is_file():
        lines = []
        for line in shadow.read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[2]:
                fields[2] = day
            lines.append(":".join(fields))
        shadow.write_text("\n".join(lines) + "\n")  # owner and mode of the file are kept
