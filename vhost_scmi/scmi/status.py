# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Constants shared by every SCMI protocol: status codes, message types, protocol ids."""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """Status word (int32) at the start of every response payload."""

    SUCCESS = 0
    NOT_SUPPORTED = -1
    INVALID_PARAMETERS = -2
    DENIED = -3
    NOT_FOUND = -4
    OUT_OF_RANGE = -5
    BUSY = -6
    COMMS_ERROR = -7
    GENERIC_ERROR = -8
    HARDWARE_ERROR = -9
    PROTOCOL_ERROR = -10


class MessageType(IntEnum):
    """Header bits 9:8."""

    COMMAND = 0
    DELAYED_RESPONSE = 2
    NOTIFICATION = 3


class ProtocolId(IntEnum):
    """Header bits 17:10."""

    BASE = 0x10
    POWER_DOMAIN = 0x11
    SYSTEM_POWER = 0x12
    PERFORMANCE = 0x13
    CLOCK = 0x14
    SENSOR = 0x15
    RESET_DOMAIN = 0x16
    VOLTAGE_DOMAIN = 0x17
    POWERCAP = 0x18


class CommonMessage(IntEnum):
    """Message ids every protocol implements."""

    PROTOCOL_VERSION = 0x0
    PROTOCOL_ATTRIBUTES = 0x1
    PROTOCOL_MESSAGE_ATTRIBUTES = 0x2


class ScmiError(Exception):
    """Raised by a message handler to answer with `status` and no payload."""

    def __init__(self, status: Status, reason: str = "") -> None:
        super().__init__(reason or status.name)
        self.status = status
