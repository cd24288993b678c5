# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`fake-powercap`: an in-memory power-capping domain; every change is logged.

The cap ranges 1 W to 100 W (1 µW steps), the averaging interval 1 ms to 1 s; the
measured power is 60 % of the cap (10 W when capping is off) plus a changing
few milliwatts, so a guest sees live values that follow its cap.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from vhost_scmi.devices.kind import DeviceKind, Property, domain_name
from vhost_scmi.devices.powercap import Limits, PowercapDomain
from vhost_scmi.devices.resource import Resource

log = logging.getLogger(__name__)

CAP_LIMITS = Limits(1_000_000, 100_000_000)
PAI_LIMITS = Limits(1_000, 1_000_000)
UNCAPPED_POWER = 10_000_000


class FakePowercap(PowercapDomain):
    """Starts capped at 50 W with a 100 ms averaging interval."""

    blocking = False
    cap_limits = CAP_LIMITS
    pai_limits = PAI_LIMITS
    sustainable_power = 50_000_000

    def __init__(self, name: str) -> None:
        self.name = name
        self.cap = 50_000_000
        self.pai = 100_000
        self._samples = 0

    def get_cap(self) -> int:
        return self.cap

    def set_cap(self, cap: int) -> None:
        log.info("fake-powercap %s: cap %d -> %d uW", self.name, self.cap, cap)
        self.cap = cap

    def get_pai(self) -> int:
        return self.pai

    def set_pai(self, pai: int) -> None:
        log.info("fake-powercap %s: averaging interval %d -> %d us", self.name, self.pai, pai)
        self.pai = pai

    def measure(self) -> int:
        self._samples += 1
        base = self.cap * 6 // 10 if self.cap else UNCAPPED_POWER
        return base + 1000 * (self._samples % 8)


def _create(props: Mapping[str, str]) -> list[Resource]:
    return [FakePowercap(domain_name(props, "powercap"))]


KIND = DeviceKind(
    id="fake-powercap",
    summary="in-memory powercap domain",
    description="A power-capping domain (cap 1-100 W, averaging interval 1 ms-1 s)\n"
                "whose measured power follows its cap; every change is logged.",
    properties=(Property("name", "domain name, 1 to 63 bytes (default: powercap)"),),
    example="fake-powercap,name=soc",
    create=_create,
)
