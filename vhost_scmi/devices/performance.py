# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The performance-domain model: a host resource whose speed can be read and set.

A `PerformanceDomain` has a fixed, ascending list of performance levels, in kHz (a
cpufreq policy's frequencies), a current level, and limits (the lowest and highest
level the host may pick). What an agent may change is `control`: nothing (the
default: read-only), the level, or the limits. Getters and setters may block (host
files) and raise `DeviceError` with the host's errno.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from enum import Enum

from vhost_scmi.devices.resource import DeviceError as DeviceError
from vhost_scmi.devices.resource import DeviceSpecError, Resource


class PerfControl(Enum):
    """What agents may change on a performance domain (`control=` of its device spec)."""

    NONE = "none"
    LEVEL = "level"
    LIMITS = "limits"


def parse_perf_control(text: str | None) -> PerfControl:
    """Return the `control=` value; DeviceSpecError naming the allowed ones."""
    try:
        return PerfControl(text or "none")
    except ValueError:
        allowed = "|".join(c.value for c in PerfControl)
        raise DeviceSpecError(f"control={text}: expected {allowed}") from None


@dataclass(frozen=True, order=True)
class Limits:
    """The range of levels the host may choose from, both ends included (kHz)."""

    low: int
    high: int


class PerformanceDomain(Resource):
    """A host performance domain (see the module docstring)."""

    #: Every level the domain offers, ascending, unique, in kHz (each > 0).
    levels: tuple[int, ...]
    #: What agents may change.
    control: PerfControl = PerfControl.NONE
    #: Worst-case time to change level, in microseconds (0: unknown).
    transition_latency_us: int = 0

    @abc.abstractmethod
    def level(self) -> int:
        """Return the current level in kHz (may lie between two listed levels)."""

    @abc.abstractmethod
    def limits(self) -> Limits:
        """Return the current limits."""

    def set_level(self, khz: int) -> None:
        """Ask the host for level `khz` (one of `levels`); DeviceError if it refuses."""
        raise DeviceError(f"{self.name}: the level cannot be set")

    def set_limits(self, limits: Limits) -> None:
        """Ask the host to keep within `limits` (ends are listed levels); DeviceError
        if it refuses."""
        raise DeviceError(f"{self.name}: the limits cannot be set")


def check_levels(levels: list[int], where: str) -> tuple[int, ...]:
    """Return `levels` sorted and unique; DeviceSpecError if empty, not positive or
    beyond 32 bits."""
    unique = sorted(set(levels))
    if not unique:
        raise DeviceSpecError(f"{where}: no performance levels")
    if unique[0] <= 0 or unique[-1] > 0xFFFFFFFF:
        raise DeviceSpecError(f"{where}: levels must be 1..4294967295 kHz")
    return tuple(unique)
