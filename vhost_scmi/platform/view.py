# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""What one agent's protocols know of the platform: `AgentView`.

Every agent (one guest, on one socket) has its own view: the resources it sees, in
its own order (a protocol's ids are indexes into `visible(Type)`), what it may
control, and the names of the platform's agents. Protocol instances are per agent;
host resources and their shared settings are common to all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from vhost_scmi.devices.resource import Resource
from vhost_scmi.platform.arbitration import Arbiter
from vhost_scmi.platform.host import HostCall, run_inline

if TYPE_CHECKING:
    from vhost_scmi.platform.power import PowerCommand

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Resource)

PLATFORM_AGENT_NAME = "platform"
DEFAULT_AGENT_NAME = "guest"


def spawn_inline(coroutine: Coroutine[HostCall[Any], Any, Any]) -> None:
    """Run a background coroutine to its end now, logging what it raises."""
    try:
        run_inline(coroutine)
    except Exception:
        log.exception("background platform work failed")


def _nothing() -> None:
    """The default of the hooks the dispatcher sets."""


class AgentView:
    """One agent's view of the platform (see the module docstring)."""

    def __init__(self, *, resources: Sequence[Resource] = (), agent_id: int = 1,
                 agent_names: Sequence[str] = (PLATFORM_AGENT_NAME, DEFAULT_AGENT_NAME),
                 controllable: frozenset[Resource] | None = None,
                 arbiter: Arbiter | None = None,
                 power_states: frozenset[str] = frozenset(),
                 power_command: PowerCommand | None = None) -> None:
        #: Resources this agent sees, in the guest's order.
        self.resources = resources
        #: This agent's SCMI agent id (1..N; 0 is the platform).
        self.agent_id = agent_id
        #: Agent names by agent id; index 0 is the platform.
        self.agent_names = agent_names
        #: Resources this agent may change (sets on others are DENIED). Without a config
        #: every visible resource may be changed as far as its device allows.
        self.controllable = controllable
        #: Shared settings of the host resources, common to every agent.
        self.arbiter = arbiter if arbiter is not None else Arbiter()
        #: System power states (config names: shutdown, cold-reset, warm-reset,
        #: suspend) this agent may request with SYSTEM_POWER_STATE_SET; others DENIED.
        self.power_states = power_states
        #: The host command that carries out allowed system power requests.
        self.power_command = power_command
        #: Ids of every protocol implemented, Base included, filled in by the dispatcher.
        self.protocol_ids: list[int] = []
        #: Forget every agent configuration (RESET_AGENT_CONFIGURATION); set by the
        #: dispatcher.
        self.reset_agent: Callable[[], None] = _nothing
        #: A protocol's next_deadline() may have moved earlier (it scheduled an event, a
        #: delayed response or periodic work); set by the dispatcher, which caches
        #: deadlines.
        self.deadline_changed: Callable[[], None] = _nothing
        #: Run a coroutine in the background (work not answering a request: periodic
        #: reads, releasing an agent's shared settings at reset). Its host calls go
        #: through the same path as requests'; it must not raise (errors are logged).
        #: The daemon replaces the inline default with its executor.
        self.spawn: Callable[[Coroutine[HostCall[Any], Any, Any]], None] = spawn_inline

    def __repr__(self) -> str:
        return (f"AgentView(agent {self.agent_id} {self.agent_name!r}, "
                f"{len(self.resources)} resources)")

    @property
    def agent_name(self) -> str:
        return self.agent_names[self.agent_id]

    def visible(self, kind: type[R]) -> list[R]:
        """The resources of type `kind` this agent sees, in its order (its ids)."""
        return [resource for resource in self.resources if isinstance(resource, kind)]

    def may_control(self, resource: Resource) -> bool:
        """Whether this agent's configuration, and the resource's binding, let it change
        `resource` (a read-only binding is never changed)."""
        if resource.read_only:
            return False
        return self.controllable is None or resource in self.controllable

    def may_request_power(self, state: str) -> bool:
        """Whether this agent may ask the host for system power state `state`."""
        return state in self.power_states and self.power_command is not None

    def release_shared(self) -> None:
        """Withdraw this agent's requests on every shared setting (its VMM left or
        reset it); the remaining agents' requests are recombined in the background."""
        if self.arbiter.holds(self.agent_id):
            self.spawn(self.arbiter.release_agent(self.agent_id))
