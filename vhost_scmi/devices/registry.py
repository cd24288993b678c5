# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Registry of device kinds, by the id used in `-d ID,...`."""

from __future__ import annotations

from vhost_scmi.devices import cpufreq, fake, fake_perf, fake_power, hwmon, iio, runtime_pm
from vhost_scmi.devices.kind import DeviceKind

# A new device kind: one module exporting KIND, and one entry here.
DEVICE_KINDS: dict[str, DeviceKind] = {
    kind.id: kind
    for kind in (
        fake.KIND,
        iio.KIND,
        hwmon.KIND,
        cpufreq.KIND,
        runtime_pm.KIND,
        fake_perf.KIND,
        fake_power.KIND,
    )
}


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
