"""Debian's control-file format (deb822): paragraphs of ``Field: value`` with continuation lines.

One parser for apt's ``.sources`` files, the archive's ``Sources`` and ``Packages`` indices,
``debian/control`` and machine-readable ``debian/copyright`` files. Field names are
case-insensitive in the format, so they are lower-cased here; a continuation line keeps its own
line (a lone ``.`` is an empty line of a long description or licence text).
"""

from __future__ import annotations

from collections.abc import Iterator


def paragraphs(text: str) -> Iterator[dict[str, str]]:
    """The paragraphs of ``text``; ``#`` comment lines are skipped."""
    current: dict[str, str] = {}
    key = ""
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if current:
                yield current
            current, key = {}, ""
            continue
        if raw[0] in " \t":
            if key:
                line = raw.strip()
                current[key] += "\n" + ("" if line == "." else line)
            continue
        name, sep, value = raw.partition(":")
        if not sep:
            continue  # not a field: tolerated, as apt does for stray lines
        key = name.strip().lower()
        current[key] = value.strip()
    if current:
        yield current


def first_line(value: str) -> str:
    """The first line of a field (a licence's name, a description's synopsis)."""
    return value.split("\n", 1)[0].strip()
