# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The sensor model every device kind produces.

A device spec on the command line creates one or more `Sensor` objects. A sensor
is either scalar (no axes) or a vector of named axes; `read()` returns one integer
per axis (one for a scalar), to be multiplied by 10**exponent in the sensor's unit.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

# Sensor names travel in 16-byte NUL-terminated fields.
MAX_NAME_LENGTH = 15


class Unit(IntEnum):
    """Physical units; the values are the sensor-type codes of the SCMI specification."""

    NONE = 0
    UNSPECIFIED = 1
    DEGREES_C = 2
    VOLTS = 5
    AMPS = 6
    WATTS = 7
    JOULES = 8
    RPM = 18
    LUX = 13
    PASCALS = 23
    PERCENTAGE = 65  # relative humidity
    RADIANS = 36
    RADIANS_PER_SECOND = 87
    METERS_PER_SECOND_SQUARED = 89
    TESLA = 69
    GAUSS = 70


class DeviceError(Exception):
    """A host device could not be read (vanished, returned garbage, I/O error)."""


class DeviceSpecError(Exception):
    """A device spec from the command line is invalid; the message says why."""


@dataclass(frozen=True)
class Axis:
    """One axis of a vector sensor."""

    name: str
    unit: Unit
    exponent: int = 0


class Sensor(abc.ABC):
    """A readable host sensor."""

    #: Name shown to the guest (at most MAX_NAME_LENGTH bytes of UTF-8).
    name: str
    #: Unit and decimal exponent of the values of a scalar sensor.
    unit: Unit = Unit.UNSPECIFIED
    exponent: int = 0
    #: Axes of a vector sensor; empty for a scalar sensor.
    axes: tuple[Axis, ...] = ()

    @abc.abstractmethod
    def read(self) -> Sequence[int]:
        """Return the current value of each axis (one value for a scalar sensor).

        Raises DeviceError when the host device cannot be read.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release host resources held by the sensor (open files)."""


def check_name(name: str, spec: str) -> str:
    """Return `name` if it fits an SCMI name field, else raise DeviceSpecError."""
    if len(name.encode()) > MAX_NAME_LENGTH:
        raise DeviceSpecError(
            f"device spec '{spec}': name '{name}' is longer than {MAX_NAME_LENGTH} bytes"
        )
    return name
