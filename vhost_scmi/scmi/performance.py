# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""SCMI Performance domain management protocol (0x13), version 4.0.

Domain ids are the indexes of the agent's `PerformanceDomain`s. Levels are kHz: each
domain reports its highest level as both sustained frequency (kHz) and sustained
level, so Linux's scale factor is exactly 1000 (Hz per level) and scmi-cpufreq shows
the host's frequencies unchanged, none of them as a boost frequency.

Behaviour chosen where the specification leaves it to the platform:

- No fast channels (virtio has no shared memory): DESCRIBE_FASTCHANNEL answers
  NOT_SUPPORTED; no statistics area; power figures are not reported (0).
- LEVEL_SET takes a level within the host's current limits (else OUT_OF_RANGE) and
  rounds it up to the next listed level (down to the highest listed one within the
  limits if there is none above): an agent never gets less than it asked for.
- Several agents on one domain: the host gets the HIGHEST of their levels. Limits
  combine end by end, each taking the highest request (the highest floor, and the
  highest ceiling: nobody is capped below what it allows). An agent's request
  counts until it sets another or is reset.
- LIMITS_SET rounds the range inward to listed levels: OUT_OF_RANGE when it lies
  outside the domain's levels or holds none, INVALID_PARAMETERS when min > max.
- A set is DENIED unless the domain's device spec allows it (`control=`) and the
  agent may control the domain; DOMAIN_ATTRIBUTES says which sets each agent may use.
- LEVEL_GET and LIMITS_GET read the host (what all agents' requests made of it).
- LEVEL_CHANGED and LIMITS_CHANGED go to the agents that subscribed when another
  agent's request changes what the host has; their agent id is that agent's.
"""

from __future__ import annotations

import logging
from enum import IntEnum

from vhost_scmi.devices.performance import Limits, PerfControl, PerformanceDomain
from vhost_scmi.platform.arbitration import Rule, SharedSetting
from vhost_scmi.scmi.domain import DomainProtocol, has_long_name
from vhost_scmi.scmi.protocol import (
    MAX_PAYLOAD,
    U32,
    U32X2,
    U32X3,
    Message,
    Platform,
    ok,
    pack_name,
    status_only,
)
from vhost_scmi.scmi.status import ProtocolId, ScmiError, Status

log = logging.getLogger(__name__)

#: Performance domain management 4.0, as Linux 6.12 implements it.
VERSION = 0x40000
#: Most levels a Linux 6.12 guest takes per domain (its MAX_OPPS): it rejects a domain
#: with more.
LINUX_MAX_LEVELS = 32


class PerfMessage(IntEnum):
    """Performance domain management message ids."""

    DOMAIN_ATTRIBUTES = 0x3
    DESCRIBE_LEVELS = 0x4
    LIMITS_SET = 0x5
    LIMITS_GET = 0x6
    LEVEL_SET = 0x7
    LEVEL_GET = 0x8
    NOTIFY_LIMITS = 0x9
    NOTIFY_LEVEL = 0xA
    DESCRIBE_FASTCHANNEL = 0xB
    DOMAIN_NAME_GET = 0xC


class PerfNotification(IntEnum):
    """Performance domain management notification ids."""

    LIMITS_CHANGED = 0x0
    LEVEL_CHANGED = 0x1


class DomainFlags(IntEnum):
    """Bit positions in DOMAIN_ATTRIBUTES' flags."""

    SET_LIMITS = 31
    SET_LEVEL = 30
    LIMITS_NOTIFY = 29
    LEVEL_NOTIFY = 28
    FAST_CHANNELS = 27  # never set
    EXTENDED_NAME = 26
    LEVEL_INDEXING = 25  # never set


class LimitsSetting(SharedSetting[Limits]):
    """A domain's limits: each end takes the highest of the agents' requests."""

    def combine(self, requests: dict[int, Limits]) -> Limits | None:
        if not requests:
            return None
        return Limits(max(r.low for r in requests.values()),
                      max(r.high for r in requests.values()))


class _Domain:
    """One domain as one agent sees it."""

    def __init__(self, domain: PerformanceDomain, platform: Platform) -> None:
        self.levels = domain.levels
        if len(self.levels) > LINUX_MAX_LEVELS:
            log.warning("performance domain %s has %d levels: Linux guests take at most %d",
                        domain.name, len(self.levels), LINUX_MAX_LEVELS)
        allowed = platform.may_control(domain)
        self.can_set_level = allowed and domain.control is PerfControl.LEVEL
        self.can_set_limits = allowed and domain.control is PerfControl.LIMITS
        top = self.levels[-1]
        flags = (self.can_set_limits << DomainFlags.SET_LIMITS
                 | self.can_set_level << DomainFlags.SET_LEVEL
                 | 1 << DomainFlags.LIMITS_NOTIFY | 1 << DomainFlags.LEVEL_NOTIFY
                 | has_long_name(domain.name) << DomainFlags.EXTENDED_NAME)
        # u32 flags, u32 rate limit (µs, none), u32 sustained kHz, u32 sustained level,
        # 16-byte name.
        self.attributes = U32X2.pack(flags, 0) + U32X2.pack(top, top) + pack_name(domain.name)
        # Level entries (v4): u32 level, u32 power, u16 latency µs, u16 reserved,
        # u32 indicative kHz, u32 level index.
        latency = min(domain.transition_latency_us, 0xFFFF)
        self.entries = [U32X2.pack(level, 0) + latency.to_bytes(2, "little") + bytes(2)
                        + U32X2.pack(level, index) for index, level in enumerate(self.levels)]
        arbiter = platform.arbiter
        self.level = arbiter.setting(domain, "level", lambda: SharedSetting(
            domain, "level", Rule.HIGHEST, None, domain.set_level))
        self.limits = arbiter.setting(domain, "limits", lambda: LimitsSetting(
            domain, "limits", Rule.HIGHEST, None, domain.set_limits))


def round_level(levels: tuple[int, ...], level: int, limits: Limits) -> int:
    """The listed level an accepted request `level` becomes (see the module docstring)."""
    within = [value for value in levels if limits.low <= value <= limits.high]
    above = [value for value in within if value >= level]
    if above:
        return above[0]
    return within[-1] if within else level


class PerformanceProtocol(DomainProtocol[PerformanceDomain]):
    """Performance domain management over the agent's performance domains."""

    protocol_id = ProtocolId.PERFORMANCE
    version = VERSION
    resource_type = PerformanceDomain

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform)
        self._states = [_Domain(domain, platform) for domain in self.domains]
        self._notify_level = self.subscriptions()
        self._notify_limits = self.subscriptions()
        self.add_messages(
            Message(PerfMessage.DOMAIN_ATTRIBUTES, self._domain_attributes, 4),
            Message(PerfMessage.DESCRIBE_LEVELS, self._describe_levels, 8),
            Message(PerfMessage.LIMITS_SET, self._limits_set, 12),
            Message(PerfMessage.LIMITS_GET, self._limits_get, 4),
            Message(PerfMessage.LEVEL_SET, self._level_set, 8),
            Message(PerfMessage.LEVEL_GET, self._level_get, 4),
            Message(PerfMessage.NOTIFY_LIMITS, self._notify_limits_set, 8),
            Message(PerfMessage.NOTIFY_LEVEL, self._notify_level_set, 8),
            Message(PerfMessage.DESCRIBE_FASTCHANNEL, self._describe_fastchannel, 8),
            Message(PerfMessage.DOMAIN_NAME_GET, self.name_get, 4),
        )

    # Protocol hooks

    def attributes(self) -> bytes:
        # u16 domains, u16 flags (power unit: none of mW/µW), u32 statistics address
        # low/high and length (none).
        return len(self.domains).to_bytes(2, "little") + bytes(2) + bytes(12)

    # Notifications (watchers of the shared settings)

    def _on_level_changed(self, domain_id: int, setting: SharedSetting[int]):
        def changed(level: int) -> None:
            if domain_id in self._notify_level:
                self.notify(PerfNotification.LEVEL_CHANGED,
                            U32X3.pack(setting.changed_by or 0, domain_id, level))
        return changed

    def _on_limits_changed(self, domain_id: int, setting: SharedSetting[Limits]):
        def changed(limits: Limits) -> None:
            if domain_id in self._notify_limits:
                self.notify(PerfNotification.LIMITS_CHANGED,
                            U32X2.pack(setting.changed_by or 0, domain_id)
                            + U32X2.pack(limits.high, limits.low))
        return changed

    # Message handlers

    def _state(self, request: bytes) -> tuple[int, PerformanceDomain, _Domain]:
        domain_id, domain = self.domain(request)
        return domain_id, domain, self._states[domain_id]

    def _domain_attributes(self, header: int, request: bytes, room: int) -> bytes:
        _, _, state = self._state(request)
        return ok(header, state.attributes)

    def _describe_levels(self, header: int, request: bytes, room: int) -> bytes:
        _, _, state = self._state(request)
        (first,) = U32.unpack_from(request, 8)
        if first >= len(state.entries):
            raise ScmiError(Status.INVALID_PARAMETERS, f"no level {first}")
        # u16 returned, u16 remaining, then entries.
        fits = (min(room, MAX_PAYLOAD) - 4) // len(state.entries[0])
        if fits < 1:
            raise ScmiError(Status.COMMS_ERROR, "no level fits the response buffer")
        chosen = state.entries[first:first + fits]
        remaining = len(state.entries) - first - len(chosen)
        return ok(header, (len(chosen) | remaining << 16).to_bytes(4, "little")
                  + b"".join(chosen))

    async def _limits_set(self, header: int, request: bytes, room: int) -> bytes:
        _, domain, state = self._state(request)
        high, low = U32X2.unpack_from(request, 8)
        if not state.can_set_limits:
            raise ScmiError(Status.DENIED, f"limits of {domain.name} are not settable")
        if low > high:
            raise ScmiError(Status.INVALID_PARAMETERS, "minimum above maximum")
        levels = state.levels
        within = [level for level in levels if low <= level <= high]
        if low < levels[0] or high > levels[-1] or not within:
            raise ScmiError(Status.OUT_OF_RANGE, f"limits {low}..{high} outside the levels")
        await self.request(state.limits, Limits(within[0], within[-1]))
        return status_only(header, Status.SUCCESS)

    async def _limits_get(self, header: int, request: bytes, room: int) -> bytes:
        _, domain = self.domain(request)
        limits = await self.host(domain, domain.limits)
        return ok(header, U32X2.pack(limits.high & 0xFFFFFFFF, limits.low & 0xFFFFFFFF))

    async def _level_set(self, header: int, request: bytes, room: int) -> bytes:
        _, domain, state = self._state(request)
        (level,) = U32.unpack_from(request, 8)
        if not state.can_set_level:
            raise ScmiError(Status.DENIED, f"level of {domain.name} is not settable")
        limits = await self.host(domain, domain.limits)
        if not limits.low <= level <= limits.high:
            raise ScmiError(Status.OUT_OF_RANGE, f"level {level} outside the limits "
                            f"{limits.low}..{limits.high}")
        await self.request(state.level, round_level(state.levels, level, limits))
        return status_only(header, Status.SUCCESS)

    async def _level_get(self, header: int, request: bytes, room: int) -> bytes:
        _, domain = self.domain(request)
        level = await self.host(domain, domain.level)
        return ok(header, U32.pack(level & 0xFFFFFFFF))

    def _notify_limits_set(self, header: int, request: bytes, room: int) -> bytes:
        domain_id, _, state = self._state(request)
        self.subscribe(self._notify_limits, domain_id, self.notify_enable(request),
                       (state.limits, self._on_limits_changed(domain_id, state.limits)))
        return status_only(header, Status.SUCCESS)

    def _notify_level_set(self, header: int, request: bytes, room: int) -> bytes:
        domain_id, _, state = self._state(request)
        self.subscribe(self._notify_level, domain_id, self.notify_enable(request),
                       (state.level, self._on_level_changed(domain_id, state.level)))
        return status_only(header, Status.SUCCESS)

    def _describe_fastchannel(self, header: int, request: bytes, room: int) -> bytes:
        self.domain(request)
        raise ScmiError(Status.NOT_SUPPORTED, "no fast channels over virtio")
