# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""A real arm64 Linux guest reads `fake` sensors through QEMU and the installed daemon."""

from __future__ import annotations

import re

from vhost_scmi.scmi import base

from .guest import GuestResult

# Lists the guest's IIO devices in index order, then reads the first one three times.
LIST_AND_READ = r"""
cd /sys/bus/iio/devices
for n in 0 1 2 3 4 5 6 7 8 9; do
    d=iio:device$n
    [ -e "$d" ] && echo "device$n=$(cat $d/name)"
done
echo "count=$(ls -d iio:device* 2>/dev/null | wc -l)"
d=/sys/bus/iio/devices/iio:device0
ls "$d" | grep '^in_accel' | sed 's/^/file=/'
for i in 1 2 3; do
    echo "read$i=$(cat $d/in_accel_x_raw) $(cat $d/in_accel_y_raw) $(cat $d/in_accel_z_raw)"
done
"""


def reads(result: GuestResult) -> list[tuple[int, ...]]:
    values = result.values()
    out = []
    for i in (1, 2, 3):
        fields = values.get(f"read{i}", "").split()
        assert len(fields) == 3 and all(re.fullmatch(r"-?\d+", f) for f in fields), \
            result.report()
        out.append(tuple(int(f) for f in fields))
    return out


def test_fake_sensor_appears_as_iio_device(e2e):
    daemon = e2e.start_daemon("fake,name=e2e-accel")
    result = e2e.run_guest(LIST_AND_READ, daemon.socket_path)

    assert result.rc == 0, result.report()
    # The transport bound, and Linux read our Base protocol answers.
    assert result.dmesg_matching(r"Using scmi_virtio_transport"), result.report()
    versions = result.dmesg_matching(r"SCMI Protocol v\d+\.\d+ '[^']*:[^']*' Firmware version")
    assert len(versions) == 1, result.report()
    major, minor, vendor, sub_vendor, firmware = re.search(
        r"v(\d+)\.(\d+) '([^':]*):([^']*)' Firmware version (0x[0-9a-f]+)", versions[0]).groups()
    assert (int(major) << 16 | int(minor)) == base.VERSION, result.report()
    assert (vendor, sub_vendor) == (base.VENDOR, base.SUB_VENDOR), result.report()
    assert int(firmware, 16) == base.implementation_version(), result.report()

    values = result.values()
    assert values.get("count") == "1", result.report()
    assert values.get("device0") == "e2e-accel", result.report()
    files = {line.removeprefix("file=") for line in result.output if line.startswith("file=")}
    assert {"in_accel_x_raw", "in_accel_y_raw", "in_accel_z_raw"} <= files, result.report()
    # Every sysfs read is a fresh SCMI READING_GET, and the n-th read of the fake sensor
    # gives x = n, y = n + 100, z = n + 200: the guest reads x, y, z in turn.
    assert reads(result) == [(0, 101, 202), (3, 104, 205), (6, 107, 208)], result.report()
    assert daemon.alive(), daemon.describe()


def test_several_devices_keep_command_line_order(e2e):
    names = ["first", "second", "third", "fourth", "fifth"]
    daemon = e2e.start_daemon(*(f"fake,name={name}" for name in names))
    result = e2e.run_guest(LIST_AND_READ, daemon.socket_path)

    assert result.rc == 0, result.report()
    values = result.values()
    assert values.get("count") == str(len(names)), result.report()
    seen = [values.get(f"device{n}") for n in range(len(names))]
    assert seen == names, result.report()
    assert daemon.alive(), daemon.describe()


BUFFER_SAMPLES = 8

# Enables the IIO buffer of the first device (continuous-update notifications) and
# collects samples from its character device.
READ_BUFFER = rf"""
d=/sys/bus/iio/devices/iio:device0
echo "name=$(cat $d/name)"
for a in x y z; do
    echo "type_$a=$(cat $d/scan_elements/in_accel_${{a}}_type)"
    echo "index_$a=$(cat $d/scan_elements/in_accel_${{a}}_index)"
    echo 1 > $d/scan_elements/in_accel_${{a}}_en
done
echo "frequency=$(cat $d/sampling_frequency 2>/dev/null || cat $d/in_accel_sampling_frequency)"
buffer=$d/buffer0
[ -d $buffer ] || buffer=$d/buffer
echo 1 > $buffer/enable
echo "enabled=$(cat $buffer/enable)"
timeout 120 dd if=/dev/iio:device0 of=/tmp/samples bs=4096 count={BUFFER_SAMPLES} 2>/dev/null
echo "dd=$?"
echo 0 > $buffer/enable
echo "disabled=$(cat $buffer/enable)"
echo "bytes=$(wc -c < /tmp/samples)"
echo SAMPLES-BEGIN
od -An -v -tx1 /tmp/samples
echo SAMPLES-END
echo "after=$(cat $d/in_accel_x_raw)"
"""


def parse_scan_type(text: str) -> tuple[str, bool, int, int]:
    """IIO scan type "le:s64/64>>0" as (endianness, signed, storage bytes, shift)."""
    match = re.fullmatch(r"(le|be):([su])(\d+)/(\d+)>>(\d+)", text)
    assert match, text
    endian, sign, _realbits, storage, shift = match.groups()
    return endian, sign == "s", int(storage) // 8, int(shift)


def test_iio_buffer_receives_notifications(e2e):
    daemon = e2e.start_daemon("fake,name=buffered")
    result = e2e.run_guest(READ_BUFFER, daemon.socket_path)

    assert result.rc == 0, result.report()
    values = result.values()
    assert values.get("enabled") == "1", result.report()
    assert values.get("dd") == "0", result.report()
    assert values.get("disabled") == "0", result.report()

    types = {axis: parse_scan_type(values[f"type_{axis}"]) for axis in "xyz"}
    order = sorted("xyz", key=lambda axis: int(values[f"index_{axis}"]))
    # The IIO core packs the enabled channels in index order, each aligned to its size.
    layout, offset = {}, 0
    for axis in order:
        size = types[axis][2]
        offset += -offset % size
        layout[axis] = offset
        offset += size
    sample_size = offset + (-offset % max(t[2] for t in types.values()))

    start = result.output.index("SAMPLES-BEGIN")
    end = result.output.index("SAMPLES-END")
    data = bytes.fromhex("".join(result.output[start + 1:end]).replace(" ", ""))
    assert len(data) == int(values["bytes"]), result.report()
    assert len(data) >= BUFFER_SAMPLES * sample_size, result.report()
    assert len(data) % sample_size == 0, result.report()

    samples = []
    for start_of_sample in range(0, len(data), sample_size):
        sample = {}
        for axis in "xyz":
            endian, signed, size, shift = types[axis]
            at = start_of_sample + layout[axis]
            raw = data[at:at + size]
            sample[axis] = int.from_bytes(raw, "little" if endian == "le" else "big",
                                          signed=signed) >> shift
        samples.append((sample["x"], sample["y"], sample["z"]))
    # The fake sensor's readings: y = x + 100, z = x + 200, x changing on every read.
    for x, y, z in samples:
        assert (y, z) == (x + 100, x + 200), f"{samples}\n{result.report()}"
    assert len({x for x, _, _ in samples}) > 1, f"{samples}\n{result.report()}"
    # Sysfs reads still work after the buffer is switched off.
    assert re.fullmatch(r"-?\d+", values.get("after", "")), result.report()
    assert daemon.alive(), daemon.describe()

