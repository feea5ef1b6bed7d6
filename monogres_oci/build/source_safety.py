"""A source tarball is read before anything unpacks it: members that could write outside the
build tree or carry privileges are refused, naming the file and the member.

Refused: absolute names, ``..`` components, symbolic links whose target (absolute, or relative
to the link's directory) leaves the tree, hard links to a name outside the tree, device nodes and
FIFOs, and setuid, setgid or sticky files. A pinned sha256 proves the bytes are the ones
someone chose, not that they are harmless; BuildKit unpacks sources as root.
"""

from __future__ import annotations

import posixpath
import stat
import tarfile
from pathlib import Path

from monogres_oci.errors import FetchError


class UnsafeSourceError(FetchError):
    """A source tarball holds a member that unpacking must not be allowed to create."""

    def __init__(self, file: str, member: str, problem: str) -> None:
        self.file = file
        self.member = member
        super().__init__(
            f"source {file} refused before any build: member {member!r} {problem}; a source "
            "tarball may only create files inside its own tree (check the file, or the origin "
            "and sha256 in the catalog)"
        )


def _inside(name: str) -> bool:
    """Whether a normalised relative path stays inside the tree."""
    normal = posixpath.normpath(name)
    return not (normal.startswith("/") or normal == ".." or normal.startswith("../"))


def member_problem(member: tarfile.TarInfo) -> str | None:
    """What is wrong with one member, or None."""
    name = member.name
    if name.startswith("/"):
        return "has an absolute path"
    if ".." in name.split("/"):
        return "climbs out of the tree with '..'"
    if member.isdev() or member.isfifo():
        return "is a device node or FIFO"
    if member.mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX):
        return f"has setuid, setgid or sticky bits (mode {member.mode:o})"
    if member.issym():
        target = member.linkname
        if target.startswith("/"):
            return f"is a symbolic link to the absolute path {target!r}"
        if not _inside(posixpath.join(posixpath.dirname(name), target)):
            return f"is a symbolic link to {target!r}, outside the tree"
    if member.islnk() and (member.linkname.startswith("/") or not _inside(member.linkname)):
        return f"is a hard link to {member.linkname!r}, outside the tree"
    return None


def check_tarball(path: Path, file: str) -> int:
    """Read every member header of the tarball at ``path`` (any compression tarfile knows);
    raise UnsafeSourceError at the first bad one; return how many members there are. A file
    that is not a tarball is left to the build, which says what it expected."""
    if not tarfile.is_tarfile(path):
        return 0
    count = 0
    try:
        with tarfile.open(path, mode="r:*") as archive:
            for member in archive:
                count += 1
                problem = member_problem(member)
                if problem is not None:
                    raise UnsafeSourceError(file, member.name, problem)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise FetchError(f"source {file} is not a readable tarball ({exc}); check the file or "
                         "its sha256 in the catalog") from None
    return count
