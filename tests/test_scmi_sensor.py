# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""SCMI Sensor Management protocol (0x15): every message, byte for byte, through the
Dispatcher, with the fake accelerometer and scripted sensors."""

from __future__ import annotations

import struct
import time

import pytest
from scmi_helpers import (
    LINUX_RESPONSE,
    SENSOR,
    ScriptedSensor,
    command,
    header,
    name16,
    reading,
    response,
    u32s,
)

from vhost_scmi.devices.fake import FakeAccelerometer
from vhost_scmi.devices.sensor import Axis, DeviceError, ExtendedAttributes, Sensor, Unit
from vhost_scmi.scmi.client import (
    DelayedReading,
    Reading,
    ScmiClient,
    ScmiStatusError,
    SensorUpdate,
    TripPointEvent,
    parse_event,
)
from vhost_scmi.scmi.dispatcher import Dispatcher, build_dispatcher
from vhost_scmi.scmi.status import Status

SUCCESS = Status.SUCCESS
# Fake accelerometer descriptor words: continuous update (30), timestamp exponent -9
# (14:10), timestamps (9); 3 axes (21:16), axis support (8), m/s² (0x59).
FAKE_LOW = 1 << 30 | 23 << 10 | 1 << 9
FAKE_HIGH = 3 << 16 | 1 << 8 | 0x59
# A scalar °C sensor with exponent -3 and its 4 trip points.
TEMP_LOW = 1 << 30 | 23 << 10 | 1 << 9 | 4
TEMP_HIGH = 29 << 11 | 0x02
# CONFIG_GET of a sensor at the default 100 ms (100 x 10^-3: 31:16 = 100, 15:11 = -3).
DEFAULT_CONFIG = 100 << 16 | 29 << 11


def make(*sensors: Sensor) -> tuple[Dispatcher, ScmiClient]:
    dispatcher = build_dispatcher(list(sensors))
    return dispatcher, ScmiClient(lambda request: dispatcher.handle(request, LINUX_RESPONSE))


def ask(dispatcher: Dispatcher, request: bytes, room: int = LINUX_RESPONSE) -> bytes:
    return dispatcher.handle(request, room)


def temperature(name: str = "temp", values: list = (), **kwargs) -> ScriptedSensor:
    return ScriptedSensor(name, values, unit=Unit.DEGREES_C, exponent=-3, **kwargs)


def fake_axis(k: int, axis: str) -> bytes:
    return (u32s(k, 1 << 8, 0x59) + name16(f"acc_{axis}") + u32s(1)
            + struct.pack("<qq", 100 * k, 100 * k + 255))


# --- discovery ------------------------------------------------------------------------------

def test_protocol_version_is_3_1() -> None:
    dispatcher, _ = make(FakeAccelerometer())
    assert ask(dispatcher, command(SENSOR, 0x0)) == response(SENSOR, 0x0, SUCCESS,
                                                              u32s(0x30001))


def test_protocol_attributes() -> None:
    dispatcher, _ = make(FakeAccelerometer(), FakeAccelerometer("b"), temperature())
    # u16 sensors, u8 max async requests, u8 reserved, 3 x u32 register area (none).
    assert ask(dispatcher, command(SENSOR, 0x1)) == response(
        SENSOR, 0x1, SUCCESS, bytes([3, 0, 16, 0]) + bytes(12))


@pytest.mark.parametrize("message", range(0x0, 0xE))
def test_message_attributes_of_every_message(message: int) -> None:
    dispatcher, _ = make(FakeAccelerometer())
    assert ask(dispatcher, command(SENSOR, 0x2, message)) == response(
        SENSOR, 0x2, SUCCESS, u32s(0))


@pytest.mark.parametrize("message", [0xE, 0x1F, 0xFF, 0x1006])
def test_message_attributes_of_unknown_message(message: int) -> None:
    dispatcher, _ = make(FakeAccelerometer())
    assert ask(dispatcher, command(SENSOR, 0x2, message)) == response(
        SENSOR, 0x2, Status.NOT_FOUND)


def test_description_of_the_fake_accelerometer() -> None:
    dispatcher, _ = make(FakeAccelerometer())
    # Multi-axis: the extended-attributes bit stays clear (Linux would read only power).
    assert ask(dispatcher, command(SENSOR, 0x3, 0)) == response(
        SENSOR, 0x3, SUCCESS, u32s(1 | 0 << 16, 0, FAKE_LOW, FAKE_HIGH) + name16("fake"))


def test_description_of_a_scalar_with_extended_attributes() -> None:
    extended = ExtendedAttributes(resolution=5, resolution_exponent=-2, min_value=-40000,
                                  max_value=125000)
    dispatcher, client = make(temperature("cpu", extended=extended))
    assert ask(dispatcher, command(SENSOR, 0x3, 0)) == response(
        SENSOR, 0x3, SUCCESS,
        u32s(1, 0, TEMP_LOW | 1 << 8, TEMP_HIGH) + name16("cpu")
        + u32s(0, 30 << 27 | 5) + struct.pack("<qq", -40000, 125000))
    (description,) = client.sensor_descriptions()
    assert description.extended == extended
    assert description.power == 0
    assert (description.unit, description.exponent, description.trip_points) == (2, -3, 4)


def test_vector_sensor_of_mixed_axes_has_no_sensor_unit() -> None:
    axes = (Axis("a_X", Unit.METERS_PER_SECOND_SQUARED),
            Axis("b_Y", Unit.RADIANS_PER_SECOND, -2))
    dispatcher, client = make(ScriptedSensor("mixed", axes=axes))
    (description,) = client.sensor_descriptions()
    assert description.attributes_high == 2 << 16 | 1 << 8
    assert [(a.unit, a.exponent) for a in client.axis_descriptions(0)] == [(0x59, 0), (0x57, -2)]


def plain_sensors(count: int) -> list[Sensor]:
    return [temperature(f"t{i}") for i in range(count)]


def test_descriptions_page_four_plain_descriptors_at_a_time() -> None:
    dispatcher, client = make(*plain_sensors(10))

    def page(first: int, returned: int, remaining: int) -> bytes:
        descriptors = b"".join(u32s(i, TEMP_LOW, TEMP_HIGH) + name16(f"t{i}")
                               for i in range(first, first + returned))
        return response(SENSOR, 0x3, SUCCESS, u32s(returned | remaining << 16) + descriptors)

    assert ask(dispatcher, command(SENSOR, 0x3, 0)) == page(0, 4, 6)
    assert ask(dispatcher, command(SENSOR, 0x3, 4)) == page(4, 4, 2)
    assert ask(dispatcher, command(SENSOR, 0x3, 8)) == page(8, 2, 0)
    assert ask(dispatcher, command(SENSOR, 0x3, 9)) == page(9, 1, 0)
    # Smaller writable space: smaller pages.
    assert ask(dispatcher, command(SENSOR, 0x3, 0), 8 + 4 + 28 * 2 + 27) == page(0, 2, 8)
    # Ids are 0..N-1 in order, as Linux indexes its sensor array with them.
    assert [s.id for s in client.sensor_descriptions()] == list(range(10))
    assert [s.name for s in client.sensor_descriptions()] == [f"t{i}" for i in range(10)]


def test_descriptions_page_extended_descriptors_two_at_a_time() -> None:
    extended = ExtendedAttributes(1, 0, 0, 10)
    sensors = [temperature(f"e{i}", extended=extended) for i in range(3)] + plain_sensors(2)
    dispatcher, client = make(*sensors)
    flags = [struct.unpack_from("<I", ask(dispatcher, command(SENSOR, 0x3, first)), 8)[0]
             for first in (0, 1, 2)]
    # 52-byte descriptors: two fit in 124 bytes; one extended and two plain do too.
    assert flags == [2 | 3 << 16, 2 | 2 << 16, 3 | 0 << 16]
    assert [s.name for s in client.sensor_descriptions()] == ["e0", "e1", "e2", "t0", "t1"]


@pytest.mark.parametrize("first", [1, 2, 0xFFFFFFFF])
def test_description_past_the_end_is_invalid(first: int) -> None:
    dispatcher, _ = make(FakeAccelerometer())
    assert ask(dispatcher, command(SENSOR, 0x3, first)) == response(
        SENSOR, 0x3, Status.INVALID_PARAMETERS)


def test_no_sensors_no_sensor_protocol() -> None:
    # An agent that sees no sensor has no Sensor protocol (Base does not list it).
    dispatcher, _client = make()
    assert ask(dispatcher, command(SENSOR, 0x3, 0)) == response(SENSOR, 0x3,
                                                                Status.NOT_SUPPORTED)


def test_description_too_large_for_the_buffer() -> None:
    dispatcher, _ = make(FakeAccelerometer())
    assert ask(dispatcher, command(SENSOR, 0x3, 0), 8 + 4 + 27) == response(
        SENSOR, 0x3, Status.COMMS_ERROR)


def test_axis_descriptions_of_the_fake_page_two_at_a_time() -> None:
    dispatcher, client = make(FakeAccelerometer())
    assert ask(dispatcher, command(SENSOR, 0x7, 0, 0)) == response(
        SENSOR, 0x7, SUCCESS, u32s(2 | 1 << 26) + fake_axis(0, "X") + fake_axis(1, "Y"))
    assert ask(dispatcher, command(SENSOR, 0x7, 0, 2)) == response(
        SENSOR, 0x7, SUCCESS, u32s(1) + fake_axis(2, "Z"))
    assert ask(dispatcher, command(SENSOR, 0x7, 0, 1)) == response(
        SENSOR, 0x7, SUCCESS, u32s(2) + fake_axis(1, "Y") + fake_axis(2, "Z"))
    axes = client.axis_descriptions(0)
    assert [(a.id, a.name, a.unit) for a in axes] == [
        (0, "acc_X", 0x59), (1, "acc_Y", 0x59), (2, "acc_Z", 0x59)]
    assert axes[2].extended == ExtendedAttributes(1, 0, 200, 455)


def test_axis_descriptions_without_extended_attributes_fit_four() -> None:
    axes = tuple(Axis(f"v_{i}", Unit.VOLTS, -3) for i in range(6))
    dispatcher, client = make(ScriptedSensor("volts", axes=axes))
    first = ask(dispatcher, command(SENSOR, 0x7, 0, 0))
    assert struct.unpack_from("<I", first, 8)[0] == 4 | 2 << 26
    assert first[12:40] == u32s(0, 0, 29 << 11 | 5) + name16("v_0")
    assert [a.name for a in client.axis_descriptions(0)] == [f"v_{i}" for i in range(6)]


@pytest.mark.parametrize(("params", "status"), [
    ((1, 0), Status.NOT_FOUND),
    ((0xFFFFFFFF, 0), Status.NOT_FOUND),
    ((0, 3), Status.INVALID_PARAMETERS),
    ((2, 0), Status.NOT_SUPPORTED),  # scalar sensor: no axes
])
def test_axis_description_errors(params: tuple[int, int], status: Status) -> None:
    dispatcher, _ = make(FakeAccelerometer(), FakeAccelerometer(), temperature())
    params = (params[0] if params[0] != 1 else 3, params[1])
    assert ask(dispatcher, command(SENSOR, 0x7, *params)) == response(SENSOR, 0x7, status)


INTERVALS = [1 << 5 | 29, 2 << 5 | 29, 5 << 5 | 29, 10 << 5 | 29, 20 << 5 | 29,
             50 << 5 | 29, 100 << 5 | 29, 200 << 5 | 29, 500 << 5 | 29, 1 << 5]


def test_list_update_intervals() -> None:
    dispatcher, client = make(FakeAccelerometer())
    assert ask(dispatcher, command(SENSOR, 0x8, 0, 0)) == response(
        SENSOR, 0x8, SUCCESS, u32s(10, *INTERVALS))
    assert ask(dispatcher, command(SENSOR, 0x8, 0, 5)) == response(
        SENSOR, 0x8, SUCCESS, u32s(5, *INTERVALS[5:]))
    # Room for two: pages, with the rest in bits 31:16.
    assert ask(dispatcher, command(SENSOR, 0x8, 0, 0), 8 + 4 + 8) == response(
        SENSOR, 0x8, SUCCESS, u32s(2 | 8 << 16, *INTERVALS[:2]))
    assert client.update_intervals(0) == (False, [
        (1, -3), (2, -3), (5, -3), (10, -3), (20, -3), (50, -3), (100, -3), (200, -3),
        (500, -3), (1, 0)])


@pytest.mark.parametrize(("params", "status"), [
    ((1, 0), Status.NOT_FOUND), ((0, 10), Status.INVALID_PARAMETERS)])
def test_list_update_intervals_errors(params: tuple[int, int], status: Status) -> None:
    dispatcher, _ = make(FakeAccelerometer())
    assert ask(dispatcher, command(SENSOR, 0x8, *params)) == response(SENSOR, 0x8, status)


# --- extended names (3.1) -------------------------------------------------------------------

def test_extended_sensor_name() -> None:
    long_name = "a sensor with a rather long name"
    dispatcher, client = make(temperature(long_name), temperature("short"))
    descriptor = ask(dispatcher, command(SENSOR, 0x3, 0))[12:12 + 28 * 2]
    assert descriptor[4:8] == u32s(TEMP_LOW | 1 << 29)
    assert descriptor[12:28] == name16(long_name[:15])
    assert descriptor[28 + 4:28 + 8] == u32s(TEMP_LOW)  # short name: bit 29 clear
    assert ask(dispatcher, command(SENSOR, 0xC, 0)) == response(
        SENSOR, 0xC, SUCCESS, u32s(0) + long_name.encode().ljust(64, b"\0"))
    assert client.sensor_name(0) == long_name
    assert ask(dispatcher, command(SENSOR, 0xC, 1)) == response(
        SENSOR, 0xC, Status.NOT_SUPPORTED)
    assert ask(dispatcher, command(SENSOR, 0xC, 2)) == response(SENSOR, 0xC, Status.NOT_FOUND)


def test_extended_name_is_cut_at_a_character_boundary() -> None:
    name = "températures ±0.5 °C"  # bytes 14 and 15 are "±"
    dispatcher, client = make(temperature(name))
    (description,) = client.sensor_descriptions()
    assert description.name == "températures "
    assert client.sensor_name(0) == name


def test_extended_axis_names() -> None:
    axes = (Axis("short_X", Unit.GAUSS), Axis("magnetometer_long_Y", Unit.GAUSS),
            Axis("magnetometer_long_Z", Unit.GAUSS))
    dispatcher, client = make(ScriptedSensor("magn", axes=axes), temperature())
    axis_low = [struct.unpack_from("<I", ask(dispatcher, command(SENSOR, 0x7, 0, i)), 16)[0]
                for i in range(3)]
    assert axis_low == [0, 1 << 9, 1 << 9]

    def entry(axis_id: int) -> bytes:
        return u32s(axis_id) + axes[axis_id].name.encode().ljust(64, b"\0")

    # Only the axes with extended names, one 68-byte entry per 128-byte reply.
    assert ask(dispatcher, command(SENSOR, 0xD, 0, 0)) == response(
        SENSOR, 0xD, SUCCESS, u32s(1 | 1 << 26) + entry(1))
    assert ask(dispatcher, command(SENSOR, 0xD, 0, 2)) == response(
        SENSOR, 0xD, SUCCESS, u32s(1) + entry(2))
    assert client.axis_names(0) == {1: "magnetometer_long_Y", 2: "magnetometer_long_Z"}
    assert ask(dispatcher, command(SENSOR, 0xD, 0, 3)) == response(
        SENSOR, 0xD, Status.INVALID_PARAMETERS)
    assert ask(dispatcher, command(SENSOR, 0xD, 1, 0)) == response(
        SENSOR, 0xD, Status.NOT_SUPPORTED)
    assert ask(dispatcher, command(SENSOR, 0xD, 2, 0)) == response(
        SENSOR, 0xD, Status.NOT_FOUND)


def test_axis_names_when_none_is_extended() -> None:
    dispatcher, client = make(FakeAccelerometer())
    assert ask(dispatcher, command(SENSOR, 0xD, 0, 0)) == response(SENSOR, 0xD, SUCCESS, u32s(0))
    assert client.axis_names(0) == {}


# --- reading --------------------------------------------------------------------------------

def test_reading_the_fake_matches_rust_values() -> None:
    dispatcher, _ = make(FakeAccelerometer())
    assert ask(dispatcher, command(SENSOR, 0x6, 0, 0, token=0x3FF)) == response(
        SENSOR, 0x6, SUCCESS, reading((0, 0), (100, 0), (200, 0)), token=0x3FF)
    assert ask(dispatcher, command(SENSOR, 0x6, 0, 0)) == response(
        SENSOR, 0x6, SUCCESS, reading((1, 0), (101, 0), (201, 0)))


def test_linux_iio_raw_reads_see_0_101_202() -> None:
    # scmi_iio reads one channel with CONFIG_SET(enable), READING_GET, CONFIG_SET(disable).
    dispatcher, client = make(FakeAccelerometer())
    seen = []
    for axis in range(3):
        client.config_set(0, 1)
        seen.append(client.read(0)[axis].value)
        client.config_set(0, 0)
    assert seen == [0, 101, 202]


def test_fake_values_wrap_like_rust() -> None:
    _, client = make(FakeAccelerometer())
    values = [client.read(0)[0].value for _ in range(258)]
    assert values[255:] == [255, 0, 1]


def test_reading_a_scalar_with_negative_and_large_values() -> None:
    dispatcher, _ = make(temperature(values=[(-5,), (2**63 - 1,), (-(2**63),)]))
    for value in (-5, 2**63 - 1, -(2**63)):
        assert ask(dispatcher, command(SENSOR, 0x6, 0, 0)) == response(
            SENSOR, 0x6, SUCCESS, reading((value, 0)))


def test_reading_works_on_a_disabled_sensor() -> None:
    # scmi-hwmon never enables; a vector sensor starts disabled and still reads.
    dispatcher, client = make(FakeAccelerometer(), temperature(values=[(21500,)]))
    assert client.config_get(0) & 1 == 0
    assert client.config_get(1) & 1 == 1
    client.config_set(1, 0)
    assert client.read(0)[0].value == 0
    assert client.read(1) == [Reading(21500, 0)]


def test_timestamps_when_enabled() -> None:
    _, client = make(FakeAccelerometer())
    assert {r.timestamp for r in client.read(0)} == {0}
    before = time.monotonic_ns()
    client.config_set(0, 1 << 1)
    readings = client.read(0)
    after = time.monotonic_ns()
    assert len({r.timestamp for r in readings}) == 1
    assert before <= readings[0].timestamp <= after
    assert client.config_get(0) == DEFAULT_CONFIG | 1 << 1
    client.config_set(0, 0)
    assert {r.timestamp for r in client.read(0)} == {0}


@pytest.mark.parametrize(("params", "status"), [
    ((1, 0), Status.NOT_FOUND),
    ((0xFFFFFFFF, 0), Status.NOT_FOUND),
    ((0, 2), Status.INVALID_PARAMETERS),
    ((0, 0x80000001), Status.INVALID_PARAMETERS),
])
def test_reading_errors(params: tuple[int, int], status: Status) -> None:
    dispatcher, _ = make(FakeAccelerometer())
    assert ask(dispatcher, command(SENSOR, 0x6, *params)) == response(SENSOR, 0x6, status)


@pytest.mark.parametrize("bad", [
    DeviceError("gone"),  # the device vanished
    RuntimeError("bug"),  # a device kind's bug
    (1, 2),  # wrong number of values
    (2**63,),  # does not fit s64
    ("12",),  # not an integer
])
def test_unreadable_sensor_is_a_hardware_error(bad: object) -> None:
    sensor = temperature(values=[bad, (7,)])
    dispatcher, _ = make(sensor)
    assert ask(dispatcher, command(SENSOR, 0x6, 0, 0)) == response(
        SENSOR, 0x6, Status.HARDWARE_ERROR)
    # The daemon carries on, and the device was read once per request.
    assert ask(dispatcher, command(SENSOR, 0x6, 0, 0)) == response(
        SENSOR, 0x6, SUCCESS, reading((7, 0)))
    assert sensor.reads == 2


def test_reading_too_large_for_the_buffer_does_not_touch_the_device() -> None:
    fake = FakeAccelerometer()
    dispatcher, _ = make(fake)
    assert ask(dispatcher, command(SENSOR, 0x6, 0, 0), 8 + 47) == response(
        SENSOR, 0x6, Status.COMMS_ERROR)
    assert ask(dispatcher, command(SENSOR, 0x6, 0, 0), 8 + 48) == response(
        SENSOR, 0x6, SUCCESS, reading((0, 0), (100, 0), (200, 0)))


def asynchronous(sensor: Sensor) -> Sensor:
    """`sensor`, offering asynchronous reads (a spec's async=on)."""
    sensor.asynchronous = True
    return sensor


def test_asynchronous_read_answers_with_a_delayed_response() -> None:
    dispatcher, client = make(asynchronous(FakeAccelerometer()),
                              asynchronous(temperature(values=[(42,)])))
    assert dispatcher.next_deadline() is None
    assert ask(dispatcher, command(SENSOR, 0x6, 0, 1, token=77)) == response(
        SENSOR, 0x6, SUCCESS, token=77)
    deadline = dispatcher.next_deadline()
    assert deadline is not None and deadline <= time.monotonic()
    assert dispatcher.take_events(time.monotonic()) == [
        struct.pack("<IiI", header(SENSOR, 0x6, 77, message_type=2), 0, 0)
        + reading((0, 0), (100, 0), (200, 0))]
    assert dispatcher.next_deadline() is None
    token = client.read_async(1)
    (event,) = dispatcher.take_events(time.monotonic())
    assert parse_event(event) == DelayedReading(token, 0, 1, (Reading(42, 0),))


def test_asynchronous_read_failing_reports_the_status_late() -> None:
    dispatcher, client = make(asynchronous(temperature(values=[DeviceError("gone")])))
    token = client.read_async(0)
    (event,) = dispatcher.take_events(time.monotonic())
    assert event == struct.pack("<Ii", header(SENSOR, 0x6, token, message_type=2),
                                Status.HARDWARE_ERROR)
    assert parse_event(event) == DelayedReading(token, Status.HARDWARE_ERROR, None, ())


def test_asynchronous_reads_are_limited() -> None:
    dispatcher, client = make(asynchronous(FakeAccelerometer()))
    for _ in range(16):
        client.read_async(0)
    with pytest.raises(ScmiStatusError) as raised:
        client.read_async(0)
    assert raised.value.status == Status.BUSY
    assert len(dispatcher.take_events(time.monotonic())) == 16
    client.read_async(0)


def test_asynchronous_reads_only_where_advertised() -> None:
    # Linux reads a sensor advertising them asynchronously, every time: only for a
    # spec's async=on. Elsewhere NOT_SUPPORTED (scmi-tests' sensor test 015).
    dispatcher, client = make(FakeAccelerometer(), asynchronous(temperature(values=[(1,)])))
    assert [s.async_read for s in client.sensor_descriptions()] == [False, True]
    assert ask(dispatcher, command(SENSOR, 0x6, 0, 1, token=5)) == response(
        SENSOR, 0x6, Status.NOT_SUPPORTED, token=5)
    assert dispatcher.take_events(time.monotonic()) == []
    token = client.read_async(1)
    (event,) = dispatcher.take_events(time.monotonic())
    assert parse_event(event) == DelayedReading(token, 0, 1, (Reading(1, 0),))


# --- configuration --------------------------------------------------------------------------

def test_config_get_defaults() -> None:
    dispatcher, _ = make(FakeAccelerometer(), temperature())
    assert ask(dispatcher, command(SENSOR, 0x9, 0)) == response(
        SENSOR, 0x9, SUCCESS, u32s(DEFAULT_CONFIG))
    assert ask(dispatcher, command(SENSOR, 0x9, 1)) == response(
        SENSOR, 0x9, SUCCESS, u32s(DEFAULT_CONFIG | 1))
    assert ask(dispatcher, command(SENSOR, 0x9, 2)) == response(SENSOR, 0x9, Status.NOT_FOUND)


def config(seconds: int, exponent: int, rounding: int = 2, flags: int = 1) -> int:
    return seconds << 16 | (exponent & 0x1F) << 11 | rounding << 9 | flags


@pytest.mark.parametrize(("request_config", "expected"), [
    (0x1, DEFAULT_CONFIG | 1),  # 0 in 31:11 keeps the interval
    (0x3, DEFAULT_CONFIG | 3),
    (config(1, 0, flags=0), 1 << 16),
    (config(10000, -5), DEFAULT_CONFIG | 1),  # Linux scmi_iio's encoding of 10 Hz
    (config(20000, -5), 200 << 16 | 29 << 11 | 1),  # 5 Hz
    (config(150, -3, rounding=0), DEFAULT_CONFIG | 1),
    (config(150, -3, rounding=1), 200 << 16 | 29 << 11 | 1),
    (config(150, -3, rounding=2), DEFAULT_CONFIG | 1),  # tie: the shorter
    (config(180, -3, rounding=2), 200 << 16 | 29 << 11 | 1),
    (config(1, -4, rounding=1), 1 << 16 | 29 << 11 | 1),  # below range: the shortest
    (config(3600, 0, rounding=0), 1 << 16 | 1),  # above range: the longest
    (config(0, -1), 1 << 16 | 29 << 11 | 1),  # zero seconds: the shortest
    (config(1000, -6), 1 << 16 | 29 << 11 | 1),  # 1 kHz
    (config(3, -3, rounding=0), 2 << 16 | 29 << 11 | 1),
    (config(5, 3, rounding=1), 1 << 16 | 1),  # exponent +3: 5000 s
])
def test_config_set_then_get(request_config: int, expected: int) -> None:
    dispatcher, _ = make(FakeAccelerometer())
    assert ask(dispatcher, command(SENSOR, 0xA, 0, request_config)) == response(
        SENSOR, 0xA, SUCCESS)
    assert ask(dispatcher, command(SENSOR, 0x9, 0)) == response(
        SENSOR, 0x9, SUCCESS, u32s(expected))


@pytest.mark.parametrize(("params", "status"), [
    ((1, 1), Status.NOT_FOUND),
    ((0, 1 << 2), Status.INVALID_PARAMETERS),
    ((0, 1 << 8), Status.INVALID_PARAMETERS),
    ((0, config(1, 0, rounding=3)), Status.INVALID_PARAMETERS),
])
def test_config_set_errors(params: tuple[int, int], status: Status) -> None:
    dispatcher, _ = make(FakeAccelerometer())
    assert ask(dispatcher, command(SENSOR, 0xA, *params)) == response(SENSOR, 0xA, status)
    assert ask(dispatcher, command(SENSOR, 0x9, 0)) == response(
        SENSOR, 0x9, SUCCESS, u32s(DEFAULT_CONFIG))


# --- continuous updates ---------------------------------------------------------------------

def test_sensor_update_notifications_follow_enable_and_interval() -> None:
    dispatcher, client = make(FakeAccelerometer())
    assert ask(dispatcher, command(SENSOR, 0xB, 0, 1)) == response(SENSOR, 0xB, SUCCESS)
    # Subscribed, but the sensor is disabled (as after Linux scmi_iio's probe).
    assert dispatcher.next_deadline() is None
    start = time.monotonic()
    client.config_set(0, 1)
    deadline = dispatcher.next_deadline()
    assert deadline is not None and deadline >= start + 0.1
    assert dispatcher.take_events(deadline - 0.01) == []
    assert dispatcher.take_events(deadline) == [
        struct.pack("<III", header(SENSOR, 0x1, message_type=3), 0, 0)
        + reading((0, 0), (100, 0), (200, 0))]
    following = dispatcher.next_deadline()
    assert following == pytest.approx(deadline + 0.1)
    (event,) = dispatcher.take_events(following)
    assert parse_event(event) == SensorUpdate(0, 0, (Reading(1, 0), Reading(101, 0),
                                                     Reading(201, 0)))
    # A new interval restarts the period.
    start = time.monotonic()
    client.config_set(0, config(1, 0, flags=0b11))
    deadline = dispatcher.next_deadline()
    assert deadline is not None and deadline >= start + 1.0
    (event,) = dispatcher.take_events(deadline)
    update = parse_event(event)
    assert isinstance(update, SensorUpdate) and update.readings[0].timestamp > 0
    client.config_set(0, 0)
    assert dispatcher.next_deadline() is None
    client.config_set(0, 1)
    client.continuous_update_notify(0, False)
    assert dispatcher.next_deadline() is None
    assert dispatcher.take_events(time.monotonic() + 10) == []


def test_a_little_late_delivery_catches_up_without_drift() -> None:
    # 1 kHz: a loop 3 ms late makes the 3 samples up, and stays on its schedule
    # (an in-memory sensor: a blocking one is never read twice at once).
    dispatcher, client = make(FakeAccelerometer())
    client.config_set(0, config(1, -3, rounding=0))
    client.continuous_update_notify(0, True)
    deadline = dispatcher.next_deadline()
    assert deadline is not None
    assert len(dispatcher.take_events(deadline + 0.0025)) == 3
    assert dispatcher.next_deadline() == pytest.approx(deadline + 0.003)
    # Further behind: at most 4 per wake-up, the rest at the next.
    assert len(dispatcher.take_events(deadline + 0.0099)) == 4
    assert dispatcher.next_deadline() == pytest.approx(deadline + 0.007)
    assert len(dispatcher.take_events(deadline + 0.0099)) == 3
    assert dispatcher.next_deadline() == pytest.approx(deadline + 0.010)


def test_late_delivery_does_not_burst() -> None:
    dispatcher, client = make(temperature(values=[(i,) for i in range(10)]))
    client.continuous_update_notify(0, True)
    deadline = dispatcher.next_deadline()
    assert deadline is not None
    late = deadline + 5.0
    assert len(dispatcher.take_events(late)) == 1
    assert dispatcher.next_deadline() == pytest.approx(late + 0.1)


def test_failed_reads_skip_updates() -> None:
    dispatcher, client = make(temperature(values=[DeviceError("gone"), (5,)]))
    client.continuous_update_notify(0, True)
    first = dispatcher.next_deadline()
    assert first is not None
    assert dispatcher.take_events(first) == []
    second = dispatcher.next_deadline()
    assert second is not None
    (event,) = dispatcher.take_events(second)
    assert parse_event(event) == SensorUpdate(0, 0, (Reading(5, 0),))


@pytest.mark.parametrize(("params", "status"), [
    ((1, 1), Status.NOT_FOUND), ((0, 2), Status.INVALID_PARAMETERS)])
def test_continuous_update_notify_errors(params: tuple[int, int], status: Status) -> None:
    dispatcher, _ = make(FakeAccelerometer())
    assert ask(dispatcher, command(SENSOR, 0xB, *params)) == response(SENSOR, 0xB, status)


def test_sensors_too_wide_for_an_event_buffer() -> None:
    seven = tuple(Axis(f"a{i}", Unit.VOLTS) for i in range(7))
    eight = tuple(Axis(f"a{i}", Unit.VOLTS) for i in range(8))
    nine = tuple(Axis(f"a{i}", Unit.VOLTS) for i in range(9))
    dispatcher, client = make(ScriptedSensor("seven", axes=seven),
                              ScriptedSensor("eight", axes=eight, values=[tuple(range(8))]),
                              ScriptedSensor("nine", axes=nine))
    assert [s.continuous_update for s in client.sensor_descriptions()] == [True, False, False]
    client.continuous_update_notify(0, True)
    with pytest.raises(ScmiStatusError) as raised:
        client.continuous_update_notify(1, True)
    assert raised.value.status == Status.NOT_SUPPORTED
    assert [r.value for r in client.read(1)] == list(range(8))
    with pytest.raises(ScmiStatusError) as raised:
        client.read(2)  # 8 + 144 bytes: more than Linux's buffers
    assert raised.value.status == Status.COMMS_ERROR


# --- trip points ----------------------------------------------------------------------------

def trip_control(trip: int, direction: int) -> int:
    return trip << 4 | direction


def test_trip_point_events_on_crossing() -> None:
    values = [(40,), (60,), (70,), (40,), (55,)]
    dispatcher, client = make(temperature(values=values))
    assert ask(dispatcher, command(SENSOR, 0x4, 0, 1)) == response(SENSOR, 0x4, SUCCESS)
    assert ask(dispatcher, command(SENSOR, 0x5, 0, trip_control(2, 1), 50, 0)) == response(
        SENSOR, 0x5, SUCCESS)
    assert dispatcher.next_deadline() is not None  # monitored at the update interval
    client.read(0)  # 40: the baseline
    assert dispatcher.take_events(0.0) == []
    client.read(0)  # 60: crossed upward
    assert dispatcher.take_events(0.0) == [
        struct.pack("<IIII", header(SENSOR, 0x0, message_type=3), 0, 0, 1 << 16 | 2)]
    client.read(0)  # 70: still above
    client.read(0)  # 40: downward, not asked for
    assert dispatcher.take_events(0.0) == []
    client.trip_point_config(0, 2, 3, 50)
    client.read(0)  # 55: upward again (baseline kept)
    (event,) = dispatcher.take_events(0.0)
    assert parse_event(event) == TripPointEvent(0, 0, 2, True)


def test_trip_points_are_polled_and_negative_thresholds_work() -> None:
    dispatcher, client = make(temperature(values=[(-10,), (-30,)]))
    client.trip_point_config(0, 0, 2, -20)
    assert dispatcher.next_deadline() is None  # not subscribed yet
    client.trip_point_notify(0, True)
    first = dispatcher.next_deadline()
    assert first is not None
    assert dispatcher.take_events(first) == []  # -10: baseline
    (event,) = dispatcher.take_events(dispatcher.next_deadline())
    assert parse_event(event) == TripPointEvent(0, 0, 0, False)
    client.trip_point_config(0, 0, 0, 0)  # disabled: nothing left to watch
    assert dispatcher.next_deadline() is None


def test_trip_point_value_is_64_bit() -> None:
    dispatcher, client = make(temperature(values=[(2**40,), (2**41,)]))
    client.trip_point_notify(0, True)
    assert ask(dispatcher, command(SENSOR, 0x5, 0, trip_control(0, 1), 0, 2**9)) == response(
        SENSOR, 0x5, SUCCESS)  # 2**41
    client.read(0)
    client.read(0)
    assert [parse_event(e) for e in dispatcher.take_events(0.0)] == [
        TripPointEvent(0, 0, 0, True)]


@pytest.mark.parametrize(("params", "status"), [
    ((2, trip_control(0, 1), 0, 0), Status.NOT_FOUND),
    ((0, trip_control(4, 1), 0, 0), Status.INVALID_PARAMETERS),  # 4 trip points: 0..3
    ((0, trip_control(0, 1) | 1 << 2, 0, 0), Status.INVALID_PARAMETERS),
    ((0, trip_control(0, 1) | 1 << 12, 0, 0), Status.INVALID_PARAMETERS),
    ((1, trip_control(0, 1), 0, 0), Status.INVALID_PARAMETERS),  # vector: no trip points
])
def test_trip_point_config_errors(params: tuple[int, ...], status: Status) -> None:
    dispatcher, _ = make(temperature(), FakeAccelerometer())
    assert ask(dispatcher, command(SENSOR, 0x5, *params)) == response(SENSOR, 0x5, status)


@pytest.mark.parametrize(("params", "status"), [
    ((2, 1), Status.NOT_FOUND), ((0, 3), Status.INVALID_PARAMETERS), ((1, 1), SUCCESS)])
def test_trip_point_notify(params: tuple[int, int], status: Status) -> None:
    dispatcher, _ = make(temperature(), FakeAccelerometer())
    assert ask(dispatcher, command(SENSOR, 0x4, *params)) == response(SENSOR, 0x4, status)


# --- reset ----------------------------------------------------------------------------------

def test_reset_forgets_configuration_subscriptions_and_pending_events() -> None:
    dispatcher, client = make(asynchronous(FakeAccelerometer()), temperature(values=[(1,)] * 5))
    client.config_set(0, config(1, 0, flags=0b11))
    client.continuous_update_notify(0, True)
    client.trip_point_notify(1, True)
    client.trip_point_config(1, 0, 3, 0)
    client.read_async(0)
    dispatcher.reset()
    assert dispatcher.next_deadline() is None
    assert dispatcher.take_events(time.monotonic() + 100) == []
    assert client.config_get(0) == DEFAULT_CONFIG
    assert client.config_get(1) == DEFAULT_CONFIG | 1


# --- Linux probe, as a whole ----------------------------------------------------------------

def test_linux_probe_sequence_for_scmi_iio() -> None:
    """What Linux's sensor protocol and scmi_iio ask, and what scmi_iio requires."""
    dispatcher, client = make(FakeAccelerometer("accel"), temperature("cpu"))
    assert client.sensor_version() == 0x30001
    assert client.message_attributes(SENSOR, 0x4) == 0
    assert client.message_attributes(SENSOR, 0xB) == 0
    sensors = client.sensor_descriptions()
    accel = sensors[0]
    assert accel.axis_count == 3 and accel.continuous_update and not accel.extended_name
    axes = client.axis_descriptions(0)
    assert [a.id for a in axes] == [0, 1, 2]
    assert {a.unit for a in axes} == {0x59}
    assert [a.name.rsplit("_", 1)[1] for a in axes] == ["X", "Y", "Z"]
    assert client.update_intervals(0)[1]
    client.continuous_update_notify(0, True)
    # scmi-hwmon: a scalar temperature it can read without enabling.
    assert (sensors[1].unit, sensors[1].axis_count) == (Unit.DEGREES_C, 0)


# --- ScmiClient.sensor_enabled: enable for a read, as Linux's scmi_iio does ----------------

def test_sensor_enabled_enables_a_disabled_sensor_then_restores_it() -> None:
    _, client = make(FakeAccelerometer())
    assert client.config_get(0) == DEFAULT_CONFIG  # a vector sensor starts disabled
    with client.sensor_enabled(0):
        assert client.config_get(0) == DEFAULT_CONFIG | 1
        assert len(client.read(0)) == 3
    assert client.config_get(0) == DEFAULT_CONFIG


def test_sensor_enabled_leaves_an_enabled_sensor_alone() -> None:
    _, client = make(temperature(values=[1]))
    before = client.config_get(0)
    assert before & 1  # a scalar sensor starts enabled
    with client.sensor_enabled(0):
        assert client.config_get(0) == before
    assert client.config_get(0) == before


def test_sensor_enabled_restores_when_the_block_fails() -> None:
    _, client = make(FakeAccelerometer())
    with pytest.raises(KeyError), client.sensor_enabled(0):
        raise KeyError("the block failed")
    assert client.config_get(0) == DEFAULT_CONFIG


def test_sensor_enabled_reports_a_sensor_that_does_not_exist() -> None:
    _, client = make(FakeAccelerometer())
    with pytest.raises(ScmiStatusError, match="NOT_FOUND"), client.sensor_enabled(7):
        pass
