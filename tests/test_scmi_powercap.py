# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Powercap protocol (0x18) through the dispatcher: every message, well-formed and
malformed, notifications and arbitration between agents."""

from __future__ import annotations

import struct

import pytest
from domain_helpers import POWERCAP, agents, call, events, u32s
from scmi_helpers import header

from vhost_scmi.devices.fake_powercap import FakePowercap
from vhost_scmi.devices.powercap import Limits
from vhost_scmi.scmi import powercap
from vhost_scmi.scmi.dispatcher import build_dispatcher
from vhost_scmi.scmi.status import Status as S


class Fixed(FakePowercap):
    """A read-only domain with a fixed cap and interval, and no power meter."""

    read_only = True
    monitoring = False
    cap_limits = Limits(5_000_000, 5_000_000)
    pai_limits = Limits(1000, 1000)


@pytest.fixture
def domains() -> list[FakePowercap]:
    return [FakePowercap("soc"), Fixed("a-fixed-powercap-domain-name")]


@pytest.fixture
def d(domains):
    return build_dispatcher(domains)


def test_discovery_and_attributes(d) -> None:
    assert call(d, POWERCAP, 0x0) == (S.SUCCESS, u32s(0x20000))
    assert call(d, POWERCAP, 0x1) == (S.SUCCESS, u32s(2))
    for message in range(0x3, 0xD):
        assert call(d, POWERCAP, 0x2, message) == (S.SUCCESS, u32s(0))
    status, payload = call(d, POWERCAP, 0x3, 0)
    assert status == S.SUCCESS
    # cap notify, measurement notify, cap and PAI configurable, monitoring, microwatts.
    assert payload == (u32s(1 << 31 | 1 << 30 | 1 << 27 | 1 << 26 | 1 << 25 | 1 << 23)
                       + b"soc".ljust(16, b"\0")
                       + u32s(1000, 1_000_000, 1, 1_000_000, 100_000_000, 1, 50_000_000, 0,
                              0xFFFFFFFF))
    status, payload = call(d, POWERCAP, 0x3, 1)
    assert payload[:4] == u32s(1 << 31 | 1 << 28 | 1 << 23)
    assert payload[20:] == u32s(1000, 1000, 0, 5_000_000, 5_000_000, 0, 50_000_000, 0,
                                0xFFFFFFFF)
    assert call(d, POWERCAP, 0x3, 2)[0] == S.NOT_FOUND
    assert call(d, POWERCAP, 0x8, 1) == (S.SUCCESS, u32s(0) + b"a-fixed-powercap-domain-name"
                                         .ljust(64, b"\0"))
    assert call(d, POWERCAP, 0x8, 0)[0] == S.NOT_SUPPORTED


def test_cap_and_pai(d, domains) -> None:
    soc = domains[0]
    assert call(d, POWERCAP, 0x4, 0) == (S.SUCCESS, u32s(50_000_000))
    assert call(d, POWERCAP, 0x5, 0, 0, 20_000_000) == (S.SUCCESS, b"")
    assert soc.cap == 20_000_000
    assert call(d, POWERCAP, 0x5, 0, 0, 0) == (S.SUCCESS, b"")  # capping off
    assert soc.cap == 0 and call(d, POWERCAP, 0x4, 0) == (S.SUCCESS, u32s(0))
    assert call(d, POWERCAP, 0x5, 0, 2, 30_000_000, token=3) == (S.SUCCESS, b"")
    assert events(d) == [struct.pack("<Ii", header(POWERCAP, 0x5, 3, 2), 0)
                         + u32s(0, 30_000_000)]
    assert call(d, POWERCAP, 0x5, 0, 3, 40_000_000)[0] == S.SUCCESS  # delayed ignored
    assert events(d) == []
    assert call(d, POWERCAP, 0x5, 0, 0, 5)[0] == S.OUT_OF_RANGE
    assert call(d, POWERCAP, 0x5, 0, 4, 20_000_000)[0] == S.INVALID_PARAMETERS
    assert call(d, POWERCAP, 0x5, 2, 0, 20_000_000)[0] == S.NOT_FOUND
    assert call(d, POWERCAP, 0x6, 0) == (S.SUCCESS, u32s(100_000))
    assert call(d, POWERCAP, 0x7, 0, 0, 20_000) == (S.SUCCESS, b"")
    assert soc.pai == 20_000
    assert call(d, POWERCAP, 0x7, 0, 0, 10)[0] == S.OUT_OF_RANGE
    assert call(d, POWERCAP, 0x7, 0, 1, 20_000)[0] == S.INVALID_PARAMETERS
    # The read-only domain: DENIED whatever is asked.
    assert call(d, POWERCAP, 0x5, 1, 0, 5_000_000)[0] == S.DENIED
    assert call(d, POWERCAP, 0x7, 1, 0, 1000)[0] == S.DENIED
    assert call(d, POWERCAP, 0x4, 1) == (S.SUCCESS, u32s(50_000_000))


def test_measurements(d) -> None:
    status, payload = call(d, POWERCAP, 0x9, 0)
    power, pai = struct.unpack("<II", payload)
    assert status == S.SUCCESS and 30_000_000 <= power < 30_010_000 and pai == 100_000
    assert call(d, POWERCAP, 0x9, 1)[0] == S.NOT_SUPPORTED
    assert call(d, POWERCAP, 0xB, 1, 1, 1, 2)[0] == S.NOT_SUPPORTED
    assert call(d, POWERCAP, 0xB, 0, 1, 10, 5)[0] == S.INVALID_PARAMETERS
    assert call(d, POWERCAP, 0xB, 0, 2, 1, 5)[0] == S.INVALID_PARAMETERS
    assert call(d, POWERCAP, 0xB, 0, 1, 1, 2) == (S.SUCCESS, b"")
    due = d.next_deadline()
    assert due is not None and due > 0
    notification = events(d, due)
    assert len(notification) == 1
    head, agent, domain, measured = struct.unpack("<4I", notification[0])
    assert (head, agent, domain) == (header(POWERCAP, 0x1, 0, 3), 0, 0)
    assert measured > 2
    # Still outside the window: no new notification; back inside: one.
    assert events(d, due + powercap.MEASUREMENT_PERIOD) == []
    assert call(d, POWERCAP, 0xB, 0, 1, 0, 0xFFFFFFFF)[0] == S.SUCCESS
    assert events(d, d.next_deadline()) == []  # a new subscription starts inside
    assert call(d, POWERCAP, 0xB, 0, 0, 0, 0)[0] == S.SUCCESS
    assert d.next_deadline() is None


def test_fastchannels_and_short_requests(d) -> None:
    assert call(d, POWERCAP, 0xC, 0, 0x5)[0] == S.NOT_SUPPORTED
    assert call(d, POWERCAP, 0xC, 0, 0x70)[0] == S.NOT_FOUND
    assert call(d, POWERCAP, 0xC, 5, 0x5)[0] == S.NOT_FOUND
    for message, length in ((0x2, 4), (0x3, 4), (0x4, 4), (0x5, 12), (0x6, 4), (0x7, 12),
                            (0x8, 4), (0x9, 4), (0xA, 8), (0xB, 16), (0xC, 8)):
        for cut in range(length):
            assert call(d, POWERCAP, message, payload=bytes(cut)) == (
                S.INVALID_PARAMETERS, b"")


def test_lowest_cap_wins_and_changes_are_notified(domains) -> None:
    soc = domains[0]
    one, two = agents(domains)
    assert call(two, POWERCAP, 0xA, 0, 1)[0] == S.SUCCESS
    assert call(two, POWERCAP, 0xA, 0, 3)[0] == S.INVALID_PARAMETERS
    assert call(one, POWERCAP, 0x5, 0, 0, 30_000_000)[0] == S.SUCCESS
    assert events(two) == [struct.pack("<I", header(POWERCAP, 0x0, 0, 3))
                           + u32s(1, 0, 30_000_000, 100_000)]
    assert call(two, POWERCAP, 0x5, 0, 0, 40_000_000)[0] == S.SUCCESS
    assert soc.cap == 30_000_000  # agent 1's lower cap holds
    assert call(two, POWERCAP, 0x5, 0, 0, 0)[0] == S.SUCCESS
    assert soc.cap == 30_000_000  # one agent still wants a cap
    one.reset()
    assert soc.cap == 0  # nobody asks for a cap any more
    assert call(one, POWERCAP, 0x7, 0, 0, 2000)[0] == S.SUCCESS
    assert events(two)[-1] == (struct.pack("<I", header(POWERCAP, 0x0, 0, 3))
                               + u32s(1, 0, 0, 2000))
