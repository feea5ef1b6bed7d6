"""The architecture of the machine this runs on, in the names OCI platforms and Debian use.

The planner compares it with each target's (native, cross-compiled or emulated), the gate with
the image it runs (QEMU or not), and the consumers pick the image of this machine from an index.
"""

from __future__ import annotations

import platform

_MACHINES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def machine_arch() -> str:
    """``amd64`` or ``arm64`` (another machine's name as the kernel reports it)."""
    machine = platform.machine().lower()
    return _MACHINES.get(machine, machine)
