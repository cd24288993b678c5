# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`runtime-pm`: a power domain over a host device's runtime power management.

The domain is on while the host holds the device powered: `power/control` is `on`
(the device is kept active), or `power/runtime_status` is `unsupported` (runtime PM
is off, so the device never suspends). With `auto` the domain is off: the device may
suspend whenever it is idle, and `runtime_status` (`active`, `suspended`...) says
whether it has. An agent must read back the state it set (Linux's scmi_pm_domain
checks), so the state follows `power/control` rather than the device's activity.
With `control=state`, powering on writes `on` to `power/control` and powering off
writes `auto`. The use: a host device passed through to the guest.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from vhost_scmi.devices.kind import DeviceKind, Property
from vhost_scmi.devices.power_domain import DeviceError, PowerDomain, parse_power_control
from vhost_scmi.devices.resource import DeviceSpecError, Resource, check_resource_name
from vhost_scmi.devices.sysfs import Attribute, write_attribute

#: Every runtime_status of a device whose runtime PM works.
STATUSES = frozenset({"active", "resuming", "suspended", "suspending", "unsupported"})


class RuntimePmDomain(PowerDomain):
    """One host device's runtime PM."""

    def __init__(self, name: str, device: Path, controllable: bool) -> None:
        self.name = name
        self.power = device / "power"
        self.controllable = controllable
        # Read on every request: kept open (a read is one pread).
        self._status = Attribute(self.power / "runtime_status")
        try:
            self._control = Attribute(self.power / "control")
        except BaseException:
            self._status.close()
            raise

    def is_on(self) -> bool:
        status = self._status.text()
        if status not in STATUSES:
            raise DeviceError(f"{self._status.path}: runtime PM status {status!r}")
        control = self._control.text()
        if control not in ("on", "auto"):
            raise DeviceError(f"{self._control.path}: {control!r}")
        return control == "on" or status == "unsupported"

    def set_on(self, on: bool) -> None:
        write_attribute(self._control.path, "on" if on else "auto")

    def close(self) -> None:
        self._status.close()
        self._control.close()


def create_runtime_pm_domain(device_dir: str, controllable: bool,
                             name: str | None = None) -> RuntimePmDomain:
    """Return the power domain of host device `device_dir`.

    Raises DeviceSpecError when its power/ files are missing or unreadable.
    """
    device = Path(device_dir)
    if not device.is_dir():
        raise DeviceSpecError(f"device '{device_dir}' is not a directory")
    name = check_resource_name(device.name if name is None else name)
    try:
        domain = RuntimePmDomain(name, device, controllable)
    except DeviceSpecError as err:
        raise DeviceSpecError(f"device '{device_dir}' has no usable runtime PM: {err}") from err
    try:
        domain.is_on()
    except DeviceError as err:
        domain.close()
        raise DeviceSpecError(f"device '{device_dir}' has no usable runtime PM: {err}") from err
    return domain


def _create(props: Mapping[str, str]) -> list[Resource]:
    return [create_runtime_pm_domain(props["device"], parse_power_control(props.get("control")),
                                     props.get("name"))]


KIND = DeviceKind(
    id="runtime-pm",
    summary="power domain over a host device's runtime PM",
    description="A host device as an SCMI power domain: on while the host keeps it\n"
                "powered (power/control is 'on'), off while it may suspend ('auto').\n"
                "Read-only unless control=state: then on writes 'on' to power/control,\n"
                "off writes 'auto'.",
    properties=(
        Property("device", "the device's sysfs directory (e.g. /sys/bus/pci/devices/"
                 "0000:01:00.0)", required=True),
        Property("control", "what agents may set: none (default, read-only) or state"),
        Property("name", "domain name, at most 63 bytes (default: the directory's name)"),
    ),
    example="runtime-pm,device=/sys/bus/pci/devices/0000:01:00.0,control=state",
    create=_create,
)
