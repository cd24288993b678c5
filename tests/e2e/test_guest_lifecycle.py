# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Connections come and go: several guests in a row, and a daemon restarted under a guest."""

from __future__ import annotations

import re
import signal

READ_ONCE = r"""
d=/sys/bus/iio/devices/iio:device0
echo "name=$(cat $d/name)"
echo "read=$(cat $d/in_accel_x_raw) $(cat $d/in_accel_y_raw) $(cat $d/in_accel_z_raw)"
"""

INTEGERS = re.compile(r"-?\d+ -?\d+ -?\d+")


def test_one_daemon_serves_guests_in_a_row(e2e):
    daemon = e2e.start_daemon("fake,name=reused")
    first = e2e.run_guest(READ_ONCE, daemon.socket_path, name="boot1")
    assert daemon.alive(), daemon.describe()
    second = e2e.run_guest(READ_ONCE, daemon.socket_path, name="boot2")

    for result in (first, second):
        assert result.rc == 0, result.report()
        assert result.values().get("name") == "reused", result.report()
        assert INTEGERS.fullmatch(result.values().get("read", "")), result.report()
    # The same daemon process (and sensor) served both: its readings carried on.
    assert first.values()["read"] != second.values()["read"], second.report()
    assert daemon.alive(), daemon.describe()


READY = "@@E2E-READY-FOR-RESTART@@"

# Reads once, waits for the host to restart the daemon, reads again.
READ_ACROSS_RESTART = rf"""
d=/sys/bus/iio/devices/iio:device0
echo "before=$(cat $d/in_accel_x_raw) $(cat $d/in_accel_y_raw) $(cat $d/in_accel_z_raw)"
echo "{READY}"
read -r line
echo "host=$line"
echo "after=$(cat $d/in_accel_x_raw) $(cat $d/in_accel_y_raw) $(cat $d/in_accel_z_raw)"
echo "name=$(cat $d/name)"
"""


def test_guest_reads_after_daemon_restart(e2e):
    socket_path = e2e.socket_path()
    first = e2e.start_daemon("fake,name=restarted", socket_path=socket_path, name="first")
    vm = e2e.boot(READ_ACROSS_RESTART, socket_path, reconnect=True)
    vm.wait_for(READY, 240)

    # A clean stop, then a new daemon on the same path, as a service manager would do.
    status = first.stop(signal.SIGTERM)
    assert status == 0, first.describe()
    second = e2e.start_daemon("fake,name=restarted", socket_path=socket_path, name="second")
    # QEMU retries the connection every second (chardev reconnect) and then replays
    # the device's set-up from its main loop.
    second.wait_connected(60)
    vm.main_loop_barrier()
    vm.send_line("go")
    result = vm.wait_result(240)

    assert result.rc == 0, result.report()
    values = result.values()
    assert values.get("host") == "go", result.report()
    assert INTEGERS.fullmatch(values.get("before", "")), result.report()
    # The restarted daemon's fake sensor starts afresh: its first three reads give
    # x=0, then y=1+100, then z=2+200.
    assert values.get("after") == "0 101 202", f"{result.report()}\n{e2e.daemons_report()}"
    assert values.get("name") == "restarted", result.report()
    assert second.alive(), second.describe()
