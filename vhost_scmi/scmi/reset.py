# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""SCMI Reset domain management protocol (0x16), version 3.0 (Linux 6.12's).

Domain ids are the indexes of the reset domains the agent sees. Behaviour chosen where
the specification leaves it to the platform:

- Only the architectural cold reset (reset_state 0) is offered: an IMPLEMENTATION
  DEFINED reset type is NOT_SUPPORTED, another architectural one INVALID_PARAMETERS.
- An autonomous reset resets the domain at once; asserting holds it in reset while
  ANY agent holds it asserted (the ANY rule of the platform's shared settings), and
  a RESET with neither flag deasserts the caller's hold.
- An agent without control of a domain gets DENIED for RESET.
- Asynchronous resets are supported and advertised (Linux asks for them): the
  command is answered, then RESET_COMPLETE follows on the event queue.
- RESET_ISSUED goes to the agents subscribed to a domain when another agent resets
  or asserts it, and carries that agent's id.
"""

from __future__ import annotations

import logging
from enum import IntEnum

from vhost_scmi.devices.reset import ResetDomain
from vhost_scmi.platform.arbitration import Rule
from vhost_scmi.scmi.domain import DomainProtocol
from vhost_scmi.scmi.protocol import (
    U32,
    U32X2,
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

VERSION = 0x30000
#: RESET_DOMAIN_ATTRIBUTES latency when the domain does not know its own.
UNKNOWN_LATENCY = 0xFFFFFFFF


class ResetMessage(IntEnum):
    """Reset domain management message ids."""

    DOMAIN_ATTRIBUTES = 0x3
    RESET = 0x4
    NOTIFY = 0x5
    DOMAIN_NAME_GET = 0x6


class ResetNotification(IntEnum):
    """Reset domain management notification ids."""

    RESET_ISSUED = 0x0


class ResetBits(IntEnum):
    """Bit positions in domain attributes, RESET flags and reset states."""

    # RESET_DOMAIN_ATTRIBUTES
    ASYNC = 31
    NOTIFICATIONS = 30
    EXTENDED_NAME = 29
    # RESET flags
    AUTONOMOUS = 0
    EXPLICIT_ASSERT = 1
    ASYNC_RESET = 2
    # reset_state
    IMPLEMENTATION_DEFINED = 31


#: RESET flag bits that must be zero.
FLAGS_RESERVED = ~0x7 & 0xFFFFFFFF
#: The architectural reset type of reset_state bits 30:0 that every domain offers.
COLD_RESET = 0


class ResetProtocol(DomainProtocol[ResetDomain]):
    """Reset domain management over the platform's reset domains."""

    protocol_id = ProtocolId.RESET_DOMAIN
    version = VERSION
    resource_type = ResetDomain

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform)
        self._notify = self.subscriptions()
        self.add_messages(
            Message(ResetMessage.DOMAIN_ATTRIBUTES, self._domain_attributes, 4),
            Message(ResetMessage.RESET, self._reset, 12),
            Message(ResetMessage.NOTIFY, self._notify_set, 8),
            Message(ResetMessage.DOMAIN_NAME_GET, self.name_get, 4),
        )

    def _on_issued(self, domain_id: int):
        def issued(value: tuple[int, int, object]) -> None:
            agent, _, state = value
            if domain_id in self._notify and isinstance(state, int):
                self.notify(ResetNotification.RESET_ISSUED, U32X3.pack(agent, domain_id, state))
        return issued

    def _domain_attributes(self, header: int, request: bytes, room: int) -> bytes:
        _, domain = self.domain(request)
        attributes = (1 << ResetBits.ASYNC | 1 << ResetBits.NOTIFICATIONS
                      | has_long_name(domain.name) << ResetBits.EXTENDED_NAME)
        latency = UNKNOWN_LATENCY if domain.latency_us is None else domain.latency_us
        return ok(header, U32X2.pack(attributes, latency) + pack_name(domain.name))

    async def _reset(self, header: int, request: bytes, room: int) -> bytes:
        domain_id, domain = self.domain(request)
        flags, state = U32X2.unpack_from(request, 8)
        if flags & FLAGS_RESERVED:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved flag bits set")
        autonomous = bool(flags >> ResetBits.AUTONOMOUS & 1)
        explicit = bool(flags >> ResetBits.EXPLICIT_ASSERT & 1)
        if autonomous and explicit:
            raise ScmiError(Status.INVALID_PARAMETERS, "autonomous and explicit reset")
        if state >> ResetBits.IMPLEMENTATION_DEFINED:
            raise ScmiError(Status.NOT_SUPPORTED, "no implementation-defined reset types")
        if state != COLD_RESET:
            raise ScmiError(Status.INVALID_PARAMETERS, f"reset type {state:#x} reserved")
        self.check_control(domain)
        if autonomous:
            await self.host(domain, domain.reset)
            log.info("host: %s reset by agent %d", domain.name, self.platform.agent_id)
            await self.announce(domain, "reset-issued", state)
        else:
            if not domain.explicit:
                raise ScmiError(Status.NOT_SUPPORTED, f"{domain.name} cannot be held in reset")
            setting = await self.setting(domain, "asserted", Rule.ANY, lambda: False,
                                         domain.set_asserted, idle=False)
            await self.request(setting, explicit)
            if explicit:
                await self.announce(domain, "reset-issued", state)
        if flags >> ResetBits.ASYNC_RESET & 1:
            self.queue_delayed_response(header, U32.pack(domain_id))
        return status_only(header, Status.SUCCESS)

    def _notify_set(self, header: int, request: bytes, room: int) -> bytes:
        domain_id, domain = self.domain(request)
        self.subscribe(self._notify, domain_id, self.notify_enable(request),
                       (self.announcements(domain, "reset-issued"), self._on_issued(domain_id)))
        return status_only(header, Status.SUCCESS)
