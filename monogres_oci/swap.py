"""Putting a finished directory tree in place in one step, so that a process killed at any moment
leaves the old tree or the new one, never half of either.

On Linux, ``renameat2(RENAME_EXCHANGE)`` swaps two paths atomically: the new tree takes the
target's name and the old tree the staging name, and only then is the old tree removed. Where
that call is missing, the old tree is renamed aside first (a moment with neither in place, but
never a mixed tree). Staging directories are named ``.<name>.<pid>.*`` so that what a killed
process left behind can be told apart from a running one's and removed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import tempfile
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically; False when the system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # kernel or file system without it
        return False
    raise OSError(code, os.strerror(code), str(b))


def swap_in(new: Path, target: Path) -> None:
    """Make ``new`` (a directory or file) appear at ``target`` in the same file system,
    replacing what is there."""
    if not target.exists() and not target.is_symlink():
        new.rename(target)
        return
    if _exchange(new, target):
        _remove(new)  # the old entry, under the staging name
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.old.", dir=target.parent))
    aside.rmdir()
    target.rename(aside)
    new.rename(target)
    _remove(aside)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def staging_dir(parent: Path, name: str) -> Path:
    """A new empty directory in ``parent`` to build ``name`` in, after removing the staging
    directories of processes that no longer run."""
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.glob(f".{name}.*"):
        pid = stale.name[len(name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)) and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f".{name}.{os.getpid()}.", dir=parent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
