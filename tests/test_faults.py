# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Faults: a VMM that vanishes or misbehaves, guest memory changing under requests, host
devices failing, signals. The installed daemon is driven through its socket by the
in-tree front-end; fd and mapping counts come from /proc/PID.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Daemon
from vhost_scmi.scmi.codec import pack_header
from vhost_scmi.vhost.memory import GuestMemory
from vhost_scmi.vhost.virtqueue import SplitQueue

from vhost_scmi.scmi.status import Status
from vhost_scmi.vhost.frontend import (
    STATUS_ACKNOWLEDGE,
    STATUS_DRIVER,
    STATUS_DRIVER_OK,
    STATUS_FEATURES_OK,
    DriverQueue,
    GuestRam,
    VhostUserFrontend,
)
from vhost_scmi.vhost.protocol import HEADER, VERSION, Request

BASE = 0x10
SENSOR = 0x15
SENSOR_READING_GET = 6
# Rings in region 0, request and response buffers in region 1.
TWO_REGIONS = ((0x4000_0000, 1 << 22), (0x1_0000_0000, 1 << 22))


def command(protocol: int, message: int, payload: bytes = b"", token: int = 0) -> bytes:
    return struct.pack("<I", pack_header(message, 0, protocol, token)) + payload


def status_of(response: bytes) -> int:
    return struct.unpack_from("<i", response, 4)[0]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def served(daemon: Daemon, **session_kwargs) -> bool:
    """A new VMM gets a full handshake and an answer."""
    with daemon.session(**session_kwargs) as vm:
        return status_of(vm.cmdq.transact(command(BASE, 0))) == 0


def baseline(daemon: Daemon) -> int:
    """The idle daemon's fd count, after one VMM came and went."""
    assert served(daemon)
    assert wait_until(lambda: daemon.shared_mappings() == 0)
    counts = [daemon.fd_count()]
    # Stable: the teardown of the last VMM is over.
    while True:
        time.sleep(0.05)
        counts.append(daemon.fd_count())
        if counts[-1] == counts[-2]:
            return counts[-1]


def assert_back_to_baseline(daemon: Daemon, fds: int) -> None:
    assert wait_until(lambda: daemon.fd_count() == fds and daemon.shared_mappings() == 0), (
        f"fds {daemon.fd_count()} (baseline {fds}), guest mappings {daemon.shared_mappings()}")
    assert daemon.alive()


def err_signalled(queue: DriverQueue, timeout: float = 10.0) -> bool:
    ready, _, _ = select.select([queue.err_fd], [], [], timeout)
    return bool(ready)


# --- the VMM vanishing at every stage -----------------------------------------------------------

def _handshake_steps() -> list[tuple[str, Callable[[VhostUserFrontend, GuestRam, list], None]]]:
    """QEMU's start-up sequence (as VhostUserFrontend.setup runs it), one step at a time."""

    def make_queues(f: VhostUserFrontend, ram: GuestRam, queues: list) -> None:
        queues.extend(DriverQueue(ram, index, 64) for index in range(2))
        f.queues = queues

    def set_features(f: VhostUserFrontend, ram: GuestRam, queues: list) -> None:
        make_queues(f, ram, queues)
        f.set_features(f.get_features())

    def vring_fds(kind: Request, attribute: str):
        def step(f: VhostUserFrontend, ram: GuestRam, queues: list) -> None:
            for queue in queues:
                f.set_vring_fd(kind, queue.index, getattr(queue, attribute))
        return step

    def ring(setter: str):
        def step(f: VhostUserFrontend, ram: GuestRam, queues: list) -> None:
            for queue in queues:
                if setter == "num":
                    f.set_vring_num(queue.index, queue.size)
                elif setter == "base":
                    f.set_vring_base(queue.index, 0)
                else:
                    f.set_vring_addr(queue.index, ram.uaddr(queue.desc_gpa),
                                     ram.uaddr(queue.used_gpa), ram.uaddr(queue.avail_gpa))
        return step

    def enable(f: VhostUserFrontend, ram: GuestRam, queues: list) -> None:
        for queue in queues:
            f.set_vring_enable(queue.index, True)

    def request_posted(f: VhostUserFrontend, ram: GuestRam, queues: list) -> None:
        # Mid-request: posted and kicked, the VMM gone before the answer is read.
        queues[0].post([command(BASE, 0)] * 8, 256)

    def request_flood(f: VhostUserFrontend, ram: GuestRam, queues: list) -> None:
        queues[0].post([command(SENSOR, 0)] * 24, 256)
        queues[1].post_buffers(4, 64)

    return [
        ("GET_FEATURES", lambda f, ram, q: f.get_features()),
        ("GET_PROTOCOL_FEATURES", lambda f, ram, q: f.get_protocol_features()),
        ("SET_PROTOCOL_FEATURES",
         lambda f, ram, q: f.set_protocol_features(f.get_protocol_features())),
        ("GET_QUEUE_NUM", lambda f, ram, q: f.get_queue_num()),
        ("SET_OWNER", lambda f, ram, q: f.set_owner()),
        ("SET_VRING_CALL", lambda f, ram, q: (make_queues(f, ram, q),
                                              vring_fds(Request.SET_VRING_CALL, "call_fd")(
                                                  f, ram, q))),
        ("SET_VRING_ERR", vring_fds(Request.SET_VRING_ERR, "err_fd")),
        ("SET_FEATURES", lambda f, ram, q: f.set_features(f.get_features())),
        ("SET_MEM_TABLE", lambda f, ram, q: f.set_mem_table(ram)),
        ("SET_VRING_NUM", ring("num")),
        ("SET_VRING_BASE", ring("base")),
        ("SET_VRING_ADDR", ring("addr")),
        ("SET_VRING_KICK", vring_fds(Request.SET_VRING_KICK, "kick_fd")),
        ("SET_VRING_ENABLE", enable),
        ("SET_STATUS", lambda f, ram, q: f.set_status(
            STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK)),
        ("request in flight", request_posted),
        ("requests flooding both queues", request_flood),
    ]


def test_vmm_disconnects_at_every_stage(daemon: Daemon) -> None:
    fds = baseline(daemon)
    steps = _handshake_steps()
    for stop_after in range(1, len(steps) + 1):
        frontend = daemon.connect()
        ram = GuestRam()
        queues: list[DriverQueue] = []
        try:
            for _name, step in steps[:stop_after]:
                step(frontend, ram, queues)
        finally:
            frontend.close()  # closes the socket and the queues' eventfds
            ram.close()
        stage = steps[stop_after - 1][0]
        assert wait_until(lambda: daemon.fd_count() == fds
                          and daemon.shared_mappings() == 0), (
            f"after {stage}: fds {daemon.fd_count()} (baseline {fds}), "
            f"guest mappings {daemon.shared_mappings()}")
        assert served(daemon), f"next VMM not served after a disconnect at {stage}"
    assert_back_to_baseline(daemon, fds)


@pytest.mark.parametrize("cut", ["header", "body", "fds without body"])
def test_vmm_disconnects_mid_message(daemon: Daemon, cut: str) -> None:
    fds = baseline(daemon)
    ram = GuestRam()
    try:
        with daemon.connect() as frontend:
            frontend.get_features()
            message = HEADER.pack(Request.SET_MEM_TABLE, VERSION, 8 + 32)
            if cut == "header":
                frontend.sock.sendall(message[:7])
            elif cut == "body":
                frontend.sock.sendall(message + b"\1\0\0\0\0\0\0\0" + b"\0" * 10)
            else:
                frontend.sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                   struct.pack("i", ram.regions[0].fd))])
    finally:
        ram.close()
    assert_back_to_baseline(daemon, fds)
    assert served(daemon)


def test_soak_connect_handshake_request_disconnect(daemon: Daemon) -> None:
    cycles, warm_up = 1000, 50
    fds = baseline(daemon)
    for _ in range(warm_up):
        assert served(daemon)
    assert wait_until(lambda: daemon.fd_count() == fds)
    rss_before = rss_kib(daemon.pid)
    started = time.monotonic()
    for cycle in range(cycles):
        with daemon.session() as vm:
            response = vm.cmdq.transact(command(SENSOR, SENSOR_READING_GET,
                                                struct.pack("<II", 0, 0)))
            assert status_of(response) == 0, cycle
    elapsed = time.monotonic() - started
    assert_back_to_baseline(daemon, fds)
    fds_after, rss_after = daemon.fd_count(), rss_kib(daemon.pid)
    print(f"\nsoak: {cycles} cycles in {elapsed:.1f} s; fds {fds} -> {fds_after}; "
          f"RSS {rss_before} KiB -> {rss_after} KiB ({rss_after - rss_before:+d} KiB)")
    assert fds_after == fds
    # A leak of even 4 KiB per cycle would show as 4 MiB; allocator noise stays far below.
    assert rss_after - rss_before < 4096, (rss_before, rss_after)


# --- guest memory changing under requests ------------------------------------------------------

def test_data_region_removed_while_requests_are_in_flight(daemon: Daemon) -> None:
    fds = baseline(daemon)
    with daemon.session(layout=TWO_REGIONS, data_region=1, use_mem_slots=True) as vm:
        assert status_of(vm.cmdq.transact(command(BASE, 0))) == 0
        heads = [vm.cmdq.add(command(BASE, 0), 256) for _ in range(4)]
        vm.cmdq.publish(heads)
        vm.frontend.rem_mem_reg(vm.ram.regions[1])
        assert wait_until(lambda: daemon.shared_mappings() == 1)
        vm.cmdq.kick()
        assert err_signalled(vm.cmdq), "buffers in a removed region were not refused"
        assert vm.cmdq.collect() == []
        # The connection lives on: the VMM brings the region back and restarts the ring.
        vm.frontend.add_mem_reg(vm.ram.regions[1])
        vm.frontend.get_vring_base(0)
        fresh = DriverQueue(vm.ram, 0, 64, data_region=1)
        vm.frontend.queues.append(fresh)
        vm.frontend.set_vring_fd(Request.SET_VRING_CALL, 0, fresh.call_fd)
        vm.frontend.start_queue(fresh)
        vm.frontend.set_vring_enable(0, True)
        assert status_of(fresh.transact(command(BASE, 0))) == 0
    assert_back_to_baseline(daemon, fds)
    assert served(daemon)


def test_ring_region_removed_while_requests_are_in_flight(daemon: Daemon) -> None:
    fds = baseline(daemon)
    with daemon.session(layout=TWO_REGIONS, data_region=1, use_mem_slots=True) as vm:
        vm.cmdq.publish([vm.cmdq.add(command(BASE, 0), 256)])
        vm.frontend.rem_mem_reg(vm.ram.regions[0])
        vm.cmdq.kick()
        assert err_signalled(vm.cmdq), "rings in a removed region were not refused"
        assert vm.frontend.get_queue_num() == 2  # the connection is alive
    assert_back_to_baseline(daemon, fds)
    assert served(daemon)


def test_new_memory_table_while_requests_are_in_flight(daemon: Daemon) -> None:
    fds = baseline(daemon)
    with daemon.session(layout=TWO_REGIONS, data_region=1) as vm:
        assert status_of(vm.cmdq.transact(command(BASE, 0))) == 0
        for _round in range(3):
            heads = [vm.cmdq.add(command(BASE, 0), 256) for _ in range(5)]
            vm.cmdq.publish(heads)
            # The same memory again (as on a hot-plug elsewhere): mappings are replaced,
            # the rings translated again, the waiting requests served.
            vm.frontend.set_mem_table(vm.ram)
            assert daemon.shared_mappings() == 2
            vm.cmdq.kick()
            done = vm.cmdq.wait_used(5)
            assert sorted(c.head for c in done) == sorted(heads)
            assert all(status_of(c.data) == 0 for c in done)
        # A table without the data region: waiting requests are refused, the queue breaks.
        vm.cmdq.publish([vm.cmdq.add(command(BASE, 0), 256)])
        only_rings = GuestRam(TWO_REGIONS[:1])
        try:
            only_rings.regions[0] = vm.ram.regions[0]
            vm.frontend.set_mem_table(only_rings)
            assert daemon.shared_mappings() == 1
            vm.cmdq.kick()
            assert err_signalled(vm.cmdq)
        finally:
            only_rings.regions.clear()  # region 0 belongs to vm.ram
    assert_back_to_baseline(daemon, fds)
    assert served(daemon)


@pytest.mark.parametrize("shrunk", [1, 0], ids=["data-region", "ring-region"])
def test_vmm_shrinks_a_mapped_region(daemon: Daemon, shrunk: int) -> None:
    """ftruncate of an unsealed memfd under the daemon's mapping: SIGBUS, contained."""
    fds = baseline(daemon)
    with daemon.session(layout=TWO_REGIONS, data_region=1) as vm:
        assert status_of(vm.cmdq.transact(command(BASE, 0))) == 0
        heads = [vm.cmdq.add(command(BASE, 0), 256) for _ in range(3)]
        vm.cmdq.publish(heads)
        # From here on this process must not touch the shrunk region either.
        os.ftruncate(vm.ram.regions[shrunk].fd, 0)
        vm.cmdq.kick()
        assert err_signalled(vm.cmdq), "the fault did not break the queue"
        assert daemon.alive()
        assert "guest memory fault" in daemon.wait_log("guest memory fault")
        assert vm.frontend.get_queue_num() == 2  # the connection is alive
    assert_back_to_baseline(daemon, fds)
    assert served(daemon)
    assert served(daemon, layout=TWO_REGIONS, data_region=1)


# --- host devices failing -------------------------------------------------------------------------

HWMON = {"name": "board", "temp1_input": "41000", "temp2_input": "42000", "in0_input": "1100"}


def hwmon_tree(base: Path) -> Path:
    directory = base / "hwmon7"
    directory.mkdir()
    for file, content in HWMON.items():
        (directory / file).write_text(content + "\n")
    return directory


def read_sensor(vm, sensor_id: int) -> tuple[int, bytes]:
    response = vm.cmdq.transact(command(SENSOR, SENSOR_READING_GET,
                                        struct.pack("<II", sensor_id, 0)))
    return status_of(response), response[8:]


def _vanish(path: Path) -> None:
    path.unlink()


def _garbage(path: Path) -> None:
    path.write_text("not a number\n")


def _fifo(path: Path) -> None:
    # A read of a FIFO without a writer blocks; the daemon must never wait on it.
    path.unlink()
    os.mkfifo(path)


@pytest.mark.parametrize("break_file", [_vanish, _garbage, _fifo],
                         ids=["vanishes", "garbage", "fifo-blocks"])
def test_failing_host_file_gives_an_error_and_others_keep_working(
        start_daemon, short_tmp: Path, break_file) -> None:
    directory = hwmon_tree(short_tmp)
    daemon = start_daemon("-d", f"hwmon,path={directory}")
    with daemon.session() as vm:
        assert [read_sensor(vm, n)[0] for n in range(3)] == [0, 0, 0]
        break_file(directory / "temp1_input")
        # Bounded: the health check runs at least once a second.
        assert wait_until(lambda: read_sensor(vm, 0)[0] in (Status.HARDWARE_ERROR,
                                                            Status.GENERIC_ERROR), 10)
        for sensor_id in (1, 2):
            status, payload = read_sensor(vm, sensor_id)
            assert status == 0
        assert struct.unpack_from("<q", read_sensor(vm, 1)[1])[0] == 42000
        assert vm.frontend.get_queue_num() == 2
    assert daemon.alive()


@pytest.mark.parametrize("fifo", ["temp1_input", "name", "temp1_label"])
def test_fifo_in_a_device_directory_at_start_up(start_daemon, short_tmp: Path,
                                                fifo: str) -> None:
    directory = hwmon_tree(short_tmp)
    (directory / fifo).unlink(missing_ok=True)
    os.mkfifo(directory / fifo)
    if fifo == "temp1_input":
        # Not a channel: the other inputs are served, the FIFO is never opened.
        daemon = start_daemon("-d", f"hwmon,path={directory}")
        with daemon.session() as vm:
            assert [read_sensor(vm, n)[0] for n in range(2)] == [0, 0]
        daemon2 = start_daemon("-d", f"hwmon,path={directory},channel=temp1", wait=False)
        assert daemon2.wait_exit(30) == 2  # a device spec error
        assert "no hwmon channel 'temp1'" in daemon2.log()
    else:
        daemon = start_daemon("-d", f"hwmon,path={directory}", wait=False)
        assert daemon.wait_exit(30) == 2  # promptly: it did not block opening the FIFO
        assert "not a regular file" in daemon.log()


@pytest.mark.parametrize("make_path", ["missing", "file", "fifo"])
@pytest.mark.parametrize("kind", ["iio", "hwmon"])
def test_device_paths_are_validated_at_start_up(start_daemon, short_tmp: Path, kind: str,
                                                make_path: str) -> None:
    path = short_tmp / "device"
    if make_path == "file":
        path.write_text("x")
    elif make_path == "fifo":
        os.mkfifo(path)
    spec = f"{kind},path={path}" + (",channel=in_accel" if kind == "iio" else "")
    daemon = start_daemon("-d", spec, wait=False)
    assert daemon.wait_exit(30) == 2  # a device spec error
    log = daemon.log()
    assert "not a directory" in log and "Traceback" not in log
    assert not daemon.socket_path.exists()


def test_iio_fifo_channel_file_is_refused(start_daemon, short_tmp: Path) -> None:
    directory = short_tmp / "iio:device0"
    directory.mkdir()
    (directory / "name").write_text("accel\n")
    for axis in "xy":
        (directory / f"in_accel_{axis}_raw").write_text("10\n")
    os.mkfifo(directory / "in_accel_z_raw")
    (directory / "in_temp_raw").unlink(missing_ok=True)
    os.mkfifo(directory / "in_temp_raw")
    daemon = start_daemon("-d", f"iio,path={directory},channel=in_temp", wait=False)
    assert daemon.wait_exit(30) == 2
    assert "no IIO channel 'in_temp'" in daemon.log()
    # The accelerometer is served with the axes that are files.
    daemon = start_daemon("-d", f"iio,path={directory},channel=in_accel")
    with daemon.session() as vm:
        assert read_sensor(vm, 0)[0] == 0


# --- signals ----------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("moment", ["idle", "mid-handshake", "connected", "mid-message",
                                    "after-disconnect"])
def test_signal_at_any_time_exits_cleanly(daemon: Daemon, signum: int, moment: str) -> None:
    frontend = None
    ram = GuestRam()
    try:
        if moment == "mid-handshake":
            frontend = daemon.connect()
            frontend.set_protocol_features(frontend.get_protocol_features())
            frontend.set_owner()
        elif moment == "connected":
            frontend = daemon.connect()
            frontend.setup(ram)
            frontend.queues[0].post([command(BASE, 0)] * 4, 256)
        elif moment == "mid-message":
            frontend = daemon.connect()
            frontend.sock.sendall(HEADER.pack(Request.SET_FEATURES, VERSION, 8) + b"\0\0")
        elif moment == "after-disconnect":
            assert served(daemon)
        daemon.signal(signum)
        assert daemon.wait_exit(30) == 0
    finally:
        if frontend is not None:
            frontend.close()
        ram.close()
    assert not os.path.exists(daemon.socket_path)
    assert "Traceback" not in daemon.log()


def test_sighup_storm_does_not_kill_it(daemon: Daemon) -> None:
    with daemon.session() as vm:
        for _ in range(20):
            daemon.signal(signal.SIGHUP)
        assert status_of(vm.cmdq.transact(command(BASE, 0))) == 0
    assert daemon.alive()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0


# --- the socket ---------------------------------------------------------------------------------

def test_socket_is_created_owner_only_whatever_the_umask(start_daemon, short_tmp: Path) -> None:
    old = os.umask(0)
    try:
        daemon = start_daemon("-d", "fake")
    finally:
        os.umask(old)
    assert os.stat(daemon.socket_path).st_mode & 0o777 == 0o600


def test_symlink_to_a_socket_is_not_followed(start_daemon, short_tmp: Path) -> None:
    elsewhere = short_tmp / "elsewhere"
    elsewhere.mkdir()
    real = elsewhere / "real.sock"
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    holder.bind(str(real))
    link = short_tmp / "link.sock"
    link.symlink_to(real)
    try:
        daemon = start_daemon("-d", "fake", socket_path=link, wait=False)
        assert daemon.wait_exit(30) == 1
        assert "symbolic link" in daemon.log()
        # Neither the link nor the socket it points to was replaced or removed.
        assert link.is_symlink() and os.readlink(link) == str(real)
        assert real.exists()
    finally:
        holder.close()


def test_dangling_symlink_is_not_followed(start_daemon, short_tmp: Path) -> None:
    target = short_tmp / "not-there" / "x.sock"
    link = short_tmp / "dangling.sock"
    link.symlink_to(target)
    daemon = start_daemon("-d", "fake", socket_path=link, wait=False)
    assert daemon.wait_exit(30) == 1
    assert link.is_symlink() and not target.exists()



# --- the SIGBUS containment, in process ---------------------------------------------------------

def test_shrunk_region_reads_as_stand_in_pages_and_poisons_the_memory() -> None:
    memory = GuestMemory()
    fd = os.memfd_create("guest-ram", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, 1 << 20)
        memory.add_region(fd, 0x1000_0000, 1 << 20, 0x7000_0000, 0)
        memory.write(0x1000_0000, b"first page")
        os.ftruncate(fd, 4096)
        assert memory.read(0x1000_0000, 10) == b"first page"  # still backed
        assert (memory.faults, memory.poisoned) == (0, False)
        assert memory.read(0x1000_0000 + (1 << 19), 8) == bytes(8)  # would be SIGBUS
        memory.write(0x1000_0000 + (1 << 20) - 4, b"last")
        assert memory.faults >= 1 and memory.poisoned
        memory.clear()
        assert not memory.poisoned
    finally:
        os.close(fd)


def test_a_fault_during_a_batch_breaks_the_queue() -> None:
    ram = GuestRam(((0x4000_0000, 1 << 20), (0x8000_0000, 1 << 20)))
    memory = GuestMemory()
    try:
        for region in ram.regions:
            memory.add_region(region.fd, region.gpa, region.size, region.uaddr,
                              region.mmap_offset)
        driver = DriverQueue(ram, 0, 16, data_region=1, arena_size=1 << 16)
        queue = SplitQueue(memory, 0, 16)
        queue.set_size(16)
        queue.set_addresses(ram.uaddr(driver.desc_gpa), ram.uaddr(driver.used_gpa),
                            ram.uaddr(driver.avail_gpa))
        queue.set_err_fd(os.dup(driver.err_fd))
        queue.start()
        queue.set_enabled(True)
        driver.publish([driver.add(command(BASE, 0), 64) for _ in range(3)])
        assert queue.process(lambda request, room: b"x" * 8) == 3
        assert not queue.broken
        driver.publish([driver.add(command(BASE, 0), 64)])
        os.ftruncate(ram.regions[1].fd, 0)  # the data region
        seen = []
        queue.process(lambda request, room: seen.append(request) or b"")
        assert queue.broken and "guest memory fault" in queue.error
        assert seen == [bytes(len(command(BASE, 0)))]  # the stand-in page's zeros
        assert driver.signalled("err")
        # Broken until the memory is replaced: no further access, no further fault.
        faults = memory.faults
        queue.set_base(queue.base)
        assert queue.process(lambda request, room: b"") == 0 and queue.broken
        assert memory.faults == faults
        queue.close_fds()
        driver.close()
    finally:
        memory.clear()
        ram.close()


@pytest.mark.parametrize("how", ["kill", "foreign-mapping"])
def test_other_sigbus_still_kills(how: str, tmp_path: Path) -> None:
    """The handler contains faults in guest memory only; any other SIGBUS is fatal."""
    script = tmp_path / "bus.py"
    script.write_text(f"""
import mmap, os, signal
from vhost_scmi.vhost.memory import GuestMemory
memory = GuestMemory()
fd = os.memfd_create("guest-ram")
os.ftruncate(fd, 8192)
memory.add_region(fd, 0, 8192, 0, 0)
if {how!r} == "kill":
    os.kill(os.getpid(), signal.SIGBUS)
else:
    other = os.memfd_create("other")
    os.ftruncate(other, 8192)
    view = mmap.mmap(other, 8192)
    os.ftruncate(other, 0)
    view[100]
print("survived")
""")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == -signal.SIGBUS, (result.returncode, result.stderr)
    assert "survived" not in result.stdout


def test_nothing_in_the_package_evaluates_unpickles_or_runs_a_shell() -> None:
    import re

    import vhost_scmi
    package = Path(vhost_scmi.__file__).parent
    forbidden = re.compile(r"(?<![.\w])(eval|exec|compile)\(|\bpickle\b|\bmarshal\b|shell=True|"
                           r"os\.system\(|os\.popen\(|os\.exec|os\.spawn")
    sources = [p for p in package.rglob("*") if p.suffix in (".py", ".pyx", ".pxd")]
    assert len(sources) > 20
    offenders = [f"{path}:{number}: {line.strip()}" for path in sources
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if forbidden.search(line.split("#", 1)[0])]
    assert offenders == []
