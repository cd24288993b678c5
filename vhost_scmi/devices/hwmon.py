# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`hwmon`: inputs of a Linux hardware-monitoring device (/sys/class/hwmon/hwmonN).

Each `<type><index>_input` file becomes a scalar sensor in the SCMI unit of its type
(Documentation/hwmon/sysfs-interface.rst gives the sysfs units): temperatures,
voltages, currents, power, energy, fan speeds and humidity. Without `channel=`, every
input of the device is exposed, in type then index order. A sensor is named after the
channel's label when the device has one (`<device name> <label>`), else
`<device name>_<channel>`; with `name=`, one channel is called exactly that and
several get `<name>_<channel>`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path

from vhost_scmi.devices import sysfs
from vhost_scmi.devices.kind import ASYNC_PROPERTY, DeviceKind, Property, switch
from vhost_scmi.devices.sensor import (
    DeviceError,
    DeviceSpecError,
    Sensor,
    Unit,
    check_name,
    fit_name,
)
from vhost_scmi.devices.sysfs import Attribute, read_text

DEFAULT_DEVICE_NAME = "hwmon"

#: hwmon channel type -> SCMI unit and the exponent of the sysfs unit, in listing order.
UNITS: dict[str, tuple[Unit, int]] = {
    "temp": (Unit.DEGREES_C, -3),  # millidegrees Celsius
    "in": (Unit.VOLTS, -3),  # millivolts
    "curr": (Unit.AMPS, -3),  # milliamperes
    "power": (Unit.WATTS, -6),  # microwatts
    "energy": (Unit.JOULES, -6),  # microjoules
    "fan": (Unit.RPM, 0),
    "humidity": (Unit.PERCENTAGE, -3),  # milli-percent
}

_CHANNEL = re.compile(r"(" + "|".join(UNITS) + r")(\d+)")
_INPUT = re.compile(r"(" + "|".join(UNITS) + r")(\d+)_(input|average)")


class HwmonSensor(Sensor):
    """One hwmon input."""

    def __init__(self, name: str, unit: Unit, exponent: int, attribute: Attribute) -> None:
        self.name = name
        self.unit = unit
        self.exponent = exponent
        self._attribute = attribute
        self._checked = time.monotonic()

    def read(self) -> tuple[int]:
        now = time.monotonic()
        if now - self._checked >= sysfs.HEALTH_PERIOD:
            self._checked = now
            self._attribute.check()
        text = self._attribute.read()
        try:
            return (int(text),)
        except ValueError:
            raise DeviceError(f"{self._attribute.path}: not an integer: {text!r}") from None

    def close(self) -> None:
        self._attribute.close()


def _inputs(directory: Path) -> dict[str, Path]:
    """Channel -> its value file (`_input`, else power's `_average`), in listing order."""
    found: dict[tuple[int, int], tuple[str, Path]] = {}
    order = list(UNITS)
    for path in directory.iterdir():
        match = _INPUT.fullmatch(path.name)
        if not match or not path.is_file():
            continue
        kind, index, suffix = match.groups()
        if suffix == "average" and kind != "power":
            continue
        key = (order.index(kind), int(index))
        if suffix == "input" or key not in found:
            found[key] = (f"{kind}{index}", path)
    return dict(found[key] for key in sorted(found))


def create_hwmon_sensors(path: str, channel: str | None = None,
                         name: str | None = None) -> list[HwmonSensor]:
    """Return the sensors of hwmon device `path` (one `channel`, or all inputs).

    Raises DeviceSpecError when the directory or the channel is missing or unreadable.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise DeviceSpecError(f"hwmon device '{path}' is not a directory")
    inputs = _inputs(directory)
    if channel is not None:
        if not _CHANNEL.fullmatch(channel):
            raise DeviceSpecError(f"'{channel}' is not a hwmon channel such as temp1, in0, "
                                  f"curr1, power1, energy1, fan1 or humidity1")
        if channel not in inputs:
            available = ", ".join(inputs) or "none"
            raise DeviceSpecError(f"no hwmon channel '{channel}' in '{path}' (channels "
                                  f"there: {available})")
        inputs = {channel: inputs[channel]}
    if not inputs:
        raise DeviceSpecError(f"no sensor inputs in hwmon device '{path}'")
    device_name = read_text(directory / "name") or DEFAULT_DEVICE_NAME
    sensors: list[HwmonSensor] = []
    try:
        for channel_name, value_path in inputs.items():
            kind = _CHANNEL.fullmatch(channel_name).group(1)  # type: ignore[union-attr]
            unit, exponent = UNITS[kind]
            if name is not None:
                sensor_name = name if len(inputs) == 1 else f"{name}_{channel_name}"
            else:
                label = read_text(directory / f"{channel_name}_label")
                sensor_name = (f"{device_name} {label}" if label
                               else f"{device_name}_{channel_name}")
            sensor = HwmonSensor(fit_name(sensor_name), unit, exponent, Attribute(value_path))
            sensors.append(sensor)
            try:
                sensor.read()
            except DeviceError as err:
                raise DeviceSpecError(f"unusable hwmon input: {err}") from err
    except BaseException:
        for sensor in sensors:
            sensor.close()
        raise
    return sensors


def _create(props: Mapping[str, str]) -> list[Sensor]:
    name = props.get("name")
    if name is not None:
        check_name(name)
    asynchronous = switch(props, "async")
    sensors: list[Sensor] = list(create_hwmon_sensors(props["path"], props.get("channel"), name))
    for sensor in sensors:
        sensor.asynchronous = asynchronous
    return sensors


KIND = DeviceKind(
    id="hwmon",
    summary="hardware monitoring sensors",
    description="Inputs of a Linux hwmon device as scalar sensors: temperatures,\n"
                "voltages, currents, power, energy, fan speeds, humidity. Guests see\n"
                "temperatures, voltages, currents, power and energy with scmi-hwmon.",
    properties=(
        Property("path", "the hwmon device directory (e.g. /sys/class/hwmon/hwmon0)",
                 required=True),
        Property("channel", "one input, e.g. temp1 (default: every input of the device)"),
        Property("name", "sensor name, at most 15 bytes (default: from the device and "
                 "channel labels)"),
        ASYNC_PROPERTY,
    ),
    example="hwmon,path=/sys/class/hwmon/hwmon0,channel=temp1",
    create=_create,
)
