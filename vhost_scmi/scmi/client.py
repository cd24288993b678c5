# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""A transport-free SCMI agent: builds requests, checks and parses responses and events.

`ScmiClient(transact)` sends each request through `transact(request) -> response`
(a Dispatcher, a virtqueue, anything) and returns parsed results; a non-SUCCESS
status raises `ScmiStatusError`, a malformed response `ScmiProtocolError`.
`parse_event` decodes event-queue messages (notifications, delayed responses).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from vhost_scmi.devices.sensor import ExtendedAttributes
from vhost_scmi.scmi.base import BaseMessage, BaseNotification
from vhost_scmi.scmi.codec import pack_header, unpack_header
from vhost_scmi.scmi.protocol import U32, U32X2, U32X3, sign_extend
from vhost_scmi.scmi.sensor import SensorBits, SensorMessage, SensorNotification
from vhost_scmi.scmi.status import CommonMessage, MessageType, ProtocolId, Status

#: Most requests one paginated query makes before giving up on the platform.
MAX_PAGES = 4096


class ScmiProtocolError(Exception):
    """The platform's answer does not follow the protocol."""


class ScmiStatusError(Exception):
    """The platform answered with a status other than SUCCESS."""

    def __init__(self, status: int, message: str) -> None:
        try:
            name = Status(status).name
        except ValueError:
            name = str(status)
        super().__init__(f"{message}: {name}")
        self.status = status


@dataclass(frozen=True)
class Reading:
    """One axis (or the scalar) of a sensor reading."""

    value: int
    timestamp: int


class _UnitAttributes:
    """Unit and exponent, as sensor and axis descriptors both encode them."""

    attributes_high: int

    @property
    def unit(self) -> int:
        return self.attributes_high & 0xFF

    @property
    def exponent(self) -> int:
        return sign_extend(self.attributes_high >> SensorBits.UNIT_EXPONENT, 5)


@dataclass(frozen=True)
class SensorDescription(_UnitAttributes):
    """A sensor descriptor from SENSOR_DESCRIPTION_GET."""

    id: int
    name: str
    attributes_low: int
    attributes_high: int
    #: Power (microwatts) and resolution/range, when the descriptor has extended attributes.
    power: int | None
    extended: ExtendedAttributes | None

    @property
    def axis_count(self) -> int:
        if not self.attributes_high >> SensorBits.AXES & 1:
            return 0
        return self.attributes_high >> SensorBits.AXIS_COUNT & 0x3F

    @property
    def trip_points(self) -> int:
        return self.attributes_low & 0xFF

    @property
    def async_read(self) -> bool:
        return bool(self.attributes_low >> SensorBits.ASYNC_READ & 1)

    @property
    def continuous_update(self) -> bool:
        return bool(self.attributes_low >> SensorBits.CONTINUOUS_UPDATE & 1)

    @property
    def extended_name(self) -> bool:
        return bool(self.attributes_low >> SensorBits.EXTENDED_NAME & 1)

    @property
    def timestamped(self) -> bool:
        return bool(self.attributes_low >> SensorBits.TIMESTAMP & 1)

    @property
    def timestamp_exponent(self) -> int:
        return sign_extend(self.attributes_low >> SensorBits.TIMESTAMP_EXPONENT, 5)


@dataclass(frozen=True)
class AxisDescription(_UnitAttributes):
    """An axis descriptor from SENSOR_AXIS_DESCRIPTION_GET."""

    id: int
    name: str
    attributes_low: int
    attributes_high: int
    extended: ExtendedAttributes | None

    @property
    def extended_name(self) -> bool:
        return bool(self.attributes_low >> SensorBits.AXIS_EXTENDED_NAME & 1)


@dataclass(frozen=True)
class SensorUpdate:
    """SENSOR_UPDATE notification."""

    agent_id: int
    sensor_id: int
    readings: tuple[Reading, ...]


@dataclass(frozen=True)
class TripPointEvent:
    """SENSOR_TRIP_POINT_EVENT notification."""

    agent_id: int
    sensor_id: int
    trip_point_id: int
    #: True when the value rose to the trip point or above, False when it fell below.
    upward: bool


@dataclass(frozen=True)
class DelayedReading:
    """Delayed response to an asynchronous SENSOR_READING_GET."""

    token: int
    status: int
    sensor_id: int | None
    readings: tuple[Reading, ...]


@dataclass(frozen=True)
class BaseErrorEvent:
    """BASE_ERROR_EVENT notification."""

    agent_id: int
    fatal: bool
    headers: tuple[int, ...]


Event = SensorUpdate | TripPointEvent | DelayedReading | BaseErrorEvent


def _name(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode(errors="replace")


def _readings(data: bytes) -> tuple[Reading, ...]:
    if len(data) % 16:
        raise ScmiProtocolError(f"readings of {len(data)} bytes, not a multiple of 16")
    return tuple(Reading(value, timestamp)
                 for value, timestamp in struct.iter_unpack("<qQ", data))


def _extended(data: bytes, offset: int) -> ExtendedAttributes:
    resolution, minimum, maximum = struct.unpack_from("<Iqq", data, offset)
    return ExtendedAttributes(resolution & ((1 << 27) - 1),
                              sign_extend(resolution >> SensorBits.RESOLUTION_EXPONENT, 5),
                              minimum, maximum)


def parse_event(message: bytes) -> Event:
    """Decode an event-queue message: a notification or a delayed response."""
    if len(message) < 4:
        raise ScmiProtocolError(f"event of {len(message)} bytes")
    (header,) = U32.unpack_from(message)
    message_id, message_type, protocol_id, token = unpack_header(header)
    try:
        if message_type == MessageType.NOTIFICATION:
            if protocol_id == ProtocolId.SENSOR:
                if message_id == SensorNotification.SENSOR_UPDATE:
                    agent_id, sensor_id = U32X2.unpack_from(message, 4)
                    return SensorUpdate(agent_id, sensor_id, _readings(message[12:]))
                if message_id == SensorNotification.TRIP_POINT_EVENT:
                    agent_id, sensor_id, description = U32X3.unpack_from(message, 4)
                    return TripPointEvent(agent_id, sensor_id, description & 0xFF,
                                          bool(description >> SensorBits.TRIP_DIRECTION_UP & 1))
            if protocol_id == ProtocolId.BASE and message_id == BaseNotification.BASE_ERROR_EVENT:
                agent_id, status = U32X2.unpack_from(message, 4)
                count = status & 0x3FF
                headers = struct.unpack_from(f"<{count}Q", message, 12)
                return BaseErrorEvent(agent_id, bool(status >> 31), headers)
        elif (message_type == MessageType.DELAYED_RESPONSE and protocol_id == ProtocolId.SENSOR
              and message_id == SensorMessage.READING_GET):
            (status,) = struct.unpack_from("<i", message, 4)
            if status != Status.SUCCESS:
                return DelayedReading(token, status, None, ())
            (sensor_id,) = U32.unpack_from(message, 8)
            return DelayedReading(token, status, sensor_id, _readings(message[12:]))
    except struct.error as err:
        raise ScmiProtocolError(f"truncated event {message.hex()}") from err
    raise ScmiProtocolError(f"unknown event {header:#010x}")


class ScmiClient:
    """An SCMI agent speaking through `transact(request) -> response`."""

    def __init__(self, transact: Callable[[bytes], bytes]) -> None:
        self._transact = transact
        self._token = 0
        #: Token of the last request sent (delayed responses carry it).
        self.last_token = 0

    # Generic requests

    def request(self, protocol_id: int, message_id: int, payload: bytes = b"") -> bytes:
        """Send a command; return the response payload after a SUCCESS status."""
        token = self._token
        self._token = (token + 1) & 0x3FF
        self.last_token = token
        header = pack_header(message_id, MessageType.COMMAND, protocol_id, token)
        response = self._transact(U32.pack(header) + payload)
        if len(response) < 8:
            raise ScmiProtocolError(f"response of {len(response)} bytes to {header:#010x}")
        got, status = struct.unpack_from("<Ii", response)
        if got != header:
            raise ScmiProtocolError(f"response header {got:#010x} to {header:#010x}")
        if status != Status.SUCCESS:
            raise ScmiStatusError(status, f"protocol {protocol_id:#x} message {message_id:#x}")
        return response[8:]

    def _u32(self, protocol_id: int, message_id: int, payload: bytes = b"") -> int:
        data = self.request(protocol_id, message_id, payload)
        if len(data) < 4:
            raise ScmiProtocolError(f"payload of {len(data)} bytes, expected 4")
        return U32.unpack_from(data)[0]

    def protocol_version(self, protocol_id: int) -> int:
        """PROTOCOL_VERSION: major << 16 | minor."""
        return self._u32(protocol_id, CommonMessage.PROTOCOL_VERSION)

    def message_attributes(self, protocol_id: int, message_id: int) -> int:
        """PROTOCOL_MESSAGE_ATTRIBUTES of one message (ScmiStatusError NOT_FOUND if absent)."""
        return self._u32(protocol_id, CommonMessage.PROTOCOL_MESSAGE_ATTRIBUTES,
                         U32.pack(message_id))

    # Base protocol

    def base_version(self) -> int:
        return self.protocol_version(ProtocolId.BASE)

    def base_attributes(self) -> tuple[int, int]:
        """Return (number of agents, number of protocols besides Base)."""
        attributes = self._u32(ProtocolId.BASE, CommonMessage.PROTOCOL_ATTRIBUTES)
        return attributes >> 8 & 0xFF, attributes & 0xFF

    def _string(self, protocol_id: int, message_id: int, size: int = 16) -> str:
        data = self.request(protocol_id, message_id)
        if len(data) < size:
            raise ScmiProtocolError(f"name of {len(data)} bytes, expected {size}")
        return _name(data[:size])

    def vendor(self) -> str:
        return self._string(ProtocolId.BASE, BaseMessage.DISCOVER_VENDOR)

    def sub_vendor(self) -> str:
        return self._string(ProtocolId.BASE, BaseMessage.DISCOVER_SUB_VENDOR)

    def implementation_version(self) -> int:
        return self._u32(ProtocolId.BASE, BaseMessage.DISCOVER_IMPLEMENTATION_VERSION)

    def list_protocols(self) -> list[int]:
        """DISCOVER_LIST_PROTOCOLS, asked again with a growing skip until complete."""
        _, total = self.base_attributes()
        protocols: list[int] = []
        for _ in range(MAX_PAGES):
            if len(protocols) >= total:
                return protocols
            data = self.request(ProtocolId.BASE, BaseMessage.DISCOVER_LIST_PROTOCOLS,
                                U32.pack(len(protocols)))
            (count,) = U32.unpack_from(data)
            if count == 0 or len(data) < 4 + count:
                raise ScmiProtocolError(f"list of {count} protocols in {len(data)} bytes")
            protocols.extend(data[4:4 + count])
        raise ScmiProtocolError("protocol list does not end")

    def discover_agent(self, agent_id: int) -> tuple[int, str]:
        """DISCOVER_AGENT: (agent id, name)."""
        data = self.request(ProtocolId.BASE, BaseMessage.DISCOVER_AGENT, U32.pack(agent_id))
        if len(data) < 20:
            raise ScmiProtocolError(f"agent description of {len(data)} bytes")
        return U32.unpack_from(data)[0], _name(data[4:20])

    def notify_errors(self, enable: bool) -> None:
        self.request(ProtocolId.BASE, BaseMessage.NOTIFY_ERRORS, U32.pack(int(enable)))

    def reset_agent_configuration(self, agent_id: int, flags: int = 0) -> None:
        self.request(ProtocolId.BASE, BaseMessage.RESET_AGENT_CONFIGURATION,
                     U32X2.pack(agent_id, flags))

    # Sensor Management protocol

    def sensor_version(self) -> int:
        return self.protocol_version(ProtocolId.SENSOR)

    def sensor_count(self) -> int:
        """PROTOCOL_ATTRIBUTES: the number of sensors."""
        data = self.request(ProtocolId.SENSOR, CommonMessage.PROTOCOL_ATTRIBUTES)
        if len(data) < 16:
            raise ScmiProtocolError(f"sensor attributes of {len(data)} bytes")
        return int.from_bytes(data[:2], "little")

    def sensor_descriptions(self) -> list[SensorDescription]:
        """SENSOR_DESCRIPTION_GET for every sensor, page after page."""
        total = self.sensor_count()
        sensors: list[SensorDescription] = []
        for _ in range(MAX_PAGES):
            if len(sensors) >= total:
                return sensors
            data = self.request(ProtocolId.SENSOR, SensorMessage.DESCRIPTION_GET,
                                U32.pack(len(sensors)))
            (flags,) = U32.unpack_from(data)
            returned, remaining = flags & 0xFFFF, flags >> 16
            if returned == 0 or len(sensors) + returned + remaining != total:
                raise ScmiProtocolError(f"{returned} descriptors returned, {remaining} "
                                        f"remaining after {len(sensors)} of {total}")
            offset = 4
            for _ in range(returned):
                sensor_id, low, high = struct.unpack_from("<III", data, offset)
                name = _name(data[offset + 12:offset + 28])
                offset += 28
                power = extended = None
                if low >> SensorBits.EXTENDED_ATTRIBUTES & 1:
                    (power,) = U32.unpack_from(data, offset)
                    offset += 4
                    if not high >> SensorBits.AXES & 1:
                        extended = _extended(data, offset)
                        offset += 20
                sensors.append(SensorDescription(sensor_id, name, low, high, power, extended))
            if offset > len(data):
                raise ScmiProtocolError("descriptors overrun the response")
        raise ScmiProtocolError("sensor list does not end")

    def axis_descriptions(self, sensor_id: int) -> list[AxisDescription]:
        """SENSOR_AXIS_DESCRIPTION_GET for every axis of a sensor, page after page."""
        axes: list[AxisDescription] = []
        for _ in range(MAX_PAGES):
            data = self.request(ProtocolId.SENSOR, SensorMessage.AXIS_DESCRIPTION_GET,
                                U32X2.pack(sensor_id, len(axes)))
            (flags,) = U32.unpack_from(data)
            returned, remaining = flags & 0x3F, flags >> 26
            if returned == 0:
                raise ScmiProtocolError("no axis returned")
            offset = 4
            for _ in range(returned):
                axis_id, low, high = struct.unpack_from("<III", data, offset)
                name = _name(data[offset + 12:offset + 28])
                offset += 28
                extended = None
                if low >> SensorBits.EXTENDED_ATTRIBUTES & 1:
                    extended = _extended(data, offset)
                    offset += 20
                axes.append(AxisDescription(axis_id, name, low, high, extended))
            if offset > len(data):
                raise ScmiProtocolError("descriptors overrun the response")
            if not remaining:
                return axes
        raise ScmiProtocolError("axis list does not end")

    def update_intervals(self, sensor_id: int) -> tuple[bool, list[tuple[int, int]]]:
        """SENSOR_LIST_UPDATE_INTERVALS: (segmented, [(seconds, exponent), ...])."""
        intervals: list[tuple[int, int]] = []
        segmented = False
        for _ in range(MAX_PAGES):
            data = self.request(ProtocolId.SENSOR, SensorMessage.LIST_UPDATE_INTERVALS,
                                U32X2.pack(sensor_id, len(intervals)))
            (flags,) = U32.unpack_from(data)
            returned, remaining = flags & 0xFFF, flags >> 16
            segmented = bool(flags >> 12 & 1)
            if returned == 0 or len(data) < 4 + 4 * returned:
                raise ScmiProtocolError(f"{returned} intervals in {len(data)} bytes")
            for (entry,) in struct.iter_unpack("<I", data[4:4 + 4 * returned]):
                intervals.append((entry >> 5 & 0xFFFF, sign_extend(entry, 5)))
            if not remaining:
                return segmented, intervals
        raise ScmiProtocolError("interval list does not end")

    def read(self, sensor_id: int) -> list[Reading]:
        """SENSOR_READING_GET, synchronous: one reading per axis (one for a scalar)."""
        data = self.request(ProtocolId.SENSOR, SensorMessage.READING_GET,
                            U32X2.pack(sensor_id, 0))
        return list(_readings(data))

    def read_async(self, sensor_id: int) -> int:
        """Start an asynchronous SENSOR_READING_GET; return the token of its delayed response."""
        self.request(ProtocolId.SENSOR, SensorMessage.READING_GET, U32X2.pack(sensor_id, 1))
        return self.last_token

    def config_get(self, sensor_id: int) -> int:
        return self._u32(ProtocolId.SENSOR, SensorMessage.CONFIG_GET, U32.pack(sensor_id))

    def config_set(self, sensor_id: int, config: int) -> None:
        self.request(ProtocolId.SENSOR, SensorMessage.CONFIG_SET, U32X2.pack(sensor_id, config))

    @contextmanager
    def sensor_enabled(self, sensor_id: int) -> Iterator[None]:
        """Have `sensor_id` enabled inside the block, as Linux's scmi_iio enables a sensor
        before reading it (some platforms refuse SENSOR_READING_GET on a disabled one);
        afterwards its previous configuration is restored if it was changed. A platform
        without SENSOR_CONFIG_GET/SET (NOT_SUPPORTED) leaves the sensor as it is."""
        try:
            config = self.config_get(sensor_id)
        except ScmiStatusError as error:
            if error.status != Status.NOT_SUPPORTED:
                raise
            config = None
        changed = config is not None and not config & 1 << SensorBits.ENABLED
        if changed:
            self.config_set(sensor_id, config | 1 << SensorBits.ENABLED)
        try:
            yield
        except BaseException:
            if changed:  # best effort: the block's error is the one to report
                with suppress(Exception):
                    self.config_set(sensor_id, config)
            raise
        if changed:
            self.config_set(sensor_id, config)

    def continuous_update_notify(self, sensor_id: int, enable: bool) -> None:
        self.request(ProtocolId.SENSOR, SensorMessage.CONTINUOUS_UPDATE_NOTIFY,
                     U32X2.pack(sensor_id, int(enable)))

    def trip_point_notify(self, sensor_id: int, enable: bool) -> None:
        self.request(ProtocolId.SENSOR, SensorMessage.TRIP_POINT_NOTIFY,
                     U32X2.pack(sensor_id, int(enable)))

    def trip_point_config(self, sensor_id: int, trip_point_id: int, direction: int,
                          value: int) -> None:
        """SENSOR_TRIP_POINT_CONFIG; direction 0 off, 1 upward, 2 downward, 3 both."""
        control = (trip_point_id & 0xFF) << SensorBits.TRIP_POINT_ID | (direction & 0x3)
        raw = value & (1 << 64) - 1
        self.request(ProtocolId.SENSOR, SensorMessage.TRIP_POINT_CONFIG,
                     struct.pack("<IIII", sensor_id, control, raw & 0xFFFFFFFF, raw >> 32))

    def sensor_name(self, sensor_id: int) -> str:
        """SENSOR_NAME_GET: the extended name."""
        data = self.request(ProtocolId.SENSOR, SensorMessage.NAME_GET, U32.pack(sensor_id))
        if len(data) < 68:
            raise ScmiProtocolError(f"extended name of {len(data)} bytes")
        return _name(data[4:68])

    def axis_names(self, sensor_id: int) -> dict[int, str]:
        """SENSOR_AXIS_NAME_GET: the extended names of the axes that have one."""
        names: dict[int, str] = {}
        start = 0
        for _ in range(MAX_PAGES):
            data = self.request(ProtocolId.SENSOR, SensorMessage.AXIS_NAME_GET,
                                U32X2.pack(sensor_id, start))
            (flags,) = U32.unpack_from(data)
            returned, remaining = flags & 0x3F, flags >> 26
            if len(data) < 4 + 68 * returned:
                raise ScmiProtocolError(f"{returned} axis names in {len(data)} bytes")
            for index in range(returned):
                offset = 4 + 68 * index
                (axis_id,) = U32.unpack_from(data, offset)
                names[axis_id] = _name(data[offset + 4:offset + 68])
                start = axis_id + 1
            if not remaining:
                return names
            if not returned:
                raise ScmiProtocolError("no axis name returned")
        raise ScmiProtocolError("axis name list does not end")
