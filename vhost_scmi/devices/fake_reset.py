# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`fake-reset`: an in-memory reset domain that counts and logs its resets."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from vhost_scmi.devices.kind import DeviceKind, Property, domain_name
from vhost_scmi.devices.reset import ResetDomain
from vhost_scmi.devices.resource import Resource

log = logging.getLogger(__name__)


class FakeReset(ResetDomain):
    """Remembers how often it was reset and whether it is held in reset."""

    blocking = False
    latency_us = 1

    def __init__(self, name: str) -> None:
        self.name = name
        self.resets = 0
        self.asserted = False

    def reset(self) -> None:
        self.resets += 1
        log.info("fake-reset %s: reset (%d so far)", self.name, self.resets)

    def set_asserted(self, asserted: bool) -> None:
        log.info("fake-reset %s: %s", self.name, "asserted" if asserted else "deasserted")
        self.asserted = asserted


def _create(props: Mapping[str, str]) -> list[Resource]:
    return [FakeReset(domain_name(props, "reset"))]


KIND = DeviceKind(
    id="fake-reset",
    summary="in-memory reset domain",
    description="A reset domain that logs every reset, assert and deassert.",
    properties=(Property("name", "domain name, 1 to 63 bytes (default: reset)"),),
    example="fake-reset,name=eth0-reset",
    create=_create,
)
