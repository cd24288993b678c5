# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""What the domain protocols (Performance, Power domain, Clock, Reset domain, Voltage
domain, Powercap) share.

Each of them serves the resources of one type the agent sees (domain ids are indexes
into `platform.visible(Type)`), answers NOT_FOUND for an id past the end, DENIED for a
set the agent may not make (`platform.may_control`), changes host settings through the
platform's shared settings (`SharedSetting`, one per resource and setting, common to
every agent; an agent's requests are withdrawn when it is reset), keeps per
notification the set of domains the agent subscribed to (`subscriptions`, `subscribe`:
the agent watches a setting only while subscribed), answers *_NAME_GET (`name_get`),
and delivers its notifications and delayed responses through `take_events`.

Cross-agent events that are not a setting's value (a reset was issued, a rate change
was requested) travel as "announcements": a shared setting with the LAST rule whose
value is (agent id, serial number, payload) and whose host write does nothing; every
other agent watching it hears of each announcement.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from vhost_scmi.devices.resource import Resource
from vhost_scmi.platform.arbitration import Rule, SharedSetting
from vhost_scmi.platform.host import HostCall
from vhost_scmi.scmi.codec import pack_header
from vhost_scmi.scmi.protocol import (
    U32,
    Platform,
    Protocol,
    has_long_name,
    host_error,
    notify_enable,
    ok,
    pack_name,
    warn_limited,
)
from vhost_scmi.scmi.status import MessageType, ScmiError, Status

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Resource)
T = TypeVar("T")

#: Notifications and delayed responses kept waiting for the event queue; more are dropped.
MAX_PENDING_EVENTS = 64
#: Seconds between a command's response and its delayed response: the two travel on
#: different queues, and Linux counts a delayed response that it handles before the
#: response as out of order (it then drops the response as unexpected).
DELAYED_RESPONSE_DELAY = 0.05
#: Extended names (the *_NAME_GET messages) are 64-byte fields.
EXTENDED_NAME_SIZE = 64
_serials = itertools.count(1)


def delayed_header(header: int) -> int:
    """The header of the delayed response to command `header` (same id and token)."""
    return header & ~0x300 | MessageType.DELAYED_RESPONSE << 8


class DomainProtocol(Protocol, Generic[R]):
    """A protocol over the visible resources of `resource_type`."""

    resource_type: type[R]

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform)
        self.domains: Sequence[R] = platform.visible(self.resource_type)
        if len(self.domains) > 0xFFFF:
            raise ValueError(f"more than 65535 {self.resource_type.__name__} resources")
        #: (due time, 0.0 for now; event) in the order queued.
        self._events: list[tuple[float, bytes]] = []
        #: Shared settings this agent has requested or watches (released at reset).
        self._settings: set[SharedSetting[Any]] = set()
        #: The sets of subscribed domain ids (emptied at reset).
        self._subscriptions: list[set[int]] = []

    def visible(self) -> bool:
        """Whether the agent sees any domain (else the protocol is not offered)."""
        return bool(self.domains)

    def attributes(self) -> bytes:
        # The PROTOCOL_ATTRIBUTES of Reset, Voltage and Powercap: bits 15:0 number of
        # domains (the others override this).
        return U32.pack(len(self.domains))

    # Events

    def queue_event(self, event: bytes, delay: float = 0.0) -> None:
        """Deliver `event` (a notification or delayed response) on the event queue,
        `delay` seconds from now."""
        if len(self._events) >= MAX_PENDING_EVENTS:
            warn_limited(log, "events", "dropping an SCMI event: %d pending", len(self._events))
            return
        self._events.append((time.monotonic() + delay if delay else 0.0, event))
        self.platform.deadline_changed()

    def notify(self, notification: int, payload: bytes) -> None:
        """Send notification `notification` of this protocol, `payload` after the header."""
        header = pack_header(notification, MessageType.NOTIFICATION, self.protocol_id, 0)
        self.queue_event(U32.pack(header) + payload)

    def queue_delayed_response(self, header: int, payload: bytes) -> None:
        """Send the SUCCESS delayed response to command `header` (DELAYED_RESPONSE_DELAY
        seconds after its response)."""
        self.queue_event(U32.pack(delayed_header(header)) + bytes(4) + payload,
                         DELAYED_RESPONSE_DELAY)

    def next_deadline(self) -> float | None:
        return min((due for due, _ in self._events), default=None)

    def take_events(self, now: float) -> list[bytes]:
        if not self._events:
            return []
        due = [event for when, event in self._events if when <= now]
        self._events = [(when, event) for when, event in self._events if when > now]
        return due

    def reset(self) -> None:
        self._events.clear()
        for subscribed in self._subscriptions:
            subscribed.clear()
        agent = self.platform.agent_id
        for setting in self._settings:
            setting.unwatch(agent)
            if agent in setting.requests:
                self.platform.spawn(setting.release(agent))
        self._settings.clear()

    # Request helpers

    def domain(self, request: bytes, offset: int = 4) -> tuple[int, R]:
        """The domain whose id is the u32 at `offset`; NOT_FOUND when there is none."""
        (domain_id,) = U32.unpack_from(request, offset)
        if domain_id >= len(self.domains):
            raise ScmiError(Status.NOT_FOUND, f"no domain {domain_id}")
        return domain_id, self.domains[domain_id]

    def check_control(self, resource: Resource) -> None:
        """DENIED unless the agent may change `resource`."""
        if not self.platform.may_control(resource):
            raise ScmiError(Status.DENIED, f"{resource.name} is read-only for agent "
                            f"{self.platform.agent_id}")

    def subscriptions(self) -> set[int]:
        """A new set of the domain ids the agent subscribed to (for one notification),
        emptied when the agent is reset; see `subscribe`."""
        subscribed: set[int] = set()
        self._subscriptions.append(subscribed)
        return subscribed

    #: The notify_enable word of a *_NOTIFY request (offset 8 unless told).
    notify_enable = staticmethod(notify_enable)

    def subscribe(self, subscribed: set[int], domain_id: int, enable: bool,
                  *watches: tuple[SharedSetting[Any], Callable[[Any], None]]) -> None:
        """Add `domain_id` to (or, not `enable`, drop it from) `subscribed` and watch
        (stop watching) each setting of `watches` with its callback."""
        if enable:
            subscribed.add(domain_id)
        else:
            subscribed.discard(domain_id)
        for setting, callback in watches:
            self.watch(setting, callback if enable else None)

    @staticmethod
    def extended_name(resource: Resource) -> bytes:
        """The payload of a *_NAME_GET response; NOT_SUPPORTED for a short name."""
        if not has_long_name(resource.name):
            raise ScmiError(Status.NOT_SUPPORTED, f"{resource.name} has no extended name")
        return U32.pack(0) + pack_name(resource.name, EXTENDED_NAME_SIZE)

    def name_get(self, header: int, request: bytes, room: int) -> bytes:
        """The *_NAME_GET handler (u32 domain id at offset 4)."""
        _, resource = self.domain(request)
        return ok(header, self.extended_name(resource))

    async def host(self, resource: Resource, function: Callable[..., T], *args: object) -> T:
        """Call the device; its failure becomes the status the agent gets (a device
        kind's bug: GENERIC_ERROR, logged once with its traceback)."""
        try:
            return await HostCall(resource, function, *args)
        except Exception as err:
            raise host_error(log, resource.name, err) from err

    async def setting(self, resource: Resource, name: str, rule: Rule,
                      read: Callable[[], T], apply: Callable[[T], object], *,
                      shared: bool = False, idle: T | None = None) -> SharedSetting[T]:
        """The shared setting `name` of `resource`, created from the device's value;
        `idle` is applied once no agent asks for anything (None: the value stays)."""
        current = await self.host(resource, read)
        return self.platform.arbiter.setting(
            resource, name, lambda: SharedSetting(resource, name, rule, current, apply,
                                                  shared=shared, idle=idle))

    async def request(self, setting: SharedSetting[T], value: T) -> T:
        """Ask for `value`; DENIED when another agent holds the setting, and a failed
        host write answered as `host` answers it."""
        self._settings.add(setting)
        try:
            return await setting.request(self.platform.agent_id, value)
        except Exception as err:
            raise host_error(log, f"{setting.name} of {setting.resource.name}", err) from err

    def watch(self, setting: SharedSetting[T], callback: Callable[[T], None] | None) -> None:
        """Call `callback` when another agent changes `setting` (None: stop)."""
        if callback is None:
            setting.unwatch(self.platform.agent_id)
        else:
            self._settings.add(setting)
            setting.watch(self.platform.agent_id, callback)

    def announcements(self, resource: Resource, name: str) -> SharedSetting[tuple[int, int, Any]]:
        """The announcement channel `name` of `resource` (see the module docstring)."""
        return self.platform.arbiter.setting(
            resource, name, lambda: SharedSetting(resource, name, Rule.LAST, (0, 0, None),
                                                  _ignore, logged=False))

    async def announce(self, resource: Resource, name: str, payload: object) -> None:
        """Tell the other agents watching `name` of `resource` about `payload`."""
        channel = self.announcements(resource, name)
        await channel.request(self.platform.agent_id,
                              (self.platform.agent_id, next(_serials), payload))
        await channel.release(self.platform.agent_id)


def _ignore(value: object) -> None:
    """The host write of an announcement: nothing reaches the host."""
