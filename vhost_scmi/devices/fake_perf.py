# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`fake-perf`: an in-memory performance domain with the levels given, logging every change."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from vhost_scmi.devices.kind import DeviceKind, Property
from vhost_scmi.devices.performance import (
    Limits,
    PerfControl,
    PerformanceDomain,
    check_levels,
    parse_perf_control,
)
from vhost_scmi.devices.resource import DeviceSpecError, Resource, check_resource_name

log = logging.getLogger(__name__)

DEFAULT_NAME = "fake-perf"


class FakePerformanceDomain(PerformanceDomain):
    """Starts at its lowest level with the whole range as limits."""

    blocking = False  # in memory: called inline

    def __init__(self, name: str, levels: tuple[int, ...],
                 control: PerfControl = PerfControl.NONE) -> None:
        self.name = name
        self.levels = levels
        self.control = control
        self._level = levels[0]
        self._limits = Limits(levels[0], levels[-1])

    def level(self) -> int:
        return self._level

    def limits(self) -> Limits:
        return self._limits

    def set_level(self, khz: int) -> None:
        khz = min(max(khz, self._limits.low), self._limits.high)
        log.info("%s: level %d kHz -> %d kHz", self.name, self._level, khz)
        self._level = khz

    def set_limits(self, limits: Limits) -> None:
        log.info("%s: limits %d..%d kHz -> %d..%d kHz", self.name, self._limits.low,
                 self._limits.high, limits.low, limits.high)
        self._limits = limits
        self._level = min(max(self._level, limits.low), limits.high)


def parse_levels(text: str) -> tuple[int, ...]:
    """`KHZ:KHZ:...` -> the sorted levels; DeviceSpecError if malformed."""
    try:
        values = [int(part) for part in text.split(":")]
    except ValueError:
        raise DeviceSpecError(f"levels={text}: expected kHz values separated by ':'") from None
    return check_levels(values, f"levels={text}")


def _create(props: Mapping[str, str]) -> list[Resource]:
    name = check_resource_name(props.get("name", DEFAULT_NAME))
    return [FakePerformanceDomain(name, parse_levels(props["levels"]),
                                  parse_perf_control(props.get("control")))]


KIND = DeviceKind(
    id="fake-perf",
    summary="fake performance domain",
    description="An in-memory performance domain (SCMI Performance protocol) with the\n"
                "levels given, in kHz; starts at the lowest. Logs every change. Needs no\n"
                "host device.",
    properties=(
        Property("levels", "the levels in kHz, separated by ':' (e.g. 600000:1200000)",
                 required=True),
        Property("control", "what agents may set: none (default, read-only), level or "
                 "limits"),
        Property("name", "domain name, at most 63 bytes (default: fake-perf)"),
    ),
    example="fake-perf,levels=600000:1200000:1800000,control=level",
    create=_create,
)
