# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Every vhost-user request, the message limits, and connection life cycle.

The back-end runs in a thread of this process (the daemon's EventLoop and Endpoint)
with a small echo device defined here, so that the tests can look at its state; the
front-end talks to it over a real Unix socket with real fds and memfd memory.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import os
import select
import socket
import struct
import tempfile
import threading

import pytest

from vhost_scmi.daemon import Endpoint, EventLoop
from vhost_scmi.vhost.connection import IMPLEMENTED_PROTOCOL_FEATURES, BackendConnection
from vhost_scmi.vhost.frontend import (
    FrontendError,
    GuestRam,
    VhostUserFrontend,
)
from vhost_scmi.vhost.protocol import (
    HEADER,
    MEM_REG_MSG,
    MEM_REGION,
    MEM_TABLE_HEADER,
    U64,
    VERSION,
    VRING_ADDR,
    VRING_STATE,
    HeaderFlag,
    ProtocolFeature,
    Request,
    VirtioFeature,
    bit,
)

ALL_PROTOCOL = IMPLEMENTED_PROTOCOL_FEATURES
ACK = bit(ProtocolFeature.REPLY_ACK)


class EchoDevice:
    """Stand-in device for these tests: queue 0 echoes, queue 1 holds buffers for events."""

    queue_count = 2
    device_features = 1 << 0

    def __init__(self) -> None:
        self.resets = 0
        self.disconnects = 0
        self.queues = None
        self.pending: collections.deque[bytes] = collections.deque()
        #: Timed work falls due and fails once (a bug in a device's timed work).
        self.failing_work = False
        self.deadline_moved = lambda: None

    def queue_handler(self, index: int):
        return self.handle if index == 0 else None

    def handle(self, request: bytes, writable: int) -> bytes:
        return b"echo:" + request

    def buffers_posted(self, index, queue) -> None:
        while self.pending and queue.push(self.pending[0]):
            self.pending.popleft()

    def connected(self, queues) -> None:
        self.queues = queues

    def disconnected(self) -> None:
        self.disconnects += 1
        self.queues = None

    def reset(self) -> None:
        self.resets += 1

    def next_deadline(self):
        return 0.0 if self.failing_work else None

    def notify_deadline(self, callback) -> None:
        self.deadline_moved = callback

    def deliver_due(self, now: float) -> None:
        if self.failing_work:
            self.failing_work = False
            raise RuntimeError("a bug in the device's timed work")


class Backend:
    def __init__(self, path: str) -> None:
        self.path = path
        self.device = EchoDevice()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        # Everything implemented is offered here, memory slots included.
        self.endpoint = Endpoint(listener, self.device, path,
                                 protocol_features=IMPLEMENTED_PROTOCOL_FEATURES)
        self.loop = EventLoop([self.endpoint])
        self.thread = threading.Thread(target=self.loop.run, daemon=True)
        self.thread.start()

    @property
    def connection(self) -> BackendConnection | None:
        return self.endpoint.connection

    def stop(self) -> None:
        self.loop.stop()
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def backend():
    directory = tempfile.mkdtemp(prefix="vscmi-", dir="/tmp")
    instance = Backend(os.path.join(directory, "vu.sock"))
    yield instance
    instance.stop()
    os.unlink(instance.path)
    os.rmdir(directory)


@pytest.fixture
def ram():
    memory = GuestRam()
    yield memory
    memory.close()


@pytest.fixture
def connect(backend):
    frontends: list[VhostUserFrontend] = []

    def make() -> VhostUserFrontend:
        frontends.append(VhostUserFrontend(backend.path, timeout=5))
        return frontends[-1]

    yield make
    for frontend in frontends:
        frontend.close()


def acked(frontend: VhostUserFrontend, features: int = ALL_PROTOCOL) -> VhostUserFrontend:
    frontend.set_protocol_features(features)
    return frontend


def ack_status(frontend: VhostUserFrontend, request: int, payload: bytes = b"",
               fds=()) -> int:
    """Send with NEED_REPLY and return the acknowledgement's value."""
    frontend.send(request, payload, fds, flags=VERSION | HeaderFlag.NEED_REPLY)
    reply, flags, body = frontend.receive()
    assert reply == request and flags & HeaderFlag.REPLY
    return U64.unpack(body)[0]


def assert_closed(frontend: VhostUserFrontend) -> None:
    """The back-end closed the connection (a reset, when it left our bytes unread)."""
    frontend.sock.settimeout(5)
    try:
        assert frontend.sock.recv(1) == b""
    except ConnectionResetError:
        pass


def assert_still_serving(connect) -> None:
    frontend = connect()
    assert frontend.get_queue_num() == 2


# --- the handshake and the data path ----------------------------------------------------------

@pytest.mark.parametrize("use_mem_slots", [False, True], ids=["mem_table", "mem_slots"])
def test_qemu_handshake_then_requests(connect, ram, backend, use_mem_slots) -> None:
    frontend = connect()
    cmdq, eventq = frontend.setup(ram, use_mem_slots=use_mem_slots)
    assert cmdq.transact(b"hello") == b"echo:hello"
    assert cmdq.transact(b"indirect", indirect=True) == b"echo:indirect"
    conn = backend.connection
    assert conn.owned and conn.status == 0xF
    assert conn.acked_features == frontend.features
    assert len(conn.memory) == 1
    assert frontend.stop() == [2, 0]


def test_get_features_offers_exactly_what_is_implemented(connect) -> None:
    assert connect().get_features() == (
        bit(VirtioFeature.VERSION_1) | bit(VirtioFeature.NOTIFY_ON_EMPTY)
        | bit(VirtioFeature.RING_INDIRECT_DESC) | bit(VirtioFeature.RING_EVENT_IDX)
        | bit(VirtioFeature.PROTOCOL_FEATURES) | 1)


def test_get_protocol_features(connect) -> None:
    assert connect().get_protocol_features() == (
        bit(ProtocolFeature.MQ) | bit(ProtocolFeature.REPLY_ACK)
        | bit(ProtocolFeature.RESET_DEVICE) | bit(ProtocolFeature.CONFIGURE_MEM_SLOTS)
        | bit(ProtocolFeature.STATUS))


def test_set_features_refuses_unoffered_bits(connect, backend) -> None:
    frontend = acked(connect())
    assert ack_status(frontend, Request.SET_FEATURES, U64.pack(bit(VirtioFeature.RING_PACKED))) == 1
    assert ack_status(frontend, Request.SET_FEATURES, U64.pack(bit(VirtioFeature.VERSION_1))) == 0
    assert backend.connection.acked_features == bit(VirtioFeature.VERSION_1)


def test_set_protocol_features_refuses_unoffered_bits(connect, backend) -> None:
    frontend = acked(connect())
    bad = ALL_PROTOCOL | bit(ProtocolFeature.PAGEFAULT)
    assert ack_status(frontend, Request.SET_PROTOCOL_FEATURES, U64.pack(bad)) == 1
    assert backend.connection.protocol_features == ALL_PROTOCOL


def test_get_queue_num_and_max_mem_slots(connect) -> None:
    frontend = connect()
    assert frontend.get_queue_num() == 2
    assert frontend.get_max_mem_slots() == 32


def test_set_owner_and_reset_owner(connect, ram, backend) -> None:
    frontend = connect()
    cmdq, _ = frontend.setup(ram)
    assert backend.connection.owned
    resets = backend.device.resets
    frontend.command(Request.RESET_OWNER)
    assert frontend.get_queue_num() == 2  # synchronise with the back-end
    assert not backend.connection.owned
    assert backend.device.resets == resets + 1
    assert not any(queue.started for queue in backend.connection.queues)


def test_reset_device_then_set_up_again(connect, ram, backend) -> None:
    frontend = connect()
    cmdq, eventq = frontend.setup(ram)
    assert cmdq.transact(b"one") == b"echo:one"
    frontend.reset_device()
    conn = backend.connection
    assert backend.device.resets == 1
    assert conn.status == 0 and conn.acked_features == 0
    assert not any(queue.started or queue.enabled for queue in conn.queues)
    # The VMM negotiates and starts the rings again; memory and call fds were kept.
    frontend.set_features(frontend.features)
    for queue in (cmdq, eventq):
        frontend.start_queue(queue)
        frontend.set_vring_enable(queue.index, True)
    assert cmdq.transact(b"two") == b"echo:two"


def test_status_round_trip(connect) -> None:
    frontend = acked(connect())
    frontend.set_status(0x0B)
    assert frontend.get_status() == 0x0B
    assert ack_status(frontend, Request.SET_STATUS, U64.pack(0x100)) == 1
    assert frontend.get_status() == 0x0B


# --- memory ----------------------------------------------------------------------------------

def test_set_mem_table_maps_every_region(connect, backend) -> None:
    ram = GuestRam([(0x4000_0000, 1 << 20), (0x8000_0000, 1 << 20, 4096)])
    try:
        frontend = acked(connect())
        frontend.set_mem_table(ram)
        assert backend.connection.memory.regions == [
            (r.gpa, r.size, r.uaddr, r.mmap_offset) for r in ram.regions]
        # A new table replaces the old one.
        frontend.command(Request.SET_MEM_TABLE, MEM_TABLE_HEADER.pack(1, 0)
                         + ram.regions[1].describe(), [ram.regions[1].fd])
        assert len(backend.connection.memory) == 1
    finally:
        ram.close()


def _region(gpa: int, size: int, uaddr: int, offset: int = 0) -> bytes:
    return MEM_REGION.pack(gpa, size, uaddr, offset)


@pytest.mark.parametrize("case", ["no_regions", "nine_regions", "fd_missing", "extra_fd",
                                  "size_mismatch", "zero_size", "wraps", "overlap",
                                  "beyond_fd"])
def test_set_mem_table_refuses_bad_tables(connect, backend, ram, case) -> None:
    frontend = acked(connect())
    fd = ram.regions[0].fd
    size = ram.regions[0].size
    good = _region(0x4000_0000, size, 0x7000_0000)
    payload, fds = {
        "no_regions": (MEM_TABLE_HEADER.pack(0, 0), []),
        "nine_regions": (MEM_TABLE_HEADER.pack(9, 0) + b"".join(
            _region(n << 30, 4096, n << 40) for n in range(9)), [fd] * 9),
        "fd_missing": (MEM_TABLE_HEADER.pack(1, 0) + good, []),
        "extra_fd": (MEM_TABLE_HEADER.pack(1, 0) + good, [fd, fd]),
        "size_mismatch": (MEM_TABLE_HEADER.pack(2, 0) + good, [fd, fd]),
        "zero_size": (MEM_TABLE_HEADER.pack(1, 0) + _region(0, 0, 0), [fd]),
        "wraps": (MEM_TABLE_HEADER.pack(1, 0) + _region(2**64 - 4096, 8192, 0), [fd]),
        "overlap": (MEM_TABLE_HEADER.pack(2, 0) + good + _region(0x4000_1000, 4096, 0x9000_0000),
                    [fd, fd]),
        "beyond_fd": (MEM_TABLE_HEADER.pack(1, 0) + _region(0, size * 2, 0), [fd]),
    }[case]
    assert ack_status(frontend, Request.SET_MEM_TABLE, payload, fds) == 1
    assert len(backend.connection.memory) == 0
    assert frontend.get_queue_num() == 2


def test_add_and_remove_memory_regions(connect, backend) -> None:
    ram = GuestRam([(0x4000_0000, 1 << 20), (0x8000_0000, 1 << 20)])
    try:
        frontend = acked(connect())
        first, second = ram.regions
        frontend.add_mem_reg(first)
        frontend.add_mem_reg(second)
        assert len(backend.connection.memory) == 2
        # Overlapping the first: refused.
        assert ack_status(frontend, Request.ADD_MEM_REG, MEM_REG_MSG.pack(0, first.describe()),
                          [first.fd]) == 1
        # Without its fd: refused.
        assert ack_status(frontend, Request.ADD_MEM_REG,
                          MEM_REG_MSG.pack(0, _region(0, 4096, 0)), []) == 1
        frontend.rem_mem_reg(first)
        assert backend.connection.memory.regions == [
            (second.gpa, second.size, second.uaddr, 0)]
        # Not there any more: refused. With an fd (older front-ends): accepted, fd closed.
        assert ack_status(frontend, Request.REM_MEM_REG,
                          MEM_REG_MSG.pack(0, first.describe())) == 1
        assert ack_status(frontend, Request.REM_MEM_REG, MEM_REG_MSG.pack(0, second.describe()),
                          [second.fd]) == 0
        assert len(backend.connection.memory) == 0
    finally:
        ram.close()


# --- rings -------------------------------------------------------------------------------------

def _started(connect, ram, **kwargs):
    frontend = connect()
    queues = frontend.setup(ram, **kwargs)
    return frontend, queues


@pytest.mark.parametrize("index,num", [(0, 0), (0, 3), (0, 2048), (2, 8), (255, 8)])
def test_set_vring_num_refuses_bad_values(connect, index, num) -> None:
    frontend = acked(connect())
    assert ack_status(frontend, Request.SET_VRING_NUM, VRING_STATE.pack(index, num)) == 1
    assert ack_status(frontend, Request.SET_VRING_NUM, VRING_STATE.pack(0, 1024)) == 0


def test_set_vring_addr_refuses_misaligned_and_unmapped_rings(connect, ram) -> None:
    frontend = acked(connect())
    frontend.set_mem_table(ram)
    frontend.set_vring_num(0, 8)
    base = ram.regions[0].uaddr
    for desc, used, avail in [(base + 8, base + 4096, base + 8192),  # misaligned
                              (0x10, 0x1000, 0x2000)]:  # outside guest memory
        assert ack_status(frontend, Request.SET_VRING_ADDR,
                          VRING_ADDR.pack(0, 0, desc, used, avail, 0)) == 1
    assert ack_status(frontend, Request.SET_VRING_ADDR,
                      VRING_ADDR.pack(0, 0, base, base + 4096, base + 8192, 0)) == 0


def test_vring_base_round_trip_and_get_stops_the_ring(connect, ram, backend) -> None:
    frontend, (cmdq, eventq) = _started(connect, ram)
    for n in range(3):
        assert cmdq.transact(b"%d" % n) == b"echo:%d" % n
    assert frontend.get_vring_base(0) == 3
    # Stopped: a request stays unserved...
    cmdq.publish([cmdq.add(b"late", 64)])
    cmdq.kick()
    assert frontend.get_queue_num() == 2
    assert cmdq.collect() == []
    # ...until the ring is started again from where it stopped.
    frontend.start_queue(cmdq, base=3)
    assert [c.data for c in cmdq.wait_used(1)] == [b"echo:late"]
    frontend.set_vring_base(0, 1234)
    assert frontend.get_vring_base(0) == 1234
    assert ack_status(acked(frontend), Request.SET_VRING_BASE, VRING_STATE.pack(0, 0x10000)) == 1


def test_set_vring_kick_refuses_polling_reserved_bits_and_unwatchable_fds(connect, ram) -> None:
    frontend = acked(connect())
    assert ack_status(frontend, Request.SET_VRING_KICK, U64.pack(0x100)) == 1
    assert ack_status(frontend, Request.SET_VRING_KICK, U64.pack(0x200), [ram.regions[0].fd]) == 1
    assert ack_status(frontend, Request.SET_VRING_KICK, U64.pack(0)) == 1  # no fd sent
    # A regular file cannot be watched by epoll.
    with tempfile.TemporaryFile() as regular:
        assert ack_status(frontend, Request.SET_VRING_KICK, U64.pack(0), [regular.fileno()]) == 1
    kick = os.eventfd(0)
    try:
        assert ack_status(frontend, Request.SET_VRING_KICK, U64.pack(1), [kick]) == 0
    finally:
        os.close(kick)


def test_call_without_fd_means_no_signal(connect, ram) -> None:
    frontend, (cmdq, _eventq) = _started(connect, ram)
    frontend.set_vring_fd(Request.SET_VRING_CALL, 0, None)
    cmdq.publish([cmdq.add(b"quiet", 64)])
    cmdq.kick()
    frontend.get_queue_num()
    # Served (the used ring moved) but not signalled.
    for _ in range(1000):
        if cmdq.used_idx == 1:
            break
        frontend.get_queue_num()
    assert cmdq.used_idx == 1
    assert not cmdq.signalled("call")
    assert cmdq.collect()[0].data == b"echo:quiet"


def test_err_fd_is_signalled_for_a_broken_ring(connect, ram, backend) -> None:
    frontend, (cmdq, _eventq) = _started(connect, ram)
    cmdq.publish_raw([cmdq.size + 3])  # head index out of range
    cmdq.kick()
    ready, _, _ = select.select([cmdq.err_fd], [], [], 5)
    assert ready
    assert backend.connection.queues[0].broken


def test_set_vring_enable(connect, ram, backend) -> None:
    frontend, (cmdq, _eventq) = _started(connect, ram)
    frontend.set_vring_enable(0, False)
    cmdq.publish([cmdq.add(b"held", 64)])
    cmdq.kick()
    frontend.get_queue_num()
    assert cmdq.collect() == []
    frontend.set_vring_enable(0, True)
    assert [c.data for c in cmdq.wait_used(1)] == [b"echo:held"]
    assert ack_status(frontend, Request.SET_VRING_ENABLE, VRING_STATE.pack(0, 2)) == 1
    assert ack_status(frontend, Request.SET_VRING_ENABLE, VRING_STATE.pack(9, 1)) == 1


def test_without_protocol_features_rings_start_enabled(connect, ram) -> None:
    frontend = connect()
    offered = frontend.get_features()
    cmdq, _ = frontend.setup(ram, transport_features=offered & ~0xFFFFFF
                             & ~bit(VirtioFeature.PROTOCOL_FEATURES))
    assert not frontend.features & bit(VirtioFeature.PROTOCOL_FEATURES)
    assert cmdq.transact(b"x") == b"echo:x"


def test_eventq_buffers_are_held_until_there_is_an_event(connect, ram, backend) -> None:
    frontend, (cmdq, eventq) = _started(connect, ram)
    eventq.post_buffers(4, 136)
    frontend.get_queue_num()
    assert eventq.collect() == []
    backend.device.pending.append(b"notification")
    eventq.kick()  # the device delivers on the next kick of the eventq
    assert [c.data for c in eventq.wait_used(1)] == [b"notification"]


# --- REPLY_ACK, unknown requests, fds where none belong --------------------------------------

def test_need_reply_without_reply_ack_gets_no_ack(connect) -> None:
    frontend = connect()
    frontend.set_protocol_features(bit(ProtocolFeature.MQ))
    frontend.send(Request.SET_OWNER, flags=VERSION | HeaderFlag.NEED_REPLY)
    assert frontend.get_queue_num() == 2  # the first reply is GET_QUEUE_NUM's


def test_need_reply_before_any_negotiation_is_acknowledged(connect, backend) -> None:
    # QEMU's vhost-user-scmi reconnecting to a restarted back-end keeps its old view
    # of the protocol features (REPLY_ACK on) and waits for each acknowledgement.
    frontend = connect()
    assert ack_status(frontend, Request.SET_OWNER) == 0
    assert ack_status(frontend, Request.SET_VRING_NUM, VRING_STATE.pack(0, 3)) == 1
    assert frontend.get_queue_num() == 2


@pytest.mark.parametrize("request_number", [99, Request.SET_LOG_FD, Request.SET_CONFIG,
                                            Request.VRING_KICK])
def test_unknown_request_fails_with_an_ack(connect, backend, request_number) -> None:
    frontend = acked(connect())
    assert ack_status(frontend, request_number, b"\0" * 8) == 1
    frontend.send(request_number, b"\0" * 8)  # no reply wanted: none sent
    assert frontend.get_queue_num() == 2
    assert backend.connection is not None


@pytest.mark.parametrize("request_number", [Request.GET_CONFIG, Request.GET_INFLIGHT_FD])
def test_unimplemented_request_with_a_reply_gets_an_empty_one(connect, request_number) -> None:
    frontend = connect()
    assert frontend.request(request_number, b"\0" * 12) == b""
    assert frontend.get_queue_num() == 2


def test_fd_on_a_request_without_fds_is_refused_and_closed(connect, backend) -> None:
    frontend = acked(connect())
    gc.collect()  # fds of earlier tests' objects must not close during the count
    before = len(os.listdir("/proc/self/fd"))
    spare = os.eventfd(0)
    try:
        for _ in range(20):
            assert ack_status(frontend, Request.SET_OWNER, b"", [spare]) == 1
    finally:
        os.close(spare)
    # The back-end (in this process) kept none of the 20 copies.
    assert len(os.listdir("/proc/self/fd")) == before


# --- malformed messages: the connection is closed, the back-end serves the next one ---------

def _raw(frontend: VhostUserFrontend, data: bytes, fds=()) -> None:
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
    frontend.sock.sendmsg([data], ancillary if fds else [])


@pytest.mark.parametrize("case", ["body_too_large", "short_header", "short_body", "bad_version",
                                  "too_many_fds", "fds_on_body"])
def test_malformed_message_closes_the_connection(connect, backend, case) -> None:
    frontend = connect()
    eventfds = [os.eventfd(0) for _ in range(40)]
    try:
        if case == "body_too_large":
            _raw(frontend, HEADER.pack(Request.SET_FEATURES, VERSION, 4097) + b"\0" * 4097)
        elif case == "short_header":
            _raw(frontend, b"\1\0\0\0\1\0")
        elif case == "short_body":
            _raw(frontend, HEADER.pack(Request.SET_FEATURES, VERSION, 8) + b"\0\0\0")
        elif case == "bad_version":
            _raw(frontend, HEADER.pack(Request.GET_FEATURES, 2, 0))
        elif case == "too_many_fds":
            _raw(frontend, HEADER.pack(Request.SET_OWNER, VERSION, 0), eventfds[:33])
        elif case == "fds_on_body":
            # Whether the back-end sees a short body or fds arriving with the body
            # depends on timing; both are protocol errors.
            frontend.sock.sendall(HEADER.pack(Request.SET_FEATURES, VERSION, 8))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                _raw(frontend, b"\0" * 8, eventfds[:1])
        assert_closed(frontend)
    finally:
        for fd in eventfds:
            os.close(fd)
    assert_still_serving(connect)


def test_second_vmm_is_refused_while_one_is_connected(connect, backend) -> None:
    first = connect()
    assert first.get_queue_num() == 2
    second = connect()
    assert_closed(second)
    assert first.get_queue_num() == 2
    first.close()
    assert_still_serving(connect)


def test_disconnect_releases_memory_and_fds(connect, backend, ram) -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    def maps() -> int:
        with open("/proc/self/maps") as f:
            return sum("guest-ram" in line for line in f)

    baseline_maps = maps()
    frontend = connect()
    cmdq, _ = frontend.setup(ram)
    assert cmdq.transact(b"x") == b"echo:x"
    assert maps() == baseline_maps + 1  # the back-end's mapping
    before_close = fds()
    frontend.close()
    second = connect()  # accepted only once the first connection is gone
    assert second.get_queue_num() == 2
    assert backend.device.disconnects == 1
    assert maps() == baseline_maps
    # Our 3 fds per queue and the socket went away, and the back-end's copies with them.
    assert fds() <= before_close - 7 - 6 + 2


def test_front_end_error_on_refused_command(connect) -> None:
    frontend = acked(connect())
    with pytest.raises(FrontendError, match="SET_VRING_NUM failed"):
        frontend.set_vring_num(0, 3)


def test_a_bug_in_a_devices_timed_work_costs_its_connection_only(connect, backend) -> None:
    """The loop runs the device's due work after a wake-up; what that raises drops the
    VMM's connection, and the loop serves the next VMM."""
    frontend = connect()
    assert frontend.get_queue_num() == 2
    backend.device.failing_work = True
    backend.device.deadline_moved()  # as a device whose work was scheduled says
    assert frontend.get_queue_num() == 2  # the wake-up: answered, then the work fails
    assert_closed(frontend)
    assert not backend.device.failing_work
    assert_still_serving(connect)
