"""Writing imported entries into the catalog file, keeping its comments, order and style.

A round trip through ruamel.yaml leaves every line it does not touch as it was (the catalog is
written by people too), in the file's own list indentation; a plain scalar folded over several
lines is the one thing it rewrites (onto one line). A new extension goes at the end of
``extensions``; a new version of a known one goes into its ``versions``, newest first; a version already
there is left alone. The result is
validated entry by entry: one that would break the catalog is left out, with the reason.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from monogres_oci.catalog import load_catalog
from monogres_oci.errors import CatalogError
from monogres_oci.importer.debian import Imported
from monogres_oci.importer.versions import DebianVersion

# Keys whose values read as numbers unless quoted ("18.0", ">=13" is fine but kept alike).
_QUOTED = {"version", "sql_version", "postgres"}


@dataclass(frozen=True)
class Change:
    """What an import did to one extension of the catalog."""

    name: str
    action: str  # added | new version | unchanged | invalid
    version: str
    reason: str = ""  # why an invalid one was left out


def _dash_offset(text: str) -> int:
    """How far a list's dashes sit right of their key in this file (2 in ours, 0 in PyYAML's)."""
    lines = text.splitlines()
    for above, line in zip(lines, lines[1:], strict=False):
        key = re.match(r"^(\s*)[\w.-]+:\s*(#.*)?$", above)
        dash = re.match(r"^(\s*)- ", line)
        if key and dash:
            return max(0, len(dash.group(1)) - len(key.group(1)))
    return 2


def _yaml(text: str) -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    offset = _dash_offset(text)
    yaml.indent(mapping=2, sequence=offset + 2, offset=offset)
    return yaml


def _styled(value: Any, key: str = "") -> Any:
    """Plain data as ruamel nodes in the catalog's style: short lists and leaf maps in flow
    style, versions double-quoted."""
    if isinstance(value, dict):
        node = CommentedMap((k, _styled(v, k)) for k, v in value.items())
        if all(not isinstance(v, (dict, list)) for v in value.values()) and len(value) <= 2:
            node.fa.set_flow_style()
        return node
    if isinstance(value, list):
        seq = CommentedSeq(_styled(v) for v in value)
        if all(isinstance(v, str) for v in value):
            seq.fa.set_flow_style()
        return seq
    if isinstance(value, str) and key in _QUOTED:
        return DoubleQuotedScalarString(value)
    return value


def apply(catalog_path: Path, items: Sequence[Imported], *, write: bool = True) -> list[Change]:
    """Merge ``items`` into the catalog at ``catalog_path``; with ``write``, replace the file.

    Each item is validated with the catalog as it would be written: one that would make it
    invalid is left out (action ``invalid``, with the reason), the others go in, dry run or not.
    """
    text = catalog_path.read_text(encoding="utf-8")
    yaml = _yaml(text)
    data = yaml.load(text)
    extensions = data["extensions"]
    changes = []
    for item in items:
        version = item.entry["versions"][0]["version"]
        action, undo = _merge(extensions, item)
        problem = _problem(catalog_path, _dumped(yaml, data)) if undo else ""
        if problem and undo:
            undo()
            action = "invalid"
        changes.append(Change(item.name, action, version, problem))
    if write and any(c.action in ("added", "new version") for c in changes):
        _replace(catalog_path, _dumped(yaml, data))
    return changes


def _merge(extensions: CommentedMap, item: Imported) -> tuple[str, Callable[[], None] | None]:
    """Put ``item`` into ``extensions``: what was done, and how to take it out again."""
    version = item.entry["versions"][0]
    if item.name not in extensions:
        node = _styled(item.entry)
        extensions[item.name] = node
        extensions.yaml_set_comment_before_after_key(
            item.name, before=f"imported from Debian source package {item.package} "
            f"{item.debian_version} by `monogres-oci import debian`", indent=2)
        for finding in item.findings:
            if finding.key == "license" and finding.source.startswith("read by a person"):
                node.yaml_add_eol_comment(finding.source, "license")
            if finding.detected:
                node.yaml_add_eol_comment(
                    f"detected ({finding.source}): confirm, then drop this comment",
                    finding.key.split(".", 1)[0])
        return "added", lambda: extensions.pop(item.name)
    versions = extensions[item.name]["versions"]
    if any(str(v["version"]) == version["version"] for v in versions):
        return "unchanged", None
    # newest first, as the catalog lists them
    at = next((i for i, v in enumerate(versions)
               if DebianVersion(str(v["version"])) < DebianVersion(version["version"])),
              len(versions))
    versions.insert(at, _styled(version))
    return "new version", lambda: versions.pop(at)


def _dumped(yaml: YAML, data: Any) -> str:
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return buffer.getvalue()


def _problem(catalog_path: Path, text: str) -> str:
    """Why ``text`` is not a valid catalog (read beside ``catalog_path``, for its patch paths);
    "" when it is."""
    fd, tmp = tempfile.mkstemp(dir=catalog_path.parent, prefix=".import-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        load_catalog(Path(tmp))
    except CatalogError as exc:
        return str(exc).replace(tmp, str(catalog_path))
    finally:
        Path(tmp).unlink(missing_ok=True)
    return ""


def _replace(catalog_path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=catalog_path.parent, prefix=".import-", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, catalog_path)
