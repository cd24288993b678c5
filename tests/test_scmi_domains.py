# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Properties of the four domain protocols together: whatever two agents send, each gets
a well-formed answer with a defined status, events stay well-formed, nothing is logged
as an internal error, and resetting an agent leaves nothing scheduled."""

from __future__ import annotations

import logging
import struct

import pytest
from domain_helpers import CLOCK, POWERCAP, RESET, VOLTAGE, agents
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scmi_helpers import command

from vhost_scmi.devices.clock import RateRange
from vhost_scmi.devices.fake_clock import FakeClock
from vhost_scmi.devices.fake_powercap import FakePowercap
from vhost_scmi.devices.fake_reset import FakeReset
from vhost_scmi.devices.fake_voltage import FakeVoltage
from vhost_scmi.scmi.status import Status

STATUSES = {int(status) for status in Status}


def resources() -> list:
    return [FakeClock("uart", rates=(24_000_000, 48_000_000)),
            FakeClock("ranged-clock-with-long-name", rate_range=RateRange(10, 1000, 10)),
            FakeReset("reset"), FakeVoltage("vdd", (900_000, 1_800_000)),
            FakePowercap("soc")]


@st.composite
def domain_command(draw: st.DrawFn) -> tuple[int, bytes]:
    protocol = draw(st.sampled_from([CLOCK, RESET, VOLTAGE, POWERCAP]))
    message = draw(st.integers(min_value=0, max_value=0x11))
    words = draw(st.lists(st.one_of(st.integers(min_value=0, max_value=3),
                                    st.sampled_from([7, 0x10, 1 << 31, 24_000_000,
                                                     1_800_000, 20_000_000]),
                                    st.integers(min_value=0, max_value=0xFFFFFFFF)),
                          max_size=5))
    token = draw(st.integers(min_value=0, max_value=0x3FF))
    return draw(st.integers(min_value=0, max_value=1)), command(protocol, message, *words,
                                                                 token=token)


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def errors():
    handler = Errors()
    logging.getLogger("vhost_scmi").addHandler(handler)
    yield handler
    logging.getLogger("vhost_scmi").removeHandler(handler)


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=st.lists(domain_command(), max_size=40),
       room=st.integers(min_value=8, max_value=200))
def test_two_agents_random_commands(errors, requests, room) -> None:
    dispatchers = agents(resources())
    for agent, request in requests:
        answer = dispatchers[agent].handle(request, room)
        assert 8 <= len(answer) <= room
        assert answer[:4] == request[:4]
        assert struct.unpack_from("<i", answer, 4)[0] in STATUSES
        for dispatcher in dispatchers:
            for event in dispatcher.take_events(float("inf")):
                assert 4 <= len(event) <= 136
    assert not errors.records, errors.records[0].getMessage()
    for dispatcher in dispatchers:
        dispatcher.reset()
        assert dispatcher.next_deadline() is None
