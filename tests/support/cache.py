"""Build caches for tests and benches that must compile from nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def fresh_cache(root: Path, sources: Path) -> Path:
    """ROOT/cache, holding no builds; the source files are linked from SOURCES (another cache's
    sources/ directory): they are verified by sha256 on use, and fetching them again proves
    nothing."""
    cache = root / "cache"
    if sources.is_dir():
        shutil.copytree(sources, cache / "sources", copy_function=_link_or_copy,
                        dirs_exist_ok=True)
    return cache


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system
        shutil.copy2(src, dst)
