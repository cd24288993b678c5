# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Arbitration: several agents asking for one host setting; the platform decides.

A `SharedSetting` is one adjustable property of one host resource (a performance
level, a power state, a clock's enable or rate...). Each agent's latest request is
kept; the `Rule` of the setting combines them into the value that reaches the host.
When the combined value changes, the setting applies it (a host call, off the event
loop) and tells every other agent watching it, so their protocols can notify.

An agent that leaves (its VMM disconnects, RESET_AGENT_CONFIGURATION) withdraws its
requests with `release`; the value is recombined from those that remain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from enum import Enum
from typing import Any, Generic, TypeVar

from vhost_scmi.devices.resource import Resource
from vhost_scmi.platform.host import HostCall

log = logging.getLogger(__name__)

T = TypeVar("T")


class Rule(Enum):
    """How the requests of several agents are combined."""

    #: The highest request wins (a performance level: nobody gets less than asked).
    HIGHEST = "highest"
    #: The lowest request wins (a power cap: nobody's cap is exceeded).
    LOWEST = "lowest"
    #: True while any agent asks for True (a power domain on, a clock enabled).
    ANY = "any"
    #: The first agent to set it owns it until it releases it; another agent's request
    #: is refused (`ArbitrationDenied`) unless the setting is shared (then: last wins).
    EXCLUSIVE = "exclusive"
    #: The latest request wins.
    LAST = "last"


class ArbitrationDenied(Exception):
    """The request conflicts with another agent's hold on an exclusive setting."""


class SharedSetting(Generic[T]):
    """One host setting several agents may request; see the module docstring.

    `apply(value)` is the host write (blocking allowed: it runs as a `HostCall` on
    `resource`); `value` is what the host has now.
    """

    def __init__(self, resource: Resource, name: str, rule: Rule, value: T,
                 apply: Callable[[T], object], *, shared: bool = False) -> None:
        self.resource = resource
        self.name = name
        self.rule = rule
        self.value = value
        self.shared = shared
        self._apply = apply
        #: agent id -> its latest request, in request order.
        self.requests: dict[int, T] = {}
        self._watchers: dict[int, Callable[[T], None]] = {}
        #: The agent whose request or release made the latest change (watchers read it).
        self.changed_by: int | None = None

    def combine(self, requests: dict[int, T]) -> T | None:
        """Return the value the rule makes of `requests`, or None when there are none."""
        if not requests:
            return None
        values = list(requests.values())
        if self.rule is Rule.HIGHEST:
            return max(values)  # type: ignore[type-var]
        if self.rule is Rule.LOWEST:
            return min(values)  # type: ignore[type-var]
        if self.rule is Rule.ANY:
            return any(values)  # type: ignore[return-value]
        return values[-1]  # EXCLUSIVE (one holder, or shared) and LAST

    def owner(self) -> int | None:
        """The agent holding an exclusive setting, or None."""
        if self.rule is Rule.EXCLUSIVE and self.requests:
            return next(iter(self.requests))
        return None

    async def request(self, agent: int, value: T) -> T:
        """Record `agent`'s request, apply the combined value; return it.

        Raises ArbitrationDenied when another agent holds an exclusive setting, and
        what the host write raises (then nothing is recorded).
        """
        owner = self.owner()
        if owner is not None and owner != agent and not self.shared:
            raise ArbitrationDenied(f"{self.name} of {self.resource.name} is held by "
                                    f"agent {owner}")
        requests = dict(self.requests)
        requests.pop(agent, None)  # re-insert: the latest request is last
        requests[agent] = value
        await self._set(requests, agent)
        return self.value

    async def release(self, agent: int) -> None:
        """Withdraw `agent`'s request; the others' combined value applies."""
        if agent not in self.requests:
            return
        requests = dict(self.requests)
        del requests[agent]
        await self._set(requests, agent)

    def watch(self, agent: int, callback: Callable[[T], None]) -> None:
        """Call `callback(value)` when another agent's request changes the value."""
        self._watchers[agent] = callback

    def unwatch(self, agent: int) -> None:
        self._watchers.pop(agent, None)

    async def _set(self, requests: dict[int, T], changed_by: int) -> None:
        combined = self.combine(requests)
        if combined is not None and combined != self.value:
            await HostCall(self.resource, self._apply, combined)
            log.info("host: %s of %s set to %s (requests: %s)", self.name,
                     self.resource.name, combined, requests)
            self.value = combined
            self.changed_by = changed_by
            for agent, callback in list(self._watchers.items()):
                if agent != changed_by:
                    callback(combined)
        self.requests = requests


class Arbiter:
    """Every shared setting of the platform, one per (resource, setting name)."""

    def __init__(self) -> None:
        self._settings: dict[tuple[int, Hashable], SharedSetting[Any]] = {}

    def setting(self, resource: Resource, name: Hashable, factory: Callable[[],
                SharedSetting[T]]) -> SharedSetting[T]:
        """Return the setting `name` of `resource`, created by `factory` on first use."""
        key = (id(resource), name)
        setting = self._settings.get(key)
        if setting is None:
            setting = self._settings[key] = factory()
        return setting

    def settings(self) -> list[SharedSetting[Any]]:
        return list(self._settings.values())
