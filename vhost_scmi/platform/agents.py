# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The platform's agents: one `AgentView` per guest (per socket), built from the
command line or from a configuration file.

Agent ids are 1..N in order (0 is the platform); every agent's view lists the
resources it sees in its own order, so each protocol's ids are contiguous from 0
over what that agent sees. Host resources and their shared settings (one `Arbiter`)
are common to all agents; everything else an agent configures stays its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from vhost_scmi.devices.resource import Resource
from vhost_scmi.platform.arbitration import Arbiter
from vhost_scmi.platform.view import DEFAULT_AGENT_NAME, PLATFORM_AGENT_NAME, AgentView

if TYPE_CHECKING:
    from vhost_scmi.platform.config import PlatformConfig


def default_agent_names(count: int) -> list[str]:
    """Agent names without a configuration: "guest" alone, else guest0, guest1..."""
    if count == 1:
        return [DEFAULT_AGENT_NAME]
    return [f"{DEFAULT_AGENT_NAME}{index}" for index in range(count)]


def default_views(resources: Sequence[Resource], count: int) -> list[AgentView]:
    """`count` agents that each see every resource and may control all of them
    (as far as each device allows): the command line without --config."""
    names = [PLATFORM_AGENT_NAME, *default_agent_names(count)]
    arbiter = Arbiter()
    return [AgentView(resources=list(resources), agent_id=index + 1, agent_names=names,
                      arbiter=arbiter)
            for index in range(count)]


def configured_views(config: PlatformConfig,
                     resources: Mapping[str, Sequence[Resource]]) -> list[AgentView]:
    """One view per `[[agent]]` of `config`, in file order; `resources` are the
    resources each device id's spec created. Devices not listed in an agent's
    `control` are read-only to it."""
    from vhost_scmi.platform.power import PowerCommand

    names = [PLATFORM_AGENT_NAME, *(agent.name for agent in config.agents)]
    arbiter = Arbiter()
    command = None
    if config.power_command is not None:
        command = PowerCommand(config.power_command.command, config.power_command.timeout)
    views = []
    for index, agent in enumerate(config.agents):
        seen = [resource for device_id in agent.devices for resource in resources[device_id]]
        controllable = frozenset(resource for device_id in agent.control
                                 for resource in resources[device_id])
        views.append(AgentView(resources=seen, agent_id=index + 1, agent_names=names,
                               controllable=controllable, arbiter=arbiter,
                               power_states=agent.system_power,
                               power_command=command if agent.system_power else None))
    return views
