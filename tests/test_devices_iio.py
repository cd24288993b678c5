# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The `iio` device kind against IIO-shaped sysfs trees built in tmp_path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from scmi_helpers import LINUX_RESPONSE, SENSOR, command, response

from vhost_scmi.devices import iio
from vhost_scmi.devices.iio import create_iio_sensor
from vhost_scmi.devices.sensor import DeviceError, DeviceSpecError, Unit
from vhost_scmi.devices.spec import create_resources
from vhost_scmi.scmi.client import Reading, ScmiClient
from vhost_scmi.scmi.dispatcher import build_dispatcher
from vhost_scmi.scmi.status import Status


def tree(base: Path, files: dict[str, str], name: str = "iio:device0") -> Path:
    directory = base / name
    directory.mkdir()
    for file, content in files.items():
        (directory / file).write_text(content + "\n")
    return directory


ACCEL = {
    "name": "lsm6dsx_accel",
    "in_accel_x_raw": "100",
    "in_accel_y_raw": "-200",
    "in_accel_z_raw": "16384",
    "in_accel_scale": "0.000598550",
    "sampling_frequency": "104",
}


def test_accelerometer_axes_scale_and_unit(tmp_path: Path) -> None:
    sensor = create_iio_sensor(str(tree(tmp_path, ACCEL)), "in_accel")
    assert sensor.name == "lsm6dsx_accel"
    assert [(a.name, a.unit, a.exponent) for a in sensor.axes] == [
        ("accel_X", Unit.METERS_PER_SECOND_SQUARED, -8),
        ("accel_Y", Unit.METERS_PER_SECOND_SQUARED, -8),
        ("accel_Z", Unit.METERS_PER_SECOND_SQUARED, -8)]
    # raw x 0.000598550 m/s² exactly, at 10^-8.
    assert sensor.read() == [100 * 59855, -200 * 59855, 16384 * 59855]
    sensor.close()


def test_per_axis_scale_and_offset_override_shared_ones(tmp_path: Path) -> None:
    files = dict(ACCEL, in_accel_x_scale="0.01", in_accel_scale="0.5",
                 in_accel_offset="3", in_accel_z_offset="-0.25")
    sensor = create_iio_sensor(str(tree(tmp_path, files)), "in_accel", name="acc")
    assert sensor.name == "acc"
    assert [a.exponent for a in sensor.axes] == [-2, -1, -3]
    # x: (100 + 3) x 0.01; y: (-200 + 3) x 0.5; z: (16384 - 0.25) x 0.5, each exactly.
    assert sensor.read() == [103, -985, 8191875]
    sensor.close()


def test_gyroscope(tmp_path: Path) -> None:
    files = {"in_anglvel_x_raw": "1", "in_anglvel_y_raw": "2", "in_anglvel_z_raw": "3",
             "in_anglvel_scale": "0.000152716"}
    sensor = create_iio_sensor(str(tree(tmp_path, files)), "in_anglvel")
    assert sensor.name == "iio"  # no name file
    assert {(a.unit, a.exponent) for a in sensor.axes} == {(Unit.RADIANS_PER_SECOND, -9)}
    assert sensor.read() == [152716, 305432, 458148]
    sensor.close()


@pytest.mark.parametrize(("files", "channel", "unit", "exponent", "value"), [
    # Processed millidegrees.
    ({"in_temp_input": "25125"}, "in_temp", Unit.DEGREES_C, -3, 25125),
    # Raw with a fractional offset: (3000 - 2730.15) m°C = 0.26985 °C.
    ({"in_temp_raw": "3000", "in_temp_offset": "-2730.15", "in_temp_scale": "1"},
     "in_temp", Unit.DEGREES_C, -5, 26985),
    # A channel-type scale shared by indexed channels: 1000 x 0.805664062 mV.
    ({"in_voltage0_raw": "1000", "in_voltage1_raw": "7", "in_voltage_scale": "0.805664062"},
     "in_voltage0", Unit.VOLTS, -12, 805664062000),
    # Processed kilopascals with decimals: 101.325 kPa = 101325 Pa.
    ({"in_pressure_input": "101.325"}, "in_pressure", Unit.PASCALS, 0, 101325),
    ({"in_humidityrelative_input": "45123"}, "in_humidityrelative", Unit.PERCENTAGE, -3,
     45123),
    ({"in_illuminance_raw": "250", "in_illuminance_scale": "0.25"}, "in_illuminance",
     Unit.LUX, -2, 6250),
    ({"in_current0_raw": "-12", "in_current0_scale": "2"}, "in_current0", Unit.AMPS, -3, -24),
    ({"in_power_raw": "1500"}, "in_power", Unit.WATTS, -3, 1500),
    ({"in_capacitance0_raw": "33"}, "in_capacitance0", Unit.FARADS, -9, 33),
    ({"in_magn_x_raw": "5", "in_magn_y_raw": "6", "in_magn_z_raw": "7",
      "in_magn_scale": "0.001"}, "in_magn", Unit.GAUSS, -3, 5),
    # A type with no SCMI unit: unspecified, values as they are.
    ({"in_ph_raw": "7"}, "in_ph", Unit.UNSPECIFIED, 0, 7),
])
def test_channel_types(tmp_path: Path, files: dict[str, str], channel: str, unit: Unit,
                       exponent: int, value: int) -> None:
    sensor = create_iio_sensor(str(tree(tmp_path, files)), channel)
    if sensor.axes:
        assert (sensor.axes[0].unit, sensor.axes[0].exponent) == (unit, exponent)
    else:
        assert (sensor.unit, sensor.exponent) == (unit, exponent)
    assert sensor.read()[0] == value
    sensor.close()


def test_values_are_read_on_every_request_from_open_files(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tree(tmp_path, ACCEL)
    sensor = create_iio_sensor(str(directory), "in_accel")

    def no_open(*args: object, **kwargs: object) -> int:
        raise AssertionError("a sysfs file was reopened")

    monkeypatch.setattr(os, "open", no_open)
    (directory / "in_accel_x_raw").write_text("7\n")
    assert sensor.read()[0] == 7 * 59855
    (directory / "in_accel_x_raw").write_text("-8\n")
    assert sensor.read()[0] == -8 * 59855
    monkeypatch.undo()
    sensor.close()


def test_a_changed_scale_is_followed_at_the_reported_exponent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tree(tmp_path, ACCEL)
    sensor = create_iio_sensor(str(directory), "in_accel")
    monkeypatch.setattr(iio, "CALIBRATION_PERIOD", 0.0)
    (directory / "in_accel_scale").write_text("0.002394202\n")  # a wider range
    assert sensor.axes[0].exponent == -8
    # 100 x 0.002394202 = 0.2394202 -> 23942020 x 10^-8 (rounded to the old exponent).
    assert sensor.read()[0] == 23942020
    sensor.close()


def test_device_removed_while_serving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # sysfs fails reads of a removed device; plain files are checked once a period.
    monkeypatch.setattr(iio, "CALIBRATION_PERIOD", 0.0)
    directory = tree(tmp_path, ACCEL)
    sensor = create_iio_sensor(str(directory), "in_accel")
    dispatcher = build_dispatcher([sensor])
    client = ScmiClient(lambda request: dispatcher.handle(request, LINUX_RESPONSE))
    assert client.read(0)[0] == Reading(100 * 59855, 0)
    shutil.rmtree(directory)
    with pytest.raises(DeviceError, match="removed"):
        sensor.read()
    assert dispatcher.handle(command(SENSOR, 0x6, 0, 0), LINUX_RESPONSE) == response(
        SENSOR, 0x6, Status.HARDWARE_ERROR)
    # The rest of the protocol still answers.
    assert client.sensor_descriptions()[0].name == "lsm6dsx_accel"
    sensor.close()


def test_garbage_in_a_value_file_is_a_device_error(tmp_path: Path) -> None:
    directory = tree(tmp_path, ACCEL)
    sensor = create_iio_sensor(str(directory), "in_accel")
    (directory / "in_accel_y_raw").write_text("\n")
    with pytest.raises(DeviceError, match="not a number"):
        sensor.read()
    sensor.close()


def test_close_closes_the_files(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    sensor = create_iio_sensor(str(tree(tmp_path, dict(ACCEL, in_accel_offset="1"))),
                               "in_accel")
    # Three value files; the shared scale and offset files are opened once.
    assert len(os.listdir("/proc/self/fd")) == before + 5
    sensor.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_long_device_names_become_extended_names(tmp_path: Path) -> None:
    files = dict(ACCEL, name="a very long industrial io device name")
    sensor = create_iio_sensor(str(tree(tmp_path, files)), "in_accel")
    dispatcher = build_dispatcher([sensor])
    client = ScmiClient(lambda request: dispatcher.handle(request, LINUX_RESPONSE))
    (description,) = client.sensor_descriptions()
    assert description.extended_name and description.name == "a very long ind"
    assert client.sensor_name(0) == "a very long industrial io device name"
    sensor.close()


@pytest.mark.parametrize(("files", "path", "channel", "message"), [
    (ACCEL, "missing", "in_accel", "is not a directory"),
    (ACCEL, "", "in_gyro", "no IIO channel 'in_gyro'.*channels there: in_accel"),
    (ACCEL, "", "accel", "not an IIO channel prefix"),
    (ACCEL, "", "in_accel/../x", "not an IIO channel prefix"),
    ({}, "", "in_accel", "channels there: none"),
    (dict(ACCEL, in_accel_scale="fast"), "", "in_accel", "scale: not a number"),
    (dict(ACCEL, in_accel_x_raw="n/a"), "", "in_accel", "not a number"),
])
def test_errors_at_start_up(tmp_path: Path, files: dict[str, str], path: str, channel: str,
                            message: str) -> None:
    directory = tree(tmp_path, files)
    target = str(directory / path) if path else str(directory)
    with pytest.raises(DeviceSpecError, match=message):
        create_iio_sensor(target, channel)


def test_device_spec_and_guest_view(tmp_path: Path) -> None:
    directory = tree(tmp_path, ACCEL)
    (sensor,) = create_resources([f"iio,path={directory},channel=in_accel,name=phone"])
    dispatcher = build_dispatcher([sensor])
    client = ScmiClient(lambda request: dispatcher.handle(request, LINUX_RESPONSE))
    (description,) = client.sensor_descriptions()
    assert (description.name, description.axis_count) == ("phone", 3)
    axes = client.axis_descriptions(0)
    assert [(a.name, a.unit, a.exponent) for a in axes] == [
        ("accel_X", 0x59, -8), ("accel_Y", 0x59, -8), ("accel_Z", 0x59, -8)]
    assert [r.value for r in client.read(0)] == [5985500, -11971000, 980664320]
    sensor.close()


def test_device_spec_errors_name_the_spec(tmp_path: Path) -> None:
    spec = f"iio,path={tmp_path / 'nope'},channel=in_accel"
    with pytest.raises(DeviceSpecError, match=f"device spec '{spec}'.*not a directory"):
        create_resources([spec])
    with pytest.raises(DeviceSpecError, match="missing required property channel"):
        create_resources([f"iio,path={tmp_path}"])
    with pytest.raises(DeviceSpecError, match="longer than 15 bytes"):
        create_resources([f"iio,path={tmp_path},channel=in_accel,name=abcdefghijklmnop"])
