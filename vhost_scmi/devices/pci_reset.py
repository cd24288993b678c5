# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`pci-reset`: a reset domain that resets a host PCI function (a passed-through
device, typically) by writing its sysfs `reset` attribute.

Resetting host hardware is a host write: without `control=on` the domain is read-only
and every RESET is DENIED. The function cannot be held in reset (explicit assert is
NOT_SUPPORTED); each reset is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from vhost_scmi.devices.kind import DeviceKind, Property, domain_name, switch
from vhost_scmi.devices.reset import ResetDomain
from vhost_scmi.devices.resource import DeviceSpecError, Resource
from vhost_scmi.devices.sysfs import write_attribute

log = logging.getLogger(__name__)


class PciReset(ResetDomain):
    """The `reset` attribute of one PCI function."""

    explicit = False

    def __init__(self, name: str, device: Path, control: bool) -> None:
        self.name = name
        self.device = device
        self.read_only = not control

    def reset(self) -> None:
        log.info("host: resetting PCI function %s (%s)", self.device.name, self.name)
        write_attribute(self.device / "reset", "1")


def _create(props: Mapping[str, str]) -> list[Resource]:
    device = Path(props["device"])
    if not device.is_dir():
        raise DeviceSpecError(f"PCI device '{device}' is not a directory")
    if not (device / "reset").is_file():
        raise DeviceSpecError(f"PCI device '{device}' has no reset attribute (the function "
                              f"supports no reset method)")
    return [PciReset(domain_name(props, device.resolve().name), device,
                     switch(props, "control"))]


KIND = DeviceKind(
    id="pci-reset",
    summary="reset of a host PCI function",
    description="A reset domain that resets a host PCI function through its sysfs\n"
                "reset attribute. Read-only (resets DENIED) unless control=on.",
    properties=(
        Property("device", "the PCI function (e.g. /sys/bus/pci/devices/0000:01:00.0)",
                 required=True),
        Property("control", "on: let agents reset the function (default off)"),
        Property("name", "domain name, 1 to 63 bytes (default: the function's address)"),
    ),
    example="pci-reset,device=/sys/bus/pci/devices/0000:01:00.0,control=on",
    create=_create,
)
