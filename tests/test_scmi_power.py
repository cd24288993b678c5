# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""SCMI Power domain management (0x11): every message, well-formed and malformed, byte
for byte through the Dispatcher; arbitration between two agents; host errors."""

from __future__ import annotations

import errno
import struct

import pytest
from scmi_helpers import LINUX_RESPONSE, command, header, response, u32s

from vhost_scmi.devices.fake_power import FakePowerDomain
from vhost_scmi.devices.power_domain import DeviceError
from vhost_scmi.platform.arbitration import Arbiter
from vhost_scmi.platform.view import AgentView
from vhost_scmi.scmi.dispatcher import Dispatcher, build_dispatcher
from vhost_scmi.scmi.status import Status

POWER = 0x11
ON, OFF = 0, 1 << 30
# DOMAIN_ATTRIBUTES flags: state notify (31), sync set (29), extended name (27).
NOTIFY, SYNC, LONG_NAME = 1 << 31, 1 << 29, 1 << 27


def ask(dispatcher: Dispatcher, message: int, *params: int, token: int = 0) -> bytes:
    return dispatcher.handle(command(POWER, message, *params, token=token), LINUX_RESPONSE)


def status_of(reply: bytes) -> int:
    return struct.unpack_from("<i", reply, 4)[0]


def fake(name: str = "pd", on: bool = True, controllable: bool = True) -> FakePowerDomain:
    return FakePowerDomain(name, on, controllable)


def test_version_is_3_0() -> None:
    assert ask(build_dispatcher([fake()]), 0x0) == response(POWER, 0x0, 0, u32s(0x30000))


def test_protocol_attributes_count_domains_no_statistics() -> None:
    dispatcher = build_dispatcher([fake(), fake("b"), fake("c")])
    assert ask(dispatcher, 0x1) == response(POWER, 0x1, 0, u32s(3, 0, 0, 0))


@pytest.mark.parametrize(("message", "status"), [
    (0x3, 0), (0x4, 0), (0x5, 0), (0x6, 0), (0x8, 0),
    (0x7, Status.NOT_FOUND), (0x9, Status.NOT_FOUND)])
def test_message_attributes(message: int, status: int) -> None:
    expected = response(POWER, 0x2, 0, u32s(0)) if status == 0 else response(POWER, 0x2, status)
    assert ask(build_dispatcher([fake()]), 0x2, message) == expected


def test_protocol_absent_without_domains() -> None:
    assert ask(build_dispatcher([]), 0x0) == response(POWER, 0x0, Status.NOT_SUPPORTED)


def test_domain_attributes() -> None:
    dispatcher = build_dispatcher([fake("gpu"), fake("ro", controllable=False)])
    assert ask(dispatcher, 0x3, 0) == response(POWER, 0x3, 0, u32s(NOTIFY | SYNC)
                                               + b"gpu".ljust(16, b"\0"))
    assert ask(dispatcher, 0x3, 1)[8:12] == u32s(NOTIFY)
    view = AgentView(resources=[fake("gpu")], controllable=frozenset())
    assert ask(build_dispatcher(view), 0x3, 0)[8:12] == u32s(NOTIFY)


def test_long_name() -> None:
    name = "the-power-domain-of-a-passthrough-gpu"
    dispatcher = build_dispatcher([fake(name), fake()])
    reply = ask(dispatcher, 0x3, 0)
    assert reply[8:12] == u32s(NOTIFY | SYNC | LONG_NAME)
    assert reply[12:28] == name.encode()[:15] + b"\0"
    assert ask(dispatcher, 0x8, 0) == response(POWER, 0x8, 0,
                                               u32s(0) + name.encode().ljust(64, b"\0"))
    assert ask(dispatcher, 0x8, 1) == response(POWER, 0x8, Status.NOT_SUPPORTED)


def test_state_set_and_get() -> None:
    domain = fake(on=True)
    dispatcher = build_dispatcher([domain])
    assert ask(dispatcher, 0x5, 0) == response(POWER, 0x5, 0, u32s(ON))
    assert ask(dispatcher, 0x4, 0, 0, OFF, token=3) == response(POWER, 0x4, 0, token=3)
    assert not domain.is_on()
    assert ask(dispatcher, 0x5, 0) == response(POWER, 0x5, 0, u32s(OFF))
    assert ask(dispatcher, 0x4, 0, 0, ON) == response(POWER, 0x4, 0)
    assert domain.is_on()


@pytest.mark.parametrize(("flags", "state"), [
    (1, ON),  # asynchronous: not supported
    (2, ON),  # reserved flag bit
    (0, 1),  # a state that does not exist
    (0, OFF | 1),
    (0, 1 << 31),
])
def test_state_set_invalid_parameters(flags: int, state: int) -> None:
    domain = fake(on=False)
    assert ask(build_dispatcher([domain]), 0x4, flags, 0, state) == response(
        POWER, 0x4, Status.INVALID_PARAMETERS)
    assert not domain.is_on()


def test_state_set_denied_unless_controllable() -> None:
    domain = fake(on=True, controllable=False)
    assert ask(build_dispatcher([domain]), 0x4, 0, 0, OFF) == response(POWER, 0x4,
                                                                       Status.DENIED)
    domain = fake(on=True)
    view = AgentView(resources=[domain], controllable=frozenset())
    assert ask(build_dispatcher(view), 0x4, 0, 0, OFF) == response(POWER, 0x4, Status.DENIED)
    assert domain.is_on()


@pytest.mark.parametrize(("message", "params"), [
    (0x3, (1,)), (0x4, (0, 1, ON)), (0x5, (1,)), (0x6, (1, 1)), (0x8, (1,)),
    (0x5, (0xFFFFFFFF,))])
def test_unknown_domain_is_not_found(message: int, params: tuple[int, ...]) -> None:
    assert ask(build_dispatcher([fake()]), message, *params) == response(POWER, message,
                                                                          Status.NOT_FOUND)


@pytest.mark.parametrize(("message", "needed"), [
    (0x2, 4), (0x3, 4), (0x4, 12), (0x5, 4), (0x6, 8), (0x8, 4)])
def test_short_requests_are_invalid_parameters(message: int, needed: int) -> None:
    dispatcher = build_dispatcher([fake()])
    for length in range(needed):
        request = struct.pack("<I", header(POWER, message)) + bytes(length)
        assert dispatcher.handle(request, LINUX_RESPONSE) == response(
            POWER, message, Status.INVALID_PARAMETERS)


def test_notify_reserved_bits_are_invalid() -> None:
    assert ask(build_dispatcher([fake()]), 0x6, 0, 0x10) == response(
        POWER, 0x6, Status.INVALID_PARAMETERS)


# --- several agents --------------------------------------------------------------------------

def two_agents(*domains: FakePowerDomain) -> tuple[Dispatcher, Dispatcher]:
    arbiter = Arbiter()
    return tuple(build_dispatcher(AgentView(resources=list(domains), agent_id=agent,
                                            agent_names=("platform", "a", "b"),
                                            arbiter=arbiter))
                 for agent in (1, 2))  # type: ignore[return-value]


def test_on_while_any_agent_wants_it_on_and_the_other_is_notified() -> None:
    domain = fake(on=False)
    one, two = two_agents(domain)
    assert status_of(ask(one, 0x6, 0, 1)) == Status.SUCCESS
    assert status_of(ask(two, 0x4, 0, 0, ON)) == Status.SUCCESS
    assert domain.is_on()
    changed = struct.pack("<I", header(POWER, 0x0, message_type=3))
    # POWER_STATE_CHANGED: agent 2 caused it, domain 0, on.
    assert one.take_events(0.0) == [changed + u32s(2, 0, ON)]
    assert status_of(ask(one, 0x4, 0, 0, ON)) == Status.SUCCESS
    assert status_of(ask(two, 0x4, 0, 0, OFF)) == Status.SUCCESS
    assert domain.is_on()  # agent 1 still wants it
    assert status_of(ask(one, 0x4, 0, 0, OFF)) == Status.SUCCESS
    assert not domain.is_on()
    assert one.next_deadline() is None  # its own change
    assert status_of(ask(two, 0x4, 0, 0, ON)) == Status.SUCCESS
    assert one.take_events(0.0) == [changed + u32s(2, 0, ON)]
    two.reset()  # agent 2 leaves: nobody wants it on
    assert not domain.is_on()


# --- host errors -----------------------------------------------------------------------------

class FailingDomain(FakePowerDomain):
    def __init__(self, error: Exception) -> None:
        super().__init__("failing", True, True)
        self.error = error

    def set_on(self, on: bool) -> None:
        raise self.error

    def is_on(self) -> bool:
        raise self.error


@pytest.mark.parametrize(("error", "status"), [
    (DeviceError("no", errno.EACCES), Status.DENIED),
    (DeviceError("busy", errno.EBUSY), Status.BUSY),
    (DeviceError("refused", errno.EINVAL), Status.INVALID_PARAMETERS),
    (DeviceError("gone", errno.ENODEV), Status.HARDWARE_ERROR),
])
def test_host_errors_become_statuses(error, status, caplog) -> None:
    dispatcher = build_dispatcher([FailingDomain(error), fake()])
    with caplog.at_level("DEBUG"):
        assert ask(dispatcher, 0x4, 0, 0, OFF) == response(POWER, 0x4, status)
    assert len([r for r in caplog.records if "failing" in r.getMessage()]) == 1
    assert ask(dispatcher, 0x5, 0) == response(POWER, 0x5, status)
    assert ask(dispatcher, 0x4, 0, 1, OFF) == response(POWER, 0x4, 0)
