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
    ({"in_power_input": "1500"}, "in_power", Unit.WATTS, -3, 1500),
    ({"in_capacitance0_raw": "33", "in_capacitance0_scale": "1"}, "in_capacitance0",
     Unit.FARADS, -9, 33),
    ({"in_magn_x_raw": "5", "in_magn_y_raw": "6", "in_magn_z_raw": "7",
      "in_magn_scale": "0.001"}, "in_magn", Unit.GAUSS, -3, 5),
    # The ABI's percentage confidence of an activity (a modified channel).
    ({"in_activity_walking_input": "42", "in_activity_running_input": "1"},
     "in_activity_walking", Unit.PERCENTAGE, 0, 42),
    ({"in_steps_input": "1234"}, "in_steps", Unit.COUNTS, 0, 1234),
    # Counted types need no scale to have their unit.
    ({"in_count0_raw": "17"}, "in_count0", Unit.COUNTS, 0, 17),
    ({"in_velocity_sqrt(x^2+y^2+z^2)_input": "1.25"}, "in_velocity_sqrt(x^2+y^2+z^2)",
     Unit.METERS_PER_SECOND, -2, 125),
    ({"in_colortemp_raw": "6500", "in_colortemp_scale": "1"}, "in_colortemp",
     Unit.COLOR_TEMPERATURE_K, 0, 6500),
    ({"in_cct0_input": "5000"}, "in_cct0", Unit.COLOR_TEMPERATURE_K, 0, 5000),
    ({"in_intensity_both_raw": "812", "in_intensity_scale": "1"}, "in_intensity_both",
     Unit.NONE, 0, 812),
    ({"in_uvindex_input": "7"}, "in_uvindex", Unit.NONE, 0, 7),
    ({"in_ph_raw": "7", "in_ph_scale": "0.5"}, "in_ph", Unit.NONE, -1, 35),
    ({"in_timestamp_input": "1500000000"}, "in_timestamp", Unit.SECONDS, -9, 1500000000),
    ({"in_altvoltage0_raw": "3", "in_altvoltage0_scale": "2"}, "in_altvoltage0",
     Unit.VOLTS, -3, 6),
    ({"in_gravity_x_raw": "1", "in_gravity_y_raw": "1", "in_gravity_z_raw": "1",
      "in_gravity_scale": "9.81"}, "in_gravity", Unit.METERS_PER_SECOND_SQUARED, -2, 981),
    # Degrees and ug/m3 have no SCMI unit: unspecified, values in the ABI's unit.
    ({"in_incli_x_raw": "90", "in_incli_scale": "1"}, "in_incli", Unit.UNSPECIFIED, 0, 90),
    ({"in_rot_from_north_magnetic_raw": "18", "in_rot_scale": "10"},
     "in_rot_from_north_magnetic", Unit.UNSPECIFIED, 1, 18),
    ({"in_massconcentration_pm2p5_input": "12.5"}, "in_massconcentration_pm2p5",
     Unit.UNSPECIFIED, -1, 125),
    # A type this version does not know: unspecified, values as they are.
    ({"in_futuretype_raw": "7", "in_futuretype_scale": "1"}, "in_futuretype",
     Unit.UNSPECIFIED, 0, 7),
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


def test_every_channel_type_of_the_iio_core_has_a_unit_or_is_listed_unsupported() -> None:
    # iio_chan_type_name_spec of Linux 6.12 (drivers/iio/industrialio-core.c).
    kernel_types = (
        "voltage current power accel anglvel magn illuminance intensity proximity temp incli "
        "rot angl timestamp capacitance altvoltage cct pressure humidityrelative activity "
        "steps energy distance velocity concentration resistance ph uvindex "
        "electricalconductivity count index gravity positionrelative phase "
        "massconcentration deltaangl deltavelocity colortemp chromaticity").split()
    assert set(kernel_types) == set(iio.UNITS) | set(iio.UNSUPPORTED)
    assert not set(iio.UNITS) & set(iio.UNSUPPORTED)
    help_text = iio.KIND.description.replace("\n", " ")
    for kind in iio.UNSUPPORTED:
        assert kind in help_text


# The dummy driver's differential channels: raw values, one scale shared by the type.
DIFFERENTIAL = {
    "name": "dummy",
    "in_voltage0_raw": "73", "in_voltage0_offset": "19", "in_voltage0_scale": "0.001333",
    "in_voltage1-voltage2_raw": "33", "in_voltage3-voltage4_raw": "-34",
    "in_voltage-voltage_scale": "0.000001344",
    "in_voltage_scale": "1000",  # single-ended channels' type scale: not the differential one's
    "in_sampling_frequency": "5",
}


@pytest.mark.parametrize(("channel", "exponent", "value"), [
    # 33 x 0.000001344 mV = 33 x 1.344 pV.
    ("in_voltage1-voltage2", -12, 33 * 1344),
    ("in_voltage3-voltage4", -12, -34 * 1344),
    # (73 + 19) x 0.001333 mV: its own offset and scale beat the type's.
    ("in_voltage0", -9, 92 * 1333),
])
def test_differential_channels_use_the_shared_differential_scale(
        tmp_path: Path, channel: str, exponent: int, value: int) -> None:
    sensor = create_iio_sensor(str(tree(tmp_path, DIFFERENTIAL)), channel)
    assert (sensor.unit, sensor.exponent) == (Unit.VOLTS, exponent)
    assert sensor.read() == [value]
    sensor.close()


@pytest.mark.parametrize(("scale_file", "channel"), [
    ("in_voltage2_scale", "in_voltage2"),  # separate
    ("in_voltage_scale", "in_voltage2"),  # shared by type
    ("in_scale", "in_voltage2"),  # shared by direction
    ("scale", "in_voltage2"),  # shared by all channels
    ("out_voltage_scale", "out_voltage2"),  # an output channel's type scale
    ("in_voltage2_supply_scale", "in_voltage2_supply"),  # extended name, separate
    ("in_voltage_scale", "in_voltage2_supply"),  # extended name, shared by type
    ("in_accel0_x_scale", "in_accel0"),  # indexed and modified, separate (one axis)
])
def test_every_naming_form_of_a_scale(tmp_path: Path, scale_file: str, channel: str) -> None:
    stem = f"{channel}_x" if channel == "in_accel0" else channel
    files = {f"{stem}_raw": "10", scale_file: "0.5"}
    sensor = create_iio_sensor(str(tree(tmp_path, files)), channel)
    # 10 x 0.5 mV = 50 x 10^-4 V; 10 x 0.5 m/s² = 50 x 10^-1 m/s².
    exponent = -1 if sensor.axes else -4
    assert (sensor.axes[0].exponent if sensor.axes else sensor.exponent) == exponent
    assert sensor.read() == [50]
    sensor.close()


def test_the_most_specific_scale_and_offset_win(tmp_path: Path) -> None:
    files = {"in_voltage2_raw": "10", "scale": "100", "in_scale": "10",
             "in_voltage_scale": "2", "in_voltage2_scale": "3",
             "offset": "1000", "in_offset": "100", "in_voltage_offset": "1"}
    sensor = create_iio_sensor(str(tree(tmp_path, files)), "in_voltage2")
    assert sensor.read() == [(10 + 1) * 3]
    sensor.close()


@pytest.mark.parametrize("available", [
    "0.467142857 0.000598550 1.5",  # a list
    "[0.000598550 0.000000001 2]",  # a range: min, step, max
])
def test_scale_available_makes_the_exponent_fit_every_scale(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, available: str) -> None:
    monkeypatch.setattr(iio, "CALIBRATION_PERIOD", 0.0)
    files = {"in_accel_x_raw": "10", "in_accel_y_raw": "0", "in_accel_z_raw": "21",
             "in_accel_scale": "0.5", "in_accel_scale_available": available}
    directory = tree(tmp_path, files)
    sensor = create_iio_sensor(str(directory), "in_accel")
    # 0.5 alone would give 10^-1; the available scales need 10^-9.
    assert {a.exponent for a in sensor.axes} == {-9}
    assert sensor.read() == [5 * 10**9, 0, 105 * 10**8]
    (directory / "in_accel_scale").write_text("0.000598550\n")
    assert sensor.read() == [5985500, 0, 12569550]  # exact, no rounding
    sensor.close()


def test_a_malformed_available_list_is_ignored(tmp_path: Path) -> None:
    files = {"in_temp_raw": "10", "in_temp_scale": "0.5",
             "in_temp_scale_available": "fast slow"}
    directory = tree(tmp_path, files)
    sensor = create_iio_sensor(str(directory), "in_temp")
    assert (sensor.exponent, sensor.read()) == (-4, [50])
    sensor.close()
    # Not a regular file: ignored as well.
    (directory / "in_temp_scale_available").unlink()
    os.mkfifo(directory / "in_temp_scale_available")
    sensor = create_iio_sensor(str(directory), "in_temp")
    assert (sensor.exponent, sensor.read()) == (-4, [50])
    sensor.close()


def test_raw_values_without_a_scale_have_no_unit(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    # The dummy driver's accelerometer: raw, calibbias and calibscale, but no scale.
    files = {"in_accel_x_raw": "34", "in_accel_x_calibbias": "-7",
             "in_accel_x_calibscale": "0.000012", "in_voltage0_raw": "5",
             "in_voltage0_offset": "2"}
    directory = tree(tmp_path, files)
    sensor = create_iio_sensor(str(directory), "in_accel")
    assert [(a.name, a.unit, a.exponent) for a in sensor.axes] == [
        ("accel_X", Unit.UNSPECIFIED, 0)]
    assert sensor.read() == [34]
    assert "no scale attribute" in caplog.text
    sensor.close()
    # An offset still applies: raw + offset, still without a unit.
    sensor = create_iio_sensor(str(directory), "in_voltage0")
    assert (sensor.unit, sensor.exponent, sensor.read()) == (Unit.UNSPECIFIED, 0, [7])
    sensor.close()


def test_processed_values_without_a_scale_keep_the_abi_unit(tmp_path: Path) -> None:
    sensor = create_iio_sensor(str(tree(tmp_path, {"in_temp_input": "21500"})), "in_temp")
    assert (sensor.unit, sensor.exponent, sensor.read()) == (Unit.DEGREES_C, -3, [21500])
    sensor.close()


def test_missing_channel_lists_every_channel_form(tmp_path: Path) -> None:
    files = dict(DIFFERENTIAL, in_accel_x_raw="1", in_activity_walking_input="3",
                 out_voltage0_raw="0", in_steps_input="2")
    with pytest.raises(DeviceSpecError) as err:
        create_iio_sensor(str(tree(tmp_path, files)), "in_gyro")
    assert ("channels there: in_accel, in_activity_walking, in_steps, in_voltage0, "
            "in_voltage1-voltage2, in_voltage3-voltage4, out_voltage0") in str(err.value)
