# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Clock protocol (0x14) through the dispatcher: every message, well-formed and malformed,
permissions and arbitration between agents."""

from __future__ import annotations

import struct
import time

import pytest
from domain_helpers import CLOCK, agents, call, events, u32s
from scmi_helpers import BASE, header

from vhost_scmi.devices.clock import RateRange
from vhost_scmi.devices.fake_clock import FakeClock
from vhost_scmi.scmi.dispatcher import build_dispatcher
from vhost_scmi.scmi.domain import DELAYED_RESPONSE_DELAY
from vhost_scmi.scmi.status import Status as S


def q(*rates: int) -> bytes:
    return struct.pack(f"<{len(rates)}Q", *rates)


@pytest.fixture
def clocks() -> list[FakeClock]:
    return [FakeClock("uart", rates=(24_000_000, 48_000_000, 96_000_000)),
            FakeClock("a-very-long-clock-name", rate_range=RateRange(1000, 10_000, 1000)),
            FakeClock("many", rates=tuple(range(1, 17)))]


@pytest.fixture
def d(clocks):
    return build_dispatcher(clocks)


def test_discovery(d) -> None:
    # System Power is there for every agent; Sensor only with sensors.
    assert call(d, BASE, 0x6, 0)[1] == u32s(2) + bytes((0x12, 0x14, 0, 0))
    assert call(d, CLOCK, 0x0) == (S.SUCCESS, u32s(0x30000))
    assert call(d, CLOCK, 0x1) == (S.SUCCESS, struct.pack("<HBB", 3, 0, 0))
    for message in range(0x3, 0x10):
        assert call(d, CLOCK, 0x2, message) == (S.SUCCESS, u32s(0))
    assert call(d, CLOCK, 0x2, 0x10)[0] == S.NOT_FOUND


def test_clock_attributes(d, clocks) -> None:
    status, payload = call(d, CLOCK, 0x3, 0)
    assert status == S.SUCCESS
    # rate-changed and change-requested notifications, restricted (permissions), gated.
    assert payload == u32s(1 << 31 | 1 << 30 | 1 << 1) + b"uart".ljust(16, b"\0") + u32s(0)
    clocks[0].enabled = True
    assert call(d, CLOCK, 0x3, 0)[1][:4] == u32s(1 << 31 | 1 << 30 | 1 << 1 | 1)
    long = call(d, CLOCK, 0x3, 1)[1]
    assert long[:4] == u32s(1 << 31 | 1 << 30 | 1 << 29 | 1 << 1)
    assert long[4:20] == b"a-very-long-clo\0"
    assert call(d, CLOCK, 0x3, 3) == (S.NOT_FOUND, b"")


def test_describe_rates(d) -> None:
    assert call(d, CLOCK, 0x4, 0, 0) == (
        S.SUCCESS, u32s(3) + q(24_000_000, 48_000_000, 96_000_000))
    assert call(d, CLOCK, 0x4, 0, 2) == (S.SUCCESS, u32s(1) + q(96_000_000))
    assert call(d, CLOCK, 0x4, 0, 3)[0] == S.INVALID_PARAMETERS
    assert call(d, CLOCK, 0x4, 1, 0) == (S.SUCCESS, u32s(3 | 1 << 12) + q(1000, 10_000, 1000))
    assert call(d, CLOCK, 0x4, 1, 1)[0] == S.INVALID_PARAMETERS
    # 16 rates page at 15 in a Linux-sized buffer; a small buffer pages sooner.
    assert call(d, CLOCK, 0x4, 2, 0) == (S.SUCCESS, u32s(15 | 1 << 16) + q(*range(1, 16)))
    assert call(d, CLOCK, 0x4, 2, 15) == (S.SUCCESS, u32s(1) + q(16))
    assert call(d, CLOCK, 0x4, 2, 0, room=8 + 4 + 16) == (S.SUCCESS,
                                                          u32s(2 | 14 << 16) + q(1, 2))
    assert call(d, CLOCK, 0x4, 2, 0, room=8 + 4 + 7)[0] == S.COMMS_ERROR
    assert call(d, CLOCK, 0x4, 9, 0)[0] == S.NOT_FOUND


@pytest.mark.parametrize(("flags", "requested", "chosen"), [
    (0, 48_000_000, 48_000_000),
    (0, 50_000_000, 48_000_000),  # round down
    (1 << 2, 50_000_000, 96_000_000),  # round up
    (1 << 3, 50_000_000, 48_000_000),  # nearest
    (1 << 3, 80_000_000, 96_000_000),
])
def test_rate_set_rounds(d, clocks, flags, requested, chosen) -> None:
    assert call(d, CLOCK, 0x5, flags, 0, payload=q(requested)) == (S.SUCCESS, b"")
    assert clocks[0].rate == chosen
    assert call(d, CLOCK, 0x6, 0) == (S.SUCCESS, q(chosen))


def test_rate_set_range_and_errors(d, clocks) -> None:
    assert call(d, CLOCK, 0x5, 0, 1, payload=q(4500))[0] == S.SUCCESS
    assert clocks[1].rate == 4000
    assert call(d, CLOCK, 0x5, 1 << 2, 1, payload=q(4500))[0] == S.SUCCESS
    assert clocks[1].rate == 5000
    assert call(d, CLOCK, 0x5, 0, 1, payload=q(999))[0] == S.OUT_OF_RANGE
    assert call(d, CLOCK, 0x5, 0, 1, payload=q(1 << 63))[0] == S.OUT_OF_RANGE
    assert call(d, CLOCK, 0x5, 1 << 4, 1, payload=q(5000))[0] == S.INVALID_PARAMETERS
    assert call(d, CLOCK, 0x5, 0, 3, payload=q(5000))[0] == S.NOT_FOUND
    assert call(d, CLOCK, 0x6, 3)[0] == S.NOT_FOUND


def test_rate_set_async_delayed_response(d, clocks) -> None:
    before = time.monotonic()
    assert call(d, CLOCK, 0x5, 1, 0, payload=q(96_000_000), token=9) == (S.SUCCESS, b"")
    # The delayed response follows the response after a pause (they travel on two queues).
    due = d.next_deadline()
    assert due is not None and due >= before + DELAYED_RESPONSE_DELAY
    assert events(d, before) == []
    assert events(d) == [struct.pack("<Ii", header(CLOCK, 0x5, 9, 2), 0) + u32s(0)
                         + q(96_000_000)]
    # Ignore-delayed-response: none follows.
    assert call(d, CLOCK, 0x5, 0b11, 0, payload=q(24_000_000))[0] == S.SUCCESS
    assert events(d) == [] and clocks[0].rate == 24_000_000


def test_config_set_get(d, clocks) -> None:
    assert call(d, CLOCK, 0xB, 0, 0) == (S.SUCCESS, u32s(0, 0, 0))
    assert call(d, CLOCK, 0x7, 0, 1, 0) == (S.SUCCESS, b"")
    assert clocks[0].enabled
    assert call(d, CLOCK, 0xB, 0, 0) == (S.SUCCESS, u32s(0, 1, 0))
    assert call(d, CLOCK, 0x7, 0, 3, 0) == (S.SUCCESS, b"")  # unchanged
    assert clocks[0].enabled
    assert call(d, CLOCK, 0x7, 0, 0, 0) == (S.SUCCESS, b"")
    assert not clocks[0].enabled
    assert call(d, CLOCK, 0x7, 0, 2, 0)[0] == S.INVALID_PARAMETERS
    assert call(d, CLOCK, 0x7, 0, 1 << 8 | 1, 0)[0] == S.INVALID_PARAMETERS
    assert call(d, CLOCK, 0x7, 0, 1 << 16 | 1, 0)[0] == S.NOT_SUPPORTED
    assert call(d, CLOCK, 0xB, 0, 1)[0] == S.NOT_SUPPORTED
    assert call(d, CLOCK, 0xB, 0, 1 << 8)[0] == S.INVALID_PARAMETERS
    assert call(d, CLOCK, 0x7, 5, 1, 0)[0] == S.NOT_FOUND


def test_names_parents_permissions(d) -> None:
    assert call(d, CLOCK, 0x8, 1) == (S.SUCCESS, u32s(0) + b"a-very-long-clock-name".ljust(
        64, b"\0"))
    assert call(d, CLOCK, 0x8, 0)[0] == S.NOT_SUPPORTED
    assert call(d, CLOCK, 0xC, 0, 0)[0] == S.NOT_SUPPORTED
    assert call(d, CLOCK, 0xD, 0, 1)[0] == S.NOT_SUPPORTED
    assert call(d, CLOCK, 0xE, 0)[0] == S.NOT_SUPPORTED
    assert call(d, CLOCK, 0xE, 7)[0] == S.NOT_FOUND
    assert call(d, CLOCK, 0xF, 0) == (S.SUCCESS, u32s(1 << 31 | 1 << 29))
    assert call(d, CLOCK, 0x9, 0, 2)[0] == S.INVALID_PARAMETERS
    assert call(d, CLOCK, 0xA, 0, 1 << 31)[0] == S.INVALID_PARAMETERS


@pytest.mark.parametrize(("message", "length"), [
    (0x2, 4), (0x3, 4), (0x4, 8), (0x5, 16), (0x6, 4), (0x7, 12), (0x8, 4), (0x9, 8),
    (0xA, 8), (0xB, 8), (0xC, 8), (0xD, 8), (0xE, 4), (0xF, 4)])
def test_short_requests(d, message, length) -> None:
    for cut in range(length):
        assert call(d, CLOCK, message, payload=bytes(cut)) == (S.INVALID_PARAMETERS, b"")


def test_read_only_agent_is_denied(clocks) -> None:
    (d,) = agents(clocks, 1, controllable=[frozenset()])
    assert call(d, CLOCK, 0xF, 0) == (S.SUCCESS, u32s(0))
    assert call(d, CLOCK, 0x5, 0, 0, payload=q(48_000_000))[0] == S.DENIED
    assert call(d, CLOCK, 0x7, 0, 1, 0)[0] == S.DENIED
    assert clocks[0].rate == 24_000_000 and not clocks[0].enabled


def test_enabled_while_any_agent_wants_it(clocks) -> None:
    one, two = agents(clocks)
    assert call(one, CLOCK, 0x7, 0, 1, 0)[0] == S.SUCCESS
    assert call(two, CLOCK, 0x7, 0, 1, 0)[0] == S.SUCCESS
    assert call(one, CLOCK, 0x7, 0, 0, 0)[0] == S.SUCCESS
    assert clocks[0].enabled  # agent 2 still wants it
    assert call(two, CLOCK, 0x7, 0, 0, 0)[0] == S.SUCCESS
    assert not clocks[0].enabled


def test_rate_is_exclusive_and_notified(clocks) -> None:
    one, two = agents(clocks)
    assert call(two, CLOCK, 0x9, 0, 1)[0] == S.SUCCESS
    assert call(two, CLOCK, 0xA, 0, 1)[0] == S.SUCCESS
    assert call(one, CLOCK, 0x5, 0, 0, payload=q(48_000_000))[0] == S.SUCCESS
    requested = struct.pack("<I", header(CLOCK, 0x1, 0, 3)) + u32s(1, 0) + q(48_000_000)
    changed = struct.pack("<I", header(CLOCK, 0x0, 0, 3)) + u32s(1, 0) + q(48_000_000)
    assert events(two) == [requested, changed]
    assert events(one) == []
    # Agent 1 owns the rate: agent 2 is DENIED until agent 1 resets its configuration.
    assert call(two, CLOCK, 0x5, 0, 0, payload=q(96_000_000))[0] == S.DENIED
    assert clocks[0].rate == 48_000_000
    one.reset()
    assert call(two, CLOCK, 0x5, 0, 0, payload=q(96_000_000))[0] == S.SUCCESS
    assert clocks[0].rate == 96_000_000


def test_shared_rate_last_request_wins() -> None:
    clock = FakeClock("shared", rates=(1, 2, 3), shared_rate=True)
    one, two = agents([clock])
    assert call(one, CLOCK, 0x5, 0, 0, payload=q(2))[0] == S.SUCCESS
    assert call(two, CLOCK, 0x5, 0, 0, payload=q(3))[0] == S.SUCCESS
    assert clock.rate == 3


def test_no_clocks_no_protocol() -> None:
    d = build_dispatcher([])
    assert call(d, CLOCK, 0x0)[0] == S.NOT_SUPPORTED


def test_a_clock_without_rates_cannot_be_described() -> None:
    broken = FakeClock("broken", rates=(1,))
    broken.rates = ()
    with pytest.raises(ValueError, match="clock 'broken': needs a rate range"):
        build_dispatcher([broken])
    with pytest.raises(ValueError, match="ascending"):
        build_dispatcher([FakeClock("unsorted", rates=(2, 1))])
