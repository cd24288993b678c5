# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`fake-power`: an in-memory power domain, logging every change."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from vhost_scmi.devices.kind import DeviceKind, Property
from vhost_scmi.devices.power_domain import PowerDomain, parse_power_control
from vhost_scmi.devices.resource import DeviceSpecError, Resource, check_resource_name

log = logging.getLogger(__name__)

DEFAULT_NAME = "fake-power"


class FakePowerDomain(PowerDomain):
    """A power domain that is whatever it was last set to."""

    blocking = False  # in memory: called inline

    def __init__(self, name: str, on: bool = True, controllable: bool = False) -> None:
        self.name = name
        self._on = on
        self.controllable = controllable

    def is_on(self) -> bool:
        return self._on

    def set_on(self, on: bool) -> None:
        log.info("%s: power %s -> %s", self.name, "on" if self._on else "off",
                 "on" if on else "off")
        self._on = on


def _create(props: Mapping[str, str]) -> list[Resource]:
    name = check_resource_name(props.get("name", DEFAULT_NAME))
    state = props.get("state", "on")
    if state not in ("on", "off"):
        raise DeviceSpecError(f"state={state}: expected on|off")
    return [FakePowerDomain(name, state == "on", parse_power_control(props.get("control")))]


KIND = DeviceKind(
    id="fake-power",
    summary="fake power domain",
    description="An in-memory power domain (SCMI Power domain protocol). Logs every\n"
                "change. Needs no host device.",
    properties=(
        Property("state", "initial state: on (default) or off"),
        Property("control", "what agents may set: none (default, read-only) or state"),
        Property("name", "domain name, at most 63 bytes (default: fake-power)"),
    ),
    example="fake-power,name=gpu,state=off,control=state",
    create=_create,
)
