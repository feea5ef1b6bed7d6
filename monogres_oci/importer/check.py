"""Which catalog entries the Debian archive has moved past: a newer upstream release packaged.

For a scheduled job: it reads only the signed indexes (no download), and says for each entry
taken from a Debian source package whether a newer upstream version is in the archive's suites.
"""

from __future__ import annotations

from dataclasses import dataclass

from monogres_oci.catalog.model import Catalog
from monogres_oci.importer.archive import Archive
from monogres_oci.importer.versions import DebianVersion, upstream


@dataclass(frozen=True)
class Outdated:
    """A catalog entry and the newer release the archive has."""

    name: str
    version: str  # the catalog's newest version of the extension
    package: str  # the Debian source package it was taken from
    pinned: str  # the Debian version the catalog pins
    newest: str  # the newest Debian version in the archive
    suite: str

    @property
    def spec(self) -> str:
        """What to pass to ``import debian`` to take it."""
        return f"{self.package}={self.newest}"


def outdated(catalog: Catalog, archive: Archive) -> list[Outdated]:
    found = []
    for ext in catalog.extensions:
        pins = [(v, o.debian_package) for v in ext.versions for o in v.source.origins
                if o.debian_package]
        if not pins:
            continue
        newest_pin = max(pins, key=lambda p: DebianVersion(p[1].partition("=")[2]))
        package, _, pinned = newest_pin[1].partition("=")
        records = archive.sources(package)
        if not records:
            continue
        top = records[0]
        if DebianVersion(top.version) > DebianVersion(pinned) and \
                upstream(top.version) != upstream(pinned):
            found.append(Outdated(name=ext.name, version=newest_pin[0].version, package=package,
                                  pinned=pinned, newest=top.version, suite=top.suite))
    return found
