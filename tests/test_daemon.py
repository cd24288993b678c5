# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The installed daemon, driven through its socket by the in-tree front-end.

SCMI answers through the compiled queue path, the event queue, reconnects, teardown
without leaks, malformed rings from a hostile guest, signals, and the socket file.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Daemon
from test_vhost_queue import MALFORMED_CHAINS, RAM_BASE, RAM_SIZE
from vhost_scmi.scmi.codec import pack_header

from vhost_scmi.devices.fake import FakeAccelerometer
from vhost_scmi.scmi.dispatcher import build_dispatcher
from vhost_scmi.vhost.frontend import DriverQueue, GuestRam
from vhost_scmi.vhost.protocol import ProtocolFeature, Request, VirtioFeature, bit

BASE = 0x10
SENSOR = 0x15
TEST_LAYOUT = ((RAM_BASE, RAM_SIZE),)


def command(protocol: int, message: int, payload: bytes = b"", token: int = 0) -> bytes:
    return struct.pack("<I", pack_header(message, 0, protocol, token)) + payload


def status_of(response: bytes) -> int:
    return struct.unpack_from("<i", response, 4)[0]


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# --- SCMI through the queue engine ----------------------------------------------------------

BASE_QUERIES = [command(BASE, message) for message in (0, 1, 3, 4, 5)] + [
    command(BASE, 6, struct.pack("<I", 0)), command(BASE, 2, struct.pack("<I", 3)),
    command(SENSOR, 0), command(SENSOR, 3, struct.pack("<I", 0)), command(0x99, 0)]


def test_scmi_answers_match_the_dispatcher(daemon: Daemon) -> None:
    reference = build_dispatcher([FakeAccelerometer()])
    with daemon.session() as vm:
        for request in BASE_QUERIES:
            assert vm.cmdq.transact(request, 256) == reference.handle(request, 256)
        # The same, as one batch with one kick, through indirect descriptors.
        heads = vm.cmdq.post(BASE_QUERIES, 256, indirect=True)
        done = {c.head: c.data for c in vm.cmdq.wait_used(len(heads))}
        assert [done[h] for h in heads] == [reference.handle(r, 256) for r in BASE_QUERIES]


def test_base_protocol_answers(daemon: Daemon) -> None:
    with daemon.session() as vm:
        version = vm.cmdq.transact(command(BASE, 0), 256)
        assert version[:4] == command(BASE, 0)[:4] and status_of(version) == 0
        vendor = vm.cmdq.transact(command(BASE, 3), 256)
        assert status_of(vendor) == 0 and vendor[8:].rstrip(b"\0")
        protocols = vm.cmdq.transact(command(BASE, 6, struct.pack("<I", 0)), 256)
        count = struct.unpack_from("<I", protocols, 8)[0]
        assert SENSOR in protocols[12:12 + count]
        unknown = vm.cmdq.transact(command(0x99, 0), 256)
        assert status_of(unknown) == -1  # NOT_SUPPORTED


def test_a_full_queue_in_one_kick(daemon: Daemon) -> None:
    request = command(SENSOR, 6, struct.pack("<II", 0, 0))
    with daemon.session(queue_size=1024) as vm:
        for _ in range(2):
            heads = vm.cmdq.post([request] * 1024, 136, indirect=True)
            done = vm.cmdq.wait_used(1024)
            assert sorted(c.head for c in done) == sorted(heads)
            assert all(status_of(c.data) == 0 and len(c.data) == 8 + 3 * 16 for c in done)


def test_eventq_holds_buffers_until_a_delayed_response(start_daemon) -> None:
    daemon = start_daemon("-d", "fake,async=on")
    with daemon.session() as vm:
        vm.eventq.post_buffers(4, 136)
        assert vm.cmdq.transact(command(BASE, 0), 256)  # the daemon has seen the buffers
        assert vm.eventq.collect() == []
        answer = vm.cmdq.transact(command(SENSOR, 6, struct.pack("<II", 0, 1), token=77), 256)
        assert status_of(answer) == 0
        [event] = vm.eventq.wait_used(1)
        header = struct.unpack_from("<I", event.data)[0]
        assert header == pack_header(6, 2, SENSOR, 77)  # a delayed response, same token
        assert status_of(event.data) == 0
        assert vm.eventq.collect() == []  # the other three are still held


# --- connection life cycle ------------------------------------------------------------------

def test_reconnect_and_teardown_leave_nothing_behind(daemon: Daemon) -> None:
    with daemon.session() as vm:
        assert status_of(vm.cmdq.transact(command(BASE, 0))) == 0
    assert wait_until(lambda: daemon.shared_mappings() == 0)
    fds, maps = daemon.fd_count(), daemon.shared_mappings()
    assert maps == 0
    for round_ in range(5):
        layout = ((RAM_BASE, RAM_SIZE), (0x1_0000_0000, RAM_SIZE, 4096 * round_))
        with daemon.session(layout=layout, use_mem_slots=bool(round_ % 2)) as vm:
            assert status_of(vm.cmdq.transact(command(BASE, 0))) == 0
            assert daemon.shared_mappings() == 2
            assert daemon.fd_count() > fds
    # Teardown finishes shortly after our disconnect; a leak never gets there.
    assert wait_until(lambda: daemon.fd_count() == fds), (daemon.fd_count(), fds)
    assert daemon.shared_mappings() == 0


def test_second_vmm_is_refused_while_one_is_connected(daemon: Daemon) -> None:
    with daemon.session() as vm:
        with daemon.connect() as second:
            second.sock.settimeout(5)
            assert second.sock.recv(1) == b""
        assert status_of(vm.cmdq.transact(command(BASE, 0))) == 0
        assert "refusing a second VMM" in daemon.log()
    with daemon.session() as vm:
        assert status_of(vm.cmdq.transact(command(BASE, 0))) == 0


def test_vmm_vanishing_mid_handshake(daemon: Daemon) -> None:
    for stop_after in range(1, 8):
        frontend = daemon.connect()
        frontend.get_features()
        if stop_after > 1:
            frontend.set_protocol_features(frontend.get_protocol_features())
        if stop_after > 2:
            frontend.set_owner()
        frontend.sock.close()
    with daemon.session() as vm:
        assert status_of(vm.cmdq.transact(command(BASE, 0))) == 0


@pytest.mark.parametrize("make_chain", MALFORMED_CHAINS, ids=lambda f: f.__name__)
def test_malformed_ring_costs_only_the_queue(daemon: Daemon, make_chain) -> None:
    with daemon.session(layout=TEST_LAYOUT) as vm:
        good = vm.cmdq.add(command(BASE, 0), 256)
        bad = make_chain(_ChainTarget(vm))
        vm.cmdq.publish_raw([good, *bad, good])
        vm.cmdq.kick()
        ready, _, _ = select.select([vm.cmdq.err_fd], [], [], 10)
        assert ready, "the VMM was not told through the err eventfd"
        [done] = vm.cmdq.collect()
        assert status_of(done.data) == 0
    assert daemon.alive()
    with daemon.session(layout=TEST_LAYOUT) as vm:
        assert status_of(vm.cmdq.transact(command(BASE, 0))) == 0


class _ChainTarget:
    """What the malformed-chain builders of test_vhost_queue need: `driver` and `ram`."""

    def __init__(self, session) -> None:
        self.driver = session.cmdq
        self.ram = session.ram


def test_avail_index_jump_from_a_hostile_guest(daemon: Daemon) -> None:
    with daemon.session() as vm:
        vm.cmdq.publish_raw([], avail_idx=5000)
        vm.cmdq.kick()
        ready, _, _ = select.select([vm.cmdq.err_fd], [], [], 10)
        assert ready
        # The other queue and the protocol still work; the connection is alive.
        assert vm.frontend.get_queue_num() == 2
    with daemon.session() as vm:
        assert status_of(vm.cmdq.transact(command(BASE, 0))) == 0


# --- signals and the socket file --------------------------------------------------------------

def test_socket_is_owner_only(daemon: Daemon) -> None:
    mode = os.lstat(daemon.socket_path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_while_connected_exits_cleanly(daemon: Daemon, signum: int) -> None:
    with daemon.session() as vm:
        assert status_of(vm.cmdq.transact(command(BASE, 0))) == 0
        daemon.signal(signum)
        assert daemon.wait_exit() == 0
    assert not os.path.exists(daemon.socket_path)


def test_sighup_is_ignored(daemon: Daemon) -> None:
    daemon.signal(signal.SIGHUP)
    daemon.wait_log("SIGHUP ignored")
    with daemon.session() as vm:
        assert status_of(vm.cmdq.transact(command(BASE, 0))) == 0
    assert daemon.alive()


def test_stale_socket_is_replaced(start_daemon, short_tmp) -> None:
    path = short_tmp / "stale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    daemon = start_daemon("-d", "fake", socket_path=path)
    with daemon.session() as vm:
        assert status_of(vm.cmdq.transact(command(BASE, 0))) == 0


def _start_failure(start_daemon, path) -> Daemon:
    daemon = start_daemon("-d", "fake", socket_path=path, wait=False)
    assert daemon.wait_exit() == 1
    return daemon


def test_missing_directory_is_a_clear_error(start_daemon, short_tmp) -> None:
    daemon = _start_failure(start_daemon, short_tmp / "nowhere" / "x.sock")
    assert "does not exist" in daemon.log() and "Traceback" not in daemon.log()


def test_symlink_at_the_socket_path_is_refused(start_daemon, short_tmp) -> None:
    target = short_tmp / "target"
    target.write_text("keep me")
    link = short_tmp / "link.sock"
    link.symlink_to(target)
    daemon = _start_failure(start_daemon, link)
    assert "symbolic link" in daemon.log()
    assert target.read_text() == "keep me" and link.is_symlink()


def test_regular_file_at_the_socket_path_is_refused(start_daemon, short_tmp) -> None:
    path = short_tmp / "file.sock"
    path.write_text("data")
    daemon = _start_failure(start_daemon, path)
    assert "not a socket" in daemon.log()
    assert path.read_text() == "data"


@pytest.mark.parametrize("output", ["devnull", "pipe", "file"])
def test_any_stdout_and_stderr(short_tmp, output: str) -> None:
    path = short_tmp / "out.sock"
    argv = ["vhost-device-scmi", "-s", str(path), "-d", "fake", "-d", "fake,name=two"]
    with open(short_tmp / "out.log", "wb") as log_file:
        target = {"devnull": subprocess.DEVNULL, "pipe": subprocess.PIPE, "file": log_file}[output]
        process = subprocess.Popen(argv, stdout=target, stderr=target)
        try:
            daemon = Daemon.__new__(Daemon)
            daemon.socket_path, daemon.process, daemon.pid = path, process, process.pid
            daemon.log_path = short_tmp / "out.log"
            daemon.wait_accepting()
            with daemon.session() as vm:
                assert status_of(vm.cmdq.transact(command(BASE, 0))) == 0
            os.kill(process.pid, signal.SIGTERM)
            process.communicate(timeout=10)
            assert process.returncode == 0
            assert not path.exists()
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


# --- python -m vhost_scmi.frontend ------------------------------------------------------------

def test_frontend_command_prints_the_platform(start_daemon) -> None:
    daemon = start_daemon("-d", "fake", "-d", "fake,name=second")
    result = subprocess.run([sys.executable, "-P", "-m", "vhost_scmi.frontend", "--socket-path",
                             str(daemon.socket_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    reference = build_dispatcher([FakeAccelerometer()])
    vendor = reference.handle(command(BASE, 3), 256)[8:].rstrip(b"\0").decode()
    assert lines[0].startswith(f"vendor: {vendor}")
    assert lines[1] == "protocols: 0x12 (system power), 0x15 (sensor)"
    assert lines[2].startswith("sensors: 2 ")
    assert "  0: fake, 3 axes" in lines and "  1: second, 3 axes" in lines
    assert "       axis 2 acc_Z: meters_per_second_squared" in lines
    assert lines.count("       reading: acc_X=0, acc_Y=100, acc_Z=200") == 2
    assert daemon.alive()


def test_frontend_command_reports_a_missing_socket(short_tmp) -> None:
    result = subprocess.run([sys.executable, "-P", "-m", "vhost_scmi.frontend", "-s",
                             str(short_tmp / "absent.sock")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "absent.sock" in result.stderr and "Traceback" not in result.stderr


def test_default_protocol_features(daemon: Daemon) -> None:
    with daemon.connect() as frontend:
        assert frontend.get_protocol_features() == (
            bit(ProtocolFeature.MQ) | bit(ProtocolFeature.REPLY_ACK)
            | bit(ProtocolFeature.RESET_DEVICE) | bit(ProtocolFeature.STATUS))


def test_qemu_style_reconnect_without_negotiation(daemon: Daemon) -> None:
    """QEMU's vhost-user-scmi, reconnecting to a restarted back-end, skips the
    feature negotiation, asks for acknowledgements and sends the memory table."""
    ram = GuestRam()
    try:
        with daemon.connect() as frontend:
            frontend.protocol_features = (bit(ProtocolFeature.REPLY_ACK)
                                          | bit(ProtocolFeature.STATUS))
            offered = frontend.get_features()
            queues = [DriverQueue(ram, index, 256) for index in range(2)]
            frontend.queues = queues
            for queue in queues:
                frontend.set_vring_fd(Request.SET_VRING_CALL, queue.index, queue.call_fd)
            frontend.set_features(offered & ~bit(VirtioFeature.RING_EVENT_IDX))
            frontend.get_status()
            frontend.set_status(0xB)
            frontend.set_mem_table(ram)
            for queue in queues:
                frontend.start_queue(queue)
                frontend.set_vring_enable(queue.index, True)
            assert status_of(queues[0].transact(command(BASE, 0))) == 0
    finally:
        ram.close()


@pytest.mark.parametrize(
    ("rust_log", "option", "debug_logged", "info_logged"),
    [
        (None, [], False, True),
        ("debug", [], True, True),
        ("vhost_scmi=debug", [], True, True),
        ("warn", [], False, False),
        ("debug", ["--log-level", "warn"], False, False),
        ("error", ["--log-level", "debug"], True, True),
    ],
)
def test_log_level_follows_rust_log_unless_the_option_says(
    start_daemon, rust_log: str | None, option: list[str], debug_logged: bool,
    info_logged: bool,
) -> None:
    env = {name: value for name, value in os.environ.items() if name != "RUST_LOG"}
    if rust_log is not None:
        env["RUST_LOG"] = rust_log
    daemon = start_daemon("-d", "fake", *option, env=env)
    with daemon.session():  # a handshake logs each vhost-user request at debug level
        pass
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    log = daemon.log()
    assert (" DEBUG " in log) is debug_logged, log
    assert ("serving " in log) is info_logged, log


@pytest.mark.parametrize(("devices", "text"), [(["-d", "fake"], "with 1 sensor\n"),
                                               (["-d", "fake", "-d", "fake"], "with 2 sensors\n")])
def test_start_up_log_counts_sensors_in_words(start_daemon, devices: list[str],
                                              text: str) -> None:
    daemon = start_daemon(*devices)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    assert text in daemon.log(), daemon.log()


def journal_daemon(start_daemon, short_tmp: Path, stream_of_log: bool) -> str:
    """Run the daemon (debug level) through a handshake and a SIGTERM; return its log.
    JOURNAL_STREAM names its stderr file when `stream_of_log`, else another file."""
    log_path = short_tmp / "daemon0.log"  # the path start_daemon gives the first daemon
    log_path.write_bytes(b"")
    other = short_tmp / "other"
    other.write_bytes(b"")
    named = os.stat(log_path if stream_of_log else other)
    env = {**os.environ, "JOURNAL_STREAM": f"{named.st_dev}:{named.st_ino}"}
    daemon = start_daemon("-d", "fake", "--log-level", "debug", env=env)
    with daemon.session():
        pass
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    return daemon.log()


def test_log_lines_carry_their_priority_when_stderr_is_the_journal(start_daemon,
                                                                    short_tmp: Path) -> None:
    log = journal_daemon(start_daemon, short_tmp, stream_of_log=True)
    lines = log.splitlines()
    assert lines and all(re.match(r"<[2-7]>\[[A-Z]+ [\w.]+\] ", line) for line in lines), log
    assert any(line.startswith("<6>[INFO ") and "serving " in line for line in lines), log
    assert any(line.startswith("<7>[DEBUG ") for line in lines), log
    assert not re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", log), "time stamped twice"


def test_log_lines_keep_their_time_stamp_when_stderr_is_not_the_journal(
        start_daemon, short_tmp: Path) -> None:
    log = journal_daemon(start_daemon, short_tmp, stream_of_log=False)
    assert log.startswith("[") and "<6>" not in log
    assert re.search(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO ", log, re.MULTILINE), log
