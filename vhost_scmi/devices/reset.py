# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The reset domain model: something the platform can reset, or hold in reset."""

from __future__ import annotations

import abc

from vhost_scmi.devices.resource import Resource


class ResetDomain(Resource):
    """A host reset line or device reset."""

    #: Worst-case microseconds a reset takes, None when unknown.
    latency_us: int | None = None
    #: Whether the domain can be held in reset (assert, then deassert).
    explicit: bool = True

    @abc.abstractmethod
    def reset(self) -> None:
        """Reset the domain once and let it run again; DeviceError on failure."""

    def set_asserted(self, asserted: bool) -> None:
        """Hold the domain in reset (True) or release it (False); DeviceError on failure.

        Only called when `explicit` is True.
        """
        raise NotImplementedError
