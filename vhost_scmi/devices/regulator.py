# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`regulator`: a voltage domain mirroring a host regulator (/sys/class/regulator/...).

The level is read from `microvolts`, on/off from `state` ("enabled"; a regulator
without `state` counts as on). Levels: the segment `min_microvolts`..`max_microvolts`
(1 µV steps) when the regulator has both, else its level at start-up. Read-only: the
sysfs class has no writable voltage, so every set is DENIED.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from vhost_scmi.devices.kind import DeviceKind, Property, domain_name
from vhost_scmi.devices.resource import DeviceError, DeviceSpecError, Resource
from vhost_scmi.devices.sysfs import read_int, read_text
from vhost_scmi.devices.voltage import LevelRange, VoltageDomain


class HostRegulator(VoltageDomain):
    """A host regulator, read through sysfs."""

    read_only = True

    def __init__(self, name: str, directory: Path, levels: tuple[int, ...],
                 level_range: LevelRange | None) -> None:
        self.name = name
        self.directory = directory
        self.levels = levels
        self.level_range = level_range

    def get_level(self) -> int:
        return read_int(self.directory / "microvolts")

    def is_on(self) -> bool:
        path = self.directory / "state"
        try:
            with open(path, "rb") as state:
                return state.read(64).strip() != b"disabled"
        except FileNotFoundError:
            return True
        except OSError as err:
            raise DeviceError(f"cannot read {path}: {err.strerror}", err.errno) from err

    def set_level(self, level: int) -> None:
        raise DeviceError(f"{self.name}: host regulators are read-only")

    def set_on(self, on: bool) -> None:
        raise DeviceError(f"{self.name}: host regulators are read-only")


def _create(props: Mapping[str, str]) -> list[Resource]:
    directory = Path(props["path"])
    if not directory.is_dir():
        raise DeviceSpecError(f"regulator '{directory}' is not a directory")
    if not (directory / "microvolts").is_file():
        raise DeviceSpecError(f"regulator '{directory}' has no microvolts attribute (not a "
                              f"voltage regulator)")
    try:
        level = read_int(directory / "microvolts")
    except DeviceError as err:
        raise DeviceSpecError(f"unusable regulator: {err}") from err
    try:
        low = read_int(directory / "min_microvolts")
        high = read_int(directory / "max_microvolts")
    except DeviceError:
        low = high = level
    segment = LevelRange(low, high, 1) if low < high and low <= level <= high else None
    name = domain_name(props, read_text(directory / "name") or directory.name)
    return [HostRegulator(name, directory, () if segment else (level,), segment)]


KIND = DeviceKind(
    id="regulator",
    summary="host voltage regulator (read-only)",
    description="A voltage domain mirroring a host regulator: level from microvolts,\n"
                "on/off from state. Read-only: level and on/off sets are DENIED.",
    properties=(
        Property("path", "the regulator (e.g. /sys/class/regulator/regulator.1)",
                 required=True),
        Property("name", "domain name, 1 to 63 bytes (default: the regulator's name)"),
    ),
    example="regulator,path=/sys/class/regulator/regulator.1",
    create=_create,
)
