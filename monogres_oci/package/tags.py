"""Repository names and tags, following CloudNativePG's convention.

Immutable: ``<pg_version>-<ext_version>-<timestamp>-<distro>``; rolling:
``<pg_version>-<ext_version>-<distro>`` and ``<pg_major>-<ext_version>-<distro>``. The timestamp
is SOURCE_DATE_EPOCH as YYYYMMDDhhmm, so a rebuild of the same inputs gives the same tag. Builds
against an option set other than the release's default carry it before the distro. Postgres images
always carry the option set, as CloudNativePG's (``18.6-standard-trixie``) do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from monogres_oci.plan.targets import ExtensionTarget, PostgresTarget

POSTGRES_IMAGE_REPO = "postgresql"
POSTGRES_DIST_REPO = "postgresql-dist"


@dataclass(frozen=True)
class Tags:
    """The tags of one multi-arch artifact: the first is immutable, the rest roll."""

    repository: str
    immutable: str
    rolling: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return (self.immutable, *self.rolling)


def timestamp(epoch: int) -> str:
    return time.strftime("%Y%m%d%H%M", time.gmtime(epoch))


def _suffix(pg: PostgresTarget, always_option_set: bool) -> str:
    if always_option_set or not pg.default_option_set:
        return f"{pg.option_set.name}-{pg.distro.name}"
    return pg.distro.name


def extension_tags(target: ExtensionTarget, epoch: int) -> Tags:
    pg = target.postgres
    ver = target.version.version
    suffix = _suffix(pg, always_option_set=False)
    return Tags(
        repository=target.extension.name,
        immutable=f"{pg.release.version}-{ver}-{timestamp(epoch)}-{suffix}",
        rolling=(f"{pg.release.version}-{ver}-{suffix}", f"{pg.release.major}-{ver}-{suffix}"),
    )


def postgres_tags(pg: PostgresTarget, epoch: int, *, runnable: bool) -> Tags:
    suffix = _suffix(pg, always_option_set=True)
    return Tags(
        repository=POSTGRES_IMAGE_REPO if runnable else POSTGRES_DIST_REPO,
        immutable=f"{pg.release.version}-{timestamp(epoch)}-{suffix}",
        rolling=(f"{pg.release.version}-{suffix}", f"{pg.release.major}-{suffix}"),
    )
