# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`runtime-pm`: a power domain over a host device's runtime power management.

The domain is on while the device's `power/runtime_status` is `active` or `resuming`
(or `unsupported`: runtime PM is off and the device stays powered), off while it is
`suspended` or `suspending`. With `control=state`, powering on writes `on` to
`power/control` (the device is kept active) and powering off writes `auto` (it may
suspend when idle). The use: a host device passed through to the guest.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from vhost_scmi.devices.kind import DeviceKind, Property
from vhost_scmi.devices.power_domain import DeviceError, PowerDomain, parse_power_control
from vhost_scmi.devices.resource import DeviceSpecError, Resource, check_resource_name
from vhost_scmi.devices.sysfs import read_attribute, write_attribute

ON_STATUSES = frozenset({"active", "resuming", "unsupported"})
OFF_STATUSES = frozenset({"suspended", "suspending"})


class RuntimePmDomain(PowerDomain):
    """One host device's runtime PM."""

    def __init__(self, name: str, device: Path, controllable: bool) -> None:
        self.name = name
        self.power = device / "power"
        self.controllable = controllable

    def is_on(self) -> bool:
        status = read_attribute(self.power / "runtime_status")
        if status in ON_STATUSES:
            return True
        if status in OFF_STATUSES:
            return False
        raise DeviceError(f"{self.power / 'runtime_status'}: runtime PM status {status!r}")

    def set_on(self, on: bool) -> None:
        write_attribute(self.power / "control", "on" if on else "auto")


def create_runtime_pm_domain(device_dir: str, controllable: bool,
                             name: str | None = None) -> RuntimePmDomain:
    """Return the power domain of host device `device_dir`.

    Raises DeviceSpecError when its power/ files are missing or unreadable.
    """
    device = Path(device_dir)
    if not device.is_dir():
        raise DeviceSpecError(f"device '{device_dir}' is not a directory")
    name = check_resource_name(device.name if name is None else name)
    domain = RuntimePmDomain(name, device, controllable)
    try:
        read_attribute(domain.power / "control")
        domain.is_on()
    except DeviceError as err:
        raise DeviceSpecError(f"device '{device_dir}' has no usable runtime PM: {err}") from err
    return domain


def _create(props: Mapping[str, str]) -> list[Resource]:
    return [create_runtime_pm_domain(props["device"], parse_power_control(props.get("control")),
                                     props.get("name"))]


KIND = DeviceKind(
    id="runtime-pm",
    summary="power domain over a host device's runtime PM",
    description="A host device as an SCMI power domain: on while its\n"
                "power/runtime_status is active. Read-only unless control=state: then\n"
                "on writes 'on' to power/control (kept active), off writes 'auto' (may\n"
                "suspend).",
    properties=(
        Property("device", "the device's sysfs directory (e.g. /sys/bus/pci/devices/"
                 "0000:01:00.0)", required=True),
        Property("control", "what agents may set: none (default, read-only) or state"),
        Property("name", "domain name, at most 63 bytes (default: the directory's name)"),
    ),
    example="runtime-pm,device=/sys/bus/pci/devices/0000:01:00.0,control=state",
    create=_create,
)
