# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`example-file-clock`: a clock whose rate (in Hz) is the text of a file.

It stands for a board's frequency knob that the host exposes as a file (a PLL
driver's debugfs entry, a GPIO-strapped divider...): the guest reads the rate from the
file, and when it sets a rate the new value is written back. The clock offers the
rates listed with `rates=`; it cannot be gated (it always runs).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from vhost_scmi.devices.clock import ClockDomain, check_rates
from vhost_scmi.devices.kind import DeviceKind, Property, domain_name, int_list
from vhost_scmi.devices.resource import DeviceError, DeviceSpecError, Resource

log = logging.getLogger(__name__)


class FileClock(ClockDomain):
    """A clock whose rate is kept in a file."""

    # Reading a file may block: the daemon calls this resource off its event loop.
    blocking = True

    def __init__(self, name: str, path: Path, rates: tuple[int, ...]) -> None:
        self.name = name
        self.path = path
        self.rates = rates

    def get_rate(self) -> int:
        try:
            return int(self.path.read_text())
        except (OSError, ValueError) as err:
            raise DeviceError(f"{self.path}: {err}", getattr(err, "errno", None)) from err

    def set_rate(self, rate: int) -> None:
        log.info("example-file-clock %s: rate -> %d Hz (%s)", self.name, rate, self.path)
        try:
            self.path.write_text(f"{rate}\n")
        except OSError as err:
            raise DeviceError(f"{self.path}: {err.strerror}", err.errno) from err

    def is_enabled(self) -> bool:
        return True

    def set_enabled(self, enabled: bool) -> None:
        if not enabled:
            raise DeviceError(f"{self.name} cannot be gated", 95)  # EOPNOTSUPP


def _create(props: Mapping[str, str]) -> list[Resource]:
    path = Path(props["path"])
    rates = int_list(props, "rates")
    assert rates is not None  # a required property
    clock = FileClock(domain_name(props, path.name), path, check_rates(rates))
    try:
        clock.get_rate()
    except DeviceError as err:
        raise DeviceSpecError(f"unusable rate file: {err}") from err
    return [clock]


KIND = DeviceKind(
    id="example-file-clock",
    summary="clock whose rate is kept in a file",
    description="A clock whose rate in Hz is the text of a file; rates set by the\n"
                "guest are written back to it.",
    properties=(
        Property("path", "the file holding the rate", required=True),
        Property("rates", "the rates offered, HZ:HZ:... (1 to 16)", required=True),
        Property("name", "clock name, 1 to 63 bytes (default: the file's name)"),
    ),
    example="example-file-clock,path=/run/board/pll0,rates=100000000:200000000",
    create=_create,
)
