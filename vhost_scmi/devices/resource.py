# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""What every device kind produces: host resources, and the errors of using them.

A resource is one thing the platform serves to agents: a sensor, a performance domain,
a power domain, a clock... Each type has its own abstract model in its own module
(`sensor.Sensor`, ...), subclassing `Resource`. Devices know nothing of SCMI or vhost:
protocols find the resources of the type they serve by `isinstance`.
"""

from __future__ import annotations

import abc


class DeviceError(Exception):
    """A host device could not be read or written (vanished, garbage, I/O error).

    `errno` is the host's error number when one is known (EACCES, EBUSY, EINVAL...),
    so that a protocol can answer with the status that fits it.
    """

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class DeviceSpecError(Exception):
    """A device spec from the command line is invalid; the message says why."""


class Resource(abc.ABC):  # noqa: B024 - a base with optional hooks only
    """A host resource served to agents."""

    #: Name shown to the guest (at most 63 bytes of UTF-8; 15 fit a short name field).
    name: str
    #: True when using the resource may block (host files, drivers): the platform then
    #: calls it off the event loop, on a worker thread with a deadline. In-memory
    #: resources (fakes) set False and are called inline.
    blocking: bool = True
    #: True when the host binding only mirrors the device (a host regulator, a powercap
    #: zone without control=on): every agent's sets are then DENIED.
    read_only: bool = False
    #: Seconds one call may take before it fails (HostTimeout) and the resource counts
    #: as stuck; None: the daemon's --host-timeout. For resources with a timeout of
    #: their own (a host command).
    call_timeout: float | None = None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release host resources held (open files)."""


#: Longest name of a resource: SCMI extended names carry 63 bytes of UTF-8.
MAX_NAME_BYTES = 63


def check_resource_name(name: str) -> str:
    """Return `name` if it is 1..63 bytes of UTF-8 without NUL; else DeviceSpecError."""
    if not name or "\0" in name or len(name.encode()) > MAX_NAME_BYTES:
        raise DeviceSpecError(f"name '{name}' must be 1 to {MAX_NAME_BYTES} bytes")
    return name
