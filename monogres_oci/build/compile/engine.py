"""What every compile shares: one BuildKit build into a staging directory, checked, then swapped in.

Each compile is one ``docker buildx build`` of a Dockerfile in this repository's ``dockerfiles/``
whose ``export`` stage is written to a local directory. A finished result carries a ``.done``
marker naming the key of its inputs; a second call with the same key returns it without building.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from monogres_oci.build import buildkit
from monogres_oci.errors import BuildError

DONE_MARKER = ".done"
BUILD_LOG = "build.log"


def invoke(
    *,
    what: str,
    dockerfile: Path,
    context_files: Sequence[Path],
    platform: str,
    build_args: Mapping[str, str],
    build_contexts: Mapping[str, Path],
    target: str,
    output: Mapping[str, str],
    progress: Callable[[str], None],
    no_cache: bool = False,
    sandbox_hostname: str = "",
    context_text: Mapping[str, str] | None = None,
    log_file: Path | None = None,
) -> None:
    """One ``docker buildx build`` of ``target``, exported as ``output`` says (a local directory,
    an image).

    The build context holds ``context_files`` (hard-linked) and ``context_text`` (name -> text).
    """
    # A new directory for each build: buildx names BuildKit's copy of a context after the
    # directory's base name, and BuildKit resends into a copy it holds only the files whose
    # metadata changed (from a fixed directory a build got the previous build's bytes: tried).
    # What BuildKit is given is also named by content in its cache keys (see extension.Dockerfile).
    with tempfile.TemporaryDirectory(prefix="monogres-context-") as tmp:
        context = Path(tmp)
        for path in context_files:
            place(path, context / path.name)
        for name, text in (context_text or {}).items():
            (context / name).write_text(text)
        buildkit.buildx_build(
            what=what,
            context=context,
            dockerfile_path=dockerfile,
            platform=platform,
            target=target,
            output=output,
            build_args={**build_args, **(
                {"BUILDKIT_SANDBOX_HOSTNAME": sandbox_hostname} if sandbox_hostname else {})},
            build_contexts=build_contexts,
            cache=not no_cache,
            progress=progress,
            log_file=log_file,
        )


def build_into(
    *,
    what: str,
    dockerfile: Path,
    context_files: Sequence[Path],
    platform: str,
    build_args: Mapping[str, str],
    build_contexts: Mapping[str, Path],
    out_dir: Path,
    key: str,
    progress: Callable[[str], None],
    no_cache: bool,
    check: Callable[[Path], None],
    sandbox_hostname: str = "",
    context_text: Mapping[str, str] | None = None,
) -> None:
    """Build the ``export`` stage into a staging directory beside ``out_dir``, check it, then swap
    it in with a marker.

    Two processes may build the same key into one cache (two builds, or a build and the tests,
    on one machine): a lock per key lets one build while the other waits, then finds it done.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with key_lock(out_dir, key, what, progress) as needed:
        if not needed:
            return
        staging = new_staging(out_dir)
        started = time.monotonic()
        progress(f"{what}: building into {out_dir}")
        invoke(what=what, dockerfile=dockerfile, context_files=context_files, platform=platform,
               build_args=build_args, build_contexts=build_contexts, target="export",
               output={"type": "local", "dest": str(staging / "export")}, progress=progress,
               no_cache=no_cache,
               sandbox_hostname=sandbox_hostname, context_text=context_text,
               log_file=staging / BUILD_LOG)
        # Exported under staging/export, so that the log beside it is not part of the export.
        for entry in (staging / "export").iterdir():
            entry.rename(staging / entry.name)
        (staging / "export").rmdir()
        # An empty file named after the export's digest keys BuildKit's cache of it (see
        # extension.Dockerfile); it is not part of the result.
        for marker in staging.glob(".content-*"):
            marker.unlink()
        check(staging)
        seconds = time.monotonic() - started
        swap_in(staging, out_dir, {"cache_key": key, "target": what, "seconds": round(seconds, 1)})
        progress(f"{what}: done in {seconds:.0f} s")


def new_staging(out_dir: Path) -> Path:
    """An empty directory beside ``out_dir`` to fill (what an interrupted fill left is gone)."""
    staging = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def swap_in(staging: Path, out_dir: Path, marker: Mapping[str, object]) -> None:
    """Mark ``staging`` finished (``marker`` names its ``cache_key``) and put it in place of
    ``out_dir``."""
    (staging / DONE_MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)


@contextmanager
def key_lock(out_dir: Path, key: str, what: str,
              progress: Callable[[str], None]) -> Iterator[bool]:
    """Hold the key's lock; yield False when another process built ``key`` while this one waited."""
    with open(out_dir.parent / f".{out_dir.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"{what}: another process is building it into {out_dir}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
            if is_done(out_dir, key):
                progress(f"{what}: built by the other process")
                yield False
                return
        yield True


# ELF e_machine values (elf.h) of the architectures this project builds for.
_ELF_MACHINES = {"amd64": 62, "arm64": 183}


def elf_machine(path: Path) -> int | None:
    """The ELF e_machine of a file, or None when it is not an ELF file."""
    with path.open("rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def check_machine(path: Path, platform: str, what: str) -> None:
    """A wrong-architecture binary (a cross build that used the native compiler) is an error."""
    wanted = _ELF_MACHINES.get(buildkit.platform_arch(platform))
    found = elf_machine(path)
    if wanted is not None and found != wanted:
        raise BuildError(f"build of {what}: {path.name} is ELF machine {found}, not {wanted} "
                         f"({platform})")


def check_base(base_image: str) -> None:
    if "@sha256:" not in base_image:
        raise BuildError(f"base image {base_image!r} must be pinned by digest (NAME@sha256:...)")


def tarball_name(source_tarball: Path) -> str:
    if not source_tarball.is_file():
        raise BuildError(f"source tarball {source_tarball} does not exist")
    return source_tarball.name


def place(src: Path, dest: Path) -> None:
    """Hard-link ``src`` into the build context (copy across file systems)."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def done_key(out_dir: Path) -> str | None:
    """The input key the finished build in ``out_dir`` recorded; None without one (no build,
    or a marker cut short)."""
    marker = out_dir / DONE_MARKER
    if not marker.is_file():
        return None
    try:
        key = json.loads(marker.read_text()).get("cache_key")
    except ValueError:
        return None
    return key if isinstance(key, str) else None


def is_done(out_dir: Path, key: str) -> bool:
    return done_key(out_dir) == key


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(root: Path) -> str:
    """A digest of a file tree's paths and contents (for inputs that carry no marker)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            digest.update(f"L {rel} {os.readlink(path)}\n".encode())
        elif path.is_file():
            digest.update(f"F {rel} {sha256_file(path)}\n".encode())
    return digest.hexdigest()


def content_name(prefix: str, tree: Path) -> str:
    """``prefix-<digest of the tree's paths and bytes>``: the name under which ``tree`` is given
    to BuildKit as a named context, and which keys the build's steps (see extension.Dockerfile).
    Hashed on every build, never memoised (a tree changed in place must not keep an old name):
    about 0.3 s for a Postgres install tree."""
    return f"{prefix}-{tree_digest(tree)[:24]}"


def input_key(
    kind: str, dockerfile: Path, tarball: Path, platform: str, args: Mapping[str, str]
) -> str:
    """The default cache key: every input that can change the result."""
    inputs = {
        "kind": kind,
        "dockerfile": sha256_file(dockerfile),
        "source": sha256_file(tarball),
        "platform": platform,
        "args": dict(sorted(args.items())),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
