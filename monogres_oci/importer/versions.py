"""Debian version strings: the upstream part, and ordering as dpkg orders them.

``[epoch:]upstream[-revision]``; the upstream part of a repacked source carries a ``+dfsg``
(or ``+ds``) suffix, which is Debian's, not upstream's.
"""

from __future__ import annotations

import re
from functools import total_ordering

_REPACK = re.compile(r"[+~](dfsg|ds|repack)[0-9.]*$")


def upstream(version: str) -> str:
    """The upstream release a Debian version packages: ``1:2.19.3+dfsg-1+deb13u1`` -> ``2.19.3``."""
    rest = version.split(":", 1)[1] if ":" in version else version
    if "-" in rest:
        rest = rest.rsplit("-", 1)[0]
    return _REPACK.sub("", rest)


def _order(c: str) -> int:
    # dpkg: "~" sorts before everything (even the end), letters before non-letters.
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _compare_part(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        # non-digit prefixes, character by character
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ca = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            cb = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ca != cb:
                return -1 if ca < cb else 1
            i += 1
            j += 1
        ni = i
        while ni < len(a) and a[ni].isdigit():
            ni += 1
        nj = j
        while nj < len(b) and b[nj].isdigit():
            nj += 1
        da, db = int(a[i:ni] or 0), int(b[j:nj] or 0)
        if da != db:
            return -1 if da < db else 1
        i, j = ni, nj
    return 0


@total_ordering
class DebianVersion:
    """A Debian version, ordered as ``dpkg --compare-versions`` orders them."""

    def __init__(self, text: str) -> None:
        self.text = text
        epoch, _, rest = text.rpartition(":") if ":" in text else ("0", "", text)
        self.epoch = int(epoch or 0)
        self.upstream, _, self.revision = rest.rpartition("-") if "-" in rest else (rest, "", "")

    def _cmp(self, other: DebianVersion) -> int:
        if self.epoch != other.epoch:
            return -1 if self.epoch < other.epoch else 1
        return (_compare_part(self.upstream, other.upstream)
                or _compare_part(self.revision, other.revision))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DebianVersion) and self._cmp(other) == 0

    def __lt__(self, other: DebianVersion) -> bool:
        return self._cmp(other) < 0

    def __repr__(self) -> str:
        return f"DebianVersion({self.text!r})"
