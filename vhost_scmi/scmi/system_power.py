# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""SCMI System Power protocol (0x12), version 2.0 (what Linux 6.12 implements).

Two directions:
- the host asks a guest to shut down, reset or suspend (`request_transition`, from the
  control socket): a SYSTEM_POWER_STATE_NOTIFIER notification goes to the agent if it
  subscribed with SYSTEM_POWER_STATE_NOTIFY; Linux's scmi_power_control then powers off
  or reboots in an orderly way (it ignores forceful requests);
- a guest asks for a system state with SYSTEM_POWER_STATE_SET: DENIED unless its
  agent's configuration allows that state; an allowed request runs the configured
  host command (`platform.power.PowerCommand`) and is answered from its exit status.
"""

from __future__ import annotations

import logging
import struct
from enum import IntEnum

from vhost_scmi.devices.resource import DeviceError
from vhost_scmi.platform.host import HostCall
from vhost_scmi.scmi.codec import pack_header
from vhost_scmi.scmi.protocol import U32, Message, Platform, Protocol, status_only
from vhost_scmi.scmi.status import MessageType, ProtocolId, ScmiError, Status

log = logging.getLogger(__name__)

#: System Power protocol 2.0: the notifier carries a graceful timeout.
VERSION = 0x20000
#: Notifications kept for an agent that does not take them; the oldest go first.
MAX_PENDING = 4


class SystemPowerMessage(IntEnum):
    """System Power protocol message ids (0x4, SYSTEM_POWER_STATE_GET, is gone in 2.0)."""

    SYSTEM_POWER_STATE_SET = 0x3
    SYSTEM_POWER_STATE_NOTIFY = 0x5


class SystemPowerNotification(IntEnum):
    """System Power protocol notification ids."""

    SYSTEM_POWER_STATE_NOTIFIER = 0x0


class SystemState(IntEnum):
    """The system_state field; 5..0x7FFFFFFF reserved, 0x80000000 up vendor-defined."""

    SHUTDOWN = 0
    COLD_RESET = 1
    WARM_RESET = 2
    POWER_UP = 3
    SUSPEND = 4


#: Config names of the states an agent may request (platform.config.POWER_STATE_NAMES).
STATE_NAMES = {
    SystemState.SHUTDOWN: "shutdown",
    SystemState.COLD_RESET: "cold-reset",
    SystemState.WARM_RESET: "warm-reset",
    SystemState.SUSPEND: "suspend",
}
VENDOR_STATES = 0x80000000

#: flags bit 0 (SET and notifier): 1 graceful, 0 forceful.
GRACEFUL = 1
#: PROTOCOL_MESSAGE_ATTRIBUTES of SYSTEM_POWER_STATE_SET.
WARM_RESET_SUPPORTED = 1 << 31
SUSPEND_SUPPORTED = 1 << 30

# SYSTEM_POWER_STATE_SET: u32 flags, u32 system_state.
STATE_SET = struct.Struct("<II")
# SYSTEM_POWER_STATE_NOTIFIER: header, u32 agent_id, u32 flags, u32 system_state,
# u32 timeout (milliseconds for a graceful request; 0: none).
NOTIFIER = struct.Struct("<IIIII")


class SystemPowerProtocol(Protocol):
    """System Power for one agent: host requests out, the agent's requests in."""

    protocol_id = ProtocolId.SYSTEM_POWER
    version = VERSION

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform)
        set_attributes = (
            (WARM_RESET_SUPPORTED if platform.may_request_power("warm-reset") else 0)
            | (SUSPEND_SUPPORTED if platform.may_request_power("suspend") else 0))
        self.add_messages(
            Message(SystemPowerMessage.SYSTEM_POWER_STATE_SET, self._state_set, 8,
                    set_attributes),
            Message(SystemPowerMessage.SYSTEM_POWER_STATE_NOTIFY, self._state_notify, 4),
        )
        self._header = pack_header(SystemPowerNotification.SYSTEM_POWER_STATE_NOTIFIER,
                                   MessageType.NOTIFICATION, ProtocolId.SYSTEM_POWER, 0)
        self._events: list[bytes] = []
        #: The agent subscribed to SYSTEM_POWER_STATE_NOTIFIER.
        self.subscribed = False
        #: The host request sent last (state, graceful), until the agent starts afresh.
        self.requested: tuple[SystemState, bool] | None = None
        #: Grows whenever the agent starts afresh (reset, disconnect, or a subscription
        #: renewed after a host request: the guest rebooted).
        self.generation = 0

    def attributes(self) -> bytes:
        return U32.pack(0)  # reserved

    def reset(self) -> None:
        self._events.clear()
        self.subscribed = False
        self.requested = None
        self.generation += 1

    def status(self) -> dict[str, object]:
        requested = None
        if self.requested is not None:
            state, graceful = self.requested
            requested = {"state": STATE_NAMES.get(state, int(state)), "graceful": graceful}
        return {"subscribed": self.subscribed, "requested": requested,
                "generation": self.generation,
                "may_request": sorted(self.platform.power_states)}

    def next_deadline(self) -> float | None:
        return 0.0 if self._events else None

    def take_events(self, now: float) -> list[bytes]:
        events, self._events = self._events, []
        return events

    def request_transition(self, state: SystemState, graceful: bool = True,
                           timeout_ms: int = 0) -> bool:
        """Ask the agent to enter `state` (host-initiated); return whether the request
        went out, i.e. the agent subscribed. `timeout_ms` tells a graceful agent how
        long it has before the host may force the transition (0: unspecified)."""
        if not self.subscribed:
            return False
        flags = GRACEFUL if graceful else 0
        timeout = min(max(int(timeout_ms), 0), 0xFFFFFFFF) if graceful else 0
        if len(self._events) >= MAX_PENDING:
            del self._events[0]
        self._events.append(NOTIFIER.pack(self._header, 0, flags, state, timeout))
        self.requested = (state, graceful)
        log.info("agent %s: system power %s requested (%s)", self.platform.agent_name,
                 STATE_NAMES.get(state, state), "graceful" if graceful else "forceful")
        self.platform.deadline_changed()
        return True

    def _state_notify(self, header: int, request: bytes, room: int) -> bytes:
        (notify_enable,) = U32.unpack_from(request, 4)
        if notify_enable & ~1:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved bits set")
        if notify_enable and self.requested is not None:
            # Subscribing again after a host request: a new boot of the guest.
            self.requested = None
            self.generation += 1
        self.subscribed = bool(notify_enable)
        return status_only(header, Status.SUCCESS)

    async def _state_set(self, header: int, request: bytes, room: int) -> bytes:
        flags, state = STATE_SET.unpack_from(request, 4)
        if flags & ~GRACEFUL:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved flag bits set")
        if state >= VENDOR_STATES:
            raise ScmiError(Status.NOT_SUPPORTED, f"vendor state {state:#x}")
        name = STATE_NAMES.get(state)  # type: ignore[call-overload]
        if name is None:  # POWER_UP, reserved values
            raise ScmiError(Status.INVALID_PARAMETERS, f"system state {state:#x}")
        command = self.platform.power_command
        if not self.platform.may_request_power(name) or command is None:
            log.info("agent %s: system power %s request denied by the configuration",
                     self.platform.agent_name, name)
            raise ScmiError(Status.DENIED, f"{name} not allowed for this agent")
        try:
            await HostCall(command, command.run, self.platform.agent_name, name,
                           bool(flags & GRACEFUL))
        except DeviceError as error:
            raise ScmiError(Status.GENERIC_ERROR, str(error)) from None
        return status_only(header, Status.SUCCESS)
