# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The Dispatcher: routing, malformed input, response sizes; never an exception."""

from __future__ import annotations

import struct
import subprocess
import sys
from enum import IntEnum

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scmi_helpers import BASE, LINUX_RESPONSE, SENSOR, ScriptedSensor, command, header, response

from vhost_scmi.devices.fake import FakeAccelerometer
from vhost_scmi.devices.fake_perf import FakePerformanceDomain
from vhost_scmi.devices.fake_power import FakePowerDomain
from vhost_scmi.devices.sensor import Axis, DeviceError, ExtendedAttributes, Unit
from vhost_scmi.devices.spec import create_resources
from vhost_scmi.platform.view import AgentView
from vhost_scmi.scmi import codec, registry
from vhost_scmi.scmi.base import BaseProtocol
from vhost_scmi.scmi.clock import ClockProtocol
from vhost_scmi.scmi.dispatcher import Dispatcher, build_dispatcher
from vhost_scmi.scmi.performance import PerformanceProtocol
from vhost_scmi.scmi.power import PowerProtocol
from vhost_scmi.scmi.powercap import PowercapProtocol
from vhost_scmi.scmi.protocol import Message, Platform, Protocol
from vhost_scmi.scmi.registry import PROTOCOLS, all_protocols
from vhost_scmi.scmi.reset import ResetProtocol
from vhost_scmi.scmi.sensor import SensorProtocol
from vhost_scmi.scmi.status import ProtocolId, Status
from vhost_scmi.scmi.system_power import SystemPowerProtocol
from vhost_scmi.scmi.voltage import VoltageProtocol


def sensors() -> list:
    fake = FakeAccelerometer()
    fake.asynchronous = True
    return [
        fake,
        # Scripts run out (a DeviceError) after 50 reads: both paths get exercised.
        ScriptedSensor("temp", [(i,) for i in range(50)], Unit.DEGREES_C, -3,
                       extended=ExtendedAttributes(1, -3, -40_000, 125_000)),
        ScriptedSensor("a rather long sensor name", [DeviceError("gone")] * 50,
                       axes=(Axis("x_axis_with_a_long_name", Unit.GAUSS),)),
    ]


@pytest.fixture
def dispatcher() -> Dispatcher:
    return build_dispatcher(sensors())


def routes(dispatcher: Dispatcher) -> list[tuple[int, int, int]]:
    """(protocol id, message id, request length) of every implemented message."""
    return [(protocol.protocol_id, message.id, message.request_length)
            for protocol in dispatcher.protocols.values()
            for message in protocol.messages.values()]


def test_registry_and_build() -> None:
    assert tuple(all_protocols()) == (BaseProtocol, SystemPowerProtocol, SensorProtocol,
                         PerformanceProtocol, PowerProtocol, ClockProtocol, ResetProtocol,
                         VoltageProtocol, PowercapProtocol)
    # Protocols over resources exist for an agent only when it sees some; System Power
    # for every agent.
    dispatcher = build_dispatcher([])
    assert sorted(dispatcher.protocols) == [ProtocolId.BASE, ProtocolId.SYSTEM_POWER]
    dispatcher = build_dispatcher([FakeAccelerometer()])
    assert sorted(dispatcher.protocols) == [ProtocolId.BASE, ProtocolId.SYSTEM_POWER,
                                            ProtocolId.SENSOR]
    dispatcher = build_dispatcher([FakePowerDomain("pd"), FakePerformanceDomain("cpu", (1,))])
    assert sorted(dispatcher.protocols) == [ProtocolId.BASE, ProtocolId.POWER_DOMAIN,
                                            ProtocolId.SYSTEM_POWER, ProtocolId.PERFORMANCE]


def test_registry_entries_name_the_model_each_protocol_serves() -> None:
    # A protocol over resources is visible exactly for resources whose type comes from
    # the model module its entry names (what lets the registry skip the others).
    resources = create_resources(["fake", "fake-perf,levels=1:2", "fake-power",
                                  "fake-clock,rates=1:2", "fake-reset", "fake-voltage,levels=1:2",
                                  "fake-powercap"])

    def from_model(resource: object, model: str) -> bool:
        return any(cls.__module__ == model for cls in type(resource).__mro__)

    served = [entry for entry in PROTOCOLS if entry[2] is not None]
    assert len(served) == len(resources)
    for module, name, model in served:
        protocol_class = registry.protocol_class(module, name)
        assert model is not None
        own = [r for r in resources if from_model(r, model)]
        others = [r for r in resources if not from_model(r, model)]
        assert len(own) == 1, model
        assert protocol_class(AgentView(resources=own)).visible(), name
        assert not protocol_class(AgentView(resources=others)).visible(), name


def test_a_sensor_only_platform_imports_no_other_protocol() -> None:
    # Start-up imports only the protocols the devices can use (a fresh interpreter, as
    # the daemon's own start).
    program = (
        "import sys\n"
        "from vhost_scmi.devices.spec import create_resources\n"
        "from vhost_scmi.scmi.dispatcher import build_dispatcher\n"
        "dispatcher = build_dispatcher(create_resources(['fake']))\n"
        "print(sorted(int(p) for p in dispatcher.protocols))\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('vhost_scmi.'))))\n"
    )
    out = subprocess.run([sys.executable, "-P", "-c", program], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out[0] == str(sorted([BASE, 0x12, SENSOR]))
    imported = set(out[1].split())
    for module, _name, _model in PROTOCOLS[3:]:
        assert module not in imported
    assert {"vhost_scmi.scmi.base", "vhost_scmi.scmi.sensor",
            "vhost_scmi.scmi.system_power"} <= imported


@pytest.mark.parametrize("protocol", [0x00, 0x11, 0x14, 0x16, 0x80, 0xFF])
def test_unknown_protocol_is_not_supported(dispatcher: Dispatcher, protocol: int) -> None:
    assert dispatcher.handle(command(protocol, 0x0, token=5), LINUX_RESPONSE) == response(
        protocol, 0x0, Status.NOT_SUPPORTED, token=5)


@pytest.mark.parametrize(("protocol", "message"), [(BASE, 0xC), (BASE, 0xFF), (SENSOR, 0xE),
                                                   (SENSOR, 0x80)])
def test_unknown_message_is_not_found(dispatcher: Dispatcher, protocol: int,
                                      message: int) -> None:
    # As scmi-tests' b004 expects, and as PROTOCOL_MESSAGE_ATTRIBUTES answers.
    assert dispatcher.handle(command(protocol, message, 0, 0), LINUX_RESPONSE) == response(
        protocol, message, Status.NOT_FOUND)


def test_every_short_request_is_invalid_parameters(dispatcher: Dispatcher) -> None:
    checked = 0
    for protocol, message, length in routes(dispatcher):
        for cut in range(length):
            request = command(protocol, message, token=3) + bytes(cut)
            assert dispatcher.handle(request, LINUX_RESPONSE) == response(
                protocol, message, Status.INVALID_PARAMETERS, token=3)
            checked += 1
    assert checked > 40


def test_longer_requests_are_accepted(dispatcher: Dispatcher) -> None:
    assert dispatcher.handle(command(BASE, 0x0, 1, 2, 3), LINUX_RESPONSE) == response(
        BASE, 0x0, Status.SUCCESS, struct.pack("<I", 0x20000))


@pytest.mark.parametrize("request_bytes", [b"", b"\x00", b"\x00\x54\x00"])
def test_requests_without_a_header_get_nothing(dispatcher: Dispatcher,
                                               request_bytes: bytes) -> None:
    assert dispatcher.handle(request_bytes, LINUX_RESPONSE) == b""


@pytest.mark.parametrize("room", [-1, 0, 4, 7])
def test_no_room_for_a_status_gets_nothing(dispatcher: Dispatcher, room: int) -> None:
    assert dispatcher.handle(command(BASE, 0x0), room) == b""


@pytest.mark.parametrize("message_type", [1, 2, 3])
def test_messages_that_are_not_commands(dispatcher: Dispatcher, message_type: int) -> None:
    value = header(SENSOR, 0x6, token=4, message_type=message_type)
    assert dispatcher.handle(struct.pack("<III", value, 0, 0), LINUX_RESPONSE) == struct.pack(
        "<Ii", value, Status.NOT_SUPPORTED)


def test_reserved_header_bits_are_ignored_and_echoed(dispatcher: Dispatcher) -> None:
    value = 0xF0000000 | header(BASE, 0x0, token=0x3FF)
    assert dispatcher.handle(struct.pack("<I", value), LINUX_RESPONSE) == struct.pack(
        "<IiI", value, Status.SUCCESS, 0x20000)


def test_memoryview_and_bytearray_requests(dispatcher: Dispatcher) -> None:
    request = command(SENSOR, 0x6, 1, 0)
    expected = dispatcher.handle(request, LINUX_RESPONSE)[:8]
    for wrapped in (bytearray(request), memoryview(request)):
        assert dispatcher.handle(wrapped, LINUX_RESPONSE)[:8] == expected


def test_responses_fit_every_writable_size(dispatcher: Dispatcher) -> None:
    """Every message, every buffer size: never longer than offered; pages shrink to fit."""
    parameters = [(0,), (0, 0), (1, 0), (2, 0), (0, 1), (0, 2), (0, 0xFFFFFFFF)]
    for protocol, message, length in routes(dispatcher):
        for params in parameters:
            request = command(protocol, message, *(list(params) + [0] * 4)[:length // 4])
            for room in range(8, 200):
                answer = dispatcher.handle(request, room)
                assert 8 <= len(answer) <= room
                assert answer[:4] == request[:4]
                if room >= LINUX_RESPONSE:
                    assert len(answer) <= LINUX_RESPONSE


class FaultyMessage(IntEnum):
    BROKEN = 0x3


class Faulty(Protocol):
    """A protocol whose handler has a bug."""

    protocol_id = ProtocolId(0x15)
    version = 0x10000

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform)
        self.add_messages(Message(FaultyMessage.BROKEN, self._broken))

    def attributes(self) -> bytes:
        raise ZeroDivisionError("attributes")

    def _broken(self, header: int, request: bytes, room: int) -> bytes:
        return b"x" * 1000

    def next_deadline(self) -> float | None:
        raise RuntimeError("deadline")

    def take_events(self, now: float) -> list[bytes]:
        raise RuntimeError("events")

    def reset(self) -> None:
        raise RuntimeError("reset")


def test_internal_errors_are_contained() -> None:
    dispatcher = Dispatcher([Faulty(Platform())])
    assert dispatcher.handle(command(SENSOR, 0x1), LINUX_RESPONSE) == response(
        SENSOR, 0x1, Status.GENERIC_ERROR)
    # A handler answering more than offered: an error status instead.
    assert dispatcher.handle(command(SENSOR, 0x3), LINUX_RESPONSE) == response(
        SENSOR, 0x3, Status.COMMS_ERROR)
    assert dispatcher.next_deadline() is None
    assert dispatcher.take_events(0.0) == []
    dispatcher.reset()


def test_duplicate_message_ids_are_refused() -> None:
    protocol = Faulty(Platform())
    with pytest.raises(ValueError, match="defined twice"):
        protocol.add_messages(Message(FaultyMessage.BROKEN, protocol._broken))


def test_sensor_exponents_out_of_range_are_refused_at_build() -> None:
    with pytest.raises(ValueError, match="exponent 16"):
        build_dispatcher([ScriptedSensor("bad", exponent=16)])
    with pytest.raises(ValueError, match="resolution"):
        build_dispatcher([ScriptedSensor("bad", extended=ExtendedAttributes(1 << 27, 0, 0, 1))])


def test_events_of_all_protocols_are_gathered(dispatcher: Dispatcher) -> None:
    dispatcher.handle(command(BASE, 0x8, 1), LINUX_RESPONSE)
    dispatcher.handle(struct.pack("<I", header(BASE, 0, message_type=2)), LINUX_RESPONSE)
    dispatcher.handle(command(SENSOR, 0x6, 0, 1), LINUX_RESPONSE)
    events = dispatcher.take_events(0.0)
    assert sorted(struct.unpack_from("<I", event)[0] >> 8 & 0xFF for event in events) == [
        BASE << 2 | 3, SENSOR << 2 | 2]


# --- properties -----------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(max_examples=3000, deadline=None,
                             suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY_SETTINGS
@given(request=st.binary(max_size=64), room=st.integers(min_value=-8, max_value=300))
def test_random_bytes_never_raise(dispatcher: Dispatcher, request: bytes, room: int) -> None:
    answer = dispatcher.handle(request, room)
    assert isinstance(answer, bytes)
    assert len(answer) <= max(room, 0)
    if answer:
        assert answer[:4] == request[:4]
        assert len(answer) >= 8


@st.composite
def well_formed(draw: st.DrawFn) -> bytes:
    """A command to an implemented message with random parameters and a random length."""
    protocol = draw(st.sampled_from([BASE, SENSOR]))
    message = draw(st.integers(min_value=0, max_value=0xF))
    words = draw(st.lists(st.one_of(st.integers(min_value=0, max_value=4),
                                    st.integers(min_value=0, max_value=0xFFFFFFFF)),
                          max_size=5))
    token = draw(st.integers(min_value=0, max_value=0x3FF))
    return command(protocol, message, *words, token=token)


@settings(max_examples=600, deadline=None)
@given(requests=st.lists(well_formed(), max_size=30),
       room=st.integers(min_value=8, max_value=200), clock=st.floats(0, 1e6))
def test_random_commands_never_raise(requests: list[bytes], room: int, clock: float) -> None:
    dispatcher = build_dispatcher(sensors())
    for request in requests:
        answer = dispatcher.handle(request, room)
        assert 8 <= len(answer) <= room
        assert answer[:4] == request[:4]
        status = struct.unpack_from("<i", answer, 4)[0]
        assert status in {s.value for s in Status}
        deadline = dispatcher.next_deadline()
        assert deadline is None or isinstance(deadline, float)
        for event in dispatcher.take_events(clock):
            assert 4 <= len(event) <= 136
    dispatcher.reset()
    assert dispatcher.next_deadline() is None


# --- the Cython codec -----------------------------------------------------------------------

def test_codec_header_round_trip() -> None:
    for fields in [(0, 0, 0, 0), (0xFF, 3, 0xFF, 0x3FF), (6, 2, 0x15, 513)]:
        assert codec.unpack_header(codec.pack_header(*fields)) == fields
    assert codec.pack_header(0x106, 4, 0x115, 0x400) == 6 | 0x15 << 10  # fields masked


def test_codec_reading_packers() -> None:
    assert codec.pack_reading_response(0x1234, [-1, 2], 2, 7) == struct.pack(
        "<IiqQqQ", 0x1234, 0, -1, 7, 2, 7)
    assert codec.pack_readings(1, 2, 3, 3, (5,), 0) == struct.pack("<IIIqQ", 1, 2, 3, 5, 0)
    assert codec.pack_readings(1, 0, 0, 1, (), 0) == struct.pack("<I", 1)
    with pytest.raises(ValueError):
        codec.pack_reading_response(0, [1], 2, 0)
    with pytest.raises(ValueError):
        codec.pack_readings(1, 2, 3, 4, (5,), 0)
    with pytest.raises(OverflowError):
        codec.pack_reading_response(0, [2**63], 1, 0)
    with pytest.raises(TypeError):
        codec.pack_reading_response(0, ["1"], 1, 0)
    assert codec.status_response(0xFFFFFFFF, -10) == struct.pack("<Ii", 0xFFFFFFFF, -10)
