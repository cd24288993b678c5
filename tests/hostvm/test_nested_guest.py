# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Real host devices seen by a real guest: the arm64 guest, nested inside the host VM.

The daemon in the host VM serves the mma7660 (a real 3-axis accelerometer driver) and the
lm75 (a real hwmon driver); the guest's scmi_iio and scmi-hwmon drivers must show the
host's values.
"""

from __future__ import annotations

import math
from decimal import Decimal

from .conftest import HostVmRun


def guest_values(nested: dict) -> dict[str, str]:
    values = {}
    for line in nested["output"]:
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value
    return values


def report(run: HostVmRun) -> str:
    nested = run.results.get("nested", {})
    return ("guest output:\n  " + "\n  ".join(nested.get("output", [])) +
            "\nguest dmesg:\n  " + "\n  ".join(nested.get("dmesg", [])) + "\n" + run.report())


def test_guest_scmi_iio_shows_the_mma7660_with_the_hosts_values(hostvm: HostVmRun) -> None:
    nested = hostvm.results.get("nested")
    assert nested and nested.get("rc") == 0, report(hostvm)
    values = guest_values(nested)
    assert values.get("device") == "mma7660", report(hostvm)
    scale = Decimal(nested["host"]["in_accel_scale"])
    for axis in "xyz":
        host = int(nested["host"][f"in_accel_{axis}_raw"]) * scale
        raw = values.get(f"mma7660.in_accel_{axis}.raw")
        guest_scale = values.get(f"mma7660.in_accel_{axis}.scale")
        assert raw is not None and guest_scale is not None, report(hostvm)
        # scmi_iio turns the SCMI exponent into an IIO scale: same m/s² as the host's.
        assert math.isclose(int(raw) * float(guest_scale), float(host), rel_tol=1e-6,
                            abs_tol=1e-9), (axis, raw, guest_scale, host)
    assert nested["daemon_alive"] is True


def test_guest_scmi_hwmon_shows_the_lm75_temperature(hostvm: HostVmRun) -> None:
    nested = hostvm.results.get("nested")
    assert nested and nested.get("rc") == 0, report(hostvm)
    assert "hwmon=scmi_sensors" in nested["output"], report(hostvm)
    assert nested["host"]["temp1_input"] == "42500"
    assert guest_values(nested).get("temp1") == "42500", report(hostvm)
