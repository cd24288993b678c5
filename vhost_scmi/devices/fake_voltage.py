# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`fake-voltage`: an in-memory supply with discrete levels; every change is logged."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from vhost_scmi.devices.kind import DeviceKind, Property, domain_name, int_list
from vhost_scmi.devices.resource import Resource
from vhost_scmi.devices.voltage import VoltageDomain, check_levels

log = logging.getLogger(__name__)


class FakeVoltage(VoltageDomain):
    """A supply that starts on, at its lowest level."""

    blocking = False

    def __init__(self, name: str, levels: tuple[int, ...]) -> None:
        self.name = name
        self.levels = levels
        self.level = levels[0]
        self.on = True

    def get_level(self) -> int:
        return self.level

    def set_level(self, level: int) -> None:
        log.info("fake-voltage %s: %d -> %d uV", self.name, self.level, level)
        self.level = level

    def is_on(self) -> bool:
        return self.on

    def set_on(self, on: bool) -> None:
        log.info("fake-voltage %s: %s", self.name, "on" if on else "off")
        self.on = on


def _create(props: Mapping[str, str]) -> list[Resource]:
    levels = int_list(props, "levels")
    assert levels is not None  # required
    return [FakeVoltage(domain_name(props, "vdd"), check_levels(levels))]


KIND = DeviceKind(
    id="fake-voltage",
    summary="in-memory voltage domain",
    description="A supply with discrete levels (microvolts), on at its lowest level;\n"
                "every change is logged.",
    properties=(
        Property("levels", "levels in microvolts, UV:UV:... (1 to 256)", required=True),
        Property("name", "domain name, 1 to 63 bytes (default: vdd)"),
    ),
    example="fake-voltage,name=vdd-io,levels=1800000:3300000",
    create=_create,
)
