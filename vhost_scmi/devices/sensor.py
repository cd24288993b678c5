# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The sensor model every device kind produces.

A device spec on the command line creates one or more `Sensor` objects. A sensor
is either scalar (no axes) or a vector of named axes; `read()` returns one integer
per axis (one for a scalar), to be multiplied by 10**exponent in the sensor's unit.
"""

from __future__ import annotations

import abc
from collections import namedtuple
from collections.abc import Sequence
from enum import IntEnum

# Re-exported: device kinds import the errors with the model.
from vhost_scmi.devices.resource import DeviceError as DeviceError
from vhost_scmi.devices.resource import DeviceSpecError as DeviceSpecError
from vhost_scmi.devices.resource import Resource

# Names travel in 16-byte NUL-terminated fields; a name the user gives must fit one.
MAX_NAME_LENGTH = 15
# Names a device reports itself (an IIO `name`, a hwmon label) may be longer: SCMI 3.1
# extended names carry up to 63 bytes, and the 16-byte field then holds a truncated copy.
MAX_EXTENDED_NAME_LENGTH = 63
# Unit exponents travel as 5-bit two's complement numbers.
MIN_EXPONENT = -16
MAX_EXPONENT = 15


class Unit(IntEnum):
    """Physical units; the values are the sensor-type codes of the SCMI specification.

    Codes as in ARM DEN0056 (Sensor Management protocol, sensor types) and Linux's
    `enum scmi_sensor_class` in include/linux/scmi_protocol.h.
    """

    NONE = 0x00
    UNSPECIFIED = 0x01
    DEGREES_C = 0x02
    DEGREES_F = 0x03
    KELVIN = 0x04
    VOLTS = 0x05
    AMPS = 0x06
    WATTS = 0x07
    JOULES = 0x08
    COULOMBS = 0x09
    VOLT_AMPERES = 0x0A
    NITS = 0x0B
    LUMENS = 0x0C
    LUX = 0x0D
    CANDELAS = 0x0E
    KILOPASCALS = 0x0F
    PSI = 0x10
    NEWTONS = 0x11
    CFM = 0x12
    RPM = 0x13
    HERTZ = 0x14
    SECONDS = 0x15
    MINUTES = 0x16
    HOURS = 0x17
    DAYS = 0x18
    WEEKS = 0x19
    MILS = 0x1A
    INCHES = 0x1B
    FEET = 0x1C
    CUBIC_INCHES = 0x1D
    CUBIC_FEET = 0x1E
    METERS = 0x1F
    CUBIC_CENTIMETERS = 0x20
    CUBIC_METERS = 0x21
    LITERS = 0x22
    FLUID_OUNCES = 0x23
    RADIANS = 0x24
    STERADIANS = 0x25
    REVOLUTIONS = 0x26
    CYCLES = 0x27
    GRAVITIES = 0x28
    OUNCES = 0x29
    POUNDS = 0x2A
    FOOT_POUNDS = 0x2B
    OUNCE_INCHES = 0x2C
    GAUSS = 0x2D
    GILBERTS = 0x2E
    HENRIES = 0x2F
    FARADS = 0x30
    OHMS = 0x31
    SIEMENS = 0x32
    MOLES = 0x33
    BECQUERELS = 0x34
    PPM = 0x35
    DECIBELS = 0x36
    DBA = 0x37
    DBC = 0x38
    GRAYS = 0x39
    SIEVERTS = 0x3A
    COLOR_TEMPERATURE_K = 0x3B
    BITS = 0x3C
    BYTES = 0x3D
    WORDS = 0x3E
    DWORDS = 0x3F
    QWORDS = 0x40
    PERCENTAGE = 0x41
    PASCALS = 0x42
    COUNTS = 0x43
    GRAMS = 0x44
    NEWTON_METERS = 0x45
    HITS = 0x46
    MISSES = 0x47
    RETRIES = 0x48
    OVERRUNS = 0x49
    UNDERRUNS = 0x4A
    COLLISIONS = 0x4B
    PACKETS = 0x4C
    MESSAGES = 0x4D
    CHARACTERS = 0x4E
    ERRORS = 0x4F
    CORRECTED_ERRORS = 0x50
    UNCORRECTABLE_ERRORS = 0x51
    SQUARE_MILS = 0x52
    SQUARE_INCHES = 0x53
    SQUARE_FEET = 0x54
    SQUARE_CENTIMETERS = 0x55
    SQUARE_METERS = 0x56
    RADIANS_PER_SECOND = 0x57
    BEATS_PER_MINUTE = 0x58
    METERS_PER_SECOND_SQUARED = 0x59
    METERS_PER_SECOND = 0x5A
    CUBIC_METERS_PER_SECOND = 0x5B
    MILLIMETERS_OF_MERCURY = 0x5C
    RADIANS_PER_SECOND_SQUARED = 0x5D
    OEM = 0xFF


# Records as named tuples rather than dataclasses: every start-up imports this module,
# and dataclasses would bring in inspect (and ast, dis) for nothing.
class ExtendedAttributes(namedtuple("ExtendedAttributes", [
        "resolution", "resolution_exponent", "min_value", "max_value"])):
    """What SCMI calls a sensor's or axis's extended attributes (all int).

    `resolution` x 10**`resolution_exponent` is the smallest step of a value in the
    unit (`resolution` < 2**27); `min_value` and `max_value` bound the values `read()`
    returns (before the unit exponent is applied), as signed 64-bit integers.
    """

    __slots__ = ()


class Axis(namedtuple("Axis", ["name", "unit", "exponent", "extended"],
                      defaults=(0, None))):
    """One axis of a vector sensor: its `name`, `unit` (a Unit), decimal `exponent`
    (default 0) and `extended` attributes (ExtendedAttributes or None)."""

    __slots__ = ()


class Sensor(Resource):
    """A readable host sensor."""

    #: Unit and decimal exponent of the values of a scalar sensor.
    unit: Unit = Unit.UNSPECIFIED
    exponent: int = 0
    #: Resolution and range of a scalar sensor, when known.
    extended: ExtendedAttributes | None = None
    #: Axes of a vector sensor; empty for a scalar sensor.
    axes: tuple[Axis, ...] = ()
    #: Offer asynchronous reads (an agent then gets the reading later, in a delayed
    #: response): for devices slow to read (a spec's `async=on`).
    asynchronous: bool = False

    @abc.abstractmethod
    def read(self) -> Sequence[int]:
        """Return the current value of each axis (one value for a scalar sensor).

        Raises DeviceError when the host device cannot be read.
        """


def check_name(name: str) -> str:
    """Return `name` if it fits an SCMI name field, else raise DeviceSpecError."""
    if len(name.encode()) > MAX_NAME_LENGTH:
        raise DeviceSpecError(f"name '{name}' is longer than {MAX_NAME_LENGTH} bytes")
    return name


def fit_name(name: str, limit: int = MAX_EXTENDED_NAME_LENGTH) -> str:
    """Return `name` cut to at most `limit` bytes of UTF-8, never inside a character."""
    encoded = name.encode()
    if len(encoded) <= limit:
        return name
    return encoded[:limit].decode(errors="ignore")
