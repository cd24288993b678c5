# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The SCMI protocols the platform implements."""

from __future__ import annotations

from vhost_scmi.scmi.base import BaseProtocol
from vhost_scmi.scmi.clock import ClockProtocol
from vhost_scmi.scmi.performance import PerformanceProtocol
from vhost_scmi.scmi.power import PowerProtocol
from vhost_scmi.scmi.powercap import PowercapProtocol
from vhost_scmi.scmi.protocol import Protocol
from vhost_scmi.scmi.reset import ResetProtocol
from vhost_scmi.scmi.sensor import SensorProtocol
from vhost_scmi.scmi.system_power import SystemPowerProtocol
from vhost_scmi.scmi.voltage import VoltageProtocol

# A new protocol: one module with a Protocol subclass, and one entry here.
PROTOCOLS: tuple[type[Protocol], ...] = (
    BaseProtocol,
    SystemPowerProtocol,
    SensorProtocol,
    PerformanceProtocol,
    PowerProtocol,
    ClockProtocol,
    ResetProtocol,
    VoltageProtocol,
    PowercapProtocol,
)
