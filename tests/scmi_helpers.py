# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Helpers for the SCMI tests: request/response bytes and scripted sensors."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from vhost_scmi.devices.sensor import Axis, DeviceError, ExtendedAttributes, Sensor, Unit

BASE = 0x10
SENSOR = 0x15
#: What Linux's virtio transport offers for a response: header, status, 128 bytes.
LINUX_RESPONSE = 136


def header(protocol: int, message: int, token: int = 0, message_type: int = 0) -> int:
    """The 32-bit SCMI header, built independently of the codec under test."""
    return message | message_type << 8 | protocol << 10 | token << 18


def command(protocol: int, message: int, *params: int, token: int = 0) -> bytes:
    """A command with u32 parameters."""
    return struct.pack(f"<I{len(params)}I", header(protocol, message, token), *params)


def response(protocol: int, message: int, status: int, payload: bytes = b"",
             token: int = 0) -> bytes:
    """The response a platform must give: the command's header, status, payload."""
    return struct.pack("<Ii", header(protocol, message, token), status) + payload


def u32s(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def name16(name: str) -> bytes:
    return name.encode().ljust(16, b"\0")


def reading(*pairs: tuple[int, int]) -> bytes:
    """Readings as (value, timestamp) pairs: s64 value, u64 timestamp each."""
    return b"".join(struct.pack("<qQ", value, timestamp) for value, timestamp in pairs)


class ScriptedSensor(Sensor):
    """A sensor returning scripted values; an exception in the script is raised."""

    def __init__(self, name: str, values: Iterable[Sequence[int] | Exception] = (),
                 unit: Unit = Unit.DEGREES_C, exponent: int = 0,
                 axes: tuple[Axis, ...] = (),
                 extended: ExtendedAttributes | None = None) -> None:
        self.name = name
        self.unit = unit
        self.exponent = exponent
        self.axes = axes
        self.extended = extended
        self.script = list(values)
        self.reads = 0

    def read(self) -> Sequence[int]:
        self.reads += 1
        if not self.script:
            raise DeviceError("script exhausted")
        value = self.script.pop(0)
        if isinstance(value, Exception):
            raise value
        return value
