# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`iio`: a channel of a Linux Industrial I/O device (/sys/bus/iio/devices/iio:deviceN).

A channel prefix such as `in_accel` names either axes (`in_accel_x_raw`, `_y_`, `_z_`)
or a scalar (`in_temp_raw`, `in_voltage0_raw`); `_input` files (already processed
values) stand in for missing `_raw` ones. A value is (raw + offset) x scale in the
unit the IIO ABI gives the channel type (Documentation/ABI/testing/sysfs-bus-iio),
converted to the SCMI unit with a decimal exponent chosen so the guest gets the
host's full precision. `_scale` and `_offset` may be per axis, per channel or per
channel type; they are re-read at most once a second (CALIBRATION_PERIOD), the value
files on every read; files stay open between reads.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from os import pread
from pathlib import Path

from vhost_scmi.devices.kind import DeviceKind, Property
from vhost_scmi.devices.sensor import (
    Axis,
    DeviceError,
    DeviceSpecError,
    Sensor,
    Unit,
    check_name,
    fit_name,
)
from vhost_scmi.devices.sysfs import (
    MAX_ATTRIBUTE,
    Attribute,
    Conversion,
    decimal_exponent,
    parse_decimal,
    read_text,
)

log = logging.getLogger(__name__)

DEFAULT_NAME = "iio"
AXES = "xyz"
#: Seconds between re-reads of _scale and _offset (and checks the files still exist).
CALIBRATION_PERIOD = 1.0

#: IIO channel type -> SCMI unit and the exponent turning the IIO unit into it.
UNITS: dict[str, tuple[Unit, int]] = {
    "accel": (Unit.METERS_PER_SECOND_SQUARED, 0),
    "angl": (Unit.RADIANS, 0),
    "anglvel": (Unit.RADIANS_PER_SECOND, 0),
    "capacitance": (Unit.FARADS, -9),  # nanofarads
    "colortemp": (Unit.KELVIN, 0),
    "concentration": (Unit.PERCENTAGE, 0),
    "current": (Unit.AMPS, -3),  # milliamps
    "deltaangl": (Unit.RADIANS, 0),
    "deltavelocity": (Unit.METERS_PER_SECOND, 0),
    "distance": (Unit.METERS, 0),
    "electricalconductivity": (Unit.SIEMENS, 0),  # per meter
    "energy": (Unit.JOULES, 0),
    "gravity": (Unit.METERS_PER_SECOND_SQUARED, 0),
    "humidityrelative": (Unit.PERCENTAGE, -3),  # milli percent
    "illuminance": (Unit.LUX, 0),
    "magn": (Unit.GAUSS, 0),
    "phase": (Unit.RADIANS, 0),
    "positionrelative": (Unit.PERCENTAGE, -3),  # milli percent
    "power": (Unit.WATTS, -3),  # milliwatts
    "pressure": (Unit.PASCALS, 3),  # kilopascals
    "proximity": (Unit.METERS, 0),
    "resistance": (Unit.OHMS, 0),
    "steps": (Unit.COUNTS, 0),
    "temp": (Unit.DEGREES_C, -3),  # millidegrees
    "velocity": (Unit.METERS_PER_SECOND, -3),  # as rust-vmm's daemon has it
    "voltage": (Unit.VOLTS, -3),  # millivolts
}

_CHANNEL = re.compile(r"(?:in|out)_([a-z]+)")


@dataclass
class _Value:
    """One value of the sensor: its file, calibration files and conversion."""

    label: str
    value: Attribute
    scale: Attribute | None
    offset: Attribute | None
    conversion: Conversion
    calibration: tuple[bytes, bytes]
    #: Decimal places of the value file's readings (0 for _raw).
    decimals: int

    def calibrate(self) -> None:
        """Check the files are there; follow a changed _scale or _offset, keeping the
        exponent the guest knows."""
        for attribute in (self.value, self.scale, self.offset):
            if attribute is not None:
                attribute.check()
        current = (_read_calibration(self.scale), _read_calibration(self.offset))
        if current == self.calibration:
            return
        scale, offset = _calibration_values(current, self.label)
        old = self.conversion
        self.conversion = Conversion(scale, offset, old.unit_exponent, self.decimals,
                                     exponent=old.exponent)
        self.calibration = current

    def close(self) -> None:
        for attribute in (self.value, self.scale, self.offset):
            if attribute is not None:
                attribute.close()


def _read_calibration(attribute: Attribute | None) -> bytes:
    return attribute.read().strip() if attribute is not None else b""


def _calibration_values(texts: tuple[bytes, bytes], where: str) -> tuple[Decimal, Decimal]:
    scale_text, offset_text = texts
    scale = parse_decimal(scale_text, f"{where} scale") if scale_text else Decimal(1)
    offset = parse_decimal(offset_text, f"{where} offset") if offset_text else Decimal(0)
    return scale, offset


class IioSensor(Sensor):
    """An IIO channel: a scalar, or up to three axes."""

    def __init__(self, name: str, values: list[_Value], unit: Unit, prefix: str,
                 vector: bool) -> None:
        self.name = name
        self._values = values
        self._conversions = [v.conversion for v in values]
        self._files = [v.value for v in values]
        self._fds = [v.value.fd for v in values]
        self._calibrated = time.monotonic()
        if vector:
            short = prefix.split("_", 1)[1] if "_" in prefix else prefix
            self.axes = tuple(Axis(f"{short}_{v.label[-1].upper()}", unit,
                                   v.conversion.exponent) for v in values)
        else:
            self.unit, self.exponent = unit, values[0].conversion.exponent

    def read(self) -> list[int]:
        now = time.monotonic()
        if now - self._calibrated >= CALIBRATION_PERIOD:
            self._calibrated = now
            for value in self._values:
                value.calibrate()
            self._conversions = [v.conversion for v in self._values]
        try:
            texts = [pread(fd, MAX_ATTRIBUTE, 0) for fd in self._fds]
        except OSError as err:
            raise DeviceError(f"{self.name}: {err.strerror}") from err
        return [conversion(text, file.path) for conversion, text, file
                in zip(self._conversions, texts, self._files, strict=True)]

    def close(self) -> None:
        for value in self._values:
            value.close()


def _value_file(directory: Path, stem: str) -> Path | None:
    for suffix in ("_raw", "_input"):
        path = directory / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def _calibration_file(directory: Path, candidates: list[str],
                      opened: dict[Path, Attribute]) -> Attribute | None:
    for stem in candidates:
        path = directory / stem
        if path in opened:
            return opened[path]
        if path.is_file():
            opened[path] = Attribute(path)
            return opened[path]
    return None


def _open_value(directory: Path, channel: str, kind: str, axis: str | None,
                unit_exponent: int, opened: dict[Path, Attribute]) -> _Value:
    """Open an axis's (or the scalar's) value file; `opened` shares calibration files."""
    stem = f"{channel}_{axis}" if axis else channel
    path = _value_file(directory, stem)
    assert path is not None
    direction = channel.split("_", 1)[0]
    scale = offset = None
    value = Attribute(path)
    try:
        names = [f"{stem}_{{}}", f"{channel}_{{}}", f"{direction}_{kind}_{{}}"]
        scale = _calibration_file(directory, [n.format("scale") for n in dict.fromkeys(names)],
                                  opened)
        offset = _calibration_file(directory,
                                   [n.format("offset") for n in dict.fromkeys(names)], opened)
        calibration = (_read_calibration(scale), _read_calibration(offset))
        scale_value, offset_value = _calibration_values(calibration, str(path))
        sample = value.read().strip()
        decimals = -min(0, decimal_exponent(parse_decimal(sample, path)))
        conversion = Conversion(scale_value, offset_value, unit_exponent, decimals)
        conversion(sample, path)
    except DeviceError as err:
        value.close()
        raise DeviceSpecError(f"unusable IIO channel file: {err}") from err
    except BaseException:
        value.close()
        raise
    return _Value(stem, value, scale, offset, conversion, calibration, decimals)


def _available_channels(directory: Path) -> list[str]:
    channels = set()
    for path in directory.iterdir():
        match = re.fullmatch(r"((?:in|out)_[a-z]+\d*)(?:_[xyz])?_(?:raw|input)", path.name)
        if match:
            channels.add(match.group(1))
    return sorted(channels)


def create_iio_sensor(path: str, channel: str, name: str | None = None) -> IioSensor:
    """Return the sensor of `channel` in the IIO device directory `path`.

    Raises DeviceSpecError when the directory or the channel is missing or unusable.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise DeviceSpecError(f"IIO device '{path}' is not a directory")
    match = _CHANNEL.match(channel)
    if not match or "/" in channel:
        raise DeviceSpecError(f"'{channel}' is not an IIO channel prefix such as in_accel")
    kind = match.group(1)
    unit, unit_exponent = UNITS.get(kind, (Unit.UNSPECIFIED, 0))
    if kind not in UNITS:
        log.warning("IIO channel type '%s' has no SCMI unit: reported as unspecified", kind)
    axes = [axis for axis in AXES if _value_file(directory, f"{channel}_{axis}")]
    if not axes and not _value_file(directory, channel):
        available = ", ".join(_available_channels(directory)) or "none"
        raise DeviceSpecError(f"no IIO channel '{channel}' in '{path}' (channels there: "
                              f"{available})")
    values: list[_Value] = []
    opened: dict[Path, Attribute] = {}
    try:
        for axis in axes or [None]:
            values.append(_open_value(directory, channel, kind, axis, unit_exponent, opened))
    except BaseException:
        for value in values:
            value.close()
        for attribute in opened.values():
            attribute.close()
        raise
    if name is None:
        name = fit_name(read_text(directory / "name") or DEFAULT_NAME)
    return IioSensor(name, values, unit, channel, vector=bool(axes))


def _create(props: Mapping[str, str]) -> list[Sensor]:
    name = props.get("name")
    if name is not None:
        check_name(name)
    return [create_iio_sensor(props["path"], props["channel"], name)]


KIND = DeviceKind(
    id="iio",
    summary="industrial I/O sensor",
    description="A channel of a Linux IIO device: its x/y/z axes, or a scalar value,\n"
                "with _scale and _offset applied and the unit mapped to SCMI's.",
    properties=(
        Property("path", "the IIO device directory (e.g. /sys/bus/iio/devices/iio:device0)",
                 required=True),
        Property("channel", "channel prefix (e.g. in_accel, in_anglvel, in_temp, "
                 "in_voltage0)", required=True),
        Property("name", "sensor name, at most 15 bytes (default: the device's name)"),
    ),
    example="iio,path=/sys/bus/iio/devices/iio:device0,channel=in_accel",
    create=_create,
)
