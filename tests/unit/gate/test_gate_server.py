"""The settings the gate's server gets: CloudNativePG's for 18, the Postgres tree before it."""

from __future__ import annotations

from pathlib import Path

from monogres_oci.gate.server import Mounted, server_settings
from monogres_oci.package.contract import RuntimeContract

POSTGIS = Mounted(RuntimeContract("postgis", ("postgis",), ld_library_path=("system",),
                                  env=(("PROJ_DATA", "${image_root}/share/proj"),)), Path("/x"))
TIMESCALE = Mounted(RuntimeContract("timescaledb", ("timescaledb",),
                                    shared_preload_libraries=("timescaledb",)), Path("/y"))


def test_postgres_18_gets_the_image_volume_settings() -> None:
    env, settings = server_settings([POSTGIS, TIMESCALE], "/usr/bin")
    assert settings == [
        "extension_control_path=$system:/extensions/postgis/share:/extensions/timescaledb/share",
        "dynamic_library_path=$libdir:/extensions/postgis/lib:/extensions/timescaledb/lib",
        "shared_preload_libraries=timescaledb",
    ]
    assert env == {"LD_LIBRARY_PATH": "/extensions/postgis/system", "PATH": "/usr/bin",
                   "PROJ_DATA": "/extensions/postgis/share/proj"}


def test_before_18_there_is_no_extension_control_path_to_set() -> None:
    """(17 refuses to start with a setting it does not know; its files go in the tree.)"""
    env, settings = server_settings([POSTGIS, TIMESCALE], "/usr/bin", control_path=False)
    assert not [s for s in settings if s.startswith("extension_control_path=")]
    assert "shared_preload_libraries=timescaledb" in settings
    assert env["LD_LIBRARY_PATH"] == "/extensions/postgis/system"
