# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The SCMI protocols the platform implements.

Each entry names the protocol's module and class, and, for a protocol over one type of
resource, the module of that type's model. No resource of a type can exist before its
model's module is imported, so an agent whose devices never imported it cannot see the
protocol: its module is not imported either, and the daemon starts with only the
protocols its devices need.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vhost_scmi.scmi.protocol import Protocol

# A new protocol: one module with a Protocol subclass, and one entry here:
# (protocol module, class, module of the resource model it serves or None).
PROTOCOLS: tuple[tuple[str, str, str | None], ...] = (
    ("vhost_scmi.scmi.base", "BaseProtocol", None),
    ("vhost_scmi.scmi.system_power", "SystemPowerProtocol", None),
    ("vhost_scmi.scmi.sensor", "SensorProtocol", "vhost_scmi.devices.sensor"),
    ("vhost_scmi.scmi.performance", "PerformanceProtocol", "vhost_scmi.devices.performance"),
    ("vhost_scmi.scmi.power", "PowerProtocol", "vhost_scmi.devices.power_domain"),
    ("vhost_scmi.scmi.clock", "ClockProtocol", "vhost_scmi.devices.clock"),
    ("vhost_scmi.scmi.reset", "ResetProtocol", "vhost_scmi.devices.reset"),
    ("vhost_scmi.scmi.voltage", "VoltageProtocol", "vhost_scmi.devices.voltage"),
    ("vhost_scmi.scmi.powercap", "PowercapProtocol", "vhost_scmi.devices.powercap"),
)


def protocol_class(module: str, name: str) -> type[Protocol]:
    """Import `module` and return its protocol class `name`."""
    return getattr(importlib.import_module(module), name)


def all_protocols() -> list[type[Protocol]]:
    """Every protocol class, in registry order (imports them all)."""
    return [protocol_class(module, name) for module, name, _model in PROTOCOLS]


def usable_protocols() -> Iterator[type[Protocol]]:
    """The protocol classes that may have something to serve: those without a resource
    model, and those whose model is imported (so that resources of it may exist)."""
    for module, name, model in PROTOCOLS:
        if model is None or model in sys.modules:
            yield protocol_class(module, name)
