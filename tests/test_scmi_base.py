# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""SCMI Base protocol (0x10): every message, byte for byte, through the Dispatcher."""

from __future__ import annotations

import struct

import pytest
from scmi_helpers import (
    BASE,
    LINUX_RESPONSE,
    SENSOR,
    command,
    header,
    name16,
    response,
    u32s,
)

from vhost_scmi import __version__
from vhost_scmi.devices.fake import FakeAccelerometer
from vhost_scmi.scmi.base import BaseProtocol, implementation_version
from vhost_scmi.scmi.client import BaseErrorEvent, ScmiClient, ScmiStatusError, parse_event
from vhost_scmi.scmi.dispatcher import Dispatcher, build_dispatcher
from vhost_scmi.scmi.protocol import Platform
from vhost_scmi.scmi.status import Status

SUCCESS = Status.SUCCESS
SYSTEM_POWER = 0x12


@pytest.fixture
def dispatcher() -> Dispatcher:
    return build_dispatcher([FakeAccelerometer()])


def ask(dispatcher: Dispatcher, request: bytes, room: int = LINUX_RESPONSE) -> bytes:
    return dispatcher.handle(request, room)


def test_protocol_version_is_2_0(dispatcher: Dispatcher) -> None:
    assert ask(dispatcher, command(BASE, 0x0, token=7)) == response(
        BASE, 0x0, SUCCESS, u32s(0x20000), token=7)


def test_protocol_attributes_one_agent_two_other_protocols(dispatcher: Dispatcher) -> None:
    # System Power and Sensor.
    assert ask(dispatcher, command(BASE, 0x1)) == response(BASE, 0x1, SUCCESS, u32s(0x0102))


@pytest.mark.parametrize("message", range(0x0, 0xC))
def test_message_attributes_of_every_message(dispatcher: Dispatcher, message: int) -> None:
    assert ask(dispatcher, command(BASE, 0x2, message)) == response(
        BASE, 0x2, SUCCESS, u32s(0))


@pytest.mark.parametrize("message", [0xC, 0x10, 0xFF, 0x100, 0xFFFFFFFF])
def test_message_attributes_of_unknown_message_is_not_found(
        dispatcher: Dispatcher, message: int) -> None:
    assert ask(dispatcher, command(BASE, 0x2, message)) == response(
        BASE, 0x2, Status.NOT_FOUND)


def test_vendor_and_sub_vendor(dispatcher: Dispatcher) -> None:
    assert ask(dispatcher, command(BASE, 0x3)) == response(BASE, 0x3, SUCCESS, name16("Python"))
    assert ask(dispatcher, command(BASE, 0x4)) == response(
        BASE, 0x4, SUCCESS, name16("vhost-device"))


def test_implementation_version_comes_from_the_package_version(
        dispatcher: Dispatcher) -> None:
    major, minor, patch = (int(part) for part in __version__.split(".")[:3])
    expected = major << 24 | minor << 16 | patch
    assert ask(dispatcher, command(BASE, 0x5)) == response(BASE, 0x5, SUCCESS, u32s(expected))


@pytest.mark.parametrize(("version", "expected"), [
    ("0.1.0", 0x00010000),
    ("1.2.3", 0x01020003),
    ("2.10.65535", 0x020AFFFF),
    ("1.2", 0x01020000),
    ("3", 0x03000000),
    ("0.1.0.dev4+g1234", 0x00010000),
    ("999.999.99999", 0xFFFFFFFF),
    ("unknown", 0),
])
def test_implementation_version_layout(version: str, expected: int) -> None:
    assert implementation_version(version) == expected


def test_list_protocols_lists_system_power_and_sensor(dispatcher: Dispatcher) -> None:
    assert ask(dispatcher, command(BASE, 0x6, 0)) == response(
        BASE, 0x6, SUCCESS, u32s(2) + bytes([SYSTEM_POWER, SENSOR, 0, 0]))


def test_list_protocols_leaves_out_a_protocol_with_nothing_visible() -> None:
    dispatcher = build_dispatcher([])  # no sensor: the Sensor protocol has nothing
    assert ask(dispatcher, command(BASE, 0x6, 0)) == response(
        BASE, 0x6, SUCCESS, u32s(1) + bytes([SYSTEM_POWER, 0, 0, 0]))
    assert ask(dispatcher, command(SENSOR, 0x0)) == response(SENSOR, 0x0,
                                                             Status.NOT_SUPPORTED)


def test_list_protocols_skip_equal_to_total_is_empty_success(dispatcher: Dispatcher) -> None:
    # Linux asks once more with skip == total and must not get an error.
    assert ask(dispatcher, command(BASE, 0x6, 2)) == response(BASE, 0x6, SUCCESS, u32s(0))


@pytest.mark.parametrize("skip", [3, 0xFFFFFFFF])
def test_list_protocols_skip_past_the_end_is_invalid(dispatcher: Dispatcher, skip: int) -> None:
    assert ask(dispatcher, command(BASE, 0x6, skip)) == response(
        BASE, 0x6, Status.INVALID_PARAMETERS)


def many_protocols_dispatcher() -> Dispatcher:
    platform = Platform()
    platform.protocol_ids[:] = [0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16]
    return Dispatcher([BaseProtocol(platform)])


def test_list_protocols_packs_four_ids_per_word_zero_padded() -> None:
    dispatcher = many_protocols_dispatcher()
    assert ask(dispatcher, command(BASE, 0x6, 0)) == response(
        BASE, 0x6, SUCCESS, u32s(6) + bytes([0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0, 0]))
    assert ask(dispatcher, command(BASE, 0x6, 5)) == response(
        BASE, 0x6, SUCCESS, u32s(1) + bytes([0x16, 0, 0, 0]))


def test_list_protocols_pages_to_fit_the_writable_space() -> None:
    dispatcher = many_protocols_dispatcher()
    # Room for the count and one word: four ids.
    assert ask(dispatcher, command(BASE, 0x6, 0), 16) == response(
        BASE, 0x6, SUCCESS, u32s(4) + bytes([0x11, 0x12, 0x13, 0x14]))
    assert ask(dispatcher, command(BASE, 0x6, 4), 16) == response(
        BASE, 0x6, SUCCESS, u32s(2) + bytes([0x15, 0x16, 0, 0]))
    # No room for a single id: an error rather than an endless empty list.
    assert ask(dispatcher, command(BASE, 0x6, 0), 12) == response(
        BASE, 0x6, Status.COMMS_ERROR)


def test_client_lists_protocols_page_by_page() -> None:
    dispatcher = many_protocols_dispatcher()
    client = ScmiClient(lambda request: dispatcher.handle(request, 16))
    assert client.list_protocols() == [0x11, 0x12, 0x13, 0x14, 0x15, 0x16]


@pytest.mark.parametrize(("agent", "answer"), [
    (0, u32s(0) + name16("platform")),
    (1, u32s(1) + name16("guest")),
    (0xFFFFFFFF, u32s(1) + name16("guest")),
])
def test_discover_agent(dispatcher: Dispatcher, agent: int, answer: bytes) -> None:
    assert ask(dispatcher, command(BASE, 0x7, agent)) == response(BASE, 0x7, SUCCESS, answer)


@pytest.mark.parametrize("agent", [2, 0xFFFFFFFE])
def test_discover_unknown_agent_is_not_found(dispatcher: Dispatcher, agent: int) -> None:
    assert ask(dispatcher, command(BASE, 0x7, agent)) == response(BASE, 0x7, Status.NOT_FOUND)


def test_notify_errors_reports_messages_that_are_not_commands(dispatcher: Dispatcher) -> None:
    bad = header(SENSOR, 0x6, token=9, message_type=3)
    # Not subscribed: the message is answered, no event.
    assert ask(dispatcher, struct.pack("<III", bad, 0, 0)) == struct.pack(
        "<Ii", bad, Status.NOT_SUPPORTED)
    assert dispatcher.next_deadline() is None
    assert dispatcher.take_events(0.0) == []

    assert ask(dispatcher, command(BASE, 0x8, 1)) == response(BASE, 0x8, SUCCESS)
    assert ask(dispatcher, struct.pack("<III", bad, 0, 0)) == struct.pack(
        "<Ii", bad, Status.NOT_SUPPORTED)
    assert dispatcher.next_deadline() is not None
    events = dispatcher.take_events(0.0)
    assert events == [struct.pack("<IIIQ", header(BASE, 0x0, message_type=3), 1, 1, bad)]
    assert parse_event(events[0]) == BaseErrorEvent(agent_id=1, fatal=False, headers=(bad,))
    assert dispatcher.take_events(0.0) == []

    assert ask(dispatcher, command(BASE, 0x8, 0)) == response(BASE, 0x8, SUCCESS)
    ask(dispatcher, struct.pack("<I", bad))
    assert dispatcher.take_events(0.0) == []


def test_notify_errors_groups_reports(dispatcher: Dispatcher) -> None:
    ask(dispatcher, command(BASE, 0x8, 1))
    bad = [header(BASE, 0x0, token=t, message_type=2) for t in range(10)]
    for value in bad:
        ask(dispatcher, struct.pack("<I", value))
    events = [parse_event(event) for event in dispatcher.take_events(0.0)]
    assert events == [BaseErrorEvent(1, False, tuple(bad[:8])),
                      BaseErrorEvent(1, False, tuple(bad[8:]))]


@pytest.mark.parametrize("value", [2, 0x80000001])
def test_notify_errors_reserved_bits_are_invalid(dispatcher: Dispatcher, value: int) -> None:
    assert ask(dispatcher, command(BASE, 0x8, value)) == response(
        BASE, 0x8, Status.INVALID_PARAMETERS)


@pytest.mark.parametrize(("params", "status"), [
    ((1, 0, 1), Status.NOT_FOUND),  # the guest, but no device managed by id
    ((1, 7, 0), Status.NOT_FOUND),
    ((0, 0, 1), Status.NOT_FOUND),  # the platform is not an agent to configure
    ((2, 0, 1), Status.NOT_FOUND),
    ((1, 0, 2), Status.INVALID_PARAMETERS),
])
def test_set_device_permissions(dispatcher: Dispatcher, params: tuple[int, ...],
                                status: Status) -> None:
    assert ask(dispatcher, command(BASE, 0x9, *params)) == response(BASE, 0x9, status)


@pytest.mark.parametrize(("params", "status"), [
    ((1, 0, SENSOR, 1), Status.NOT_FOUND),  # no device managed by id
    ((1, 0, 0x99, 1), Status.NOT_FOUND),  # no such protocol
    ((2, 0, SENSOR, 1), Status.NOT_FOUND),
    ((1, 0, BASE, 0), Status.INVALID_PARAMETERS),  # Base access never changes
    ((1, 0, SENSOR, 4), Status.INVALID_PARAMETERS),
    ((1, 0, 0x115, 1), Status.INVALID_PARAMETERS),
])
def test_set_protocol_permissions(dispatcher: Dispatcher, params: tuple[int, ...],
                                  status: Status) -> None:
    assert ask(dispatcher, command(BASE, 0xA, *params)) == response(BASE, 0xA, status)


def test_reset_agent_configuration_restores_start_up_state(dispatcher: Dispatcher) -> None:
    client = ScmiClient(lambda request: dispatcher.handle(request, LINUX_RESPONSE))
    start = client.config_get(0)
    client.config_set(0, 0x3 | (1 << 16))  # enabled, timestamps, 1 s
    client.continuous_update_notify(0, True)
    client.notify_errors(True)
    assert client.config_get(0) != start
    assert dispatcher.next_deadline() is not None

    for flags in (0, 1):
        assert ask(dispatcher, command(BASE, 0xB, 1, flags)) == response(BASE, 0xB, SUCCESS)
        assert client.config_get(0) == start
        assert dispatcher.next_deadline() is None
        ask(dispatcher, struct.pack("<I", header(BASE, 0, message_type=3)))
        assert dispatcher.take_events(0.0) == []


@pytest.mark.parametrize(("params", "status"), [
    ((0, 0), Status.NOT_FOUND),
    ((2, 1), Status.NOT_FOUND),
    ((1, 2), Status.INVALID_PARAMETERS),
])
def test_reset_agent_configuration_errors(dispatcher: Dispatcher, params: tuple[int, int],
                                          status: Status) -> None:
    assert ask(dispatcher, command(BASE, 0xB, *params)) == response(BASE, 0xB, status)


@pytest.mark.parametrize(("message", "length"), [
    (0x2, 4), (0x6, 4), (0x7, 4), (0x8, 4), (0x9, 12), (0xA, 16), (0xB, 8)])
def test_short_requests_are_invalid_parameters(dispatcher: Dispatcher, message: int,
                                               length: int) -> None:
    full = command(BASE, message, *([1] * (length // 4)))
    for cut in range(4, len(full)):
        assert ask(dispatcher, full[:cut]) == response(BASE, message, Status.INVALID_PARAMETERS)


def test_client_discovers_the_platform(dispatcher: Dispatcher) -> None:
    client = ScmiClient(lambda request: dispatcher.handle(request, LINUX_RESPONSE))
    assert client.base_version() == 0x20000
    assert client.base_attributes() == (1, 2)
    assert client.vendor() == "Python"
    assert client.sub_vendor() == "vhost-device"
    assert client.implementation_version() == implementation_version(__version__)
    assert client.list_protocols() == [SYSTEM_POWER, SENSOR]
    assert client.discover_agent(0xFFFFFFFF) == (1, "guest")
    assert client.message_attributes(BASE, 0xB) == 0
    with pytest.raises(ScmiStatusError) as raised:
        client.message_attributes(BASE, 0xC)
    assert raised.value.status == Status.NOT_FOUND


def test_each_socket_is_an_agent_of_its_own() -> None:
    from domain_helpers import agents

    one, two = agents([], 2)
    for dispatcher in (one, two):
        status, payload = call_base(dispatcher, 0x1)
        assert status == Status.SUCCESS and payload[1] == 2  # bits 15:8: two agents
    assert call_base(two, 0x7, 0xFFFFFFFF) == (Status.SUCCESS, struct.pack("<I", 2)
                                               + b"agent2".ljust(16, b"\0"))
    assert call_base(two, 0x7, 1) == (Status.SUCCESS, struct.pack("<I", 1)
                                      + b"agent1".ljust(16, b"\0"))
    assert call_base(two, 0x7, 3)[0] == Status.NOT_FOUND
    # An agent manages its own configuration only.
    assert call_base(two, 0xB, 1, 0)[0] == Status.DENIED
    assert call_base(two, 0xB, 2, 0)[0] == Status.SUCCESS
    assert call_base(two, 0x9, 1, 0, 0)[0] == Status.DENIED
    assert call_base(two, 0x9, 3, 0, 0)[0] == Status.NOT_FOUND


def call_base(dispatcher, message: int, *params: int) -> tuple[int, bytes]:
    from domain_helpers import call

    return call(dispatcher, BASE, message, *params)
