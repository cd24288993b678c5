# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`powercap`: a powercap domain over a host powercap zone (/sys/class/powercap/...,
e.g. intel-rapl:0).

The cap is the zone's constraint 0 (`constraint_0_power_limit_uw`, off when the
zone's `enabled` is 0), the averaging interval its `constraint_0_time_window_us`, the
measured power the change of `energy_uj` over the time since the previous measurement
(wrapping at `max_energy_range_uj`). Changing a host power limit is a host write:
without `control=on` the cap and interval are fixed at their start-up values and sets
are DENIED; with it they range over the constraint's min/max power (1 µW to 2^32-1 µW
when the zone gives none) and 1 µs to 2^32-1 µs, and every write is logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

from vhost_scmi.devices.kind import DeviceKind, Property, domain_name, switch
from vhost_scmi.devices.powercap import MAX_U32, Limits, PowercapDomain
from vhost_scmi.devices.resource import DeviceError, DeviceSpecError, Resource
from vhost_scmi.devices.sysfs import read_int, read_text, write_attribute

log = logging.getLogger(__name__)

CAP = "constraint_0_power_limit_uw"
WINDOW = "constraint_0_time_window_us"


class PowercapZone(PowercapDomain):
    """One host powercap zone."""

    def __init__(self, name: str, zone: Path, control: bool) -> None:
        self.name = name
        self.zone = zone
        self.read_only = not control
        self.monitoring = (zone / "energy_uj").is_file()
        cap, window = max(read_int(zone / CAP), 1), max(read_int(zone / WINDOW), 1)
        if control:
            self.cap_limits = Limits(max(self._optional("constraint_0_min_power_uw"), 1),
                                     min(self._optional("constraint_0_max_power_uw")
                                         or MAX_U32, MAX_U32))
            self.pai_limits = Limits(1, MAX_U32)
        else:
            self.cap_limits = Limits(min(cap, MAX_U32), min(cap, MAX_U32))
            self.pai_limits = Limits(min(window, MAX_U32), min(window, MAX_U32))
        self._energy = self._read_energy() if self.monitoring else 0
        self._when = time.monotonic()

    def _optional(self, attribute: str) -> int:
        try:
            return read_int(self.zone / attribute)
        except DeviceError:
            return 0

    def _read_energy(self) -> int:
        return read_int(self.zone / "energy_uj")

    def get_cap(self) -> int:
        if (self.zone / "enabled").is_file() and read_int(self.zone / "enabled") == 0:
            return 0
        return min(read_int(self.zone / CAP), MAX_U32)

    def set_cap(self, cap: int) -> None:
        if cap:
            log.info("host: %s power limit -> %d uW", self.zone, cap)
            write_attribute(self.zone / CAP, str(cap))
        log.info("host: %s capping %s", self.zone, "on" if cap else "off")
        write_attribute(self.zone / "enabled", "1" if cap else "0")

    def get_pai(self) -> int:
        return min(read_int(self.zone / WINDOW), MAX_U32)

    def set_pai(self, pai: int) -> None:
        log.info("host: %s time window -> %d us", self.zone, pai)
        write_attribute(self.zone / WINDOW, str(pai))

    def measure(self) -> int:
        energy, now = self._read_energy(), time.monotonic()
        delta = energy - self._energy
        if delta < 0:  # the counter wrapped
            delta += self._optional("max_energy_range_uj") + 1
        seconds = now - self._when
        self._energy, self._when = energy, now
        return round(delta / seconds) if seconds > 0 else 0


def _create(props: Mapping[str, str]) -> list[Resource]:
    zone = Path(props["zone"])
    if not zone.is_dir():
        raise DeviceSpecError(f"powercap zone '{zone}' is not a directory")
    for attribute in (CAP, WINDOW):
        if not (zone / attribute).is_file():
            raise DeviceSpecError(f"powercap zone '{zone}' has no {attribute}")
    name = domain_name(props, read_text(zone / "name") or zone.name)
    try:
        return [PowercapZone(name, zone, switch(props, "control"))]
    except DeviceError as err:
        raise DeviceSpecError(f"unusable powercap zone: {err}") from err


KIND = DeviceKind(
    id="powercap",
    summary="host powercap zone",
    description="A powercap domain over a host powercap zone: power limit and time\n"
                "window of its constraint 0, power measured from energy_uj.\n"
                "Read-only (sets DENIED) unless control=on.",
    properties=(
        Property("zone", "the zone (e.g. /sys/class/powercap/intel-rapl:0)", required=True),
        Property("control", "on: let agents change the limit and window (default off)"),
        Property("name", "domain name, 1 to 63 bytes (default: the zone's name)"),
    ),
    example="powercap,zone=/sys/class/powercap/intel-rapl:0",
    create=_create,
)
