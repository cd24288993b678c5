# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""System Power (0x12) through the Dispatcher: host requests out as notifications, and
what tells the control socket a guest went down and came back."""

from __future__ import annotations

import struct

from scmi_helpers import LINUX_RESPONSE, command, header, response

from vhost_scmi.devices.fake import FakeAccelerometer
from vhost_scmi.scmi.dispatcher import build_dispatcher
from vhost_scmi.scmi.status import ProtocolId, Status
from vhost_scmi.scmi.system_power import MAX_PENDING, SystemPowerProtocol, SystemState

SYSTEM_POWER = 0x12


def make():
    dispatcher = build_dispatcher([FakeAccelerometer()])
    protocol = dispatcher.protocols[ProtocolId.SYSTEM_POWER]
    assert isinstance(protocol, SystemPowerProtocol)
    return dispatcher, protocol


def notifier(flags: int, state: int, timeout: int) -> bytes:
    return struct.pack("<IIIII", header(SYSTEM_POWER, 0, 0, 3), 0, flags, state, timeout)


def test_host_requests_need_a_subscription() -> None:
    dispatcher, protocol = make()
    assert not protocol.request_transition(SystemState.SHUTDOWN)
    assert dispatcher.next_deadline() is None
    assert dispatcher.handle(command(SYSTEM_POWER, 0x5, 1), LINUX_RESPONSE) == response(
        SYSTEM_POWER, 0x5, Status.SUCCESS)
    assert protocol.request_transition(SystemState.SHUTDOWN, timeout_ms=30000)
    assert dispatcher.next_deadline() is not None  # the event loop learns at once
    assert dispatcher.take_events(0.0) == [notifier(1, 0, 30000)]
    # Forceful: no timeout; a huge timeout is clamped to 32 bits.
    protocol.request_transition(SystemState.COLD_RESET, graceful=False, timeout_ms=5)
    protocol.request_transition(SystemState.WARM_RESET, timeout_ms=1 << 40)
    assert dispatcher.take_events(0.0) == [notifier(0, 1, 0), notifier(1, 2, 0xFFFFFFFF)]
    # Unsubscribed again: nothing goes out.
    dispatcher.handle(command(SYSTEM_POWER, 0x5, 0), LINUX_RESPONSE)
    assert not protocol.request_transition(SystemState.SHUTDOWN)


def test_pending_notifications_are_bounded() -> None:
    dispatcher, protocol = make()
    dispatcher.handle(command(SYSTEM_POWER, 0x5, 1), LINUX_RESPONSE)
    for timeout in range(MAX_PENDING + 3):
        protocol.request_transition(SystemState.SHUTDOWN, timeout_ms=timeout)
    events = dispatcher.take_events(0.0)
    assert len(events) == MAX_PENDING
    assert events[-1] == notifier(1, 0, MAX_PENDING + 2)  # the newest are kept


def test_generation_moves_when_the_guest_starts_afresh() -> None:
    dispatcher, protocol = make()
    dispatcher.handle(command(SYSTEM_POWER, 0x5, 1), LINUX_RESPONSE)
    start = protocol.generation
    dispatcher.handle(command(SYSTEM_POWER, 0x5, 1), LINUX_RESPONSE)
    assert protocol.generation == start  # subscribing twice is not a reboot
    protocol.request_transition(SystemState.COLD_RESET)
    assert protocol.status()["requested"] == {"state": "cold-reset", "graceful": True}
    # The rebooted guest subscribes again: it went down and came back.
    dispatcher.handle(command(SYSTEM_POWER, 0x5, 1), LINUX_RESPONSE)
    assert protocol.generation == start + 1
    assert protocol.status()["requested"] is None
    # A device reset or a disconnection (the dispatcher's reset) too.
    dispatcher.reset()
    assert protocol.generation == start + 2
    assert protocol.status()["subscribed"] is False
    assert dispatcher.take_events(0.0) == []


def test_state_set_without_configuration_is_denied() -> None:
    dispatcher, _ = make()
    for flags, state in ((1, 0), (0, 1), (1, 2), (1, 4)):
        assert dispatcher.handle(command(SYSTEM_POWER, 0x3, flags, state),
                                 LINUX_RESPONSE) == response(SYSTEM_POWER, 0x3, Status.DENIED)
    # Nothing flagged as supported for this agent.
    assert dispatcher.handle(command(SYSTEM_POWER, 0x2, 0x3), LINUX_RESPONSE) == response(
        SYSTEM_POWER, 0x2, Status.SUCCESS, struct.pack("<I", 0))
