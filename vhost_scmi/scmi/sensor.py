# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""SCMI Sensor Management protocol (0x15), version 3.1.

Sensor ids are the indexes of the sensors given to the dispatcher (command-line order).

Behaviour chosen where the specification leaves it to the platform:

- READING_GET always samples the host device, whatever the sensor's enabled state:
  Linux's scmi-hwmon reads without enabling, scmi_iio enables around each read.
  "Enabled" governs what the platform does on its own: SENSOR_UPDATE notifications
  and trip-point monitoring run only for enabled sensors.
- Scalar sensors start enabled (hwmon-style consumers never enable them); vector
  sensors start disabled, so scmi_iio's probe, which subscribes to SENSOR_UPDATE,
  does not start a stream of readings before it enables the sensor.
- Sensors offer the update intervals in UPDATE_INTERVALS (1 ms to 1 s, default 100 ms);
  CONFIG_SET picks one of them with the rounding the agent asks for. Periodic work keeps
  its rate: each period is counted from the previous due time, not from when the work
  ran, and a loop that fell behind catches up, MAX_BURST samples per wake-up (further
  behind than MAX_CATCH_UP periods, the schedule restarts from now).
- Timestamps are nanoseconds of the host's CLOCK_MONOTONIC (exponent -9), reported
  when the agent turns timestamp reporting on.
- Asynchronous reads (answered by a delayed response on the event queue) are
  advertised, and accepted, only for sensors whose device spec says `async=on`: Linux
  reads such a sensor asynchronously, every time. Others answer an asynchronous
  READING_GET with NOT_SUPPORTED.
- A sensor whose device may block (`Resource.blocking`) is read off the event loop
  (`HostCall`): its READING_GET completes when the device answers; a device that does
  not answer by the executor's deadline gets HARDWARE_ERROR. Its periodic reads skip a
  period while the previous read is still in flight.
- Scalar sensors have TRIP_POINTS trip points, vector sensors none.
- Notifications carry agent id 0: the platform generated them.
"""

from __future__ import annotations

import logging
import time
from collections import namedtuple
from collections.abc import Coroutine, Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: start-up does without fractions (and decimal)
    from fractions import Fraction

from vhost_scmi.devices.sensor import (
    MAX_EXPONENT,
    MIN_EXPONENT,
    DeviceError,
    ExtendedAttributes,
    Sensor,
    Unit,
)
from vhost_scmi.platform.host import HostCall
from vhost_scmi.scmi.codec import (
    ok_response,
    pack_header,
    pack_reading_response,
    pack_readings,
    u32_at,
)
from vhost_scmi.scmi.protocol import (
    HEADER_STATUS,
    MAX_PAYLOAD,
    U32,
    U32X2,
    U32X3,
    Message,
    Platform,
    Protocol,
    has_long_name,
    ok,
    pack_name,
    sign_extend,
    status_only,
    warn_limited,
)
from vhost_scmi.scmi.status import MessageType, ProtocolId, ScmiError, Status

log = logging.getLogger(__name__)

#: Sensor Management 3.1: 3.0 plus the extended-name messages.
VERSION = 0x30001
#: Bytes of an event-queue message: Linux posts 136-byte buffers.
MAX_EVENT_LENGTH = 136
#: Trip points of each scalar sensor.
TRIP_POINTS = 4
#: Outstanding asynchronous reads the platform accepts (PROTOCOL_ATTRIBUTES).
MAX_PENDING_READS = 16
#: Notifications kept waiting for the event queue before new ones are dropped.
MAX_PENDING_EVENTS = 64
#: Timestamps count nanoseconds: 10**-9 seconds.
TIMESTAMP_EXPONENT = -9
#: Extended names (SENSOR_NAME_GET, SENSOR_AXIS_NAME_GET) are 64-byte fields.
EXTENDED_NAME_SIZE = 64
#: Most late periods of one sensor made up after the loop fell behind; further behind,
#: its schedule restarts from now.
MAX_CATCH_UP = 20
#: Most of those made up in one wake-up (the agent's notification queue is finite).
MAX_BURST = 4


class SensorMessage(IntEnum):
    """Sensor Management message ids."""

    DESCRIPTION_GET = 0x3
    TRIP_POINT_NOTIFY = 0x4
    TRIP_POINT_CONFIG = 0x5
    READING_GET = 0x6
    AXIS_DESCRIPTION_GET = 0x7
    LIST_UPDATE_INTERVALS = 0x8
    CONFIG_GET = 0x9
    CONFIG_SET = 0xA
    CONTINUOUS_UPDATE_NOTIFY = 0xB
    NAME_GET = 0xC
    AXIS_NAME_GET = 0xD


class SensorNotification(IntEnum):
    """Sensor Management notification ids."""

    TRIP_POINT_EVENT = 0x0
    SENSOR_UPDATE = 0x1


class SensorBits(IntEnum):
    """Bit positions in sensor and axis descriptors, configurations and requests."""

    # Sensor attributes_low
    ASYNC_READ = 31
    CONTINUOUS_UPDATE = 30
    EXTENDED_NAME = 29
    TIMESTAMP_EXPONENT = 10  # 5 bits
    TIMESTAMP = 9
    EXTENDED_ATTRIBUTES = 8
    # Sensor attributes_high
    AXIS_COUNT = 16  # 6 bits
    UNIT_EXPONENT = 11  # 5 bits
    AXES = 8
    # Axis attributes_low
    AXIS_EXTENDED_NAME = 9
    # Sensor configuration
    UPDATE_SECONDS = 16  # 16 bits
    UPDATE_EXPONENT = 11  # 5 bits
    ROUNDING = 9  # 2 bits, CONFIG_SET only
    TIMESTAMP_ENABLED = 1
    ENABLED = 0
    # Resolution field
    RESOLUTION_EXPONENT = 27  # 5 bits; bits 26:0 the resolution
    # Trip point event control (TRIP_POINT_CONFIG), trip point description (event)
    TRIP_POINT_ID = 4  # 8 bits
    TRIP_DIRECTION_UP = 16


class Rounding(IntEnum):
    """CONFIG_SET bits 10:9: how to pick an update interval the sensor lacks."""

    DOWN = 0
    UP = 1
    AUTO = 2


class TripDirection(IntEnum):
    """TRIP_POINT_CONFIG bits 1:0: which crossings raise an event."""

    DISABLED = 0
    UP = 1
    DOWN = 2
    BOTH = 3


#: CONFIG_SET bits that must be zero (8:2).
CONFIG_RESERVED = 0x1FC
#: TRIP_POINT_CONFIG event-control bits that must be zero (31:12, 3:2).
TRIP_CONTROL_RESERVED = 0xFFFFF00C


class UpdateInterval(namedtuple("UpdateInterval", ["seconds", "exponent"])):
    """An update interval of `seconds` x 10**`exponent` seconds (a named tuple: a
    dataclass would cost every start-up its import of inspect)."""

    __slots__ = ()

    @property
    def value(self) -> Fraction:
        """The interval in seconds, exactly."""
        from fractions import Fraction

        return Fraction(self.seconds) * Fraction(10) ** self.exponent

    @property
    def period(self) -> float:
        """The interval in seconds as the nearest float (as float(value), without fractions)."""
        if self.exponent < 0:
            return self.seconds / 10 ** -self.exponent  # one correctly rounded division
        return float(self.seconds * 10 ** self.exponent)

    def list_entry(self) -> int:
        """Return the LIST_UPDATE_INTERVALS encoding: bits 20:5 seconds, 4:0 exponent."""
        return self.seconds << 5 | (self.exponent & 0x1F)

    def config_bits(self) -> int:
        """Return the CONFIG_GET/SET encoding: bits 31:16 seconds, 15:11 exponent."""
        return (self.seconds << SensorBits.UPDATE_SECONDS
                | (self.exponent & 0x1F) << SensorBits.UPDATE_EXPONENT)


#: Update intervals every sensor offers, shortest first.
UPDATE_INTERVALS = (
    UpdateInterval(1, -3),
    UpdateInterval(2, -3),
    UpdateInterval(5, -3),
    UpdateInterval(10, -3),
    UpdateInterval(20, -3),
    UpdateInterval(50, -3),
    UpdateInterval(100, -3),
    UpdateInterval(200, -3),
    UpdateInterval(500, -3),
    UpdateInterval(1, 0),
)
DEFAULT_INTERVAL = UpdateInterval(100, -3)


def choose_interval(requested: Fraction, rounding: Rounding) -> UpdateInterval:
    """Return the offered interval `rounding` picks for `requested` seconds.

    DOWN takes the longest interval not above the request, UP the shortest not below
    it, AUTO the nearest (the shorter on a tie); out of range, the nearest end.
    """
    below = [i for i in UPDATE_INTERVALS if i.value <= requested]
    above = [i for i in UPDATE_INTERVALS if i.value >= requested]
    if not below:
        return UPDATE_INTERVALS[0]
    if not above:
        return UPDATE_INTERVALS[-1]
    if rounding == Rounding.DOWN:
        return below[-1]
    if rounding == Rounding.UP:
        return above[0]
    low, high = below[-1], above[0]
    return low if requested - low.value <= high.value - requested else high


def _check_exponent(exponent: int, what: str) -> int:
    if not MIN_EXPONENT <= exponent <= MAX_EXPONENT:
        raise ValueError(f"{what}: exponent {exponent} outside {MIN_EXPONENT}..{MAX_EXPONENT}")
    return exponent & 0x1F


def _extended_fields(extended: ExtendedAttributes, what: str) -> bytes:
    """Return u32 resolution, s64 minimum, s64 maximum (values as u32 low/high pairs)."""
    if not 0 <= extended.resolution < 1 << 27:
        raise ValueError(f"{what}: resolution {extended.resolution} does not fit 27 bits")
    resolution = (_check_exponent(extended.resolution_exponent, what)
                  << SensorBits.RESOLUTION_EXPONENT | extended.resolution)
    return (U32.pack(resolution) + extended.min_value.to_bytes(8, "little", signed=True)
            + extended.max_value.to_bytes(8, "little", signed=True))


def _unit_bits(unit: Unit, exponent: int, what: str) -> int:
    return _check_exponent(exponent, what) << SensorBits.UNIT_EXPONENT | int(unit)


def _read_error(state: _SensorState, err: Exception) -> ScmiError:
    """Log why a sensor could not be read; return the error to answer with."""
    if isinstance(err, DeviceError):
        warn_limited(log, "read", "sensor %d (%s) cannot be read: %s",
                     state.id, state.sensor.name, err)
    else:  # a device kind's bug must not take the daemon down
        log.error("sensor %d (%s) failed", state.id, state.sensor.name, exc_info=err)
    return ScmiError(Status.HARDWARE_ERROR, str(err))


def _value_error(state: _SensorState, values: object) -> ScmiError:
    """Log that a sensor returned unusable values; return the error to answer with."""
    warn_limited(log, "read", "sensor %d (%s) returned unusable values %r (expected %d "
                 "signed 64-bit integers)", state.id, state.sensor.name, values,
                 state.value_count)
    return ScmiError(Status.HARDWARE_ERROR, "unusable values")


class _SensorState:
    """A sensor with its descriptors and the agent's configuration of it."""

    def __init__(self, sensor_id: int, sensor: Sensor) -> None:
        self.id = sensor_id
        self.sensor = sensor
        self.read = sensor.read
        #: Read off the event loop (HostCall on a worker thread).
        self.blocking = sensor.blocking
        self.asynchronous = sensor.asynchronous
        self.axis_count = len(sensor.axes)
        self.value_count = self.axis_count or 1
        self.scalar = not sensor.axes
        self.trip_point_count = TRIP_POINTS if self.scalar else 0
        # A SENSOR_UPDATE (header, agent, sensor, readings) must fit an event buffer.
        self.can_notify = 12 + 16 * self.value_count <= MAX_EVENT_LENGTH
        self.reading_length = 16 * self.value_count
        self.long_name = has_long_name(sensor.name)
        self.descriptor = self._describe()
        self.axis_descriptors = [self._describe_axis(i) for i in range(self.axis_count)]
        self.reset()

    def reset(self) -> None:
        self.enabled = self.scalar
        self.timestamps = False
        self.interval = DEFAULT_INTERVAL
        self.period = DEFAULT_INTERVAL.period
        self.update_notify = False
        self.trip_notify = False
        self.trip_points: list[tuple[TripDirection, int] | None] = [None] * self.trip_point_count
        self.watch_trips = False
        #: Read inline with nothing to watch: the READING_GET fast path.
        self.plain = not self.blocking
        self.last_value: int | None = None
        self.next_due: float | None = None
        #: A periodic read is in flight (blocking sensors).
        self.sampling = False

    def _describe(self) -> bytes:
        sensor, what = self.sensor, f"sensor {self.sensor.name!r}"
        extended = self.scalar and sensor.extended is not None
        low = ((sensor.asynchronous and self.can_notify) << SensorBits.ASYNC_READ
               | self.can_notify << SensorBits.CONTINUOUS_UPDATE
               | self.long_name << SensorBits.EXTENDED_NAME
               | (TIMESTAMP_EXPONENT & 0x1F) << SensorBits.TIMESTAMP_EXPONENT
               | 1 << SensorBits.TIMESTAMP
               | extended << SensorBits.EXTENDED_ATTRIBUTES
               | self.trip_point_count)
        if self.scalar:
            high = _unit_bits(sensor.unit, sensor.exponent, what)
        else:
            if self.axis_count > 63:
                raise ValueError(f"{what}: more than 63 axes")
            # The sensor's own type: its axes' when they share one.
            kinds = {(axis.unit, axis.exponent) for axis in sensor.axes}
            unit, exponent = kinds.pop() if len(kinds) == 1 else (Unit.NONE, 0)
            high = (self.axis_count << SensorBits.AXIS_COUNT | 1 << SensorBits.AXES
                    | _unit_bits(unit, exponent, what))
        descriptor = U32X2.pack(low, high) + pack_name(sensor.name)
        if extended:
            assert sensor.extended is not None
            # u32 power (0: not reported), resolution, range.
            descriptor += U32.pack(0) + _extended_fields(sensor.extended, what)
        return U32.pack(self.id) + descriptor

    def _describe_axis(self, index: int) -> bytes:
        axis = self.sensor.axes[index]
        what = f"axis {axis.name!r} of sensor {self.sensor.name!r}"
        extended = axis.extended is not None
        low = (has_long_name(axis.name) << SensorBits.AXIS_EXTENDED_NAME
               | extended << SensorBits.EXTENDED_ATTRIBUTES)
        descriptor = (U32.pack(index) + U32X2.pack(low, _unit_bits(axis.unit, axis.exponent,
                                                                     what))
                      + pack_name(axis.name))
        if axis.extended is not None:
            descriptor += _extended_fields(axis.extended, what)
        return descriptor

    def config(self) -> int:
        return (self.interval.config_bits()
                | self.timestamps << SensorBits.TIMESTAMP_ENABLED
                | self.enabled << SensorBits.ENABLED)


def _page(items: Sequence[bytes], start: int, room: int) -> list[bytes]:
    """Return items[start:] that fit in `room` bytes, in order (at least none)."""
    chosen: list[bytes] = []
    used = 0
    for item in items[start:]:
        if used + len(item) > room:
            break
        chosen.append(item)
        used += len(item)
    return chosen


class SensorProtocol(Protocol):
    """Sensor Management protocol over the platform's sensors."""

    protocol_id = ProtocolId.SENSOR
    version = VERSION

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform)
        self._states = [_SensorState(i, s) for i, s in enumerate(platform.visible(Sensor))]
        if len(self._states) > 0xFFFF:
            raise ValueError("more than 65535 sensors")
        self._count = len(self._states)
        self._descriptors = [state.descriptor for state in self._states]
        #: DESCRIPTION_GET payloads for a full-size buffer (what Linux always offers),
        #: by first descriptor, built on first use: descriptors never change.
        self._full_description_pages: dict[int, bytes] = {}
        #: Sensors with periodic work (notifications, trip monitoring), by id.
        self._periodic: dict[int, _SensorState] = {}
        #: Asynchronous reads accepted whose delayed response is not yet delivered.
        self._pending_reads = 0
        #: Delayed responses ready for the event queue.
        self._delayed: list[bytes] = []
        #: Notifications ready for the event queue: SENSOR_UPDATE of blocking sensors,
        #: trip-point events.
        self._events: list[bytes] = []
        #: Counts resets: work started before one is dropped when it finishes.
        self._generation = 0
        self._update_header = pack_header(SensorNotification.SENSOR_UPDATE,
                                          MessageType.NOTIFICATION, ProtocolId.SENSOR, 0)
        self._trip_header = pack_header(SensorNotification.TRIP_POINT_EVENT,
                                        MessageType.NOTIFICATION, ProtocolId.SENSOR, 0)
        self.add_messages(
            Message(SensorMessage.DESCRIPTION_GET, self._description_get, 4),
            Message(SensorMessage.TRIP_POINT_NOTIFY, self._trip_point_notify, 8),
            Message(SensorMessage.TRIP_POINT_CONFIG, self._trip_point_config, 16),
            Message(SensorMessage.READING_GET, self._reading_get, 8),
            Message(SensorMessage.AXIS_DESCRIPTION_GET, self._axis_description_get, 8),
            Message(SensorMessage.LIST_UPDATE_INTERVALS, self._list_update_intervals, 8),
            Message(SensorMessage.CONFIG_GET, self._config_get, 4),
            Message(SensorMessage.CONFIG_SET, self._config_set, 8),
            Message(SensorMessage.CONTINUOUS_UPDATE_NOTIFY, self._continuous_update_notify, 8),
            Message(SensorMessage.NAME_GET, self._name_get, 4),
            Message(SensorMessage.AXIS_NAME_GET, self._axis_name_get, 8),
        )

    # Protocol hooks

    def attributes(self) -> bytes:
        # u16 sensors, u8 max pending async requests, u8 reserved, u32 register
        # address low/high and length (no shared register area).
        return (self._count.to_bytes(2, "little") + bytes((MAX_PENDING_READS, 0))
                + bytes(12))

    def reset(self) -> None:
        for state in self._states:
            state.reset()
        self._periodic.clear()
        self._pending_reads = 0
        self._delayed.clear()
        self._events.clear()
        self._generation += 1

    def visible(self) -> bool:
        return bool(self._states)

    def status(self) -> dict[str, object]:
        return {"sensors": [{"id": state.id, "name": state.sensor.name,
                             "enabled": state.enabled, "update_notify": state.update_notify,
                             "trip_notify": state.trip_notify}
                            for state in self._states]}

    def next_deadline(self) -> float | None:
        if self._events or self._delayed:
            return 0.0
        deadline = None
        for state in self._periodic.values():
            due = state.next_due
            if due is not None and (deadline is None or due < deadline):
                deadline = due
        return deadline

    def take_events(self, now: float) -> list[bytes]:
        events: list[bytes] = []
        if self._delayed:
            events.extend(self._delayed)
            self._pending_reads -= len(self._delayed)
            self._delayed.clear()
        # The hot path of a notification stream (one wake-up per period): sampling and
        # packing are inlined for sensors with nothing to watch (`plain`). Nothing here
        # changes _periodic (only handlers and reset do).
        for state in self._periodic.values():
            due = state.next_due
            if due is None or due > now:
                continue
            # Count the periods due, from the schedule, not from now: no drift.
            period = state.period
            late = int((now - due) / period) + 1
            if late == 1:
                state.next_due = due + period
            elif late > MAX_CATCH_UP:
                state.next_due = now + period  # too far behind: start again
                late = 1
            else:
                late = min(late, MAX_BURST)  # the rest at the next wake-up
                state.next_due = due + late * period
            if state.blocking:
                if not state.sampling:
                    state.sampling = True
                    self.platform.spawn(self._sample_off_loop(state, self._generation))
                continue
            plain, notify = state.plain, state.update_notify
            for _ in range(late):
                if plain:
                    try:
                        values = state.read()
                    except Exception as err:
                        _read_error(state, err)
                        break
                    if len(values) != state.value_count:
                        _value_error(state, values)
                        break
                else:
                    try:
                        values = self._sample(state)
                    except ScmiError:
                        break
                if notify:
                    try:
                        event = pack_readings(self._update_header, 0, state.id, 3, values,
                                              time.monotonic_ns() if state.timestamps else 0)
                    except (OverflowError, TypeError, ValueError):
                        _value_error(state, values)
                        event = b""
                    events.append(event)
        if self._events:
            events.extend(self._events)
            self._events.clear()
        return events

    # Sampling and event building

    def _sample(self, state: _SensorState) -> Sequence[int]:
        """Read the sensor, watching its trip points; ScmiError(HARDWARE_ERROR) if it fails."""
        try:
            values = state.read()
        except Exception as err:
            raise _read_error(state, err) from err
        return self._check_values(state, values)

    async def _sample_host(self, state: _SensorState) -> Sequence[int]:
        """`_sample` through a HostCall (off the event loop for a blocking device)."""
        try:
            values = await HostCall(state.sensor, state.read)
        except Exception as err:
            raise _read_error(state, err) from err
        return self._check_values(state, values)

    def _check_values(self, state: _SensorState, values: Sequence[int]) -> Sequence[int]:
        if len(values) != state.value_count:
            raise _value_error(state, values)
        if state.watch_trips:
            self._check_trip_points(state, values[0])
        return values

    async def _sample_off_loop(self, state: _SensorState, generation: int) -> None:
        """One periodic read of a blocking sensor; queues its SENSOR_UPDATE."""
        try:
            values = await self._sample_host(state)
        except ScmiError:
            return
        finally:
            if generation == self._generation:
                state.sampling = False
        if generation == self._generation and state.update_notify:
            self._queue_event(self._pack_update(state, values))

    def _queue_event(self, event: bytes) -> None:
        if not event:
            return
        if len(self._events) >= MAX_PENDING_EVENTS:
            warn_limited(log, "events", "dropping an event: queue full")
            return
        self._events.append(event)
        self.platform.deadline_changed()

    @staticmethod
    def _timestamp(state: _SensorState) -> int:
        return time.monotonic_ns() if state.timestamps else 0

    def _pack_update(self, state: _SensorState, values: Sequence[int]) -> bytes:
        try:
            return pack_readings(self._update_header, 0, state.id, 3, values,
                                 self._timestamp(state))
        except (OverflowError, TypeError, ValueError):
            _value_error(state, values)
            return b""

    async def _delayed_response(self, header: int, state: _SensorState,
                                generation: int) -> None:
        """Read `state` for an asynchronous READING_GET; queue the delayed response."""
        # Same message id and token as the command, type "delayed response".
        delayed = header & ~0x300 | MessageType.DELAYED_RESPONSE << 8
        values: Sequence[int] = ()
        try:
            values = await self._sample_host(state)
            response = pack_readings(delayed, Status.SUCCESS, state.id, 3, values,
                                     self._timestamp(state))
        except ScmiError as err:
            response = HEADER_STATUS.pack(delayed, err.status)
        except (OverflowError, TypeError, ValueError):
            response = HEADER_STATUS.pack(delayed, _value_error(state, values).status)
        if generation != self._generation:
            return
        self._delayed.append(response)  # never dropped: accepted reads are bounded
        self.platform.deadline_changed()

    def _check_trip_points(self, state: _SensorState, value: int) -> None:
        previous, state.last_value = state.last_value, value
        if previous is None:
            return
        for trip_id, trip in enumerate(state.trip_points):
            if trip is None:
                continue
            direction, threshold = trip
            was_above, is_above = previous >= threshold, value >= threshold
            if was_above == is_above:
                continue
            if not direction & (TripDirection.UP if is_above else TripDirection.DOWN):
                continue
            description = is_above << SensorBits.TRIP_DIRECTION_UP | trip_id
            self._queue_event(
                U32.pack(self._trip_header) + U32X2.pack(0, state.id) + U32.pack(description))

    def _reschedule(self, state: _SensorState) -> None:
        state.watch_trips = state.trip_notify and any(state.trip_points)
        state.plain = not (state.blocking or state.watch_trips)
        if not state.watch_trips:
            state.last_value = None
        if state.enabled and (state.update_notify or state.watch_trips):
            if state.next_due is None:
                state.next_due = time.monotonic() + state.period
            self._periodic[state.id] = state
        else:
            state.next_due = None
            self._periodic.pop(state.id, None)
        self.platform.deadline_changed()

    def _state(self, request: bytes) -> _SensorState:
        (sensor_id,) = U32.unpack_from(request, 4)
        if sensor_id >= self._count:
            raise ScmiError(Status.NOT_FOUND, f"no sensor {sensor_id}")
        return self._states[sensor_id]

    # Message handlers

    def _reading_get(self, header: int, request: bytes,
                     room: int) -> bytes | Coroutine[HostCall[Any], Any, bytes]:
        # The hot path: kept flat, the common case first. A sensor that may block is
        # read by a coroutine (its HostCall runs off the loop); one that cannot (the
        # fakes) is read here, without the cost of a coroutine.
        sensor_id, flags = u32_at(request, 4), u32_at(request, 8)
        if sensor_id >= self._count:
            raise ScmiError(Status.NOT_FOUND, f"no sensor {sensor_id}")
        state = self._states[sensor_id]
        if flags:
            return self._reading_get_async(header, state, flags)
        if state.reading_length > room:
            raise ScmiError(Status.COMMS_ERROR, "reading does not fit the response buffer")
        if state.plain:
            try:
                values = state.read()
            except Exception as err:
                raise _read_error(state, err) from err
        elif state.blocking:
            return self._reading_get_host(header, state)
        else:
            values = self._sample(state)
        try:
            return pack_reading_response(header, values, state.value_count,
                                         time.monotonic_ns() if state.timestamps else 0)
        except (OverflowError, TypeError, ValueError) as err:
            raise _value_error(state, values) from err

    async def _reading_get_host(self, header: int, state: _SensorState) -> bytes:
        values = await self._sample_host(state)
        try:
            return pack_reading_response(header, values, state.value_count,
                                         time.monotonic_ns() if state.timestamps else 0)
        except (OverflowError, TypeError, ValueError) as err:
            raise _value_error(state, values) from err

    def _reading_get_async(self, header: int, state: _SensorState, flags: int) -> bytes:
        if flags != 1:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved flag bits set")
        if not (state.asynchronous and state.can_notify):
            raise ScmiError(Status.NOT_SUPPORTED,
                            f"sensor {state.id} does not offer asynchronous reads")
        if self._pending_reads >= MAX_PENDING_READS:
            raise ScmiError(Status.BUSY, "too many asynchronous reads pending")
        self._pending_reads += 1
        # The read starts now; its delayed response follows this response on the
        # event queue (the event loop delivers events after the command queue).
        self.platform.spawn(self._delayed_response(header, state, self._generation))
        return status_only(header, Status.SUCCESS)

    def _description_get(self, header: int, request: bytes, room: int) -> bytes:
        first = u32_at(request, 4)
        if first >= self._count and not (first == 0 and self._count == 0):
            raise ScmiError(Status.INVALID_PARAMETERS, f"no sensor {first}")
        if room < MAX_PAYLOAD:
            return ok_response(header, self._description_page(first, room))
        page = self._full_description_pages.get(first)
        if page is None:
            page = self._full_description_pages[first] = self._description_page(
                first, MAX_PAYLOAD)
        return ok_response(header, page)

    def _description_page(self, first: int, room: int) -> bytes:
        # u16 returned, u16 remaining, then descriptors.
        chosen = _page(self._descriptors, first, room - 4)
        if not chosen and first < self._count:
            raise ScmiError(Status.COMMS_ERROR, "no descriptor fits the response buffer")
        remaining = self._count - first - len(chosen)
        return (len(chosen) | remaining << 16).to_bytes(4, "little") + b"".join(chosen)

    def _axis_description_get(self, header: int, request: bytes, room: int) -> bytes:
        state = self._state(request)
        (first,) = U32.unpack_from(request, 8)
        if not state.axis_count:
            raise ScmiError(Status.NOT_SUPPORTED, f"sensor {state.id} has no axes")
        if first >= state.axis_count:
            raise ScmiError(Status.INVALID_PARAMETERS, f"no axis {first}")
        # u32 flags (5:0 returned, 31:26 remaining), then descriptors.
        chosen = _page(state.axis_descriptors, first, min(room, MAX_PAYLOAD) - 4)
        if not chosen:
            raise ScmiError(Status.COMMS_ERROR, "no descriptor fits the response buffer")
        remaining = state.axis_count - first - len(chosen)
        return ok(header, U32.pack(len(chosen) | remaining << 26) + b"".join(chosen))

    def _list_update_intervals(self, header: int, request: bytes, room: int) -> bytes:
        self._state(request)
        (first,) = U32.unpack_from(request, 8)
        if first >= len(UPDATE_INTERVALS):
            raise ScmiError(Status.INVALID_PARAMETERS, f"no interval {first}")
        # u32 flags (11:0 returned, 12 segmented, 31:16 remaining), then intervals.
        fits = (min(room, MAX_PAYLOAD) - 4) // 4
        if fits < 1:
            raise ScmiError(Status.COMMS_ERROR, "no interval fits the response buffer")
        chosen = UPDATE_INTERVALS[first:first + fits]
        remaining = len(UPDATE_INTERVALS) - first - len(chosen)
        return ok(header, U32.pack(len(chosen) | remaining << 16)
                  + b"".join(U32.pack(i.list_entry()) for i in chosen))

    def _config_get(self, header: int, request: bytes, room: int) -> bytes:
        state = self._state(request)
        return ok(header, U32.pack(state.config()))

    def _config_set(self, header: int, request: bytes, room: int) -> bytes:
        state = self._state(request)
        (config,) = U32.unpack_from(request, 8)
        if config & CONFIG_RESERVED:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved configuration bits set")
        if config >> SensorBits.UPDATE_EXPONENT:  # 0 in bits 31:11 keeps the interval
            rounding = config >> SensorBits.ROUNDING & 0x3
            if rounding == 3:
                raise ScmiError(Status.INVALID_PARAMETERS, "reserved rounding mode")
            seconds = config >> SensorBits.UPDATE_SECONDS
            exponent = sign_extend(config >> SensorBits.UPDATE_EXPONENT, 5)
            from fractions import Fraction

            chosen = choose_interval(Fraction(seconds) * Fraction(10) ** exponent,
                                     Rounding(rounding))
            if chosen != state.interval:
                state.interval, state.period = chosen, chosen.period
                state.next_due = None  # restart the period
        state.timestamps = bool(config >> SensorBits.TIMESTAMP_ENABLED & 1)
        enabled = bool(config & 1)
        if enabled != state.enabled:
            state.enabled = enabled
            state.next_due = None
        self._reschedule(state)
        return status_only(header, Status.SUCCESS)

    @staticmethod
    def _notify_enable(request: bytes) -> bool:
        """The enable bit of a notify request (sensor id, then a u32 with only bit 0 defined)."""
        (control,) = U32.unpack_from(request, 8)
        if control & ~1:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved bits set")
        return bool(control)

    def _continuous_update_notify(self, header: int, request: bytes, room: int) -> bytes:
        state = self._state(request)
        enable = self._notify_enable(request)
        if enable and not state.can_notify:
            raise ScmiError(Status.NOT_SUPPORTED, "reading too large for a notification")
        state.update_notify = enable
        self._reschedule(state)
        return status_only(header, Status.SUCCESS)

    def _trip_point_notify(self, header: int, request: bytes, room: int) -> bytes:
        state = self._state(request)
        state.trip_notify = self._notify_enable(request)
        self._reschedule(state)
        return status_only(header, Status.SUCCESS)

    def _trip_point_config(self, header: int, request: bytes, room: int) -> bytes:
        state = self._state(request)
        control, low, high = U32X3.unpack_from(request, 8)
        if control & TRIP_CONTROL_RESERVED:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved bits set")
        trip_id = control >> SensorBits.TRIP_POINT_ID & 0xFF
        if trip_id >= state.trip_point_count:
            raise ScmiError(Status.INVALID_PARAMETERS, f"no trip point {trip_id}")
        direction = TripDirection(control & 0x3)
        threshold = sign_extend(high << 32 | low, 64)
        state.trip_points[trip_id] = (
            None if direction == TripDirection.DISABLED else (direction, threshold))
        self._reschedule(state)
        return status_only(header, Status.SUCCESS)

    def _name_get(self, header: int, request: bytes, room: int) -> bytes:
        state = self._state(request)
        if not state.long_name:
            raise ScmiError(Status.NOT_SUPPORTED, f"sensor {state.id} has no extended name")
        # u32 flags (reserved), 64-byte name.
        return ok(header, U32.pack(0) + pack_name(state.sensor.name, EXTENDED_NAME_SIZE))

    def _axis_name_get(self, header: int, request: bytes, room: int) -> bytes:
        state = self._state(request)
        (first,) = U32.unpack_from(request, 8)
        if not state.axis_count:
            raise ScmiError(Status.NOT_SUPPORTED, f"sensor {state.id} has no axes")
        if first >= state.axis_count:
            raise ScmiError(Status.INVALID_PARAMETERS, f"no axis {first}")
        # Only the axes with extended names: u32 flags (5:0 returned, 31:26
        # remaining), then per axis u32 id and a 64-byte name.
        names = [U32.pack(i) + pack_name(axis.name, EXTENDED_NAME_SIZE)
                 for i, axis in enumerate(state.sensor.axes)
                 if i >= first and has_long_name(axis.name)]
        chosen = _page(names, 0, min(room, MAX_PAYLOAD) - 4)
        if names and not chosen:
            raise ScmiError(Status.COMMS_ERROR, "no name fits the response buffer")
        remaining = len(names) - len(chosen)
        return ok(header, U32.pack(len(chosen) | remaining << 26) + b"".join(chosen))
