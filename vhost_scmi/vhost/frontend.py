# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""A vhost-user front-end (the VMM's side), for tests, benchmarks and diagnostics.

It plays both the VMM and the guest driver: `GuestRam` is memfd-backed guest
memory, `DriverQueue` a split virtqueue as a guest driver fills it, and
`VhostUserFrontend` speaks the vhost-user protocol to any back-end over its Unix
socket, with the handshake in the order QEMU uses. Low-level methods send
arbitrary (also malformed) messages and write raw ring contents, for tests.

    frontend = VhostUserFrontend(socket_path)
    ram = GuestRam()
    cmdq, eventq = frontend.setup(ram, queue_count=2)
    response = cmdq.transact(request, writable=256)

Not a hot path for the back-end, but kept lean: a batch is written with a few
`struct.pack_into` calls.
"""

from __future__ import annotations

import mmap
import os
import select
import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from vhost_scmi.vhost.protocol import (
    HEADER,
    MEM_REG_MSG,
    MEM_REGION,
    MEM_TABLE_HEADER,
    U64,
    VERSION,
    VRING_ADDR,
    VRING_NOFD_MASK,
    VRING_STATE,
    HeaderFlag,
    ProtocolFeature,
    Request,
    VirtioFeature,
    bit,
)
from vhost_scmi.vhost.virtqueue import memory_fence

DESC_F_NEXT = 1
DESC_F_WRITE = 2
DESC_F_INDIRECT = 4
AVAIL_F_NO_INTERRUPT = 1
DESCRIPTOR = struct.Struct("<QIHH")
USED_ELEM = struct.Struct("<II")
U16 = struct.Struct("<H")

#: Default guest RAM: one region at the arm64 `virt` machine's RAM base.
DEFAULT_LAYOUT = ((0x4000_0000, 16 << 20),)
#: Where the pretend VMM "maps" guest RAM (only needs to differ from guest addresses).
UADDR_BASE = 0x7F00_0000_0000

# Virtio device status bits, as QEMU sends them with SET_STATUS.
STATUS_ACKNOWLEDGE = 1
STATUS_DRIVER = 2
STATUS_DRIVER_OK = 4
STATUS_FEATURES_OK = 8


class FrontendError(Exception):
    """The back-end refused a request, answered wrongly, or did not answer."""


@dataclass
class RamRegion:
    """One memfd-backed region of guest RAM."""

    gpa: int
    size: int
    uaddr: int
    mmap_offset: int
    fd: int
    map: mmap.mmap
    next_free: int = 0

    def describe(self) -> bytes:
        """The region as vhost-user carries it."""
        return MEM_REGION.pack(self.gpa, self.size, self.uaddr, self.mmap_offset)


class GuestRam:
    """Guest memory: memfd-backed regions, mapped here, shared with the back-end."""

    def __init__(self, layout: Iterable[tuple[int, int] | tuple[int, int, int]] = DEFAULT_LAYOUT):
        """`layout`: (guest physical address, size[, mmap offset]) per region."""
        self.regions: list[RamRegion] = []
        self._views: list[memoryview] = []
        uaddr = UADDR_BASE
        for entry in layout:
            gpa, size = entry[0], entry[1]
            offset = entry[2] if len(entry) > 2 else 0
            fd = os.memfd_create("guest-ram", os.MFD_CLOEXEC)
            os.ftruncate(fd, offset + size)
            mapping = mmap.mmap(fd, offset + size, mmap.MAP_SHARED)
            self.regions.append(RamRegion(gpa, size, uaddr, offset, fd, mapping))
            uaddr += (offset + size + 0x20_0000) & ~0xFFFFF

    def close(self) -> None:
        """Unmap and close every region (views handed out are released first)."""
        for view in self._views:
            view.release()
        self._views.clear()
        for region in self.regions:
            region.map.close()
            os.close(region.fd)
        self.regions.clear()

    def _locate(self, gpa: int, length: int) -> tuple[RamRegion, int]:
        for region in self.regions:
            if region.gpa <= gpa and gpa + length <= region.gpa + region.size:
                return region, region.mmap_offset + gpa - region.gpa
        raise ValueError(f"gpa {gpa:#x}+{length:#x} is not in guest RAM")

    def view(self, gpa: int, length: int) -> memoryview:
        """A writable view of guest RAM (valid until `close()`)."""
        region, offset = self._locate(gpa, length)
        with memoryview(region.map) as whole:
            view = whole[offset:offset + length]
        self._views.append(view)
        return view

    def read(self, gpa: int, length: int) -> bytes:
        region, offset = self._locate(gpa, length)
        return region.map[offset:offset + length]

    def write(self, gpa: int, data: bytes) -> None:
        region, offset = self._locate(gpa, len(data))
        region.map[offset:offset + len(data)] = data

    def uaddr(self, gpa: int) -> int:
        """The pretend VMM's virtual address of `gpa`."""
        region, _offset = self._locate(gpa, 0)
        return region.uaddr + gpa - region.gpa

    def alloc(self, size: int, align: int = 16, region: int = 0) -> int:
        """Reserve `size` bytes in region number `region`; return the guest address."""
        ram = self.regions[region]
        start = (ram.next_free + align - 1) & ~(align - 1)
        if start + size > ram.size:
            raise FrontendError(f"guest RAM region {region} is full")
        ram.next_free = start + size
        return ram.gpa + start


@dataclass
class Completion:
    """A chain the device returned: its head, the used length and the bytes written."""

    head: int
    length: int
    data: bytes


@dataclass
class _Chain:
    descriptors: list[int]
    writable: list[tuple[int, int]] = field(default_factory=list)


class DriverQueue:
    """The driver side of one split virtqueue in `GuestRam`."""

    def __init__(self, ram: GuestRam, index: int, size: int, *, region: int = 0,
                 data_region: int | None = None, arena_size: int = 1 << 20) -> None:
        self.ram = ram
        self.index = index
        self.size = size
        self.desc_gpa = ram.alloc(16 * size, 16, region)
        self.avail_gpa = ram.alloc(6 + 2 * size, 2, region)
        self.used_gpa = ram.alloc(6 + 8 * size, 4, region)
        self._arena_region = region if data_region is None else data_region
        self._arena_start = ram.alloc(arena_size, 64, self._arena_region)
        self._arena_end = self._arena_start + arena_size
        self._arena_next = self._arena_start
        self._desc = ram.view(self.desc_gpa, 16 * size)
        self._avail = ram.view(self.avail_gpa, 6 + 2 * size)
        self._used = ram.view(self.used_gpa, 6 + 8 * size)
        self._free = list(range(size - 1, -1, -1))
        self._chains: dict[int, _Chain] = {}
        self.avail_idx = 0
        self.last_used = 0
        self.event_idx = False
        self.kick_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.call_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.err_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def close(self) -> None:
        for view in (self._desc, self._avail, self._used):
            view.release()
        for fd in (self.kick_fd, self.call_fd, self.err_fd):
            os.close(fd)

    # --- building chains ---------------------------------------------------------------------

    def _buffer(self, size: int) -> int:
        start = (self._arena_next + 15) & ~15
        if start + size > self._arena_end:
            raise FrontendError(f"queue {self.index}: buffer arena exhausted")
        self._arena_next = start + size
        return start

    def _take_descriptor(self) -> int:
        if not self._free:
            raise FrontendError(f"queue {self.index}: no free descriptors")
        return self._free.pop()

    def add(self, readable: bytes | Sequence[bytes] = (), writable: int | Sequence[int] = (),
            *, indirect: bool = False) -> int:
        """Write a chain (readable buffers, then writable buffers of the given sizes) and
        return its head; `publish()` makes it available. With `indirect`, the chain goes
        into an indirect table behind one descriptor."""
        parts = [readable] if isinstance(readable, bytes | bytearray) else list(readable)
        sizes = [writable] if isinstance(writable, int) else list(writable)
        entries = []
        for data in parts:
            gpa = self._buffer(len(data))
            self.ram.write(gpa, bytes(data))
            entries.append((gpa, len(data), 0))
        chain = _Chain([])
        for size in sizes:
            gpa = self._buffer(size)
            entries.append((gpa, size, DESC_F_WRITE))
            chain.writable.append((gpa, size))
        if not entries:
            raise ValueError("a chain needs at least one buffer")
        if indirect:
            table = self._buffer(16 * len(entries))
            for number, (gpa, size, flags) in enumerate(entries):
                more = number + 1 < len(entries)
                self.ram.write(table + 16 * number, DESCRIPTOR.pack(
                    gpa, size, flags | (DESC_F_NEXT if more else 0), number + 1 if more else 0))
            head = self._take_descriptor()
            self.write_descriptor(head, table, 16 * len(entries), DESC_F_INDIRECT, 0)
            chain.descriptors.append(head)
        else:
            indexes = [self._take_descriptor() for _ in entries]
            for number, (gpa, size, flags) in enumerate(entries):
                more = number + 1 < len(entries)
                self.write_descriptor(indexes[number], gpa, size,
                                      flags | (DESC_F_NEXT if more else 0),
                                      indexes[number + 1] if more else 0)
            chain.descriptors.extend(indexes)
        head = chain.descriptors[0]
        self._chains[head] = chain
        return head

    def publish(self, heads: Sequence[int]) -> None:
        """Make the chains at `heads` available to the device (no kick)."""
        mask = self.size - 1
        idx = self.avail_idx
        for head in heads:
            U16.pack_into(self._avail, 4 + 2 * (idx & mask), head)
            idx = (idx + 1) & 0xFFFF
        memory_fence()  # ring entries before the index
        U16.pack_into(self._avail, 2, idx)
        self.avail_idx = idx
        memory_fence()

    def kick(self) -> None:
        """Notify the device (always; a spurious kick is harmless)."""
        os.eventfd_write(self.kick_fd, 1)

    def kick_needed(self, old_avail: int) -> bool:
        """Whether a kick is due after publishing from `old_avail` (EVENT_IDX rules)."""
        if not self.event_idx:
            return not U16.unpack_from(self._used, 0)[0] & 1  # VRING_USED_F_NO_NOTIFY
        event = U16.unpack_from(self._used, 4 + 8 * self.size)[0]
        return (self.avail_idx - event - 1) & 0xFFFF < (self.avail_idx - old_avail) & 0xFFFF

    def post(self, requests: Sequence[bytes], writable: int, *,
             indirect: bool = False) -> list[int]:
        """Add one chain per request, publish them all and kick once."""
        heads = [self.add(request, writable, indirect=indirect) for request in requests]
        self.publish(heads)
        self.kick()
        return heads

    # --- completions -------------------------------------------------------------------------

    @property
    def used_idx(self) -> int:
        return U16.unpack_from(self._used, 2)[0]

    def collect(self, *, free: bool = True, read_data: bool = True) -> list[Completion]:
        """Take every used entry the device added. With `free=False` the chains stay
        allocated for `resubmit()`."""
        memory_fence()
        end = self.used_idx
        done = []
        mask = self.size - 1
        while self.last_used != end:
            head, length = USED_ELEM.unpack_from(self._used, 4 + 8 * (self.last_used & mask))
            self.last_used = (self.last_used + 1) & 0xFFFF
            chain = self._chains.get(head)
            data = b""
            if read_data and chain is not None:
                parts, left = [], length
                for gpa, size in chain.writable:
                    if left <= 0:
                        break
                    parts.append(self.ram.read(gpa, min(size, left)))
                    left -= size
                data = b"".join(parts)
            if free and chain is not None:
                del self._chains[head]
                self._free.extend(chain.descriptors)
            done.append(Completion(head, length, data))
        if free and not self._chains:
            self._arena_next = self._arena_start
        self.request_interrupt()
        return done

    def resubmit(self, heads: Sequence[int]) -> None:
        """Publish again chains collected with `free=False`, and kick."""
        self.publish(heads)
        self.kick()

    def request_interrupt(self) -> None:
        """Ask to be signalled on the next used entry (EVENT_IDX used_event, flags 0)."""
        U16.pack_into(self._avail, 0, 0)
        U16.pack_into(self._avail, 4 + 2 * self.size, self.last_used)
        memory_fence()

    def suppress_interrupts(self) -> None:
        """Ask not to be signalled (NO_INTERRUPT flag; used_event far behind)."""
        U16.pack_into(self._avail, 0, AVAIL_F_NO_INTERRUPT)
        U16.pack_into(self._avail, 4 + 2 * self.size, (self.last_used - 1) & 0xFFFF)
        memory_fence()

    def wait(self, timeout: float = 5.0) -> bool:
        """Wait until the call eventfd is signalled; True if it was (and is consumed)."""
        ready, _, _ = select.select([self.call_fd], [], [], timeout)
        if not ready:
            return False
        try:
            os.eventfd_read(self.call_fd)
        except BlockingIOError:
            pass
        return True

    def wait_used(self, count: int = 1, timeout: float = 5.0) -> list[Completion]:
        """Collect until `count` completions arrived; FrontendError on timeout."""
        done = self.collect()
        while len(done) < count:
            if not self.wait(timeout):
                raise FrontendError(f"queue {self.index}: {len(done)} of {count} completions "
                                    f"after {timeout} s")
            done.extend(self.collect())
        return done

    def transact(self, request: bytes, writable: int = 256, *, indirect: bool = False,
                 timeout: float = 5.0) -> bytes:
        """Post one request, wait for its completion, return the bytes written."""
        head = self.add(request, writable, indirect=indirect)
        self.publish([head])
        self.kick()
        for completion in self.wait_used(1, timeout):
            if completion.head == head:
                return completion.data
        raise FrontendError(f"queue {self.index}: completion of another chain")

    def post_buffers(self, count: int, size: int) -> list[int]:
        """Post `count` empty writable buffers of `size` bytes (an event queue)."""
        heads = [self.add((), size) for _ in range(count)]
        self.publish(heads)
        self.kick()
        return heads

    def signalled(self, fd_name: str = "call") -> bool:
        """Whether the call (or "err") eventfd is signalled now; consumes the signal."""
        fd = self.call_fd if fd_name == "call" else self.err_fd
        try:
            os.eventfd_read(fd)
        except BlockingIOError:
            return False
        return True

    # --- raw ring access, for malformed-ring tests ---------------------------------------------

    def write_descriptor(self, index: int, addr: int, length: int, flags: int, next_: int) -> None:
        DESCRIPTOR.pack_into(self._desc, 16 * index, addr, length, flags, next_)

    def publish_raw(self, entries: Sequence[int], avail_idx: int | None = None) -> None:
        """Write avail entries (any values) and set avail.idx (default: advance by count)."""
        mask = self.size - 1
        idx = self.avail_idx
        for head in entries:
            U16.pack_into(self._avail, 4 + 2 * (idx & mask), head & 0xFFFF)
            idx = (idx + 1) & 0xFFFF
        self.avail_idx = idx if avail_idx is None else avail_idx & 0xFFFF
        memory_fence()
        U16.pack_into(self._avail, 2, self.avail_idx)
        memory_fence()


class VhostUserFrontend:
    """The VMM end of a vhost-user socket."""

    def __init__(self, socket_path: str | socket.socket, *, timeout: float = 5.0) -> None:
        """Connect to the back-end's socket at `socket_path`, or speak over an already
        connected socket (e.g. one end of a socketpair), which the front-end then owns."""
        if isinstance(socket_path, socket.socket):
            self.sock = socket_path
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(timeout)
        if not isinstance(socket_path, socket.socket):
            try:
                self.sock.connect(socket_path)
            except OSError:
                self.sock.close()
                raise
        self.protocol_features = 0
        self.features = 0
        self.queues: list[DriverQueue] = []
        self.ram: GuestRam | None = None

    def close(self) -> None:
        """Disconnect and release the queues' fds (the RAM belongs to the caller)."""
        self.sock.close()
        for queue in self.queues:
            queue.close()
        self.queues.clear()

    def __enter__(self) -> VhostUserFrontend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- raw messages -------------------------------------------------------------------------

    def send(self, request: int, payload: bytes = b"", fds: Sequence[int] = (), *,
             flags: int = VERSION, size: int | None = None) -> None:
        """Send one message as given (`size` overrides the header's size field)."""
        header = HEADER.pack(request, flags, len(payload) if size is None else size)
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
        self.sock.sendmsg([header + payload], ancillary if fds else [])

    def receive(self) -> tuple[int, int, bytes]:
        """Read one reply: (request, flags, payload). FrontendError on EOF or timeout."""
        try:
            header = self._recv_exact(HEADER.size)
            request, flags, size = HEADER.unpack(header)
            payload = self._recv_exact(size) if size else b""
        except TimeoutError as error:
            raise FrontendError("no reply from the back-end") from error
        return request, flags, payload

    def _recv_exact(self, size: int) -> bytes:
        chunks, left = [], size
        while left:
            chunk = self.sock.recv(left)
            if not chunk:
                raise FrontendError("the back-end closed the connection")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def request(self, request: int, payload: bytes = b"", fds: Sequence[int] = ()) -> bytes:
        """Send a request that has a reply; return the reply payload."""
        self.send(request, payload, fds)
        reply, flags, body = self.receive()
        if reply != request or not flags & HeaderFlag.REPLY:
            raise FrontendError(f"reply to {reply} (flags {flags:#x}) for request {request}")
        return body

    def request_u64(self, request: int, payload: bytes = b"") -> int:
        body = self.request(request, payload)
        if len(body) != U64.size:
            raise FrontendError(f"request {Request(request).name}: reply of {len(body)} bytes")
        return U64.unpack(body)[0]

    def command(self, request: int, payload: bytes = b"", fds: Sequence[int] = ()) -> None:
        """Send a request without a reply of its own; with REPLY_ACK, ask for and check
        the acknowledgement (FrontendError on a failure)."""
        if self.protocol_features & bit(ProtocolFeature.REPLY_ACK):
            self.send(request, payload, fds, flags=VERSION | HeaderFlag.NEED_REPLY)
            reply, _flags, body = self.receive()
            if reply != request or len(body) != U64.size:
                raise FrontendError(f"bad acknowledgement for {Request(request).name}")
            (status,) = U64.unpack(body)
            if status:
                raise FrontendError(f"{Request(request).name} failed (status {status})")
        else:
            self.send(request, payload, fds)

    # --- typed requests -----------------------------------------------------------------------

    def get_features(self) -> int:
        return self.request_u64(Request.GET_FEATURES)

    def set_features(self, features: int) -> None:
        self.command(Request.SET_FEATURES, U64.pack(features))
        self.features = features

    def get_protocol_features(self) -> int:
        return self.request_u64(Request.GET_PROTOCOL_FEATURES)

    def set_protocol_features(self, features: int) -> None:
        self.command(Request.SET_PROTOCOL_FEATURES, U64.pack(features))
        self.protocol_features = features

    def get_queue_num(self) -> int:
        return self.request_u64(Request.GET_QUEUE_NUM)

    def get_max_mem_slots(self) -> int:
        return self.request_u64(Request.GET_MAX_MEM_SLOTS)

    def set_owner(self) -> None:
        self.command(Request.SET_OWNER)

    def set_mem_table(self, ram: GuestRam) -> None:
        payload = MEM_TABLE_HEADER.pack(len(ram.regions), 0) + b"".join(
            region.describe() for region in ram.regions)
        self.command(Request.SET_MEM_TABLE, payload, [region.fd for region in ram.regions])

    def add_mem_reg(self, region: RamRegion) -> None:
        self.command(Request.ADD_MEM_REG, MEM_REG_MSG.pack(0, region.describe()), [region.fd])

    def rem_mem_reg(self, region: RamRegion) -> None:
        self.command(Request.REM_MEM_REG, MEM_REG_MSG.pack(0, region.describe()))

    def set_vring_num(self, index: int, num: int) -> None:
        self.command(Request.SET_VRING_NUM, VRING_STATE.pack(index, num))

    def set_vring_base(self, index: int, base: int) -> None:
        self.command(Request.SET_VRING_BASE, VRING_STATE.pack(index, base))

    def get_vring_base(self, index: int) -> int:
        body = self.request(Request.GET_VRING_BASE, VRING_STATE.pack(index, 0))
        if len(body) != VRING_STATE.size:
            raise FrontendError(f"GET_VRING_BASE failed for queue {index}")
        return VRING_STATE.unpack(body)[1]

    def set_vring_addr(self, index: int, desc: int, used: int, avail: int, flags: int = 0) -> None:
        self.command(Request.SET_VRING_ADDR, VRING_ADDR.pack(index, flags, desc, used, avail, 0))

    def set_vring_fd(self, request: Request, index: int, fd: int | None) -> None:
        """SET_VRING_KICK/CALL/ERR with `fd`, or the no-fd flag when None."""
        if fd is None:
            self.command(request, U64.pack(index | VRING_NOFD_MASK))
        else:
            self.command(request, U64.pack(index), [fd])

    def set_vring_enable(self, index: int, enable: bool) -> None:
        self.command(Request.SET_VRING_ENABLE, VRING_STATE.pack(index, int(enable)))

    def set_status(self, status: int) -> None:
        self.command(Request.SET_STATUS, U64.pack(status))

    def get_status(self) -> int:
        return self.request_u64(Request.GET_STATUS)

    def reset_device(self) -> None:
        self.command(Request.RESET_DEVICE)

    # --- the whole handshake --------------------------------------------------------------------

    def setup(self, ram: GuestRam, *, queue_count: int = 2, queue_size: int = 256,
              device_features: int | None = None, transport_features: int | None = None,
              protocol_features: int | None = None, use_mem_slots: bool | None = None,
              data_region: int | None = None, arena_size: int = 1 << 20) -> list[DriverQueue]:
        """Negotiate and start `queue_count` queues as QEMU does; return them.

        Features default to everything the back-end offers (device bits included);
        `use_mem_slots` picks ADD_MEM_REG over SET_MEM_TABLE (default: when offered).
        Rings go in RAM region 0, request and response buffers in `data_region`
        (default 0), `arena_size` bytes per queue.
        """
        self.ram = ram
        offered = self.get_features()
        if offered & bit(VirtioFeature.PROTOCOL_FEATURES):
            offered_protocol = self.get_protocol_features()
            wanted = offered_protocol if protocol_features is None else protocol_features
            self.set_protocol_features(wanted & offered_protocol)
        if self.protocol_features & bit(ProtocolFeature.MQ):
            available = self.get_queue_num()
            if available < queue_count:
                raise FrontendError(f"back-end has {available} queues, {queue_count} wanted")
        if self.protocol_features & bit(ProtocolFeature.CONFIGURE_MEM_SLOTS):
            slots = self.get_max_mem_slots()
            if slots < len(ram.regions):
                raise FrontendError(f"back-end takes {slots} memory slots")
        self.set_owner()
        offered = self.get_features()
        queues = [DriverQueue(ram, index, queue_size, data_region=data_region,
                              arena_size=arena_size)
                  for index in range(queue_count)]
        self.queues = queues
        for queue in queues:
            self.set_vring_fd(Request.SET_VRING_CALL, queue.index, queue.call_fd)
            self.set_vring_fd(Request.SET_VRING_ERR, queue.index, queue.err_fd)
        device = offered & 0xFFFFFF if device_features is None else device_features
        transport = offered & ~0xFFFFFF if transport_features is None else transport_features
        self.set_features((device | transport) & offered)
        event_idx = bool(self.features & bit(VirtioFeature.RING_EVENT_IDX))
        if use_mem_slots is None:
            use_mem_slots = bool(self.protocol_features & bit(ProtocolFeature.CONFIGURE_MEM_SLOTS))
        if use_mem_slots:
            for region in ram.regions:
                self.add_mem_reg(region)
        else:
            self.set_mem_table(ram)
        for queue in queues:
            queue.event_idx = event_idx
            queue.request_interrupt()
            self.start_queue(queue)
        if self.features & bit(VirtioFeature.PROTOCOL_FEATURES):
            for queue in queues:
                self.set_vring_enable(queue.index, True)
        if self.protocol_features & bit(ProtocolFeature.STATUS):
            self.set_status(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK
                            | STATUS_DRIVER_OK)
        return queues

    def start_queue(self, queue: DriverQueue, base: int | None = None) -> None:
        """SET_VRING_NUM, _BASE, _ADDR and _KICK for `queue`."""
        ram = queue.ram
        self.set_vring_num(queue.index, queue.size)
        self.set_vring_base(queue.index, queue.avail_idx if base is None else base)
        self.set_vring_addr(queue.index, ram.uaddr(queue.desc_gpa), ram.uaddr(queue.used_gpa),
                            ram.uaddr(queue.avail_gpa))
        self.set_vring_fd(Request.SET_VRING_KICK, queue.index, queue.kick_fd)

    def stop(self) -> list[int]:
        """Stop every queue as QEMU does at guest shutdown; return each GET_VRING_BASE."""
        return [self.get_vring_base(queue.index) for queue in self.queues]
