# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The powercap domain model: a power limit (microwatts) averaged over a power
averaging interval (microseconds), and the power measured."""

from __future__ import annotations

import abc
from dataclasses import dataclass

from vhost_scmi.devices.resource import DeviceSpecError, Resource

MAX_U32 = (1 << 32) - 1


@dataclass(frozen=True)
class Limits:
    """Values min, min + step, ..., max; min == max means fixed (not configurable)."""

    min: int
    max: int
    step: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.min <= self.max <= MAX_U32 or self.step <= 0:
            raise DeviceSpecError(f"limits {self.min}:{self.max}:{self.step}: needs "
                                  f"0 < MIN <= MAX < 2**32 and STEP > 0")

    @property
    def configurable(self) -> bool:
        return self.min != self.max

    def __contains__(self, value: object) -> bool:
        return (isinstance(value, int) and self.min <= value <= self.max
                and (value - self.min) % self.step == 0)


class PowercapDomain(Resource):
    """A host power-capping zone."""

    #: Power cap limits in microwatts, and power averaging interval limits in microseconds.
    cap_limits: Limits
    pai_limits: Limits
    #: Whether `measure()` works (average power consumption).
    monitoring: bool = True
    #: Sustainable power (microwatts) and accuracy (0.001 %), 0 when unknown.
    sustainable_power: int = 0
    accuracy: int = 0

    @abc.abstractmethod
    def get_cap(self) -> int:
        """Return the power cap (microwatts), 0 when capping is disabled."""

    @abc.abstractmethod
    def set_cap(self, cap: int) -> None:
        """Set the power cap (within cap_limits) and enable it; 0 disables capping."""

    @abc.abstractmethod
    def get_pai(self) -> int:
        """Return the power averaging interval (microseconds)."""

    @abc.abstractmethod
    def set_pai(self, pai: int) -> None:
        """Set the power averaging interval (within pai_limits)."""

    @abc.abstractmethod
    def measure(self) -> int:
        """Return the average power (microwatts) over the last interval; DeviceError."""
