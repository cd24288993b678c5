# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`fake-clock`: an in-memory clock with discrete rates or a rate range.

Linux has no user-space interface to the host's clocks, so a guest's clocks come from
this kind or from a plugin (README: "Writing a device kind"). Every change is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from vhost_scmi.devices.clock import ClockDomain, RateRange, check_rates
from vhost_scmi.devices.kind import DeviceKind, Property, domain_name, int_list, switch
from vhost_scmi.devices.resource import DeviceSpecError, Resource

log = logging.getLogger(__name__)

DEFAULT_NAME = "clock"


class FakeClock(ClockDomain):
    """A clock that remembers its rate and gate; starts gated at its lowest rate."""

    blocking = False

    def __init__(self, name: str, rates: tuple[int, ...] = (),
                 rate_range: RateRange | None = None, shared_rate: bool = False) -> None:
        self.name = name
        self.rates = rates
        self.rate_range = rate_range
        self.shared_rate = shared_rate
        self.rate = self.min_rate
        self.enabled = False

    def get_rate(self) -> int:
        return self.rate

    def set_rate(self, rate: int) -> None:
        log.info("fake-clock %s: rate %d -> %d Hz", self.name, self.rate, rate)
        self.rate = rate

    def is_enabled(self) -> bool:
        return self.enabled

    def set_enabled(self, enabled: bool) -> None:
        log.info("fake-clock %s: %s", self.name, "enabled" if enabled else "gated")
        self.enabled = enabled


def _create(props: Mapping[str, str]) -> list[Resource]:
    name = domain_name(props, DEFAULT_NAME)
    rates, span = int_list(props, "rates"), int_list(props, "range")
    if (rates is None) == (span is None):
        raise DeviceSpecError("give exactly one of rates=HZ:HZ:... and range=MIN:MAX:STEP")
    if span is not None:
        if len(span) != 3:
            raise DeviceSpecError("range= is MIN:MAX:STEP")
        return [FakeClock(name, rate_range=RateRange(*span),
                          shared_rate=switch(props, "shared"))]
    assert rates is not None
    return [FakeClock(name, rates=check_rates(rates), shared_rate=switch(props, "shared"))]


KIND = DeviceKind(
    id="fake-clock",
    summary="in-memory clock",
    description="A clock with discrete rates or a rate range, kept in memory; every\n"
                "change is logged. Linux has no user-space interface to host clocks:\n"
                "clocks come from this kind and from plugins.",
    properties=(
        Property("rates", "discrete rates in Hz, HZ:HZ:... (1 to 16)"),
        Property("range", "a rate range in Hz, MIN:MAX:STEP (instead of rates)"),
        Property("shared", "on: every agent may set the rate, the last request wins "
                 "(default off: the first agent to set it owns it)"),
        Property("name", "clock name, 1 to 63 bytes (default: clock)"),
    ),
    example="fake-clock,name=uart,rates=24000000:48000000",
    create=_create,
)
