# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""SCMI Voltage domain management protocol (0x17), version 2.0 (Linux 6.12's).

Domain ids are the indexes of the voltage domains the agent sees. Behaviour chosen
where the specification leaves it to the platform:

- Levels are described as the domain gives them: a list (paged), or a segment
  (min, max, step) returned whole.
- VOLTAGE_LEVEL_SET of a level outside min..max is OUT_OF_RANGE; of a level between
  two described ones, INVALID_PARAMETERS.
- Arbitration through the platform's shared settings: a supply is on while ANY agent
  wants it on; its level is EXCLUSIVE (the first agent to set it owns it until it
  leaves; another agent's VOLTAGE_LEVEL_SET is DENIED).
- A read-only binding (a host `regulator`), or an agent without control, gets DENIED
  for VOLTAGE_CONFIG_SET and VOLTAGE_LEVEL_SET, whatever the value.
- Only the architectural configurations are offered (0x0 off, 0x7 on); an
  IMPLEMENTATION DEFINED one (bit 3 set) is NOT_SUPPORTED.
- Asynchronous level sets are supported and advertised: VOLTAGE_LEVEL_SET_COMPLETE
  follows on the event queue.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from vhost_scmi.devices.voltage import MAX_LEVEL, MAX_LEVELS, MIN_LEVEL, VoltageDomain
from vhost_scmi.platform.arbitration import Rule
from vhost_scmi.scmi.domain import DomainProtocol, has_long_name
from vhost_scmi.scmi.protocol import (
    MAX_PAYLOAD,
    U32,
    Message,
    Platform,
    ok,
    pack_name,
    status_only,
)
from vhost_scmi.scmi.status import ProtocolId, ScmiError, Status

VERSION = 0x20000
#: Most levels one VOLTAGE_DESCRIBE_LEVELS response carries (u32 flags + 4 bytes a level).
LEVELS_PER_PAGE = (MAX_PAYLOAD - 4) // 4
S32 = struct.Struct("<i")


class VoltageMessage(IntEnum):
    """Voltage domain management message ids."""

    DOMAIN_ATTRIBUTES = 0x3
    DESCRIBE_LEVELS = 0x4
    CONFIG_SET = 0x5
    CONFIG_GET = 0x6
    LEVEL_SET = 0x7
    LEVEL_GET = 0x8
    DOMAIN_NAME_GET = 0x9


class VoltageBits(IntEnum):
    """Bit positions in domain attributes, level descriptions and flags."""

    ASYNC_LEVEL_SET = 31
    EXTENDED_NAME = 30
    SEGMENTED = 12
    LEVELS_REMAINING = 16
    ASYNC = 0
    IMPLEMENTATION_DEFINED = 3


class VoltageConfig(IntEnum):
    """Architectural VOLTAGE_CONFIG_SET/GET modes (bits 3:0)."""

    OFF = 0x0
    ON = 0x7


class VoltageProtocol(DomainProtocol[VoltageDomain]):
    """Voltage domain management over the platform's supplies."""

    protocol_id = ProtocolId.VOLTAGE_DOMAIN
    version = VERSION
    resource_type = VoltageDomain

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform)
        for domain in self.domains:
            if domain.level_range is None and (
                    not 0 < len(domain.levels) <= MAX_LEVELS
                    or list(domain.levels) != sorted(set(domain.levels))
                    or domain.levels[0] < MIN_LEVEL or domain.levels[-1] > MAX_LEVEL):
                raise ValueError(f"voltage domain {domain.name!r}: needs a level range, or "
                                 f"1 to {MAX_LEVELS} distinct s32 levels in ascending order")
        self.add_messages(
            Message(VoltageMessage.DOMAIN_ATTRIBUTES, self._domain_attributes, 4),
            Message(VoltageMessage.DESCRIBE_LEVELS, self._describe_levels, 8),
            Message(VoltageMessage.CONFIG_SET, self._config_set, 8),
            Message(VoltageMessage.CONFIG_GET, self._config_get, 4),
            Message(VoltageMessage.LEVEL_SET, self._level_set, 12),
            Message(VoltageMessage.LEVEL_GET, self._level_get, 4),
            Message(VoltageMessage.DOMAIN_NAME_GET, self.name_get, 4),
        )

    def _domain_attributes(self, header: int, request: bytes, room: int) -> bytes:
        _, domain = self.domain(request)
        attributes = (1 << VoltageBits.ASYNC_LEVEL_SET
                      | has_long_name(domain.name) << VoltageBits.EXTENDED_NAME)
        return ok(header, U32.pack(attributes) + pack_name(domain.name))

    def _describe_levels(self, header: int, request: bytes, room: int) -> bytes:
        _, domain = self.domain(request)
        (first,) = U32.unpack_from(request, 8)
        segment = domain.level_range
        if segment is not None:
            if first != 0:
                raise ScmiError(Status.INVALID_PARAMETERS, "a segment is one triplet")
            return ok(header, U32.pack(3 | 1 << VoltageBits.SEGMENTED)
                      + struct.pack("<3i", segment.min, segment.max, segment.step))
        if first >= len(domain.levels):
            raise ScmiError(Status.INVALID_PARAMETERS, f"no level {first}")
        fits = min(LEVELS_PER_PAGE, (room - 4) // 4)
        if fits < 1:
            raise ScmiError(Status.COMMS_ERROR, "no level fits the response buffer")
        chosen = domain.levels[first:first + fits]
        remaining = len(domain.levels) - first - len(chosen)
        return ok(header, U32.pack(len(chosen) | remaining << VoltageBits.LEVELS_REMAINING)
                  + struct.pack(f"<{len(chosen)}i", *chosen))

    async def _config_set(self, header: int, request: bytes, room: int) -> bytes:
        _, domain = self.domain(request)
        (config,) = U32.unpack_from(request, 8)
        if config & ~0xF:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved configuration bits set")
        self.check_control(domain)
        if config >> VoltageBits.IMPLEMENTATION_DEFINED:
            raise ScmiError(Status.NOT_SUPPORTED, "no implementation-defined modes")
        if config not in (VoltageConfig.OFF, VoltageConfig.ON):
            raise ScmiError(Status.INVALID_PARAMETERS, f"reserved mode {config:#x}")
        setting = await self.setting(domain, "on", Rule.ANY, domain.is_on, domain.set_on,
                                     idle=False)
        await self.request(setting, config == VoltageConfig.ON)
        return status_only(header, Status.SUCCESS)

    async def _config_get(self, header: int, request: bytes, room: int) -> bytes:
        _, domain = self.domain(request)
        on = await self.host(domain, domain.is_on)
        return ok(header, U32.pack(VoltageConfig.ON if on else VoltageConfig.OFF))

    async def _level_set(self, header: int, request: bytes, room: int) -> bytes:
        domain_id, domain = self.domain(request)
        (flags,) = U32.unpack_from(request, 8)
        (level,) = S32.unpack_from(request, 12)
        if flags & ~1:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved flag bits set")
        self.check_control(domain)
        low = domain.level_range.min if domain.level_range else domain.levels[0]
        high = domain.level_range.max if domain.level_range else domain.levels[-1]
        if not low <= level <= high:
            raise ScmiError(Status.OUT_OF_RANGE, f"{level} uV outside {low}..{high} uV")
        if not domain.supports(level):
            raise ScmiError(Status.INVALID_PARAMETERS, f"{level} uV is not a level of "
                            f"{domain.name}")
        setting = await self.setting(domain, "level", Rule.EXCLUSIVE, domain.get_level,
                                     domain.set_level)
        applied = await self.request(setting, level)
        if flags & 1:
            self.queue_delayed_response(header, U32.pack(domain_id) + S32.pack(applied))
        return status_only(header, Status.SUCCESS)

    async def _level_get(self, header: int, request: bytes, room: int) -> bytes:
        _, domain = self.domain(request)
        level = await self.host(domain, domain.get_level)
        return ok(header, S32.pack(level))
