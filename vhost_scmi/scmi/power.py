# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""SCMI Power domain management protocol (0x11), version 3.0.

Domain ids are the indexes of the agent's `PowerDomain`s. Two power states exist:
ON (0) and OFF (bit 30, "context lost"), the generic states Linux's scmi_pm_domain
uses; any other state is INVALID_PARAMETERS.

Behaviour chosen where the specification leaves it to the platform:

- State changes are synchronous only: the asynchronous flag is INVALID_PARAMETERS.
- Several agents on one domain: it is on while ANY agent asks for it on; an agent
  asking for off withdraws its vote (SUCCESS) and the domain goes off when no agent
  wants it on. An agent's vote counts until it votes again or is reset.
- A set is DENIED unless the domain's device spec allows it (`control=state`) and
  the agent may control the domain; DOMAIN_ATTRIBUTES says whether it can.
- STATE_GET reads the host.
- POWER_STATE_CHANGED goes to the agents that subscribed when another agent's
  request switches the host domain; its agent id is that agent's.
- No statistics area.
"""

from __future__ import annotations

import logging
from enum import IntEnum

from vhost_scmi.devices.power_domain import PowerDomain
from vhost_scmi.platform.arbitration import Rule, SharedSetting
from vhost_scmi.platform.host import HostCall
from vhost_scmi.scmi.codec import pack_header
from vhost_scmi.scmi.protocol import (
    U32,
    U32X3,
    Message,
    Platform,
    Protocol,
    host_error,
    notify_enable,
    ok,
    pack_name,
    status_only,
    warn_limited,
)
from vhost_scmi.scmi.status import MessageType, ProtocolId, ScmiError, Status

log = logging.getLogger(__name__)

#: Power domain management 3.0, as Linux 6.12 implements it.
VERSION = 0x30000
MAX_PENDING_EVENTS = 64
EXTENDED_NAME_SIZE = 64
SHORT_NAME_LENGTH = 15
#: Power states: bit 30 set = context lost ("off"), bits 27:0 the state id.
STATE_ON = 0
STATE_OFF = 1 << 30
#: POWER_STATE_SET flags: bit 0 asynchronous.
ASYNC_FLAG = 1


class PowerMessage(IntEnum):
    """Power domain management message ids. 0x7 (POWER_STATE_CHANGE_REQUESTED_NOTIFY of
    version 2) is not implemented: Linux never sends it."""

    DOMAIN_ATTRIBUTES = 0x3
    STATE_SET = 0x4
    STATE_GET = 0x5
    STATE_NOTIFY = 0x6
    DOMAIN_NAME_GET = 0x8


class PowerNotification(IntEnum):
    """Power domain management notification ids."""

    POWER_STATE_CHANGED = 0x0


class DomainFlags(IntEnum):
    """Bit positions in DOMAIN_ATTRIBUTES' flags."""

    STATE_NOTIFY = 31
    ASYNC_SET = 30  # never set
    SYNC_SET = 29
    EXTENDED_NAME = 27


class _Domain:
    """One power domain as one agent sees it."""

    def __init__(self, domain_id: int, domain: PowerDomain, platform: Platform) -> None:
        self.id = domain_id
        self.domain = domain
        self.can_set = domain.controllable and platform.may_control(domain)
        self.long_name = len(domain.name.encode()) > SHORT_NAME_LENGTH
        flags = (1 << DomainFlags.STATE_NOTIFY | self.can_set << DomainFlags.SYNC_SET
                 | self.long_name << DomainFlags.EXTENDED_NAME)
        # u32 flags, 16-byte name.
        self.attributes = U32.pack(flags) + pack_name(domain.name)
        self.state = platform.arbiter.setting(domain, "power", lambda: SharedSetting(
            domain, "power", Rule.ANY, None, domain.set_on))
        self.notify = False


class PowerProtocol(Protocol):
    """Power domain management over the agent's power domains."""

    protocol_id = ProtocolId.POWER_DOMAIN
    version = VERSION

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform)
        self._domains = [_Domain(i, d, platform)
                         for i, d in enumerate(platform.visible(PowerDomain))]
        if len(self._domains) > 0xFFFF:
            raise ValueError("more than 65535 power domains")
        self._count = len(self._domains)
        self._events: list[bytes] = []
        self._changed_header = pack_header(PowerNotification.POWER_STATE_CHANGED,
                                           MessageType.NOTIFICATION, self.protocol_id, 0)
        agent = platform.agent_id
        for state in self._domains:
            state.state.watch(agent, lambda on, s=state: self._state_changed(s, on))
        self.add_messages(
            Message(PowerMessage.DOMAIN_ATTRIBUTES, self._domain_attributes, 4),
            Message(PowerMessage.STATE_SET, self._state_set, 12),
            Message(PowerMessage.STATE_GET, self._state_get, 4),
            Message(PowerMessage.STATE_NOTIFY, self._state_notify, 8),
            Message(PowerMessage.DOMAIN_NAME_GET, self._domain_name_get, 4),
        )

    # Protocol hooks

    def visible(self) -> bool:
        """Whether the agent sees any power domain."""
        return bool(self._domains)

    def attributes(self) -> bytes:
        # u16 domains, u16 reserved, u32 statistics address low/high and length (none).
        return self._count.to_bytes(2, "little") + bytes(2) + bytes(12)

    def reset(self) -> None:
        agent = self.platform.agent_id
        for state in self._domains:
            state.notify = False
            if agent in state.state.requests:
                self.platform.spawn(state.state.release(agent))
        self._events.clear()

    def next_deadline(self) -> float | None:
        return 0.0 if self._events else None

    def take_events(self, now: float) -> list[bytes]:
        events, self._events = self._events, []
        return events

    def _state_changed(self, state: _Domain, on: bool) -> None:
        if not state.notify:
            return
        if len(self._events) >= MAX_PENDING_EVENTS:
            warn_limited(log, "events", "dropping a power notification: queue full")
            return
        agent = state.state.changed_by or 0
        self._events.append(U32.pack(self._changed_header)
                            + U32X3.pack(agent, state.id, STATE_ON if on else STATE_OFF))
        self.platform.deadline_changed()

    # Message handlers

    def _domain(self, request: bytes, offset: int = 4) -> _Domain:
        (domain_id,) = U32.unpack_from(request, offset)
        if domain_id >= self._count:
            raise ScmiError(Status.NOT_FOUND, f"no power domain {domain_id}")
        return self._domains[domain_id]

    def _domain_attributes(self, header: int, request: bytes, room: int) -> bytes:
        return ok(header, self._domain(request).attributes)

    async def _state_set(self, header: int, request: bytes, room: int) -> bytes:
        flags, _, power_state = U32X3.unpack_from(request, 4)
        state = self._domain(request, 8)
        if flags & ~ASYNC_FLAG:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved flag bits set")
        if flags & ASYNC_FLAG:
            raise ScmiError(Status.INVALID_PARAMETERS, "asynchronous changes not supported")
        if power_state not in (STATE_ON, STATE_OFF):
            raise ScmiError(Status.INVALID_PARAMETERS, f"no power state {power_state:#x}")
        domain = state.domain
        if not state.can_set:
            raise ScmiError(Status.DENIED, f"power of {domain.name} is not settable")
        try:
            await state.state.request(self.platform.agent_id, power_state == STATE_ON)
        except Exception as err:
            raise host_error(log, f"switching {domain.name}", err) from err
        return status_only(header, Status.SUCCESS)

    async def _state_get(self, header: int, request: bytes, room: int) -> bytes:
        domain = self._domain(request).domain
        try:
            on = await HostCall(domain, domain.is_on)
        except Exception as err:
            raise host_error(log, f"reading the power state of {domain.name}", err) from err
        return ok(header, U32.pack(STATE_ON if on else STATE_OFF))

    def _state_notify(self, header: int, request: bytes, room: int) -> bytes:
        state = self._domain(request)
        state.notify = notify_enable(request)
        return status_only(header, Status.SUCCESS)

    def _domain_name_get(self, header: int, request: bytes, room: int) -> bytes:
        state = self._domain(request)
        if not state.long_name:
            raise ScmiError(Status.NOT_SUPPORTED, f"domain {state.id} has no extended name")
        return ok(header, U32.pack(0) + pack_name(state.domain.name, EXTENDED_NAME_SIZE))
