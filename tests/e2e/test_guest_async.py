# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""A real guest while the daemon streams at 1 kHz, and next to a VM on a hung device."""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from vhost_scmi.scmi.codec import pack_header

from vhost_scmi.bench import slowread
from vhost_scmi.vhost.frontend import FrontendError, GuestRam, VhostUserFrontend

STREAM_SECONDS = 10
RATE = 1000

# Streams the first IIO device through its buffer at 1 kHz for STREAM_SECONDS, with
# timestamps, and reports the sample count and the timestamps' span and order.
STREAM_1KHZ = rf"""
d=/sys/bus/iio/devices/iio:device0
echo "available=$(cat $d/sampling_frequency_available 2>/dev/null)"
for a in x y z; do
    echo "type_$a=$(cat $d/scan_elements/in_accel_${{a}}_type)"
    echo 1 > $d/scan_elements/in_accel_${{a}}_en
done
echo "type_t=$(cat $d/scan_elements/in_timestamp_type)"
echo 1 > $d/scan_elements/in_timestamp_en
f=$d/sampling_frequency
[ -e $f ] || f=$d/in_accel_sampling_frequency
echo {RATE} > $f
echo "frequency=$(cat $f)"
buffer=$d/buffer0
[ -d $buffer ] || buffer=$d/buffer
echo 16384 > $buffer/length
echo 1 > $buffer/enable
cat /dev/iio:device0 > /tmp/samples &
reader=$!
sleep {STREAM_SECONDS}
echo 0 > $buffer/enable
kill $reader
wait $reader 2>/dev/null
echo "bytes=$(wc -c < /tmp/samples)"
od -An -v -t d8 -w32 /tmp/samples | awk '
    {{ t = $4; if (n > 0 && t < last) back++; if (n == 0) first = t; last = t; n++ }}
    END {{ printf "samples=%d\nspan_ns=%.0f\nbackwards=%d\n", n, last - first, back }}'
"""


def test_iio_buffer_at_1khz_gets_its_samples(e2e):
    daemon = e2e.start_daemon("fake,name=imu")
    result = e2e.run_guest(STREAM_1KHZ, daemon.socket_path)

    assert result.rc == 0, result.report()
    values = result.values()
    # Three s64 axes and the 64-bit timestamp: 32-byte samples, as the script parses them.
    assert all(values.get(f"type_{axis}") == "le:s64/64>>0" for axis in "xyz"), \
        result.report()
    assert values.get("type_t") in ("le:s64/64>>0", "le:u64/64>>0"), result.report()
    assert float(values["frequency"]) == RATE, result.report()
    samples, span = int(values["samples"]), int(values["span_ns"])
    assert int(values["bytes"]) == 32 * samples, result.report()
    assert values["backwards"] in ("", "0"), result.report()  # monotonic timestamps
    assert span >= (STREAM_SECONDS - 1) * 1e9, result.report()
    expected = span / 1e9 * RATE + 1
    assert samples >= 0.99 * expected, f"{samples} of {expected:.0f}\n{result.report()}"
    assert daemon.alive(), daemon.describe()


# Reads the fake accelerometer through sysfs, READS times, and reports what it read.
READS = 200
READ_LOOP = rf"""
d=/sys/bus/iio/devices/iio:device0
ok=0
for i in $(seq {READS}); do
    v=$(cat $d/in_accel_x_raw) && [ -n "$v" ] && ok=$((ok + 1))
done
echo "ok=$ok"
echo "hwmon=$(cat /sys/class/hwmon/hwmon*/temp1_input 2>&1 | head -1)"
"""


def reading_get(sensor: int, token: int) -> bytes:
    return struct.pack("<III", pack_header(0x6, 0, 0x15, token), sensor, 0)


@contextlib.contextmanager
def hammering(socket_path: Path, sensor: int) -> Iterator[dict[str, int]]:
    """A second VMM (the in-tree front-end) reading `sensor` back to back."""
    counts = {"answers": 0, "hardware_errors": 0}
    stop = threading.Event()
    ram = GuestRam()
    frontend = VhostUserFrontend(str(socket_path))
    cmdq, _eventq = frontend.setup(ram)

    def run() -> None:
        token = 0
        while not stop.is_set():
            token = (token + 1) & 0x3FF
            try:
                answer = cmdq.transact(reading_get(sensor, token), timeout=30)
            except FrontendError:
                return
            counts["answers"] += 1
            counts["hardware_errors"] += struct.unpack_from("<i", answer, 4)[0] == -9

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join(60)
        frontend.close()
        ram.close()


def test_a_guest_reads_on_while_another_vm_hammers_a_hung_device(e2e):
    library = slowread.build(e2e.workdir)
    value_file = slowread.make_hwmon(e2e.workdir / "hung-hwmon")
    fifo = e2e.workdir / "hang.fifo"
    os.mkfifo(fifo)
    env = dict(os.environ, LD_PRELOAD=str(library), SLOWREAD_PATH=str(value_file.resolve()),
               SLOWREAD_FIFO=str(fifo), SLOWREAD_SKIP="1")
    base = e2e.socket_path("vm")
    guest_socket, other_socket = (Path(f"{base}{index}") for index in range(2))
    daemon = e2e.start_daemon("fake", f"hwmon,path={value_file.parent},name=hung",
                              socket_path=base, options=["-c", "2", "--host-timeout", "200"],
                              env=env, listening=other_socket)
    with hammering(other_socket, 1) as counts:
        started = time.monotonic()
        while counts["hardware_errors"] < 2 and time.monotonic() - started < 30:
            time.sleep(0.05)
        assert counts["hardware_errors"] >= 2, daemon.describe()
        result = e2e.run_guest(READ_LOOP, guest_socket)
    assert result.rc == 0, result.report()
    values = result.values()
    assert values.get("ok") == str(READS), result.report()
    # The guest's own read of the hung device fails (EREMOTEIO from HARDWARE_ERROR),
    # instead of hanging.
    assert "error" in values.get("hwmon", "").lower(), result.report()
    assert counts["answers"] > READS, counts  # the other VM was answered all along
    assert daemon.alive(), daemon.describe()
