# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The power-domain model: a host resource that is on or off.

A `PowerDomain` reports whether it is on and, when its device spec allows it
(`control=state`; read-only by default), can be switched. Getters and setters may
block (host files) and raise `DeviceError` with the host's errno.
"""

from __future__ import annotations

import abc

from vhost_scmi.devices.resource import DeviceError as DeviceError
from vhost_scmi.devices.resource import DeviceSpecError, Resource

#: `control=` values of power-domain device specs.
POWER_CONTROLS = ("none", "state")


def parse_power_control(text: str | None) -> bool:
    """Return whether `control=` lets agents switch the domain; DeviceSpecError if unknown."""
    value = text or "none"
    if value not in POWER_CONTROLS:
        raise DeviceSpecError(f"control={text}: expected {'|'.join(POWER_CONTROLS)}")
    return value == "state"


class PowerDomain(Resource):
    """A host power domain (see the module docstring)."""

    #: Whether agents may switch it (`control=state`).
    controllable: bool = False

    @abc.abstractmethod
    def is_on(self) -> bool:
        """Return whether the domain is on now."""

    def set_on(self, on: bool) -> None:
        """Switch the domain on or off; DeviceError if the host refuses."""
        raise DeviceError(f"{self.name}: the power state cannot be set")
