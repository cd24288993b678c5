# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Slow and hung host devices never hold up the event loop.

The device is a hwmon input whose reads really block in the kernel: an LD_PRELOAD
library (vhost_scmi.bench.slowread, compiled here) makes the daemon's pread of that
file first open a FIFO, which blocks until the test writes to it, or never. Two VMs
connect to one daemon (-c 2) through the in-tree vhost-user front-end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Daemon, Session
from scmi_helpers import SENSOR, command

from vhost_scmi.bench import slowread
from vhost_scmi.scmi.status import Status
from vhost_scmi.vhost.frontend import GuestRam, VhostUserFrontend

SLOW, FAST = 0, 1  # sensor ids: the hwmon input, then the fake accelerometer
SLOW_VALUE = 42000


@pytest.fixture
def slow_device(short_tmp: Path) -> dict[str, str]:
    """The environment that makes reads of a hwmon input hang on a FIFO."""
    library = slowread.build(short_tmp)
    value_file = slowread.make_hwmon(short_tmp / "hwmon", value=SLOW_VALUE)
    fifo = short_tmp / "hang.fifo"
    os.mkfifo(fifo)
    return dict(os.environ, LD_PRELOAD=str(library), SLOWREAD_PATH=str(value_file.resolve()),
                SLOWREAD_FIFO=str(fifo), SLOWREAD_SKIP="1")


def release(env: dict[str, str]) -> None:
    """Let one stalled read go on (blocks until the daemon is stalled on the FIFO)."""
    fd = os.open(env["SLOWREAD_FIFO"], os.O_WRONLY)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)


def start_two_vms(start_daemon: Callable[..., Daemon], short_tmp: Path, env: dict[str, str],
                  *options: str) -> tuple[Daemon, list[Path]]:
    base = short_tmp / "vm"
    daemon = start_daemon("-c", "2", "-d", f"hwmon,path={short_tmp / 'hwmon'},name=slow",
                          "-d", "fake", *options, socket_path=base, wait=False, env=env)
    paths = [Path(f"{base}{index}") for index in range(2)]
    for path in paths:
        daemon.socket_path = path
        daemon.wait_accepting()
    return daemon, paths


@contextlib.contextmanager
def vm(path: Path) -> Iterator[Session]:
    frontend = VhostUserFrontend(str(path))
    ram = GuestRam()
    session = Session(frontend, ram, [])
    try:
        session.queues = frontend.setup(ram)
        yield session
    finally:
        session.close()


def read(sensor: int, token: int = 0, flags: int = 0) -> bytes:
    return command(SENSOR, 0x6, sensor, flags, token=token)


def status_of(response: bytes) -> int:
    return struct.unpack_from("<i", response, 4)[0]


def value_of(response: bytes) -> int:
    return struct.unpack_from("<q", response, 8)[0]


def test_a_blocked_read_holds_up_nothing_and_completes_out_of_order(
        start_daemon, short_tmp: Path, slow_device: dict[str, str]) -> None:
    daemon, paths = start_two_vms(start_daemon, short_tmp, slow_device, "--host-timeout", "60000")
    with vm(paths[0]) as first, vm(paths[1]) as second:
        heads = first.cmdq.post([read(SLOW, token=1), read(FAST, token=2)], 256)
        # The request behind the blocked one, on the same queue, is answered.
        (fast,) = first.cmdq.wait_used(1)
        assert fast.head == heads[1] and status_of(fast.data) == Status.SUCCESS
        # So are the same VM's next requests, and the other VM's.
        for token in range(3, 10):
            assert status_of(first.cmdq.transact(read(FAST, token))) == Status.SUCCESS
            assert status_of(second.cmdq.transact(read(FAST, token))) == Status.SUCCESS
        # The device answers: the held request completes, with the reading.
        release(slow_device)
        (slow,) = first.cmdq.wait_used(1)
        assert slow.head == heads[0]
        assert slow.data[:4] == read(SLOW, token=1)[:4]
        assert status_of(slow.data) == Status.SUCCESS and value_of(slow.data) == SLOW_VALUE
    assert daemon.alive()


def test_an_asynchronous_read_answers_when_the_device_does(
        start_daemon, short_tmp: Path, slow_device: dict[str, str]) -> None:
    base = short_tmp / "async.sock"
    daemon = start_daemon("-d", f"hwmon,path={short_tmp / 'hwmon'},name=slow,async=on",
                          "--host-timeout", "60000", socket_path=base, env=slow_device)
    with daemon.session() as session:
        session.eventq.post_buffers(4, 136)
        answer = session.cmdq.transact(read(0, token=7, flags=1))
        assert status_of(answer) == Status.SUCCESS  # accepted at once
        assert session.eventq.collect() == []
        release(slow_device)
        (delayed,) = session.eventq.wait_used(1)
        # Delayed response: same message and token, type 2; status, sensor id, reading.
        assert struct.unpack_from("<Ii", delayed.data) == (
            struct.unpack_from("<I", read(0, token=7))[0] | 2 << 8, Status.SUCCESS)
        assert struct.unpack_from("<Iq", delayed.data, 8) == (0, SLOW_VALUE)


def test_a_hung_device_fails_at_its_deadline_then_fast_and_sigterm_still_stops(
        start_daemon, short_tmp: Path, slow_device: dict[str, str]) -> None:
    daemon, paths = start_two_vms(start_daemon, short_tmp, slow_device, "--host-timeout", "300")
    with vm(paths[0]) as first, vm(paths[1]) as second:
        answer = first.cmdq.transact(read(SLOW, token=1), timeout=30)
        assert status_of(answer) == Status.HARDWARE_ERROR
        daemon.wait_log("did not answer within 0.3 s")
        # Still stuck in the kernel: later reads fail without waiting behind it.
        assert status_of(first.cmdq.transact(read(SLOW, token=2))) == Status.HARDWARE_ERROR
        assert status_of(second.cmdq.transact(read(SLOW, token=3))) == Status.HARDWARE_ERROR
        daemon.wait_log("still stuck in an earlier call")
        # Everything else carries on.
        for token in range(4, 10):
            assert status_of(first.cmdq.transact(read(FAST, token))) == Status.SUCCESS
            assert status_of(second.cmdq.transact(read(FAST, token))) == Status.SUCCESS
        # The read is still stuck in open(2) of the FIFO; SIGTERM stops the daemon anyway.
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(timeout=10) == 0
    assert not any(path.exists() for path in paths)
