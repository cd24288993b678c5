# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Arbitration: several agents asking for one host setting; the platform decides.

A `SharedSetting` is one adjustable property of one host resource (a performance
level, a power state, a clock's enable or rate...). Each agent's latest request is
kept; the `Rule` of the setting combines them into the value that reaches the host.
When the combined value changes, the setting applies it (a host call, off the event
loop) and tells every other agent watching it, so their protocols can notify.

An agent that leaves (its VMM disconnects, the VMM resets the device,
RESET_AGENT_CONFIGURATION) withdraws its requests (`Arbiter.release_agent`,
run by `AgentView.release_shared` from the dispatcher's reset); the value is
recombined from those that remain. With no request left, the host keeps its value.

Host writes of one setting never overlap: a request that arrives while a write is in
flight is recorded at once and applied by the writer right after its own write.
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
                 apply: Callable[[T], object], *, shared: bool = False,
                 logged: bool = True, idle: T | None = None) -> None:
        self.resource = resource
        self.name = name
        self.rule = rule
        self.value = value
        self.shared = shared
        #: Whether changes are logged as host changes (False for settings that only
        #: carry news between agents and never reach the host).
        self.logged = logged
        #: The value applied once no agent requests anything (None: the value stays).
        self.idle = idle
        self._apply = apply
        #: agent id -> its latest request, in request order.
        self.requests: dict[int, T] = {}
        self._watchers: dict[int, Callable[[T], None]] = {}
        #: The agent whose request or release made the latest change (watchers read it;
        #: None after a write that combined several agents' requests).
        self.changed_by: int | None = None
        #: A host write is in flight (one coroutine writes at a time).
        self._writing = False
        #: The agent whose request changed the requests last (None: a release).
        self._last_agent: int | None = None

    def combine(self, requests: dict[int, T]) -> T | None:
        """Return the value the rule makes of `requests`; with none, `idle` (None:
        nothing to apply)."""
        if not requests:
            return self.idle
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
        """Record `agent`'s request, apply the combined value; return the host's value.

        Raises ArbitrationDenied when another agent holds an exclusive setting, and
        what the host write raises (then this agent's request is withdrawn again).

        Requests may arrive while a host write is in flight (another agent's request,
        completed later): the request is recorded at once, and the write in flight
        applies the new combination after its own, so that writes to one setting
        never overlap and the host ends with what the recorded requests combine to.
        Such a request returns without waiting for that follow-up write.
        """
        owner = self.owner()
        if owner is not None and owner != agent and not self.shared:
            raise ArbitrationDenied(f"{self.name} of {self.resource.name} is held by "
                                    f"agent {owner}")
        missing = object()
        previous = self.requests.pop(agent, missing)  # re-insert: the latest is last
        self.requests[agent] = value
        self._last_agent = agent
        try:
            await self._settle()
        except BaseException:
            # Withdraw the failed request, unless the agent has asked again since.
            if self.requests.get(agent, missing) is value:
                del self.requests[agent]
                if previous is not missing:
                    self.requests[agent] = previous
            # Requests recorded meanwhile by other agents still deserve their write.
            await self._settle(raise_first=False)
            raise
        return self.value

    async def release(self, agent: int) -> None:
        """Withdraw `agent`'s request; the others' combined value applies.

        With no request left, the host keeps its last value.
        """
        if agent not in self.requests:
            return
        del self.requests[agent]
        self._last_agent = agent
        await self._settle()

    def watch(self, agent: int, callback: Callable[[T], None]) -> None:
        """Call `callback(value)` when another agent's request changes the value."""
        self._watchers[agent] = callback

    def unwatch(self, agent: int) -> None:
        self._watchers.pop(agent, None)

    async def _settle(self, raise_first: bool = True) -> None:
        """Bring the host to the combined value of the current requests.

        Only one coroutine writes at a time: one that finds a write in flight leaves
        the new combination to it. The writer re-combines after every write, until
        the host holds what the requests ask for; only its first write's failure is
        raised (to the request that started it), later ones are logged.
        """
        if self._writing:
            return
        self._writing = True
        first = True
        try:
            while True:
                combined = self.combine(self.requests)
                if combined is None or combined == self.value:
                    return
                # The agent whose request started this write learns of it in its
                # reply; a follow-up write combines several agents' requests: all hear.
                changed_by = self._last_agent if first else None
                try:
                    await HostCall(self.resource, self._apply, combined)
                except Exception:
                    if first and raise_first:
                        raise
                    log.exception("host: cannot set %s of %s to %s", self.name,
                                  self.resource.name, combined)
                    return
                first = False
                if self.logged:
                    log.info("host: %s of %s set to %s (requests: %s)", self.name,
                             self.resource.name, combined, self.requests)
                self.value = combined
                self.changed_by = changed_by
                for agent, callback in list(self._watchers.items()):
                    if agent != changed_by:
                        try:
                            callback(combined)
                        except Exception:
                            log.exception("agent %d: watcher of %s failed", agent, self.name)
        finally:
            self._writing = False


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

    def holds(self, agent: int) -> bool:
        """Whether `agent` has a request on any setting."""
        return any(agent in setting.requests for setting in self._settings.values())

    async def release_agent(self, agent: int) -> None:
        """Withdraw every request of `agent` (its VMM left or reset it).

        Each setting is recombined from the other agents' requests; a host write
        that fails is logged, and the remaining settings are still released. Its
        watchers stay: they belong to its protocols, which outlive a VMM.
        """
        for setting in list(self._settings.values()):
            try:
                await setting.release(agent)
            except Exception:
                log.exception("host: releasing agent %d's request on %s of %s failed",
                              agent, setting.name, setting.resource.name)
