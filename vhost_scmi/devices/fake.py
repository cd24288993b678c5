# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`fake`: a 3-axis accelerometer with made-up readings, for setting up and testing.

Readings match rust-vmm's fake device: the n-th read (from 0) returns
x = n mod 256, y = x + 100, z = x + 200, so a guest sees live, changing data.
Linux's scmi_iio reads the whole sensor for each channel it shows, so a guest reading
in_accel_x_raw, in_accel_y_raw, in_accel_z_raw in turn first sees 0, 101 and 202.
"""

from __future__ import annotations

from collections.abc import Mapping

from vhost_scmi.devices.kind import ASYNC_PROPERTY, DeviceKind, Property, switch
from vhost_scmi.devices.sensor import Axis, ExtendedAttributes, Sensor, Unit, check_name

DEFAULT_NAME = "fake"
#: Values cycle through 256 steps; axis k adds 100 * k.
STEPS = 256
AXIS_STEP = 100


class FakeAccelerometer(Sensor):
    """Three axes `acc_X`, `acc_Y`, `acc_Z` in m/s²."""

    blocking = False  # in memory: called inline

    axes = tuple(
        Axis(f"acc_{axis}", Unit.METERS_PER_SECOND_SQUARED,
             extended=ExtendedAttributes(resolution=1, resolution_exponent=0,
                                         min_value=AXIS_STEP * k,
                                         max_value=AXIS_STEP * k + STEPS - 1))
        for k, axis in enumerate("XYZ")
    )

    def __init__(self, name: str = DEFAULT_NAME) -> None:
        self.name = name
        self._counter = 0

    def read(self) -> tuple[int, int, int]:
        value = self._counter
        self._counter = (value + 1) % STEPS
        return (value, value + AXIS_STEP, value + 2 * AXIS_STEP)


def _create(props: Mapping[str, str]) -> list[Sensor]:
    sensor = FakeAccelerometer(check_name(props.get("name", DEFAULT_NAME)))
    sensor.asynchronous = switch(props, "async")
    return [sensor]


KIND = DeviceKind(
    id="fake",
    summary="fake accelerometer",
    description="A 3-axis accelerometer (m/s², axes acc_X, acc_Y, acc_Z) whose readings\n"
                "change on every read. Needs no host device.",
    properties=(Property("name", "sensor name, at most 15 bytes (default: fake)"),
                ASYNC_PROPERTY),
    example="fake,name=foo",
    create=_create,
)
