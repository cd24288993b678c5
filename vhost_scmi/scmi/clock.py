# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""SCMI Clock management protocol (0x14), version 3.0 (what Linux 6.12 implements).

Clock ids are the indexes of the clocks the agent sees. Behaviour chosen where the
specification leaves it to the platform:

- Several agents, one clock (arbitration through the platform's shared settings):
  a clock runs while ANY agent has it enabled (the ANY rule); its rate is EXCLUSIVE:
  the first agent to set it owns it until it leaves (or resets its configuration), and
  another agent's CLOCK_RATE_SET is DENIED, unless the clock's binding declares the
  rate shared (`fake-clock,shared=on`): then the latest request wins.
- An agent without control of a clock (a read-only binding, or its configuration)
  gets DENIED for CLOCK_RATE_SET and CLOCK_CONFIG_SET; CLOCK_GET_PERMISSIONS tells it
  so in advance (Linux then registers the clock without rate and gate operations).
- CLOCK_RATE_SET rounds a rate between two supported ones down, up or to the nearest
  as its flags ask; a rate outside min..max is OUT_OF_RANGE.
- Asynchronous rate sets are accepted (CLOCK_RATE_SET_COMPLETE follows on the event
  queue) but not advertised (max pending asynchronous requests 0), so Linux sets
  rates synchronously.
- CLOCK_RATE_CHANGED goes to the subscribed agents when another agent's request
  changes the rate; CLOCK_RATE_CHANGE_REQUESTED when another agent asks for a rate.
- No clock has parents or OEM extended configurations: CLOCK_POSSIBLE_PARENTS_GET,
  CLOCK_PARENT_SET/GET and OEM configuration types are NOT_SUPPORTED.
- Notifications carry the agent id of the agent that caused them.
"""

from __future__ import annotations

import logging
import struct
from enum import IntEnum

from vhost_scmi.devices.clock import MAX_RATE, MAX_RATES, ClockDomain
from vhost_scmi.platform.arbitration import Rule, SharedSetting
from vhost_scmi.scmi.domain import DomainProtocol
from vhost_scmi.scmi.protocol import (
    MAX_PAYLOAD,
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
#: Most rates one CLOCK_DESCRIBE_RATES response carries (u32 flags + 8 bytes a rate).
RATES_PER_PAGE = (MAX_PAYLOAD - 4) // 8
#: clock_enable_latency: 0, not known.
ENABLE_LATENCY = 0


class ClockMessage(IntEnum):
    """Clock management message ids."""

    ATTRIBUTES = 0x3
    DESCRIBE_RATES = 0x4
    RATE_SET = 0x5
    RATE_GET = 0x6
    CONFIG_SET = 0x7
    NAME_GET = 0x8
    RATE_NOTIFY = 0x9
    RATE_CHANGE_REQUESTED_NOTIFY = 0xA
    CONFIG_GET = 0xB
    POSSIBLE_PARENTS_GET = 0xC
    PARENT_SET = 0xD
    PARENT_GET = 0xE
    GET_PERMISSIONS = 0xF


class ClockNotification(IntEnum):
    """Clock management notification ids."""

    RATE_CHANGED = 0x0
    RATE_CHANGE_REQUESTED = 0x1


class ClockBits(IntEnum):
    """Bit positions in clock attributes, rate-set flags and permissions."""

    # CLOCK_ATTRIBUTES attributes
    RATE_CHANGED_NOTIFY = 31
    RATE_CHANGE_REQUESTED_NOTIFY = 30
    EXTENDED_NAME = 29
    PARENTS = 28
    EXTENDED_CONFIG = 27
    RESTRICTED = 1  # CLOCK_GET_PERMISSIONS answers
    ENABLED = 0
    # CLOCK_DESCRIBE_RATES flags
    RANGE_FORMAT = 12
    RATES_REMAINING = 16
    # CLOCK_RATE_SET flags
    ASYNC = 0
    IGNORE_DELAYED_RESPONSE = 1
    ROUND_UP = 2
    ROUND_AUTO = 3
    # CLOCK_GET_PERMISSIONS
    STATE_CONTROL = 31
    PARENT_CONTROL = 30
    RATE_CONTROL = 29


class ClockState(IntEnum):
    """CLOCK_CONFIG_SET attributes bits 1:0."""

    DISABLED = 0
    ENABLED = 1
    RESERVED = 2
    UNCHANGED = 3


#: CLOCK_RATE_SET flag bits that must be zero.
RATE_SET_RESERVED = ~0xF & 0xFFFFFFFF
#: CLOCK_CONFIG_SET attributes: bits 23:16 OEM type; the rest but 1:0 reserved.
CONFIG_OEM_TYPE = 0x00FF0000
CONFIG_RESERVED = 0xFF00FFFC
#: CLOCK_RATE_SET payload (flags, clock id, rate low/high); the rate as u64.
RATE_SET = struct.Struct("<IIQ")
U64 = struct.Struct("<Q")


def round_rate(clock: ClockDomain, rate: int, flags: int) -> int:
    """The supported rate CLOCK_RATE_SET `flags` pick for `rate`; OUT_OF_RANGE outside."""
    if not clock.min_rate <= rate <= clock.max_rate:
        raise ScmiError(Status.OUT_OF_RANGE, f"{rate} Hz outside {clock.min_rate}.."
                        f"{clock.max_rate} Hz")
    if clock.rate_range is not None:
        low_index = (rate - clock.rate_range.min) // clock.rate_range.step
        low = clock.rate_range.min + low_index * clock.rate_range.step
        high = low if low == rate else low + clock.rate_range.step
    else:
        low = max(r for r in clock.rates if r <= rate)
        high = min(r for r in clock.rates if r >= rate)
    if flags >> ClockBits.ROUND_AUTO & 1:
        return low if rate - low <= high - rate else high
    return high if flags >> ClockBits.ROUND_UP & 1 else low


class ClockProtocol(DomainProtocol[ClockDomain]):
    """Clock management over the platform's clocks."""

    protocol_id = ProtocolId.CLOCK
    version = VERSION
    resource_type = ClockDomain

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform)
        for clock in self.domains:
            if clock.rate_range is None and (
                    not 0 < len(clock.rates) <= MAX_RATES or list(clock.rates) != sorted(
                        set(clock.rates)) or clock.rates[0] <= 0 or clock.rates[-1] > MAX_RATE):
                raise ValueError(f"clock {clock.name!r}: needs a rate range, or 1 to "
                                 f"{MAX_RATES} distinct rates in ascending order")
        #: Clocks whose CLOCK_RATE_CHANGED / CLOCK_RATE_CHANGE_REQUESTED the agent wants.
        self._rate_notify = self.subscriptions()
        self._request_notify = self.subscriptions()
        self.add_messages(
            Message(ClockMessage.ATTRIBUTES, self._clock_attributes, 4),
            Message(ClockMessage.DESCRIBE_RATES, self._describe_rates, 8),
            Message(ClockMessage.RATE_SET, self._rate_set, 16),
            Message(ClockMessage.RATE_GET, self._rate_get, 4),
            Message(ClockMessage.CONFIG_SET, self._config_set, 12),
            Message(ClockMessage.NAME_GET, self.name_get, 4),
            Message(ClockMessage.RATE_NOTIFY, self._rate_notify_set, 8),
            Message(ClockMessage.RATE_CHANGE_REQUESTED_NOTIFY, self._request_notify_set, 8),
            Message(ClockMessage.CONFIG_GET, self._config_get, 8),
            Message(ClockMessage.POSSIBLE_PARENTS_GET, self._no_parents, 8),
            Message(ClockMessage.PARENT_SET, self._no_parents, 8),
            Message(ClockMessage.PARENT_GET, self._no_parents, 4),
            Message(ClockMessage.GET_PERMISSIONS, self._get_permissions, 4),
        )

    def attributes(self) -> bytes:
        # u16 clocks, u8 max pending asynchronous requests (none advertised), u8 reserved.
        return struct.pack("<HBB", len(self.domains), 0, 0)

    # Shared settings

    async def _enabled_setting(self, clock: ClockDomain) -> SharedSetting[bool]:
        # Enabled while ANY agent has it enabled: gated once none has.
        return await self.setting(clock, "enabled", Rule.ANY, clock.is_enabled,
                                  clock.set_enabled, idle=False)

    async def _rate_setting(self, clock: ClockDomain) -> SharedSetting[int]:
        return await self.setting(clock, "rate", Rule.EXCLUSIVE, clock.get_rate,
                                  clock.set_rate, shared=clock.shared_rate)

    def _on_rate_changed(self, clock_id: int, setting: SharedSetting[int]):
        def changed(rate: int) -> None:
            if clock_id in self._rate_notify:
                self.notify(ClockNotification.RATE_CHANGED,
                            U32X2.pack(setting.changed_by or 0, clock_id) + U64.pack(rate))
        return changed

    def _on_rate_requested(self, clock_id: int):
        def requested(value: tuple[int, int, object]) -> None:
            agent, _, rate = value
            if clock_id in self._request_notify and isinstance(rate, int):
                self.notify(ClockNotification.RATE_CHANGE_REQUESTED,
                            U32X2.pack(agent, clock_id) + U64.pack(rate))
        return requested

    # Message handlers

    async def _clock_attributes(self, header: int, request: bytes, room: int) -> bytes:
        _, clock = self.domain(request)
        enabled = await self.host(clock, clock.is_enabled)
        attributes = (1 << ClockBits.RATE_CHANGED_NOTIFY
                      | 1 << ClockBits.RATE_CHANGE_REQUESTED_NOTIFY
                      | has_long_name(clock.name) << ClockBits.EXTENDED_NAME
                      | 1 << ClockBits.RESTRICTED
                      | bool(enabled) << ClockBits.ENABLED)
        return ok(header, U32.pack(attributes) + pack_name(clock.name)
                  + U32.pack(ENABLE_LATENCY))

    def _describe_rates(self, header: int, request: bytes, room: int) -> bytes:
        _, clock = self.domain(request)
        (first,) = U32.unpack_from(request, 8)
        if clock.rate_range is not None:
            if first != 0:
                raise ScmiError(Status.INVALID_PARAMETERS, "a rate range has one triplet")
            if room < 4 + 24:
                raise ScmiError(Status.COMMS_ERROR, "no room for the rate triplet")
            rates = (clock.rate_range.min, clock.rate_range.max, clock.rate_range.step)
            return ok(header, U32.pack(3 | 1 << ClockBits.RANGE_FORMAT)
                      + struct.pack("<3Q", *rates))
        if first >= len(clock.rates):
            raise ScmiError(Status.INVALID_PARAMETERS, f"no rate {first}")
        fits = min(RATES_PER_PAGE, (room - 4) // 8)
        if fits < 1:
            raise ScmiError(Status.COMMS_ERROR, "no rate fits the response buffer")
        chosen = clock.rates[first:first + fits]
        remaining = len(clock.rates) - first - len(chosen)
        return ok(header, U32.pack(len(chosen) | remaining << ClockBits.RATES_REMAINING)
                  + struct.pack(f"<{len(chosen)}Q", *chosen))

    async def _rate_set(self, header: int, request: bytes, room: int) -> bytes:
        flags, clock_id, rate = RATE_SET.unpack_from(request, 4)
        clock_id, clock = self.domain(request, 8)
        if flags & RATE_SET_RESERVED:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved flag bits set")
        self.check_control(clock)
        chosen = round_rate(clock, rate, flags)
        setting = await self._rate_setting(clock)
        await self.announce(clock, "rate-requested", chosen)
        applied = await self.request(setting, chosen)
        if flags >> ClockBits.ASYNC & 1 and not flags >> ClockBits.IGNORE_DELAYED_RESPONSE & 1:
            self.queue_delayed_response(header, U32.pack(clock_id) + U64.pack(applied))
        return status_only(header, Status.SUCCESS)

    async def _rate_get(self, header: int, request: bytes, room: int) -> bytes:
        _, clock = self.domain(request)
        rate = await self.host(clock, clock.get_rate)
        return ok(header, U64.pack(rate))

    async def _config_set(self, header: int, request: bytes, room: int) -> bytes:
        _, clock = self.domain(request)
        (attributes,) = U32.unpack_from(request, 8)
        if attributes & CONFIG_RESERVED:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved attribute bits set")
        state = attributes & 0x3
        if state == ClockState.RESERVED:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved clock state")
        if attributes & CONFIG_OEM_TYPE:
            raise ScmiError(Status.NOT_SUPPORTED, "no OEM extended configurations")
        if state == ClockState.UNCHANGED:
            return status_only(header, Status.SUCCESS)
        self.check_control(clock)
        setting = await self._enabled_setting(clock)
        await self.request(setting, state == ClockState.ENABLED)
        return status_only(header, Status.SUCCESS)

    async def _config_get(self, header: int, request: bytes, room: int) -> bytes:
        _, clock = self.domain(request)
        (flags,) = U32.unpack_from(request, 8)
        if flags & ~0xFF:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved flag bits set")
        if flags:
            raise ScmiError(Status.NOT_SUPPORTED, "no OEM extended configurations")
        enabled = await self.host(clock, clock.is_enabled)
        # u32 attributes (reserved), u32 config (bit 0 enabled), u32 OEM value.
        return ok(header, U32X3.pack(0, bool(enabled), 0))

    async def _rate_notify_set(self, header: int, request: bytes, room: int) -> bytes:
        clock_id, clock = self.domain(request)
        enable = self.notify_enable(request)
        setting = await self._rate_setting(clock)
        self.subscribe(self._rate_notify, clock_id, enable,
                       (setting, self._on_rate_changed(clock_id, setting)))
        return status_only(header, Status.SUCCESS)

    def _request_notify_set(self, header: int, request: bytes, room: int) -> bytes:
        clock_id, clock = self.domain(request)
        self.subscribe(self._request_notify, clock_id, self.notify_enable(request),
                       (self.announcements(clock, "rate-requested"),
                        self._on_rate_requested(clock_id)))
        return status_only(header, Status.SUCCESS)

    def _no_parents(self, header: int, request: bytes, room: int) -> bytes:
        _, clock = self.domain(request)
        raise ScmiError(Status.NOT_SUPPORTED, f"{clock.name} has no parents")

    def _get_permissions(self, header: int, request: bytes, room: int) -> bytes:
        _, clock = self.domain(request)
        control = self.platform.may_control(clock)
        permissions = (control << ClockBits.STATE_CONTROL | control << ClockBits.RATE_CONTROL)
        return ok(header, U32.pack(permissions))
