# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`iio`: a channel of a Linux Industrial I/O device (/sys/bus/iio/devices/iio:deviceN).

A channel prefix such as `in_accel` names either axes (`in_accel_x_raw`, `_y_`, `_z_`)
or a scalar (`in_temp_raw`, `in_voltage0_raw`, the differential `in_voltage1-voltage2_raw`,
the modified `in_activity_walking_input`); `_input` files (already processed values)
stand in for missing `_raw` ones. A value is (raw + offset) x scale in the unit the IIO
ABI gives the channel type (Documentation/ABI/testing/sysfs-bus-iio), converted to the
SCMI unit with a decimal exponent chosen so the guest gets the host's full precision.

`_scale` and `_offset` are looked up in every form the IIO core names them, most
specific first: per channel (`in_accel_x_scale`, `in_voltage0_scale`), per channel type
(`in_accel_scale`; `in_voltage-voltage_scale` for differential channels), per direction
(`in_scale`) and per device (`scale`). A `_scale_available` (or `_offset_available`)
list, in any of those forms, makes the exponent fine enough for every scale the device
may switch to. `_scale` and `_offset` are re-read at most once a second
(CALIBRATION_PERIOD), the value files on every read; files stay open between reads.

The ABI gives a `_raw` value a unit only through its scale: a `_raw` channel without
any scale attribute reports its raw counts (+ offset) with the SCMI unit "unspecified",
except for channel types that count things (steps, count, index).
"""

from __future__ import annotations

import logging
import re
import textwrap
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from os import pread
from pathlib import Path

from vhost_scmi.devices.kind import ASYNC_PROPERTY, DeviceKind, Property, switch
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

#: IIO channel type -> SCMI unit and the exponent turning the ABI's unit into it. Every
#: type of the IIO core (iio_chan_type_name_spec, Linux 6.12) is here or in UNSUPPORTED.
UNITS: dict[str, tuple[Unit, int]] = {
    "accel": (Unit.METERS_PER_SECOND_SQUARED, 0),
    "activity": (Unit.PERCENTAGE, 0),  # confidence in the activity
    "altvoltage": (Unit.VOLTS, -3),  # millivolts, as voltage
    "angl": (Unit.RADIANS, 0),
    "anglvel": (Unit.RADIANS_PER_SECOND, 0),
    "capacitance": (Unit.FARADS, -9),  # nanofarads
    "cct": (Unit.COLOR_TEMPERATURE_K, 0),
    "chromaticity": (Unit.NONE, 0),  # CIE 1931 x or y coordinate
    "colortemp": (Unit.COLOR_TEMPERATURE_K, 0),
    "concentration": (Unit.PERCENTAGE, 0),
    "count": (Unit.COUNTS, 0),
    "current": (Unit.AMPS, -3),  # milliamps
    "deltaangl": (Unit.RADIANS, 0),
    "deltavelocity": (Unit.METERS_PER_SECOND, 0),
    "distance": (Unit.METERS, 0),
    "electricalconductivity": (Unit.SIEMENS, 0),  # per meter
    "energy": (Unit.JOULES, 0),
    "gravity": (Unit.METERS_PER_SECOND_SQUARED, 0),
    "humidityrelative": (Unit.PERCENTAGE, -3),  # milli percent
    "illuminance": (Unit.LUX, 0),
    "index": (Unit.COUNTS, 0),
    "intensity": (Unit.NONE, 0),  # unit-less light intensity
    "magn": (Unit.GAUSS, 0),
    "ph": (Unit.NONE, 0),
    "phase": (Unit.RADIANS, 0),
    "positionrelative": (Unit.PERCENTAGE, -3),  # milli percent
    "power": (Unit.WATTS, -3),  # milliwatts
    "pressure": (Unit.PASCALS, 3),  # kilopascals
    "proximity": (Unit.METERS, 0),
    "resistance": (Unit.OHMS, 0),
    "steps": (Unit.COUNTS, 0),
    "temp": (Unit.DEGREES_C, -3),  # millidegrees
    "timestamp": (Unit.SECONDS, -9),  # nanoseconds
    "uvindex": (Unit.NONE, 0),
    "velocity": (Unit.METERS_PER_SECOND, 0),
    "voltage": (Unit.VOLTS, -3),  # millivolts
}
#: Channel types whose ABI unit SCMI has no unit for: reported as "unspecified", the
#: values in the ABI's unit.
UNSUPPORTED: dict[str, str] = {
    "incli": "degrees",
    "massconcentration": "micrograms per cubic meter",
    "rot": "degrees",
}
#: Types whose values are counts: a _raw value needs no scale to have its unit.
COUNTED = frozenset(("count", "index", "steps"))

#: direction, type, index (with the second channel of a differential one), the rest
#: (modifier, extended name).
_CHANNEL = re.compile(r"(in|out)_([a-z]+)(\d+(-[a-z]+\d+)?)?(_.*)?")


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
    #: The SCMI unit of the values (UNSPECIFIED for raw counts without a scale).
    unit: Unit

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

    def __init__(self, name: str, values: list[_Value], prefix: str, vector: bool) -> None:
        self.name = name
        self._values = values
        self._conversions = [v.conversion for v in values]
        self._files = [v.value for v in values]
        self._fds = [v.value.fd for v in values]
        self._calibrated = time.monotonic()
        if vector:
            short = prefix.split("_", 1)[1] if "_" in prefix else prefix
            self.axes = tuple(Axis(f"{short}_{v.label[-1].upper()}", v.unit,
                                   v.conversion.exponent) for v in values)
        else:
            self.unit, self.exponent = values[0].unit, values[0].conversion.exponent

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


def _calibration_names(channel: str, stem: str, postfix: str) -> list[str]:
    """Return the names an attribute `postfix` (scale, offset, scale_available...) of the
    value `stem` of `channel` can have, most specific first, as the IIO core makes them:
    separate, shared by type (`in_voltage-voltage_` for differential channels), shared by
    direction, shared by all."""
    match = _CHANNEL.fullmatch(channel)
    assert match is not None
    direction, kind, differential = match.group(1), match.group(2), match.group(4)
    by_type = f"{direction}_{kind}-{kind}" if differential else f"{direction}_{kind}"
    names = [f"{stem}_{postfix}", f"{channel}_{postfix}", f"{by_type}_{postfix}",
             f"{direction}_{postfix}", postfix]
    return list(dict.fromkeys(names))


def _calibration_file(directory: Path, names: list[str],
                      opened: dict[Path, Attribute]) -> Attribute | None:
    for name in names:
        path = directory / name
        if path in opened:
            return opened[path]
        if path.is_file():
            opened[path] = Attribute(path)
            return opened[path]
    return None


def _available(directory: Path, names: list[str]) -> list[Decimal]:
    """Return the values of the first `_available` list among `names`: a list
    (`0.1 0.2`) or a range (`[min step max]`), whose bounds and step are returned.
    An unreadable or malformed list is ignored (it only refines the exponent)."""
    for name in names:
        try:
            text = read_text(directory / name)
            if text is None:
                continue
            return [parse_decimal(word, name) for word in text.strip("[]").split()]
        except (DeviceError, DeviceSpecError) as err:
            log.warning("ignoring %s", err)
            return []
    return []


def _finest(values: list[Decimal]) -> Decimal:
    """Return the value among `values` with the most decimal places."""
    return min(values, key=decimal_exponent)


def _open_value(directory: Path, channel: str, kind: str, axis: str | None,
                opened: dict[Path, Attribute]) -> _Value:
    """Open an axis's (or the scalar's) value file; `opened` shares calibration files."""
    stem = f"{channel}_{axis}" if axis else channel
    path = _value_file(directory, stem)
    assert path is not None
    scale = offset = None
    value = Attribute(path)
    try:
        scale = _calibration_file(directory, _calibration_names(channel, stem, "scale"),
                                  opened)
        offset = _calibration_file(directory, _calibration_names(channel, stem, "offset"),
                                   opened)
        unit, unit_exponent = UNITS.get(kind, (Unit.UNSPECIFIED, 0))
        if scale is None and path.name.endswith("_raw") and kind not in COUNTED:
            log.warning("%s: no scale attribute, so no unit: raw counts reported as "
                        "unspecified", path)
            unit, unit_exponent = Unit.UNSPECIFIED, 0
        calibration = (_read_calibration(scale), _read_calibration(offset))
        scale_value, offset_value = _calibration_values(calibration, str(path))
        sample = value.read().strip()
        decimals = -min(0, decimal_exponent(parse_decimal(sample, path)))
        # The exponent must serve every scale and offset the device offers.
        scales = _available(directory, _calibration_names(channel, stem, "scale_available"))
        offsets = _available(directory,
                             _calibration_names(channel, stem, "offset_available"))
        finest = Conversion(_finest([scale_value, *scales]),
                            _finest([offset_value, *offsets]), unit_exponent, decimals)
        conversion = Conversion(scale_value, offset_value, unit_exponent, decimals,
                                exponent=finest.exponent)
        conversion(sample, path)
    except DeviceError as err:
        value.close()
        raise DeviceSpecError(f"unusable IIO channel file: {err}") from err
    except BaseException:
        value.close()
        raise
    return _Value(stem, value, scale, offset, conversion, calibration, decimals, unit)


def _available_channels(directory: Path) -> list[str]:
    channels = set()
    for path in directory.iterdir():
        match = re.fullmatch(r"((?:in|out)_[a-z]+.*?)(?:_[xyz])?_(?:raw|input)", path.name)
        if match and _CHANNEL.fullmatch(match.group(1)):
            channels.add(match.group(1))
    return sorted(channels)


def create_iio_sensor(path: str, channel: str, name: str | None = None) -> IioSensor:
    """Return the sensor of `channel` in the IIO device directory `path`.

    Raises DeviceSpecError when the directory or the channel is missing or unusable.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise DeviceSpecError(f"IIO device '{path}' is not a directory")
    match = _CHANNEL.fullmatch(channel)
    if not match or "/" in channel or "\0" in channel:
        raise DeviceSpecError(f"'{channel}' is not an IIO channel prefix such as in_accel")
    kind = match.group(2)
    if kind in UNSUPPORTED:
        log.warning("IIO channel type '%s' is in %s, which SCMI has no unit for: reported "
                    "as unspecified", kind, UNSUPPORTED[kind])
    elif kind not in UNITS:
        log.warning("IIO channel type '%s' is unknown: reported as unspecified", kind)
    axes = [axis for axis in AXES if _value_file(directory, f"{channel}_{axis}")]
    if not axes and not _value_file(directory, channel):
        available = ", ".join(_available_channels(directory)) or "none"
        raise DeviceSpecError(f"no IIO channel '{channel}' in '{path}' (channels there: "
                              f"{available})")
    values: list[_Value] = []
    opened: dict[Path, Attribute] = {}
    try:
        for axis in axes or [None]:
            values.append(_open_value(directory, channel, kind, axis, opened))
    except BaseException:
        for value in values:
            value.close()
        for attribute in opened.values():
            attribute.close()
        raise
    if name is None:
        name = fit_name(read_text(directory / "name") or DEFAULT_NAME)
    return IioSensor(name, values, channel, vector=bool(axes))


def _create(props: Mapping[str, str]) -> list[Sensor]:
    name = props.get("name")
    if name is not None:
        check_name(name)
    asynchronous = switch(props, "async")
    sensors: list[Sensor] = [create_iio_sensor(props["path"], props["channel"], name)]
    for sensor in sensors:
        sensor.asynchronous = asynchronous
    return sensors


KIND = DeviceKind(
    id="iio",
    summary="industrial I/O sensor",
    description="A channel of a Linux IIO device: its x/y/z axes, or a scalar value\n"
                "(differential and modified channels too), with _scale and _offset\n"
                "applied in whichever IIO form the device has them (per channel, per\n"
                "type, shared) and the unit mapped to SCMI's. A _raw channel without\n"
                "a scale has no unit: its raw counts are reported as unspecified.\n"
                + textwrap.fill("Channel types SCMI has no unit for, reported as unspecified: "
                                + ", ".join(f"{kind} ({unit})"
                                            for kind, unit in UNSUPPORTED.items()) + ".",
                                width=70),
    properties=(
        Property("path", "the IIO device directory (e.g. /sys/bus/iio/devices/iio:device0)",
                 required=True),
        Property("channel", "channel prefix (e.g. in_accel, in_anglvel, in_temp, "
                 "in_voltage0)", required=True),
        Property("name", "sensor name, at most 15 bytes (default: the device's name)"),
        ASYNC_PROPERTY,
    ),
    example="iio,path=/sys/bus/iio/devices/iio:device0,channel=in_accel",
    create=_create,
)
