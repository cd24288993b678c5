# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The dispatcher keeps its next deadline between wake-ups of the event loop: every
request that schedules work must show in `next_deadline()` at once, or events wait
for a later wake-up (or forever, when nothing else is scheduled)."""

from __future__ import annotations

import struct
import time

from scmi_helpers import LINUX_RESPONSE, ScriptedSensor

from vhost_scmi.devices.fake import FakeAccelerometer
from vhost_scmi.devices.sensor import Unit
from vhost_scmi.scmi.client import ScmiClient
from vhost_scmi.scmi.dispatcher import Dispatcher, build_dispatcher
from vhost_scmi.scmi.status import ProtocolId

# CONFIG_SET: enabled (bit 0), 10 x 10^-3 s (31:16 seconds, 15:11 exponent -3).
ENABLED_10_MS = 10 << 16 | 29 << 11 | 1
DISABLED = 0


def make(*values: tuple[int]) -> tuple[Dispatcher, ScmiClient]:
    sensor = ScriptedSensor("temp", list(values), unit=Unit.DEGREES_C, exponent=-3)
    fake = FakeAccelerometer()
    fake.asynchronous = True
    dispatcher = build_dispatcher([sensor, fake])
    return dispatcher, ScmiClient(lambda request: dispatcher.handle(request, LINUX_RESPONSE))


def test_a_trip_point_crossed_by_a_read_is_due_at_once() -> None:
    dispatcher, client = make((40,), (60,))
    client.trip_point_notify(0, True)
    client.trip_point_config(0, 0, 1, 50)  # upward through 50
    monitoring = dispatcher.next_deadline()
    assert monitoring is not None and monitoring > time.monotonic()
    client.read(0)  # 40: the baseline, no event
    assert dispatcher.next_deadline() == monitoring
    client.read(0)  # 60: crossed
    assert dispatcher.next_deadline() <= time.monotonic()
    assert len(dispatcher.take_events(time.monotonic())) == 1
    assert dispatcher.next_deadline() == monitoring


def test_an_asynchronous_read_is_due_at_once() -> None:
    dispatcher, client = make()
    client.continuous_update_notify(0, True)
    assert dispatcher.next_deadline() > time.monotonic()
    client.read_async(1)
    assert dispatcher.next_deadline() <= time.monotonic()


def test_configuration_moves_the_deadline_both_ways() -> None:
    dispatcher, client = make()
    assert dispatcher.next_deadline() is None
    client.continuous_update_notify(0, True)
    default = dispatcher.next_deadline()
    assert default is not None
    client.config_set(0, ENABLED_10_MS)
    shorter = dispatcher.next_deadline()
    assert shorter is not None and shorter < default
    client.config_set(0, DISABLED)
    assert dispatcher.next_deadline() is None
    client.config_set(0, ENABLED_10_MS)
    assert dispatcher.next_deadline() is not None
    client.continuous_update_notify(0, False)
    assert dispatcher.next_deadline() is None


def test_taking_events_and_resetting_move_the_deadline_on() -> None:
    dispatcher, client = make(*[(20,)] * 3)
    client.continuous_update_notify(0, True)
    first = dispatcher.next_deadline()
    assert len(dispatcher.take_events(first)) == 1
    second = dispatcher.next_deadline()
    assert second is not None and second > first
    client.reset_agent_configuration(1)  # agent 1: the guest
    assert dispatcher.next_deadline() is None
    client.continuous_update_notify(0, True)
    assert dispatcher.next_deadline() is not None
    dispatcher.reset()
    assert dispatcher.next_deadline() is None


def test_an_error_report_is_due_at_once() -> None:
    dispatcher, client = make()
    client.notify_errors(True)
    assert dispatcher.next_deadline() is None
    not_a_command = ProtocolId.SENSOR << 10 | 2 << 8 | 0x6  # a delayed response
    dispatcher.handle(struct.pack("<I", not_a_command), LINUX_RESPONSE)
    assert dispatcher.next_deadline() == 0.0
