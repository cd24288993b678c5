# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The `hwmon` device kind against hwmon-shaped sysfs trees built in tmp_path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from scmi_helpers import LINUX_RESPONSE, SENSOR, command, response

from vhost_scmi.devices import sysfs
from vhost_scmi.devices.hwmon import create_hwmon_sensors
from vhost_scmi.devices.sensor import DeviceError, DeviceSpecError, Unit
from vhost_scmi.devices.spec import create_resources
from vhost_scmi.scmi.client import Reading, ScmiClient
from vhost_scmi.scmi.dispatcher import build_dispatcher
from vhost_scmi.scmi.status import Status

BOARD = {
    "name": "nct6775",
    "temp1_input": "45000",
    "temp1_label": "SYSTIN",
    "temp1_max": "80000",
    "temp1_crit": "100000",
    "temp2_input": "-5500",
    "in0_input": "1200",
    "in10_input": "3344",
    "curr1_input": "500",
    "power1_input": "15000000",
    "power2_average": "7250000",
    "energy1_input": "123456789",
    "fan1_input": "2400",
    "fan1_min": "300",
    "humidity1_input": "45500",
    "pwm1": "128",
    "uevent": "",
}


def tree(base: Path, files: dict[str, str], name: str = "hwmon3") -> Path:
    directory = base / name
    directory.mkdir()
    for file, content in files.items():
        (directory / file).write_text(content + "\n")
    return directory


def test_every_input_in_type_and_index_order(tmp_path: Path) -> None:
    sensors = create_hwmon_sensors(str(tree(tmp_path, BOARD)))
    assert [(s.name, s.unit, s.exponent, s.read()) for s in sensors] == [
        ("nct6775 SYSTIN", Unit.DEGREES_C, -3, (45000,)),
        ("nct6775_temp2", Unit.DEGREES_C, -3, (-5500,)),
        ("nct6775_in0", Unit.VOLTS, -3, (1200,)),
        ("nct6775_in10", Unit.VOLTS, -3, (3344,)),
        ("nct6775_curr1", Unit.AMPS, -3, (500,)),
        ("nct6775_power1", Unit.WATTS, -6, (15000000,)),
        ("nct6775_power2", Unit.WATTS, -6, (7250000,)),
        ("nct6775_energy1", Unit.JOULES, -6, (123456789,)),
        ("nct6775_fan1", Unit.RPM, 0, (2400,)),
        ("nct6775_humidity1", Unit.PERCENTAGE, -3, (45500,)),
    ]
    assert all(not s.axes for s in sensors)
    for sensor in sensors:
        sensor.close()


def test_one_channel_and_names(tmp_path: Path) -> None:
    directory = tree(tmp_path, BOARD)
    (cpu,) = create_hwmon_sensors(str(directory), "temp1", name="cpu")
    assert (cpu.name, cpu.read()) == ("cpu", (45000,))
    (fan,) = create_hwmon_sensors(str(directory), "fan1")
    assert fan.name == "nct6775_fan1"
    named = create_hwmon_sensors(str(directory), name="board")
    assert [s.name for s in named][:3] == ["board_temp1", "board_temp2", "board_in0"]
    for sensor in [cpu, fan, *named]:
        sensor.close()


def test_device_without_name_file(tmp_path: Path) -> None:
    (sensor,) = create_hwmon_sensors(str(tree(tmp_path, {"temp1_input": "1"})))
    assert sensor.name == "hwmon_temp1"
    sensor.close()


def test_values_follow_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tree(tmp_path, BOARD)
    (sensor,) = create_hwmon_sensors(str(directory), "temp2")

    def no_open(*args: object, **kwargs: object) -> int:
        raise AssertionError("a sysfs file was reopened")

    monkeypatch.setattr(os, "open", no_open)
    for value in ("51000", "-1", "0"):
        (directory / "temp2_input").write_text(value + "\n")
        assert sensor.read() == (int(value),)
    monkeypatch.undo()
    sensor.close()


def test_device_removed_while_serving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # sysfs fails reads of a removed device; plain files are checked once a period.
    monkeypatch.setattr(sysfs, "HEALTH_PERIOD", 0.0)
    directory = tree(tmp_path, BOARD)
    sensors = create_hwmon_sensors(str(directory), "temp1")
    other = tree(tmp_path, {"name": "acpitz", "temp1_input": "27800"}, "hwmon0")
    sensors += create_hwmon_sensors(str(other))
    dispatcher = build_dispatcher(sensors)
    client = ScmiClient(lambda request: dispatcher.handle(request, LINUX_RESPONSE))
    assert client.read(0) == [Reading(45000, 0)]
    shutil.rmtree(directory)
    with pytest.raises(DeviceError, match="removed"):
        sensors[0].read()
    assert dispatcher.handle(command(SENSOR, 0x6, 0, 0), LINUX_RESPONSE) == response(
        SENSOR, 0x6, Status.HARDWARE_ERROR)
    assert client.read(1) == [Reading(27800, 0)]
    for sensor in sensors:
        sensor.close()


def test_garbage_value_is_a_device_error(tmp_path: Path) -> None:
    directory = tree(tmp_path, BOARD)
    (sensor,) = create_hwmon_sensors(str(directory), "in0")
    (directory / "in0_input").write_text("N/A\n")
    with pytest.raises(DeviceError, match="not an integer"):
        sensor.read()
    sensor.close()


@pytest.mark.parametrize(("files", "path", "channel", "message"), [
    (BOARD, "missing", None, "is not a directory"),
    (BOARD, "", "temp9", r"no hwmon channel 'temp9'.*channels there: temp1, temp2, in0"),
    (BOARD, "", "pwm1", "not a hwmon channel"),
    (BOARD, "", "temp1_input", "not a hwmon channel"),
    ({"name": "empty"}, "", None, "no sensor inputs"),
    ({"temp1_input": "hot"}, "", None, "unusable hwmon input.*not an integer"),
])
def test_errors_at_start_up(tmp_path: Path, files: dict[str, str], path: str,
                            channel: str | None, message: str) -> None:
    directory = tree(tmp_path, files)
    target = str(directory / path) if path else str(directory)
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(DeviceSpecError, match=message):
        create_hwmon_sensors(target, channel)
    assert len(os.listdir("/proc/self/fd")) == before


def test_guest_view_for_scmi_hwmon(tmp_path: Path) -> None:
    directory = tree(tmp_path, BOARD)
    sensors = create_resources([f"hwmon,path={directory}", f"hwmon,path={directory},"
                              "channel=temp2,name=ambient"])
    dispatcher = build_dispatcher(sensors)
    client = ScmiClient(lambda request: dispatcher.handle(request, LINUX_RESPONSE))
    descriptions = client.sensor_descriptions()
    assert [(d.id, d.name, d.extended_name) for d in descriptions][-2:] == [
        (9, "nct6775_humidit", True), (10, "ambient", False)]
    assert client.sensor_name(9) == "nct6775_humidity1"
    assert [(d.unit, d.exponent, d.axis_count) for d in descriptions[:3]] == [
        (0x02, -3, 0), (0x02, -3, 0), (0x05, -3, 0)]
    assert [d.unit for d in descriptions[4:10]] == [0x06, 0x07, 0x07, 0x08, 0x13, 0x41]
    # scmi-hwmon reads without enabling; the sensors start enabled anyway.
    assert client.config_get(0) & 1 == 1
    assert client.read(10) == [Reading(-5500, 0)]
    for sensor in sensors:
        sensor.close()


def test_device_spec_errors_name_the_spec(tmp_path: Path) -> None:
    spec = f"hwmon,path={tmp_path / 'nope'}"
    with pytest.raises(DeviceSpecError, match=f"device spec '{spec}'.*not a directory"):
        create_resources([spec])
    with pytest.raises(DeviceSpecError, match="unknown property 'label'"):
        create_resources([f"hwmon,path={tmp_path},label=x"])
