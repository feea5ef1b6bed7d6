"""A file tree handed to BuildKit as a named context, with metadata that follows its bytes.

BuildKit decides whether a local file changed by its metadata (path, size, mode, mtime), not its
bytes, both when it resends a context and when it checksums one for its cache (upstream calls it a
deliberate trade-off: moby/buildkit#2592, #4950). Every tree this project builds has the same
mtimes (SOURCE_DATE_EPOCH), so two trees that differ only in a file's bytes looked equal: atop
built against a greet tree whose control file differed in one byte was served the other tree's
result (measured, with distinct context names and fresh transfers alike). So, before a build, each
regular file of a named context gets an mtime derived from its own sha256: equal bytes keep equal
metadata (BuildKit's cache still hits across machines and across a tree compiled here or taken
from the registry), different bytes never share it. Images are unaffected: packaging writes its
own mtimes (SOURCE_DATE_EPOCH) into every layer.
"""

from __future__ import annotations

import os
from pathlib import Path

from monogres_oci.build.compile.engine import tree_digest

# Stamps lie between 2000-01-01 and 2008-07: always in the past, so no build tool sees a header
# newer than what it compiles; 2**28 seconds times 10**9 nanoseconds, about 2**58 values.
STAMP_BASE = 946_684_800
STAMP_SPAN = 1 << 28


def stamp_ns(file_sha256: str) -> int:
    """The mtime, in nanoseconds, a file with these bytes is given."""
    value = int(file_sha256[:16], 16)
    return (STAMP_BASE + value % STAMP_SPAN) * 1_000_000_000 + (value >> 28) % 1_000_000_000


def stamp_and_name(prefix: str, tree: Path) -> str:
    """Give each regular file under ``tree`` its content-derived mtime and return
    ``prefix-<digest of the tree's paths and bytes>``, the name of the context. Idempotent (a
    file that has its stamp is not touched, so processes sharing a cache agree); hashed on every
    build, never memoised (a tree changed in place must not keep an old name): about 0.3 s for
    a Postgres install tree."""

    def stamp(path: Path, file_digest: str) -> None:
        stat = path.stat()
        want = stamp_ns(file_digest)
        if stat.st_mtime_ns != want:
            os.utime(path, ns=(stat.st_atime_ns, want))

    return f"{prefix}-{tree_digest(tree, on_file=stamp)[:24]}"
