"""Catalog data that passed the schema, kept by the digest of the text it came from.

Parsing YAML and validating it are most of the time `plan` takes before it expands a large catalog
(a thousand extensions of ten versions each: about 3 seconds). A command that has a cache directory
keeps the validated data there as JSON, named by the sha256 of the schema, the YAML library's
version and the catalog's text, and reads it back instead while none of them changes. Only data
that JSON holds exactly is kept (no dates, no mapping keys that are not strings): what is read back
is what the YAML loader returned. `validate` never reads it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml


def _name(schema_text: str, text: str) -> str:
    h = hashlib.sha256()
    for part in (schema_text, yaml.__version__, text):
        h.update(part.encode())
        h.update(b"\0")
    return f"{h.hexdigest()}.json"


def _json_exact(node: Any) -> bool:
    """Would JSON give ``node`` back as it is (string keys, plain types, finite numbers)?"""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(type(k) is str for k in item):
                return False
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif not (item is None or type(item) in (str, int, bool)):
            return False
    return True


# Catalogs kept at most: the ones used last (a catalog's history and a few test copies).
KEPT = 32


def recall(directory: Path, schema_text: str, text: str) -> Any | None:
    """The data validated from exactly ``text`` against exactly this schema, or None."""
    path = directory / _name(schema_text, text)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        os.utime(path)  # used now: the last to be dropped
    except (OSError, ValueError):
        return None
    return data


def remember(directory: Path, schema_text: str, text: str, data: Any) -> None:
    """Keep ``data`` (valid) for the next load of ``text``; skipped when JSON cannot hold it
    exactly, or the directory cannot be written (it is only a cache)."""
    if not _json_exact(data):
        return
    encoded = json.dumps(data, separators=(",", ":"))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".catalog-")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(encoded)
        os.replace(tmp, directory / _name(schema_text, text))
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return
    _drop_oldest(directory)


def _drop_oldest(directory: Path) -> None:
    """Keep the KEPT catalogs used last; another process may be removing them too."""
    entries = []
    for path in directory.glob("*.json"):
        try:
            entries.append((path.stat().st_mtime_ns, path))
        except OSError:
            continue
    for _, path in sorted(entries, reverse=True)[KEPT:]:
        path.unlink(missing_ok=True)
