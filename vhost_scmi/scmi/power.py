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
from vhost_scmi.scmi.domain import DomainProtocol
from vhost_scmi.scmi.protocol import (
    U32,
    U32X3,
    Message,
    Platform,
    has_long_name,
    ok,
    pack_name,
    status_only,
)
from vhost_scmi.scmi.status import ProtocolId, ScmiError, Status

log = logging.getLogger(__name__)

#: Power domain management 3.0, as Linux 6.12 implements it.
VERSION = 0x30000
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

    def __init__(self, domain: PowerDomain, platform: Platform) -> None:
        self.can_set = domain.controllable and platform.may_control(domain)
        flags = (1 << DomainFlags.STATE_NOTIFY | self.can_set << DomainFlags.SYNC_SET
                 | has_long_name(domain.name) << DomainFlags.EXTENDED_NAME)
        # u32 flags, 16-byte name.
        self.attributes = U32.pack(flags) + pack_name(domain.name)
        self.state = platform.arbiter.setting(domain, "power", lambda: SharedSetting(
            domain, "power", Rule.ANY, None, domain.set_on))


class PowerProtocol(DomainProtocol[PowerDomain]):
    """Power domain management over the agent's power domains."""

    protocol_id = ProtocolId.POWER_DOMAIN
    version = VERSION
    resource_type = PowerDomain

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform)
        self._states = [_Domain(domain, platform) for domain in self.domains]
        self._notify = self.subscriptions()
        self.add_messages(
            Message(PowerMessage.DOMAIN_ATTRIBUTES, self._domain_attributes, 4),
            Message(PowerMessage.STATE_SET, self._state_set, 12),
            Message(PowerMessage.STATE_GET, self._state_get, 4),
            Message(PowerMessage.STATE_NOTIFY, self._state_notify, 8),
            Message(PowerMessage.DOMAIN_NAME_GET, self.name_get, 4),
        )

    # Protocol hooks

    def attributes(self) -> bytes:
        # u16 domains, u16 reserved, u32 statistics address low/high and length (none).
        return len(self.domains).to_bytes(2, "little") + bytes(2) + bytes(12)

    def _on_state_changed(self, domain_id: int, setting: SharedSetting[bool]):
        def changed(on: bool) -> None:
            if domain_id in self._notify:
                self.notify(PowerNotification.POWER_STATE_CHANGED, U32X3.pack(
                    setting.changed_by or 0, domain_id, STATE_ON if on else STATE_OFF))
        return changed

    # Message handlers

    def _domain_attributes(self, header: int, request: bytes, room: int) -> bytes:
        domain_id, _ = self.domain(request)
        return ok(header, self._states[domain_id].attributes)

    async def _state_set(self, header: int, request: bytes, room: int) -> bytes:
        flags, _, power_state = U32X3.unpack_from(request, 4)
        domain_id, domain = self.domain(request, 8)
        if flags & ~ASYNC_FLAG:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved flag bits set")
        if flags & ASYNC_FLAG:
            raise ScmiError(Status.INVALID_PARAMETERS, "asynchronous changes not supported")
        if power_state not in (STATE_ON, STATE_OFF):
            raise ScmiError(Status.INVALID_PARAMETERS, f"no power state {power_state:#x}")
        state = self._states[domain_id]
        if not state.can_set:
            raise ScmiError(Status.DENIED, f"power of {domain.name} is not settable")
        await self.request(state.state, power_state == STATE_ON)
        return status_only(header, Status.SUCCESS)

    async def _state_get(self, header: int, request: bytes, room: int) -> bytes:
        _, domain = self.domain(request)
        on = await self.host(domain, domain.is_on)
        return ok(header, U32.pack(STATE_ON if on else STATE_OFF))

    def _state_notify(self, header: int, request: bytes, room: int) -> bytes:
        domain_id, _ = self.domain(request)
        setting = self._states[domain_id].state
        self.subscribe(self._notify, domain_id, self.notify_enable(request),
                       (setting, self._on_state_changed(domain_id, setting)))
        return status_only(header, Status.SUCCESS)
