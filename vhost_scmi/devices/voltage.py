# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The voltage domain model: a supply whose level (microvolts) and on/off state the
platform reads and may set."""

from __future__ import annotations

import abc
from dataclasses import dataclass

from vhost_scmi.devices.resource import DeviceSpecError, Resource

#: Levels travel as signed 32-bit microvolts; a domain lists at most this many.
MIN_LEVEL = -(1 << 31)
MAX_LEVEL = (1 << 31) - 1
MAX_LEVELS = 256


@dataclass(frozen=True)
class LevelRange:
    """Levels min, min + step, ..., max (microvolts)."""

    min: int
    max: int
    step: int

    def __post_init__(self) -> None:
        if not MIN_LEVEL <= self.min < self.max <= MAX_LEVEL or self.step <= 0:
            raise DeviceSpecError(f"level range {self.min}:{self.max}:{self.step}: needs "
                                  f"MIN < MAX (signed 32-bit microvolts) and STEP > 0")
        if (self.max - self.min) % self.step:
            raise DeviceSpecError(f"level range {self.min}:{self.max}:{self.step}: MAX - MIN "
                                  f"is not a multiple of STEP")

    def __contains__(self, level: object) -> bool:
        return (isinstance(level, int) and self.min <= level <= self.max
                and (level - self.min) % self.step == 0)


def check_levels(levels: tuple[int, ...]) -> tuple[int, ...]:
    """Return `levels` sorted; DeviceSpecError unless 1..MAX_LEVELS distinct s32 levels."""
    if not 0 < len(levels) <= MAX_LEVELS:
        raise DeviceSpecError(f"a voltage domain has 1 to {MAX_LEVELS} levels, not "
                              f"{len(levels)}")
    if len(set(levels)) != len(levels):
        raise DeviceSpecError("a level is listed twice")
    if any(not MIN_LEVEL <= level <= MAX_LEVEL for level in levels):
        raise DeviceSpecError("levels are signed 32-bit numbers of microvolts")
    return tuple(sorted(levels))


class VoltageDomain(Resource):
    """A host supply."""

    #: Discrete levels (ascending), or empty when `level_range` describes them.
    levels: tuple[int, ...] = ()
    level_range: LevelRange | None = None

    def supports(self, level: int) -> bool:
        """Whether `level` is one of the described levels."""
        if self.level_range is not None:
            return level in self.level_range
        return level in self.levels

    @abc.abstractmethod
    def get_level(self) -> int:
        """Return the level in microvolts; DeviceError when it cannot be read."""

    @abc.abstractmethod
    def set_level(self, level: int) -> None:
        """Set the level (a described one); DeviceError on failure."""

    @abc.abstractmethod
    def is_on(self) -> bool:
        """Whether the supply is on."""

    @abc.abstractmethod
    def set_on(self, on: bool) -> None:
        """Switch the supply on or off; DeviceError on failure."""
