# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Registry of device kinds, by the id used in `-d ID,...`.

A kind's module is imported when it is first looked up: the daemon's start-up pays only
for the kinds its -d options name (`--help-devices` imports them all).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vhost_scmi.devices.kind import DeviceKind

# A new device kind: one module exporting KIND, and one entry here (id -> module).
KIND_MODULES: dict[str, str] = {
    "fake": "vhost_scmi.devices.fake",
    "iio": "vhost_scmi.devices.iio",
    "hwmon": "vhost_scmi.devices.hwmon",
    "cpufreq": "vhost_scmi.devices.cpufreq",
    "runtime-pm": "vhost_scmi.devices.runtime_pm",
    "fake-perf": "vhost_scmi.devices.fake_perf",
    "fake-power": "vhost_scmi.devices.fake_power",
}


class _Kinds(Mapping[str, "DeviceKind"]):
    """Device kind id -> DeviceKind, each module imported on first look-up."""

    def __getitem__(self, kind_id: str) -> DeviceKind:
        kind = importlib.import_module(KIND_MODULES[kind_id]).KIND
        assert kind.id == kind_id, (kind.id, kind_id)
        return kind

    def __iter__(self) -> Iterator[str]:
        return iter(KIND_MODULES)

    def __len__(self) -> int:
        return len(KIND_MODULES)


DEVICE_KINDS: Mapping[str, DeviceKind] = _Kinds()


def devices_help() -> str:
    """Return the `--help-devices` text: every kind, its properties and an example."""
    lines = ["Available devices:"]
    for kind in DEVICE_KINDS.values():
        lines.append("")
        lines.append(f"- {kind.id}: {kind.summary}")
        lines.extend(f"  {line}" for line in kind.description.splitlines())
        if kind.properties:
            lines.append("  Parameters:")
            for prop in kind.properties:
                need = "required" if prop.required else "optional"
                lines.append(f"  - {prop.name} ({need}): {prop.help}")
        lines.append(f"  Example: -d {kind.example}")
    lines.append("")
    lines.append("Device specification example:")
    lines.append("--device iio,path=/sys/bus/iio/devices/iio:device0,channel=in_accel")
    return "\n".join(lines) + "\n"
