"""An extension's runtime contract: what a server needs besides the files to load it.

It is decided once, when the image is packaged (from the catalog's ``runtime`` and from what the
image holds), travels in the image's annotations, and is read back from them by every consumer:
``cnpg`` (CloudNativePG's ``extensions[]`` fields), ``install`` (environment, PATH and
postgresql.conf lines for bare metal) and the gate (the server it starts). One value, three
renderings, so they cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

MOUNT_ROOT = "/extensions"  # where CloudNativePG mounts image volumes: /extensions/<name>
# extension_control_path is new in PostgreSQL 18: before it, an extension loads only from inside
# the Postgres tree (and control files say $libdir/NAME).
FIRST_MAJOR_WITH_CONTROL_PATH = 18
IMAGE_ROOT = "${image_root}"  # CloudNativePG's placeholder for that mount point

_PREFIX = "org.monogres.extension."


@dataclass(frozen=True)
class RuntimeContract:
    """What one extension image needs at run time (paths relative to the image root)."""

    name: str  # the image (and mount) name
    sql_names: tuple[str, ...]
    shared_preload_libraries: tuple[str, ...] = ()
    ld_library_path: tuple[str, ...] = ()  # ("system",) when it bundles libraries
    bin_path: tuple[str, ...] = ()  # ("bin",) when it ships client programs
    env: tuple[tuple[str, str], ...] = ()  # values may hold ${image_root}
    requires: tuple[str, ...] = ()  # other extension images to mount with it
    modules: tuple[str, ...] = ()  # libraries without a control file
    mount: str = ""  # the mount point its files name, when paths were rewritten to it

    def labels(self) -> dict[str, str]:
        """The annotations that carry the contract (empty values included: absent = unknown)."""
        return {
            f"{_PREFIX}name": self.name,
            f"{_PREFIX}sql_name": ",".join(self.sql_names),
            f"{_PREFIX}preload": ",".join(self.shared_preload_libraries),
            f"{_PREFIX}ld_library_path": ",".join(self.ld_library_path),
            f"{_PREFIX}bin_path": ",".join(self.bin_path),
            f"{_PREFIX}env": json.dumps(dict(self.env), sort_keys=True, separators=(",", ":"))
            if self.env else "",
            f"{_PREFIX}requires": ",".join(self.requires),
            f"{_PREFIX}modules": ",".join(self.modules),
            f"{_PREFIX}mount": self.mount,
        }

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> RuntimeContract:
        """Read the contract back from an image's labels (older images lack some keys)."""
        def items(key: str) -> tuple[str, ...]:
            return tuple(v for v in labels.get(_PREFIX + key, "").split(",") if v)

        env_text = labels.get(_PREFIX + "env", "")
        env = json.loads(env_text) if env_text else {}
        return cls(
            name=labels.get(_PREFIX + "name", ""),
            sql_names=items("sql_name"),
            shared_preload_libraries=items("preload"),
            ld_library_path=items("ld_library_path"),
            bin_path=items("bin_path"),
            env=tuple(sorted(env.items())),
            requires=items("requires"),
            modules=items("modules"),
            mount=labels.get(_PREFIX + "mount", ""),
        )

    def env_at(self, root: str) -> dict[str, str]:
        """The environment with ``${image_root}`` replaced by where the image is (as CNPG does)."""
        return {k: v.replace(IMAGE_ROOT, root) for k, v in self.env}

    def paths_at(self, root: str, entries: tuple[str, ...]) -> list[str]:
        return [f"{root}/{entry}" for entry in entries]
