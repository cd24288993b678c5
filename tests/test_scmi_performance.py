# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""SCMI Performance domain management (0x13): every message, well-formed and malformed,
byte for byte through the Dispatcher; arbitration between two agents; host errors."""

from __future__ import annotations

import errno
import struct

import pytest
from scmi_helpers import LINUX_RESPONSE, command, header, response, u32s

from vhost_scmi.devices.fake_perf import FakePerformanceDomain
from vhost_scmi.devices.performance import DeviceError, Limits, PerfControl, PerformanceDomain
from vhost_scmi.platform.arbitration import Arbiter
from vhost_scmi.platform.view import AgentView
from vhost_scmi.scmi.dispatcher import Dispatcher, build_dispatcher
from vhost_scmi.scmi.status import Status

PERF = 0x13
LEVELS = (600000, 1200000, 1800000)
# DOMAIN_ATTRIBUTES flags: limits notify (29), level notify (28); set limits (31),
# set level (30), extended name (26).
NOTIFY = 1 << 29 | 1 << 28
SET_LIMITS, SET_LEVEL, LONG_NAME = 1 << 31, 1 << 30, 1 << 26


def ask(dispatcher: Dispatcher, message: int, *params: int, room: int = LINUX_RESPONSE,
        token: int = 0) -> bytes:
    return dispatcher.handle(command(PERF, message, *params, token=token), room)


def status_of(reply: bytes) -> int:
    return struct.unpack_from("<i", reply, 4)[0]


def fake(control: PerfControl = PerfControl.LEVEL, name: str = "cpu",
         levels: tuple[int, ...] = LEVELS) -> FakePerformanceDomain:
    return FakePerformanceDomain(name, levels, control)


def name16(name: str) -> bytes:
    return name.encode().ljust(16, b"\0")


def entry(level: int, index: int, latency: int = 0) -> bytes:
    # u32 level, u32 power, u16 latency, u16 reserved, u32 indicative kHz, u32 index.
    return u32s(level, 0) + struct.pack("<HH", latency, 0) + u32s(level, index)


# --- discovery -------------------------------------------------------------------------------

def test_version_is_4_0() -> None:
    assert ask(build_dispatcher([fake()]), 0x0) == response(PERF, 0x0, 0, u32s(0x40000))


def test_protocol_attributes_count_domains_no_power_unit_no_statistics() -> None:
    dispatcher = build_dispatcher([fake(), fake(name="gpu")])
    assert ask(dispatcher, 0x1) == response(PERF, 0x1, 0, u32s(2, 0, 0, 0))


@pytest.mark.parametrize("message", range(0x3, 0xD))
def test_every_message_is_implemented_without_fast_channel(message: int) -> None:
    assert ask(build_dispatcher([fake()]), 0x2, message) == response(PERF, 0x2, 0, u32s(0))


@pytest.mark.parametrize("message", [0xD, 0x10, 0xFF])
def test_message_attributes_of_unknown_message_is_not_found(message: int) -> None:
    assert ask(build_dispatcher([fake()]), 0x2, message) == response(PERF, 0x2, -4)


def test_unknown_message_and_protocol_absent_without_domains() -> None:
    # As for every protocol, the dispatcher answers an unknown message NOT_FOUND
    # (scmi-tests b004), and every message of an absent protocol NOT_SUPPORTED.
    assert status_of(ask(build_dispatcher([fake()]), 0xD, 0)) == Status.NOT_FOUND
    assert ask(build_dispatcher([]), 0x0) == response(PERF, 0x0, Status.NOT_SUPPORTED)


@pytest.mark.parametrize(("control", "flags"), [
    (PerfControl.NONE, NOTIFY), (PerfControl.LEVEL, NOTIFY | SET_LEVEL),
    (PerfControl.LIMITS, NOTIFY | SET_LIMITS)])
def test_domain_attributes_sustained_is_the_top_level(control, flags) -> None:
    dispatcher = build_dispatcher([fake(control)])
    # flags, rate limit, sustained kHz, sustained level, name.
    assert ask(dispatcher, 0x3, 0) == response(
        PERF, 0x3, 0, u32s(flags, 0, 1800000, 1800000) + name16("cpu"))


def test_domain_attributes_of_a_read_only_agent_offer_no_set() -> None:
    domain = fake(PerfControl.LEVEL)
    view = AgentView(resources=[domain], controllable=frozenset())
    assert ask(build_dispatcher(view), 0x3, 0)[8:12] == u32s(NOTIFY)


def test_long_name_is_flagged_and_given_by_domain_name_get() -> None:
    name = "a-performance-domain-with-a-long-name"
    dispatcher = build_dispatcher([fake(name=name), fake()])
    reply = ask(dispatcher, 0x3, 0)
    assert reply[8:12] == u32s(NOTIFY | SET_LEVEL | LONG_NAME)
    assert reply[24:40] == name.encode()[:15] + b"\0"
    assert ask(dispatcher, 0xC, 0) == response(PERF, 0xC, 0,
                                                u32s(0) + name.encode().ljust(64, b"\0"))
    assert ask(dispatcher, 0xC, 1) == response(PERF, 0xC, Status.NOT_SUPPORTED)
    assert ask(dispatcher, 0xC, 2) == response(PERF, 0xC, Status.NOT_FOUND)


def test_describe_levels_pages_six_per_reply() -> None:
    levels = tuple(100000 * (k + 1) for k in range(8))
    dispatcher = build_dispatcher([fake(levels=levels)])
    first = ask(dispatcher, 0x4, 0, 0)
    assert first == response(PERF, 0x4, 0, struct.pack("<HH", 6, 2)
                             + b"".join(entry(levels[k], k) for k in range(6)))
    second = ask(dispatcher, 0x4, 0, 6)
    assert second == response(PERF, 0x4, 0, struct.pack("<HH", 2, 0)
                              + entry(levels[6], 6) + entry(levels[7], 7))
    # A smaller buffer gets fewer per page.
    small = ask(dispatcher, 0x4, 0, 0, room=8 + 4 + 2 * 20)
    assert small[8:12] == struct.pack("<HH", 2, 6)
    assert ask(dispatcher, 0x4, 0, 0, room=8 + 4 + 19) == response(PERF, 0x4,
                                                                   Status.COMMS_ERROR)


def test_describe_levels_bad_domain_and_index() -> None:
    dispatcher = build_dispatcher([fake()])
    assert ask(dispatcher, 0x4, 1, 0) == response(PERF, 0x4, Status.NOT_FOUND)
    assert ask(dispatcher, 0x4, 0, 3) == response(PERF, 0x4, Status.INVALID_PARAMETERS)


def test_transition_latency_is_in_every_level() -> None:
    domain = fake()
    domain.transition_latency_us = 250
    assert ask(build_dispatcher([domain]), 0x4, 0, 0)[12:32] == entry(600000, 0, 250)


# --- levels and limits -----------------------------------------------------------------------

def test_level_set_and_get_reach_the_domain() -> None:
    domain = fake()
    dispatcher = build_dispatcher([domain])
    assert ask(dispatcher, 0x8, 0) == response(PERF, 0x8, 0, u32s(600000))
    assert ask(dispatcher, 0x7, 0, 1800000, token=9) == response(PERF, 0x7, 0, token=9)
    assert domain.level() == 1800000
    assert ask(dispatcher, 0x8, 0) == response(PERF, 0x8, 0, u32s(1800000))


def test_level_between_levels_rounds_up() -> None:
    domain = fake()
    dispatcher = build_dispatcher([domain])
    assert status_of(ask(dispatcher, 0x7, 0, 700000)) == Status.SUCCESS
    assert domain.level() == 1200000


@pytest.mark.parametrize("level", [599999, 1800001, 0, 0xFFFFFFFF])
def test_level_outside_the_limits_is_out_of_range(level: int) -> None:
    domain = fake()
    assert ask(build_dispatcher([domain]), 0x7, 0, level) == response(PERF, 0x7,
                                                                      Status.OUT_OF_RANGE)
    assert domain.level() == 600000


def test_level_set_is_denied_unless_controllable() -> None:
    for control in (PerfControl.NONE, PerfControl.LIMITS):
        domain = fake(control)
        assert ask(build_dispatcher([domain]), 0x7, 0, 1200000) == response(
            PERF, 0x7, Status.DENIED)
        assert domain.level() == 600000
    domain = fake()
    view = AgentView(resources=[domain], controllable=frozenset())
    assert ask(build_dispatcher(view), 0x7, 0, 1200000) == response(PERF, 0x7, Status.DENIED)


def test_limits_set_and_get() -> None:
    domain = fake(PerfControl.LIMITS)
    dispatcher = build_dispatcher([domain])
    assert ask(dispatcher, 0x6, 0) == response(PERF, 0x6, 0, u32s(1800000, 600000))
    # max, min; rounded inward to listed levels.
    assert ask(dispatcher, 0x5, 0, 1500000, 1000000) == response(PERF, 0x5, 0)
    assert domain.limits() == Limits(1200000, 1200000)
    assert ask(dispatcher, 0x6, 0) == response(PERF, 0x6, 0, u32s(1200000, 1200000))
    assert domain.level() == 1200000  # clamped into the new limits


@pytest.mark.parametrize(("high", "low", "status"), [
    (600000, 1200000, Status.INVALID_PARAMETERS),
    (1900000, 600000, Status.OUT_OF_RANGE),
    (1800000, 500000, Status.OUT_OF_RANGE),
    (1100000, 700000, Status.OUT_OF_RANGE),  # no level inside
])
def test_bad_limits(high: int, low: int, status: Status) -> None:
    domain = fake(PerfControl.LIMITS)
    assert ask(build_dispatcher([domain]), 0x5, 0, high, low) == response(PERF, 0x5, status)
    assert domain.limits() == Limits(600000, 1800000)


def test_limits_set_is_denied_unless_controllable() -> None:
    domain = fake(PerfControl.LEVEL)
    assert ask(build_dispatcher([domain]), 0x5, 0, 1800000, 600000) == response(
        PERF, 0x5, Status.DENIED)


def test_level_must_lie_within_the_current_limits() -> None:
    domain = fake(PerfControl.LEVEL)
    domain.set_limits(Limits(600000, 1200000))  # the host's own limits
    dispatcher = build_dispatcher([domain])
    assert status_of(ask(dispatcher, 0x7, 0, 1800000)) == Status.OUT_OF_RANGE
    assert status_of(ask(dispatcher, 0x7, 0, 1200000)) == Status.SUCCESS


def test_fast_channels_are_not_supported() -> None:
    dispatcher = build_dispatcher([fake()])
    assert ask(dispatcher, 0xB, 0, 0x7) == response(PERF, 0xB, Status.NOT_SUPPORTED)
    assert ask(dispatcher, 0xB, 5, 0x7) == response(PERF, 0xB, Status.NOT_FOUND)


@pytest.mark.parametrize(("message", "params"), [
    (0x3, (1,)), (0x5, (1, 1800000, 600000)), (0x6, (1,)), (0x7, (1, 600000)), (0x8, (1,)),
    (0x9, (1, 1)), (0xA, (1, 1)), (0xC, (1,)), (0x4, (0xFFFFFFFF, 0))])
def test_unknown_domain_is_not_found(message: int, params: tuple[int, ...]) -> None:
    assert ask(build_dispatcher([fake()]), message, *params) == response(PERF, message,
                                                                          Status.NOT_FOUND)


@pytest.mark.parametrize(("message", "needed"), [
    (0x2, 4), (0x3, 4), (0x4, 8), (0x5, 12), (0x6, 4), (0x7, 8), (0x8, 4), (0x9, 8),
    (0xA, 8), (0xB, 8), (0xC, 4)])
def test_short_requests_are_invalid_parameters(message: int, needed: int) -> None:
    dispatcher = build_dispatcher([fake()])
    for length in range(needed):
        request = struct.pack("<I", header(PERF, message)) + bytes(length)
        assert dispatcher.handle(request, LINUX_RESPONSE) == response(
            PERF, message, Status.INVALID_PARAMETERS)


@pytest.mark.parametrize("message", [0x9, 0xA])
def test_notify_with_reserved_bits_is_invalid(message: int) -> None:
    assert ask(build_dispatcher([fake()]), message, 0, 2) == response(
        PERF, message, Status.INVALID_PARAMETERS)


# --- several agents --------------------------------------------------------------------------

def two_agents(*domains: PerformanceDomain) -> tuple[Dispatcher, Dispatcher]:
    arbiter = Arbiter()
    names = ("platform", "vm1", "vm2")
    return tuple(build_dispatcher(AgentView(resources=list(domains), agent_id=agent,
                                            agent_names=names, arbiter=arbiter))
                 for agent in (1, 2))  # type: ignore[return-value]


def events(dispatcher: Dispatcher) -> list[bytes]:
    assert dispatcher.next_deadline() is not None
    return dispatcher.take_events(0.0)


def test_two_agents_host_gets_the_highest_level_and_the_other_is_notified() -> None:
    domain = fake()
    one, two = two_agents(domain)
    assert status_of(ask(one, 0xA, 0, 1)) == Status.SUCCESS  # agent 1 subscribes
    assert status_of(ask(one, 0x7, 0, 1200000)) == Status.SUCCESS
    assert domain.level() == 1200000
    assert one.next_deadline() is None  # its own change: no notification
    assert status_of(ask(two, 0x7, 0, 1800000)) == Status.SUCCESS
    assert domain.level() == 1800000
    # LEVEL_CHANGED: agent 2 caused it, domain 0, the new level.
    notification = struct.pack("<I", header(PERF, 0x1, message_type=3))
    assert events(one) == [notification + u32s(2, 0, 1800000)]
    # Agent 1 asking for less leaves the host at agent 2's level.
    assert status_of(ask(one, 0x7, 0, 600000)) == Status.SUCCESS
    assert domain.level() == 1800000
    # Agent 2 going lower: the highest remaining request (agent 1's) wins.
    assert status_of(ask(two, 0x7, 0, 600000)) == Status.SUCCESS
    assert domain.level() == 600000
    assert events(one) == [notification + u32s(2, 0, 600000)]
    assert two.next_deadline() is None  # agent 2 never subscribed


def test_reset_withdraws_an_agents_level() -> None:
    domain = fake()
    one, two = two_agents(domain)
    ask(one, 0x7, 0, 1200000)
    ask(two, 0x7, 0, 1800000)
    two.reset()
    assert domain.level() == 1200000


def test_two_agents_limits_combine_end_by_end() -> None:
    domain = fake(PerfControl.LIMITS)
    one, two = two_agents(domain)
    assert status_of(ask(two, 0x9, 0, 1)) == Status.SUCCESS
    assert status_of(ask(one, 0x5, 0, 1200000, 600000)) == Status.SUCCESS
    assert domain.limits() == Limits(600000, 1200000)
    notification = struct.pack("<I", header(PERF, 0x0, message_type=3))
    # LIMITS_CHANGED: agent, domain, max, min.
    assert events(two) == [notification + u32s(1, 0, 1200000, 600000)]
    assert status_of(ask(two, 0x5, 0, 1800000, 1200000)) == Status.SUCCESS
    assert domain.limits() == Limits(1200000, 1800000)
    assert status_of(ask(two, 0x9, 0, 0)) == Status.SUCCESS  # unsubscribe
    ask(one, 0x5, 0, 1800000, 1800000)
    assert domain.limits() == Limits(1800000, 1800000)
    assert two.next_deadline() is None


# --- host errors -----------------------------------------------------------------------------

class FailingDomain(FakePerformanceDomain):
    """Sets fail with `error`; reads fail once `reads_fail` is set."""

    def __init__(self, error: Exception) -> None:
        super().__init__("failing", LEVELS, PerfControl.LEVEL)
        self.error = error
        self.reads_fail = False

    def set_level(self, khz: int) -> None:
        raise self.error

    def level(self) -> int:
        if self.reads_fail:
            raise self.error
        return super().level()


@pytest.mark.parametrize(("error", "status"), [
    (DeviceError("no", errno.EACCES), Status.DENIED),
    (DeviceError("busy", errno.EBUSY), Status.BUSY),
    (DeviceError("refused", errno.EINVAL), Status.INVALID_PARAMETERS),
    (DeviceError("gone", errno.ENOENT), Status.HARDWARE_ERROR),
    (DeviceError("gone"), Status.HARDWARE_ERROR),
    (RuntimeError("bug"), Status.GENERIC_ERROR),
])
def test_host_errors_become_statuses_and_one_log_line(error, status, caplog) -> None:
    domain = FailingDomain(error)
    dispatcher = build_dispatcher([domain, fake()])
    with caplog.at_level("DEBUG"):
        assert ask(dispatcher, 0x7, 0, 1200000) == response(PERF, 0x7, status)
    assert len([r for r in caplog.records if "failing" in r.getMessage()]) == 1
    domain.reads_fail = True
    assert ask(dispatcher, 0x8, 0) == response(PERF, 0x8, status)
    # The other domain and the daemon carry on.
    assert ask(dispatcher, 0x7, 1, 1800000) == response(PERF, 0x7, 0)
