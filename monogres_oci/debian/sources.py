"""The Debian mirror this machine's apt is configured with, read at run time.

Base images and in-image apt sources use the very mirror the host uses, so nothing in this
repository names a mirror host: it is always learned from ``/etc/apt``.
"""

from __future__ import annotations

from pathlib import Path

from monogres_oci.debian.deb822 import paragraphs
from monogres_oci.errors import BuildError

APT_ETC = Path("/etc/apt")


def _one_line_entries(text: str) -> list[dict[str, str]]:
    """Parse one-line ``deb URI SUITE COMPONENTS`` entries into deb822-like stanzas."""
    entries = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            entries.append({"types": "deb", "uris": words[0], "suites": words[1]})
    return entries


def system_mirror(apt_etc: Path = APT_ETC) -> str:
    """The URI of the Debian archive mirror apt uses here (the first non-security ``deb`` entry).

    Raises ``BuildError`` when the machine has no such entry.
    """
    entries: list[dict[str, str]] = []
    parts = apt_etc / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.glob("*.sources")):
            entries += paragraphs(path.read_text(encoding="utf-8"))
        for path in sorted(parts.glob("*.list")):
            entries += _one_line_entries(path.read_text(encoding="utf-8"))
    main_list = apt_etc / "sources.list"
    if main_list.is_file():
        entries += _one_line_entries(main_list.read_text(encoding="utf-8"))
    for entry in entries:
        if "deb" not in entry.get("types", "").split():
            continue
        if entry.get("enabled", "yes").lower() == "no":
            continue
        suites = entry.get("suites", "").split()
        if any(s.endswith("-security") for s in suites):
            continue
        uris = entry.get("uris", "").split()
        if uris:
            return uris[0].rstrip("/")
    raise BuildError(
        f"no Debian archive entry in {apt_etc}/sources.list(.d): cannot choose a mirror",
    )
