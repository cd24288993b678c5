# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Reset domain protocol (0x16) through the dispatcher: every message, well-formed and
malformed, permissions, arbitration and RESET_ISSUED between agents."""

from __future__ import annotations

import struct

import pytest
from domain_helpers import RESET, agents, call, events, u32s
from scmi_helpers import header

from vhost_scmi.devices.fake_reset import FakeReset
from vhost_scmi.scmi.dispatcher import build_dispatcher
from vhost_scmi.scmi.status import Status as S


@pytest.fixture
def domains() -> list[FakeReset]:
    return [FakeReset("eth"), FakeReset("a-reset-domain-with-a-long-name")]


@pytest.fixture
def d(domains):
    return build_dispatcher(domains)


def test_discovery_and_attributes(d) -> None:
    assert call(d, RESET, 0x0) == (S.SUCCESS, u32s(0x30000))
    assert call(d, RESET, 0x1) == (S.SUCCESS, u32s(2))
    for message in range(0x3, 0x7):
        assert call(d, RESET, 0x2, message) == (S.SUCCESS, u32s(0))
    assert call(d, RESET, 0x2, 0x7)[0] == S.NOT_FOUND
    assert call(d, RESET, 0x3, 0) == (S.SUCCESS, u32s(1 << 31 | 1 << 30, 1)
                                      + b"eth".ljust(16, b"\0"))
    assert call(d, RESET, 0x3, 1)[1][:4] == u32s(1 << 31 | 1 << 30 | 1 << 29)
    assert call(d, RESET, 0x3, 2)[0] == S.NOT_FOUND
    assert call(d, RESET, 0x6, 1) == (S.SUCCESS, u32s(0) + b"a-reset-domain-with-a-long-name"
                                      .ljust(64, b"\0"))
    assert call(d, RESET, 0x6, 0)[0] == S.NOT_SUPPORTED
    assert call(d, RESET, 0x6, 2)[0] == S.NOT_FOUND


def test_reset_assert_deassert(d, domains) -> None:
    assert call(d, RESET, 0x4, 0, 1, 0) == (S.SUCCESS, b"")
    assert domains[0].resets == 1
    assert call(d, RESET, 0x4, 0, 2, 0) == (S.SUCCESS, b"")
    assert domains[0].asserted
    assert call(d, RESET, 0x4, 0, 0, 0) == (S.SUCCESS, b"")
    assert not domains[0].asserted
    assert call(d, RESET, 0x4, 0, 5, 0, token=11) == (S.SUCCESS, b"")
    assert events(d) == [struct.pack("<Ii", header(RESET, 0x4, 11, 2), 0) + u32s(0)]
    assert domains[0].resets == 2


@pytest.mark.parametrize(("flags", "state", "status"), [
    (3, 0, S.INVALID_PARAMETERS),  # autonomous and explicit
    (8, 0, S.INVALID_PARAMETERS),  # reserved flag
    (1, 1 << 31, S.NOT_SUPPORTED),  # implementation-defined type
    (1, 5, S.INVALID_PARAMETERS),  # reserved architectural type
])
def test_reset_errors(d, domains, flags, state, status) -> None:
    assert call(d, RESET, 0x4, 0, flags, state) == (status, b"")
    assert domains[0].resets == 0
    assert call(d, RESET, 0x4, 2, 1, 0)[0] == S.NOT_FOUND


@pytest.mark.parametrize(("message", "length"), [(0x2, 4), (0x3, 4), (0x4, 12), (0x5, 8),
                                                 (0x6, 4)])
def test_short_requests(d, message, length) -> None:
    for cut in range(length):
        assert call(d, RESET, message, payload=bytes(cut)) == (S.INVALID_PARAMETERS, b"")


def test_denied_without_control(domains) -> None:
    (d,) = agents(domains, 1, controllable=[frozenset({domains[1]})])
    assert call(d, RESET, 0x4, 0, 1, 0)[0] == S.DENIED
    assert call(d, RESET, 0x4, 1, 1, 0)[0] == S.SUCCESS
    assert domains[0].resets == 0 and domains[1].resets == 1


def test_held_in_reset_while_any_agent_asserts_and_issued_notifications(domains) -> None:
    one, two = agents(domains)
    assert call(two, RESET, 0x5, 0, 1)[0] == S.SUCCESS
    assert call(two, RESET, 0x5, 0, 2)[0] == S.INVALID_PARAMETERS
    assert call(one, RESET, 0x4, 0, 2, 0)[0] == S.SUCCESS
    assert call(two, RESET, 0x4, 0, 2, 0)[0] == S.SUCCESS
    assert call(one, RESET, 0x4, 0, 0, 0)[0] == S.SUCCESS
    assert domains[0].asserted  # agent 2 still holds it
    assert call(two, RESET, 0x4, 0, 0, 0)[0] == S.SUCCESS
    assert not domains[0].asserted
    assert call(one, RESET, 0x4, 0, 1, 0)[0] == S.SUCCESS
    issued = struct.pack("<I", header(RESET, 0x0, 0, 3)) + u32s(1, 0, 0)
    assert events(two) == [issued, issued]  # agent 1's assert and its reset
    assert events(one) == []
    assert call(two, RESET, 0x5, 0, 0)[0] == S.SUCCESS
    assert call(one, RESET, 0x4, 0, 1, 0)[0] == S.SUCCESS
    assert events(two) == []


def test_agent_reset_releases_its_hold(domains) -> None:
    one, two = agents(domains)
    assert call(one, RESET, 0x4, 0, 2, 0)[0] == S.SUCCESS
    one.reset()
    assert not domains[0].asserted
