# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""SCMI Powercap protocol (0x18), version 2.0 (Linux 6.12's).

Domain ids are the indexes of the powercap domains the agent sees; every domain is a
root (parent id 0xFFFFFFFF); power is in microwatts, intervals in microseconds.
Behaviour chosen where the specification leaves it to the platform:

- Arbitration through the platform's shared settings: the power cap is the LOWEST
  any agent asks for (a cap of 0, "capping off", counts as no cap: capping is off
  only while no agent asks for a cap); the averaging interval is the latest request.
- A read-only binding (a host `powercap` zone without control=on), or an agent
  without control, gets DENIED for POWERCAP_CAP_SET and POWERCAP_PAI_SET (whatever
  the value); a domain whose cap or interval is fixed (min == max) gets NOT_SUPPORTED.
- A cap or interval outside min..max is OUT_OF_RANGE; between two steps,
  INVALID_PARAMETERS.
- Asynchronous cap sets are accepted (POWERCAP_CAP_SET_COMPLETE follows on the event
  queue unless the agent asked to ignore it) but not advertised.
- POWERCAP_CAP_CHANGED goes to subscribed agents when another agent's request
  changes the cap or the interval; POWERCAP_MEASUREMENTS_CHANGED when the measured
  power, sampled every MEASUREMENT_PERIOD seconds while subscribed, leaves the
  agent's threshold window (and again each time it crosses a threshold).
- No fast channels: POWERCAP_DESCRIBE_FASTCHANNEL is NOT_SUPPORTED for every domain.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from enum import IntEnum

from vhost_scmi.devices.powercap import MAX_U32, Limits, PowercapDomain
from vhost_scmi.platform.arbitration import Rule, SharedSetting
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

VERSION = 0x20000
#: Seconds between measurements while an agent wants POWERCAP_MEASUREMENTS_CHANGED.
MEASUREMENT_PERIOD = 1.0
#: parent_id of a domain at the root of the hierarchy.
ROOT = 0xFFFFFFFF
#: The cap setting's value for "no cap" (above every u32 cap, so LOWEST prefers caps).
NO_CAP = MAX_U32 + 1
#: Power unit field (bits 24:23): 1 = microwatts.
MICROWATTS = 1


class PowercapMessage(IntEnum):
    """Powercap message ids."""

    DOMAIN_ATTRIBUTES = 0x3
    CAP_GET = 0x4
    CAP_SET = 0x5
    PAI_GET = 0x6
    PAI_SET = 0x7
    DOMAIN_NAME_GET = 0x8
    MEASUREMENTS_GET = 0x9
    CAP_NOTIFY = 0xA
    MEASUREMENTS_NOTIFY = 0xB
    DESCRIBE_FASTCHANNEL = 0xC


class PowercapNotification(IntEnum):
    """Powercap notification ids."""

    CAP_CHANGED = 0x0
    MEASUREMENTS_CHANGED = 0x1


class PowercapBits(IntEnum):
    """Bit positions in domain attributes and CAP_SET flags."""

    CAP_CHANGE_NOTIFY = 31
    MEASUREMENTS_NOTIFY = 30
    ASYNC_CAP_SET = 29
    EXTENDED_NAME = 28
    CAP_CONFIGURABLE = 27
    MONITORING = 26
    PAI_CONFIGURABLE = 25
    POWER_UNIT = 23  # 2 bits
    FASTCHANNELS = 22
    # CAP_SET flags
    IGNORE_DELAYED_RESPONSE = 0
    ASYNC = 1


def _check_value(value: int, limits: Limits, what: str) -> None:
    if not limits.min <= value <= limits.max:
        raise ScmiError(Status.OUT_OF_RANGE, f"{what} {value} outside {limits.min}.."
                        f"{limits.max}")
    if value not in limits:
        raise ScmiError(Status.INVALID_PARAMETERS, f"{what} {value} is not a step of "
                        f"{limits.step} from {limits.min}")


class _Measurements:
    """An agent's POWERCAP_MEASUREMENTS_NOTIFY subscription to one domain."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self.next_due = time.monotonic() + MEASUREMENT_PERIOD
        self.inside: bool | None = None
        self.busy = False


class PowercapProtocol(DomainProtocol[PowercapDomain]):
    """Powercap over the platform's powercap domains."""

    protocol_id = ProtocolId.POWERCAP
    version = VERSION
    resource_type = PowercapDomain

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform)
        for domain in self.domains:
            for what in ("cap_limits", "pai_limits"):
                if not isinstance(getattr(domain, what, None), Limits):
                    raise ValueError(f"powercap domain {domain.name!r}: {what} is not a "
                                     f"Limits")
        self._cap_notify = self.subscriptions()
        self._measurements: dict[int, _Measurements] = {}
        self.add_messages(
            Message(PowercapMessage.DOMAIN_ATTRIBUTES, self._domain_attributes, 4),
            Message(PowercapMessage.CAP_GET, self._cap_get, 4),
            Message(PowercapMessage.CAP_SET, self._cap_set, 12),
            Message(PowercapMessage.PAI_GET, self._pai_get, 4),
            Message(PowercapMessage.PAI_SET, self._pai_set, 12),
            Message(PowercapMessage.DOMAIN_NAME_GET, self.name_get, 4),
            Message(PowercapMessage.MEASUREMENTS_GET, self._measurements_get, 4),
            Message(PowercapMessage.CAP_NOTIFY, self._cap_notify_set, 8),
            Message(PowercapMessage.MEASUREMENTS_NOTIFY, self._measurements_notify, 16),
            Message(PowercapMessage.DESCRIBE_FASTCHANNEL, self._describe_fastchannel, 8),
        )

    def reset(self) -> None:
        super().reset()
        self._measurements.clear()

    # Events: measurement sampling

    def next_deadline(self) -> float | None:
        deadline = super().next_deadline()
        for sub in self._measurements.values():
            if not sub.busy and (deadline is None or sub.next_due < deadline):
                deadline = sub.next_due
        return deadline

    def take_events(self, now: float) -> list[bytes]:
        for domain_id, sub in list(self._measurements.items()):
            if sub.busy or sub.next_due > now:
                continue
            sub.busy = True
            sub.next_due = now + MEASUREMENT_PERIOD
            self.platform.spawn(self._sample(domain_id, sub))
        return super().take_events(now)

    async def _sample(self, domain_id: int, sub: _Measurements) -> None:
        domain = self.domains[domain_id]
        try:
            power = await self.host(domain, domain.measure)
        except ScmiError:
            return
        finally:
            sub.busy = False
            self.platform.deadline_changed()
        if self._measurements.get(domain_id) is not sub:
            return  # unsubscribed meanwhile
        inside = sub.low <= power <= sub.high
        if inside != sub.inside and (sub.inside is not None or not inside):
            self.notify(PowercapNotification.MEASUREMENTS_CHANGED,
                        U32X3.pack(0, domain_id, power))
        sub.inside = inside

    # Shared settings

    async def _cap_setting(self, domain: PowercapDomain) -> SharedSetting[int]:
        def read() -> int:
            return domain.get_cap() or NO_CAP

        def apply(cap: int) -> None:
            domain.set_cap(0 if cap == NO_CAP else cap)

        return await self.setting(domain, "cap", Rule.LOWEST, read, apply)

    async def _pai_setting(self, domain: PowercapDomain) -> SharedSetting[int]:
        return await self.setting(domain, "pai", Rule.LAST, domain.get_pai, domain.set_pai)

    def _cap_changed(self, domain_id: int, agent: int, cap: int, pai: int) -> None:
        if domain_id in self._cap_notify:
            self.notify(PowercapNotification.CAP_CHANGED, struct.pack(
                "<4I", agent, domain_id, 0 if cap == NO_CAP else cap, pai))

    def _cap_watchers(self, domain_id: int, cap: SharedSetting[int], pai: SharedSetting[int]
                      ) -> tuple[tuple[SharedSetting[int], Callable[[int], None]], ...]:
        def cap_changed(value: int) -> None:
            self._cap_changed(domain_id, cap.changed_by or 0, value, pai.value)

        def pai_changed(value: int) -> None:
            self._cap_changed(domain_id, pai.changed_by or 0, cap.value, value)

        return (cap, cap_changed), (pai, pai_changed)

    # Message handlers

    def _domain_attributes(self, header: int, request: bytes, room: int) -> bytes:
        _, domain = self.domain(request)
        cap, pai = domain.cap_limits, domain.pai_limits
        attributes = (1 << PowercapBits.CAP_CHANGE_NOTIFY
                      | domain.monitoring << PowercapBits.MEASUREMENTS_NOTIFY
                      | has_long_name(domain.name) << PowercapBits.EXTENDED_NAME
                      | cap.configurable << PowercapBits.CAP_CONFIGURABLE
                      | domain.monitoring << PowercapBits.MONITORING
                      | pai.configurable << PowercapBits.PAI_CONFIGURABLE
                      | MICROWATTS << PowercapBits.POWER_UNIT)
        return ok(header, U32.pack(attributes) + pack_name(domain.name) + struct.pack(
            "<9I", pai.min, pai.max, pai.step if pai.configurable else 0,
            cap.min, cap.max, cap.step if cap.configurable else 0,
            domain.sustainable_power, domain.accuracy, ROOT))

    async def _cap_get(self, header: int, request: bytes, room: int) -> bytes:
        _, domain = self.domain(request)
        return ok(header, U32.pack(await self.host(domain, domain.get_cap)))

    async def _cap_set(self, header: int, request: bytes, room: int) -> bytes:
        domain_id, domain = self.domain(request)
        flags, cap = U32X2.unpack_from(request, 8)
        if flags & ~0x3:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved flag bits set")
        self.check_control(domain)
        if not domain.cap_limits.configurable:
            raise ScmiError(Status.NOT_SUPPORTED, f"{domain.name} has a fixed cap")
        if cap:
            _check_value(cap, domain.cap_limits, "power cap")
        setting = await self._cap_setting(domain)
        applied = await self.request(setting, cap or NO_CAP)
        if flags >> PowercapBits.ASYNC & 1 and not flags & 1:
            self.queue_delayed_response(
                header, U32X2.pack(domain_id, 0 if applied == NO_CAP else applied))
        return status_only(header, Status.SUCCESS)

    async def _pai_get(self, header: int, request: bytes, room: int) -> bytes:
        _, domain = self.domain(request)
        return ok(header, U32.pack(await self.host(domain, domain.get_pai)))

    async def _pai_set(self, header: int, request: bytes, room: int) -> bytes:
        _, domain = self.domain(request)
        flags, pai = U32X2.unpack_from(request, 8)
        if flags:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved flag bits set")
        self.check_control(domain)
        if not domain.pai_limits.configurable:
            raise ScmiError(Status.NOT_SUPPORTED, f"{domain.name} has a fixed interval")
        _check_value(pai, domain.pai_limits, "averaging interval")
        setting = await self._pai_setting(domain)
        await self.request(setting, pai)
        return status_only(header, Status.SUCCESS)

    async def _measurements_get(self, header: int, request: bytes, room: int) -> bytes:
        _, domain = self.domain(request)
        if not domain.monitoring:
            raise ScmiError(Status.NOT_SUPPORTED, f"{domain.name} measures no power")
        power = await self.host(domain, domain.measure)
        pai = await self.host(domain, domain.get_pai)
        return ok(header, U32X2.pack(min(max(power, 0), MAX_U32), pai))

    async def _cap_notify_set(self, header: int, request: bytes, room: int) -> bytes:
        domain_id, domain = self.domain(request)
        enable = self.notify_enable(request)
        cap = await self._cap_setting(domain)
        pai = await self._pai_setting(domain)
        self.subscribe(self._cap_notify, domain_id, enable,
                       *self._cap_watchers(domain_id, cap, pai))
        return status_only(header, Status.SUCCESS)

    def _measurements_notify(self, header: int, request: bytes, room: int) -> bytes:
        domain_id, domain = self.domain(request)
        enable = self.notify_enable(request)
        low, high = U32X2.unpack_from(request, 12)
        if not domain.monitoring:
            raise ScmiError(Status.NOT_SUPPORTED, f"{domain.name} measures no power")
        if enable:
            if low > high:
                raise ScmiError(Status.INVALID_PARAMETERS, "low threshold above high")
            self._measurements[domain_id] = _Measurements(low, high)
        else:
            self._measurements.pop(domain_id, None)
        self.platform.deadline_changed()
        return status_only(header, Status.SUCCESS)

    def _describe_fastchannel(self, header: int, request: bytes, room: int) -> bytes:
        _, domain = self.domain(request)
        (message_id,) = U32.unpack_from(request, 8)
        if message_id not in self.messages:
            raise ScmiError(Status.NOT_FOUND, f"no message {message_id:#x}")
        raise ScmiError(Status.NOT_SUPPORTED, f"{domain.name} has no fast channels")
