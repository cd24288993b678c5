# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The clock model: a host clock the platform can gate and whose rate it can set.

A clock offers either a list of discrete rates (`rates`, ascending, at most
MAX_RATES) or a linear range (`rate_range`: min, max, step, in Hz). Linux has no
user-space interface to the host's clocks: clocks come from the `fake-clock` kind and
from plugins (board-specific packages, see README "Writing a device kind").
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from vhost_scmi.devices.resource import DeviceSpecError, Resource

#: Most discrete rates a clock may list (Linux 6.12 keeps at most 16 per clock).
MAX_RATES = 16
#: Rates travel as unsigned 64-bit numbers of Hz.
MAX_RATE = (1 << 64) - 1


@dataclass(frozen=True)
class RateRange:
    """Rates min, min + step, ..., max (Hz)."""

    min: int
    max: int
    step: int

    def __post_init__(self) -> None:
        if not 0 < self.min < self.max <= MAX_RATE or self.step <= 0:
            raise DeviceSpecError(f"rate range {self.min}:{self.max}:{self.step}: needs "
                                  f"0 < MIN < MAX < 2**64 and STEP > 0")
        if (self.max - self.min) % self.step:
            raise DeviceSpecError(f"rate range {self.min}:{self.max}:{self.step}: MAX - MIN "
                                  f"is not a multiple of STEP")


def check_rates(rates: tuple[int, ...]) -> tuple[int, ...]:
    """Return `rates` sorted; DeviceSpecError unless 1..MAX_RATES distinct rates in range."""
    if not 0 < len(rates) <= MAX_RATES:
        raise DeviceSpecError(f"a clock has 1 to {MAX_RATES} rates, not {len(rates)}")
    if len(set(rates)) != len(rates):
        raise DeviceSpecError("a rate is listed twice")
    if any(not 0 < rate <= MAX_RATE for rate in rates):
        raise DeviceSpecError("rates are 1 Hz to 2**64 - 1 Hz")
    return tuple(sorted(rates))


class ClockDomain(Resource):
    """A host clock: its rates, its rate and whether it runs."""

    #: Discrete rates (ascending), or empty when `rate_range` describes them.
    rates: tuple[int, ...] = ()
    rate_range: RateRange | None = None
    #: Whether several agents may set the rate (the last request wins). When False
    #: (default) the first agent to set it owns the rate until it releases it, and
    #: other agents' sets are DENIED.
    shared_rate: bool = False

    @property
    def min_rate(self) -> int:
        return self.rate_range.min if self.rate_range else self.rates[0]

    @property
    def max_rate(self) -> int:
        return self.rate_range.max if self.rate_range else self.rates[-1]

    @abc.abstractmethod
    def get_rate(self) -> int:
        """Return the clock's rate in Hz; DeviceError when it cannot be read."""

    @abc.abstractmethod
    def set_rate(self, rate: int) -> None:
        """Set the rate to `rate` Hz (one of the described rates); DeviceError on failure."""

    @abc.abstractmethod
    def is_enabled(self) -> bool:
        """Whether the clock runs."""

    @abc.abstractmethod
    def set_enabled(self, enabled: bool) -> None:
        """Start (True) or gate (False) the clock; DeviceError on failure."""
