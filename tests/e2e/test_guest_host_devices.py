# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Host `iio` and `hwmon` devices (sysfs-shaped trees the tests build) seen by a real guest."""

from __future__ import annotations

import math
from pathlib import Path

from e2e.guest import LIST_HWMON, LIST_IIO


def write_tree(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    for name, content in files.items():
        (root / name).write_text(content + "\n")
    return root


ACCEL = {"x": 120, "y": -45, "z": 1003}
ACCEL_SCALE = 0.009582
GYRO = {"x": 500, "y": -1250, "z": 7}
GYRO_SCALES = {"x": 0.001064724, "y": 0.002, "z": 0.5}
GYRO_OFFSET = 10


def test_iio_device_values_reach_guest_scaled_as_on_host(e2e, tmp_path):
    accel = write_tree(tmp_path / "sys" / "iio:device3", {
        "name": "host-accel-chip",
        **{f"in_accel_{axis}_raw": str(value) for axis, value in ACCEL.items()},
        "in_accel_scale": f"{ACCEL_SCALE:.6f}",
    })
    # Per-axis scales and a shared offset: value = (raw + offset) * scale.
    gyro = write_tree(tmp_path / "sys" / "iio:device4", {
        "name": "host-gyro-chip",
        **{f"in_anglvel_{axis}_raw": str(value) for axis, value in GYRO.items()},
        **{f"in_anglvel_{axis}_scale": f"{scale:.9f}" for axis, scale in GYRO_SCALES.items()},
        "in_anglvel_offset": str(GYRO_OFFSET),
    })
    daemon = e2e.start_daemon(
        f"iio,path={accel},channel=in_accel,name=accel",
        f"iio,path={gyro},channel=in_anglvel,name=gyro",
    )
    result = e2e.run_guest(LIST_IIO, daemon.socket_path)

    assert result.rc == 0, result.report()
    devices = [line.removeprefix("device=") for line in result.output
               if line.startswith("device=")]
    assert devices == ["accel", "gyro"], result.report()
    values = result.values()
    expected = {
        ("accel", "in_accel"): {axis: raw * ACCEL_SCALE for axis, raw in ACCEL.items()},
        ("gyro", "in_anglvel"): {axis: (raw + GYRO_OFFSET) * GYRO_SCALES[axis]
                                 for axis, raw in GYRO.items()},
    }
    for (name, channel), axes in expected.items():
        for axis, host_value in axes.items():
            key = f"{name}.{channel}_{axis}"
            raw, scale = values.get(f"{key}.raw"), values.get(f"{key}.scale")
            assert raw is not None and scale is not None, f"{key}\n{result.report()}"
            guest_value = int(raw) * float(scale)
            # The daemon picks a decimal exponent; it must keep 0.5 % precision.
            assert math.isclose(guest_value, host_value, rel_tol=5e-3), \
                f"{key}: guest {raw} x {scale} = {guest_value}, host {host_value}\n" \
                f"{result.report()}"
    assert daemon.alive(), daemon.describe()


# A host hwmon chip: millidegrees Celsius, millivolts, milliamps, microwatts, RPM.
HWMON = {
    "name": "hostchip",
    "temp1_input": "45123", "temp1_label": "cpu",
    "temp2_input": "-5250", "temp2_label": "ambient",
    "in0_input": "1234", "in0_label": "vcore",
    "in1_input": "12000",
    "curr1_input": "1500",
    "power1_input": "2500000",
    "fan1_input": "2400",
}


def inputs(result, prefix: str) -> list[int]:
    return sorted(int(value) for key, value in result.values().items()
                  if key.startswith(prefix) and key.removeprefix(prefix).isdigit())


def test_hwmon_device_values_reach_guest_hwmon(e2e, tmp_path):
    chip = write_tree(tmp_path / "hwmon7", HWMON)
    daemon = e2e.start_daemon(
        f"hwmon,path={chip}",
        f"hwmon,path={chip},channel=temp1,name=only-cpu",
    )
    result = e2e.run_guest(LIST_HWMON, daemon.socket_path)

    assert result.rc == 0, result.report()
    assert "hwmon=scmi_sensors" in result.output, result.report()
    # The guest's hwmon units are the host's: millidegrees, millivolts, milliamps, µW.
    assert inputs(result, "temp") == sorted([45123, -5250, 45123]), result.report()
    assert inputs(result, "in") == sorted([1234, 12000]), result.report()
    assert inputs(result, "curr") == [1500], result.report()
    assert inputs(result, "power") == [2500000], result.report()
    labels = {value for key, value in result.values().items() if key.endswith(".label")}
    assert "only-cpu" in labels, result.report()
    assert daemon.alive(), daemon.describe()
