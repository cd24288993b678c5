# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Voltage domain protocol (0x17) through the dispatcher: every message, well-formed and
malformed, read-only domains and arbitration between agents."""

from __future__ import annotations

import struct

import pytest
from domain_helpers import VOLTAGE, agents, call, events, u32s
from scmi_helpers import header

from vhost_scmi.devices.fake_voltage import FakeVoltage
from vhost_scmi.devices.voltage import LevelRange, VoltageDomain
from vhost_scmi.scmi.dispatcher import build_dispatcher
from vhost_scmi.scmi.status import Status as S


class Mirror(VoltageDomain):
    """A read-only supply over a segment."""

    blocking = False
    read_only = True
    level_range = LevelRange(-500_000, 1_500_000, 100_000)

    def __init__(self) -> None:
        self.name = "mirrored-host-supply"

    def get_level(self) -> int:
        return 1_200_000

    def set_level(self, level: int) -> None:
        raise AssertionError("never called")

    def is_on(self) -> bool:
        return True

    def set_on(self, on: bool) -> None:
        raise AssertionError("never called")


def i32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}i", *values)


@pytest.fixture
def domains() -> list[VoltageDomain]:
    return [FakeVoltage("vdd", (900_000, 1_800_000, 3_300_000)), Mirror(),
            FakeVoltage("many", tuple(range(100, 100 + 40 * 10, 10)))]


@pytest.fixture
def d(domains):
    return build_dispatcher(domains)


def test_discovery_attributes_levels(d) -> None:
    assert call(d, VOLTAGE, 0x0) == (S.SUCCESS, u32s(0x20000))
    assert call(d, VOLTAGE, 0x1) == (S.SUCCESS, u32s(3))
    for message in range(0x3, 0xA):
        assert call(d, VOLTAGE, 0x2, message) == (S.SUCCESS, u32s(0))
    assert call(d, VOLTAGE, 0x3, 0) == (S.SUCCESS, u32s(1 << 31) + b"vdd".ljust(16, b"\0"))
    assert call(d, VOLTAGE, 0x3, 1)[1][:4] == u32s(1 << 31 | 1 << 30)
    assert call(d, VOLTAGE, 0x3, 3)[0] == S.NOT_FOUND
    assert call(d, VOLTAGE, 0x4, 0, 0) == (S.SUCCESS, u32s(3) + i32(900_000, 1_800_000,
                                                                    3_300_000))
    assert call(d, VOLTAGE, 0x4, 0, 1) == (S.SUCCESS, u32s(2) + i32(1_800_000, 3_300_000))
    assert call(d, VOLTAGE, 0x4, 0, 3)[0] == S.INVALID_PARAMETERS
    assert call(d, VOLTAGE, 0x4, 1, 0) == (S.SUCCESS, u32s(3 | 1 << 12)
                                           + i32(-500_000, 1_500_000, 100_000))
    assert call(d, VOLTAGE, 0x4, 1, 1)[0] == S.INVALID_PARAMETERS
    # 40 levels: 31 fit a Linux-sized response, 9 remain.
    assert call(d, VOLTAGE, 0x4, 2, 0)[1][:4] == u32s(31 | 9 << 16)
    assert call(d, VOLTAGE, 0x4, 2, 31)[1] == u32s(9) + i32(*range(410, 500, 10))
    assert call(d, VOLTAGE, 0x4, 2, 0, room=11)[0] == S.COMMS_ERROR
    assert call(d, VOLTAGE, 0x9, 1) == (S.SUCCESS, u32s(0) + b"mirrored-host-supply".ljust(
        64, b"\0"))
    assert call(d, VOLTAGE, 0x9, 0)[0] == S.NOT_SUPPORTED
    assert call(d, VOLTAGE, 0x9, 3)[0] == S.NOT_FOUND


def test_config_and_level(d, domains) -> None:
    vdd = domains[0]
    assert call(d, VOLTAGE, 0x6, 0) == (S.SUCCESS, u32s(7))
    assert call(d, VOLTAGE, 0x5, 0, 0) == (S.SUCCESS, b"")
    assert not vdd.on and call(d, VOLTAGE, 0x6, 0) == (S.SUCCESS, u32s(0))
    assert call(d, VOLTAGE, 0x5, 0, 7) == (S.SUCCESS, b"")
    assert vdd.on
    for config, status in ((3, S.INVALID_PARAMETERS), (8, S.NOT_SUPPORTED),
                           (0x17, S.INVALID_PARAMETERS)):
        assert call(d, VOLTAGE, 0x5, 0, config) == (status, b"")
    assert call(d, VOLTAGE, 0x7, 0, 0, 3_300_000) == (S.SUCCESS, b"")
    assert vdd.level == 3_300_000
    assert call(d, VOLTAGE, 0x8, 0) == (S.SUCCESS, i32(3_300_000))
    assert call(d, VOLTAGE, 0x7, 0, 1, 1_800_000, token=4) == (S.SUCCESS, b"")
    assert events(d) == [struct.pack("<Ii", header(VOLTAGE, 0x7, 4, 2), 0) + u32s(0)
                         + i32(1_800_000)]
    assert call(d, VOLTAGE, 0x7, 0, 0, 100)[0] == S.OUT_OF_RANGE
    assert call(d, VOLTAGE, 0x7, 0, 0, 1_000_000)[0] == S.INVALID_PARAMETERS
    assert call(d, VOLTAGE, 0x7, 0, 2, 1_800_000)[0] == S.INVALID_PARAMETERS
    assert call(d, VOLTAGE, 0x7, 3, 0, 1_800_000)[0] == S.NOT_FOUND
    assert call(d, VOLTAGE, 0x8, 3)[0] == S.NOT_FOUND


def test_read_only_domain_is_denied(d) -> None:
    assert call(d, VOLTAGE, 0x8, 1) == (S.SUCCESS, i32(1_200_000))
    assert call(d, VOLTAGE, 0x6, 1) == (S.SUCCESS, u32s(7))
    level = struct.unpack("<I", i32(-200_000))[0]
    assert call(d, VOLTAGE, 0x7, 1, 0, level) == (S.DENIED, b"")
    assert call(d, VOLTAGE, 0x5, 1, 0) == (S.DENIED, b"")


@pytest.mark.parametrize(("message", "length"), [(0x2, 4), (0x3, 4), (0x4, 8), (0x5, 8),
                                                 (0x6, 4), (0x7, 12), (0x8, 4), (0x9, 4)])
def test_short_requests(d, message, length) -> None:
    for cut in range(length):
        assert call(d, VOLTAGE, message, payload=bytes(cut)) == (S.INVALID_PARAMETERS, b"")


def test_on_while_any_agent_wants_it_and_level_exclusive(domains) -> None:
    vdd = domains[0]
    one, two = agents(domains)
    assert call(one, VOLTAGE, 0x5, 0, 7)[0] == S.SUCCESS
    assert call(two, VOLTAGE, 0x5, 0, 0)[0] == S.SUCCESS
    assert vdd.on
    assert call(one, VOLTAGE, 0x5, 0, 0)[0] == S.SUCCESS
    assert not vdd.on
    assert call(one, VOLTAGE, 0x7, 0, 0, 1_800_000)[0] == S.SUCCESS
    assert call(two, VOLTAGE, 0x7, 0, 0, 3_300_000)[0] == S.DENIED
    assert vdd.level == 1_800_000
