# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""One vhost-user back-end connection: the message state machine for one VMM.

`BackendConnection` owns everything the VMM gave it (the socket, the mapped guest
memory, every kick/call/err fd) and releases all of it in `close()`. It is driven
by an event loop: `handle_readable()` when the socket is readable, and, when a
queue's kick eventfd is, the callback it gave with the fd (what `kick(index)` does).
It tells the loop which kick fds to watch through a `KickWatcher`, always before
closing one: an epoll registration outlives our fd when the VMM still holds the
same eventfd, so unregistering first matters.

Every message from the VMM is untrusted. A malformed request fails (the VMM gets
a failure reply where one is due); a malformed *message* (bad header, oversized
or short body, too many fds, a broken socket) is a protocol error and the caller
closes the connection.
"""

from __future__ import annotations

import array
import enum
import functools
import logging
import os
import socket
from collections.abc import Callable
from typing import Protocol, TypeVar

from vhost_scmi.vhost.device import RequestHandler, VirtioDevice
from vhost_scmi.vhost.memory import MAX_MEMORY_REGIONS, GuestMemory, GuestMemoryError
from vhost_scmi.vhost.protocol import (
    HEADER,
    MAX_BODY_SIZE,
    MAX_FDS,
    MEM_REG_MSG,
    MEM_REGION,
    MEM_TABLE_HEADER,
    MEM_TABLE_MAX_REGIONS,
    REQUESTS_WITH_REPLY,
    U64,
    VERSION,
    VRING_ADDR,
    VRING_INDEX_MASK,
    VRING_NOFD_MASK,
    VRING_STATE,
    HeaderFlag,
    ProtocolFeature,
    Request,
    VirtioFeature,
    bit,
)
from vhost_scmi.vhost.virtqueue import MAX_QUEUE_SIZE, SplitQueue

log = logging.getLogger(__name__)

#: Virtio transport features the queue engine implements (device bits are added).
TRANSPORT_FEATURES = (
    bit(VirtioFeature.VERSION_1)
    | bit(VirtioFeature.NOTIFY_ON_EMPTY)
    | bit(VirtioFeature.RING_INDIRECT_DESC)
    | bit(VirtioFeature.RING_EVENT_IDX)
    | bit(VirtioFeature.PROTOCOL_FEATURES)
)

#: vhost-user protocol features offered by default.
PROTOCOL_FEATURES = (
    bit(ProtocolFeature.MQ)
    | bit(ProtocolFeature.REPLY_ACK)
    | bit(ProtocolFeature.RESET_DEVICE)
    | bit(ProtocolFeature.STATUS)
)
#: Every protocol feature implemented here. CONFIGURE_MEM_SLOTS (ADD/REM_MEM_REG,
#: GET_MAX_MEM_SLOTS) is implemented, and served whenever a front-end uses it, but
#: not offered by default: QEMU's vhost-user-scmi does not negotiate again when it
#: reconnects to a restarted back-end, and with memory slots it then believes the
#: new back-end already has the guest memory and never sends it. Without them it
#: sends the whole table (SET_MEM_TABLE) every time the device starts.
IMPLEMENTED_PROTOCOL_FEATURES = PROTOCOL_FEATURES | bit(ProtocolFeature.CONFIGURE_MEM_SLOTS)

# The ancillary buffer holds one fd more than allowed, so that "too many" is seen.
_ANCILLARY_SIZE = socket.CMSG_SPACE((MAX_FDS + 1) * array.array("i").itemsize)


class RunState(enum.Enum):
    """Life cycle of a connection."""

    #: Serving messages and kicks.
    CONNECTED = "connected"
    #: Closed: every resource released; no method but `close()` may be called.
    CLOSED = "closed"


class StateError(RuntimeError):
    """A method was called in a run state that does not allow it."""


class ProtocolError(Exception):
    """The VMM broke the message framing; the connection must be closed."""


class Disconnected(Exception):
    """The VMM closed its end of the socket."""


class RequestFailed(Exception):
    """A well-framed request could not be honoured; the VMM is told where it can be."""


class KickWatcher(Protocol):
    """The event loop's side: which kick eventfds to watch."""

    def watch_kick(self, fd: int, serve: Callable[[], object]) -> None:
        """Watch `fd` and call `serve()` when it is readable (OSError if it cannot)."""

    def unwatch_kick(self, fd: int) -> None:
        """Stop watching `fd` (it is about to be closed)."""


_Method = TypeVar("_Method", bound=Callable)


def _require(state: RunState) -> Callable[[_Method], _Method]:
    """Decorator: the method may only run while the connection is in `state`."""

    def decorate(method):
        @functools.wraps(method)
        def guarded(self, *args, **kwargs):
            if self._state is not state:
                raise StateError(f"{method.__name__}() needs state {state.value}, "
                                 f"connection is {self._state.value}")
            return method(self, *args, **kwargs)
        return guarded
    return decorate


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
    fds.clear()


class BackendConnection:
    """The back-end end of one VMM's vhost-user socket."""

    def __init__(self, sock: socket.socket, device: VirtioDevice, watcher: KickWatcher,
                 *, max_queue_size: int = MAX_QUEUE_SIZE,
                 protocol_features: int = PROTOCOL_FEATURES) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._device = device
        self._watcher = watcher
        self._state = RunState.CONNECTED
        self.memory = GuestMemory()
        #: The device's queues; alive until `close()`.
        self.queues = [SplitQueue(self.memory, index, max_queue_size)
                       for index in range(device.queue_count)]
        self._handlers: list[RequestHandler | None] = [
            device.queue_handler(index) for index in range(device.queue_count)]
        self.offered_features = TRANSPORT_FEATURES | (device.device_features & 0xFFFFFF)
        self.acked_features = 0
        if protocol_features & ~IMPLEMENTED_PROTOCOL_FEATURES:
            raise ValueError(f"protocol features {protocol_features:#x} are not implemented")
        self.offered_protocol_features = protocol_features
        self.protocol_features = 0
        # Whether SET_PROTOCOL_FEATURES was received on this connection.
        self._negotiated = False
        self.owned = False
        self.status = 0
        self._dispatch: dict[int, Callable[[bytes, list[int]], bytes | None]] = {
            Request.GET_FEATURES: self._get_features,
            Request.SET_FEATURES: self._set_features,
            Request.GET_PROTOCOL_FEATURES: self._get_protocol_features,
            Request.SET_PROTOCOL_FEATURES: self._set_protocol_features,
            Request.GET_QUEUE_NUM: self._get_queue_num,
            Request.SET_OWNER: self._set_owner,
            Request.RESET_OWNER: self._reset_owner,
            Request.RESET_DEVICE: self._reset_device,
            Request.SET_MEM_TABLE: self._set_mem_table,
            Request.GET_MAX_MEM_SLOTS: self._get_max_mem_slots,
            Request.ADD_MEM_REG: self._add_mem_reg,
            Request.REM_MEM_REG: self._rem_mem_reg,
            Request.SET_VRING_NUM: self._set_vring_num,
            Request.SET_VRING_ADDR: self._set_vring_addr,
            Request.SET_VRING_BASE: self._set_vring_base,
            Request.GET_VRING_BASE: self._get_vring_base,
            Request.SET_VRING_KICK: self._set_vring_kick,
            Request.SET_VRING_CALL: self._set_vring_call,
            Request.SET_VRING_ERR: self._set_vring_err,
            Request.SET_VRING_ENABLE: self._set_vring_enable,
            Request.SET_STATUS: self._set_status,
            Request.GET_STATUS: self._get_status,
        }
        device.connected(self.queues)

    # --- public ---------------------------------------------------------------------------

    @property
    def state(self) -> RunState:
        return self._state

    def fileno(self) -> int:
        """The socket's fd (for the event loop)."""
        return self._sock.fileno()

    @_require(RunState.CONNECTED)
    def handle_readable(self) -> bool:
        """Read and answer every message waiting on the socket.

        Returns False when the connection is finished (the VMM left, or broke the
        protocol): the caller must then `close()` it.
        """
        try:
            while self._handle_one():
                pass
        except Disconnected:
            log.info("VMM disconnected")
            return False
        except ProtocolError as error:
            log.warning("closing the connection: %s", error)
            return False
        except OSError as error:
            log.warning("closing the connection: socket error: %s", error)
            return False
        return True

    def kick(self, index: int) -> int:
        """Queue `index` was kicked: serve it. Returns the number of requests served."""
        if self._state is not RunState.CONNECTED:
            raise StateError(f"kick() on a {self._state.value} connection")
        queue = self.queues[index]
        queue.drain_kick()
        return self._run_queue(index)

    def close(self) -> None:
        """Release everything: kick watches, fds, guest memory, the socket. Idempotent."""
        if self._state is RunState.CLOSED:
            return
        self._state = RunState.CLOSED
        for queue in self.queues:
            self._unwatch(queue)
            queue.close_fds()
            queue.reset()
        self.memory.clear()
        try:
            self._device.disconnected()
        finally:
            self._sock.close()

    # --- message framing -------------------------------------------------------------------

    def _handle_one(self) -> bool:
        """Handle one message; False when no complete message is waiting."""
        try:
            data, fds, flags = self._receive(HEADER.size)
        except BlockingIOError:
            return False
        try:
            if not data:
                raise Disconnected()
            if len(data) < HEADER.size:
                raise ProtocolError(f"short message header ({len(data)} bytes)")
            request, hdr_flags, size = HEADER.unpack(data)
            if hdr_flags & HeaderFlag.VERSION_MASK != VERSION:
                raise ProtocolError(f"request {request}: unknown version in flags {hdr_flags:#x}")
            if size > MAX_BODY_SIZE:
                raise ProtocolError(f"request {request}: body of {size} bytes is too large")
            body = b""
            if size:
                try:
                    body, body_fds, _ = self._receive(size)
                except BlockingIOError:
                    body, body_fds = b"", []
                fds.extend(body_fds)
                if body_fds:
                    raise ProtocolError(f"request {request}: fds sent with the message body")
                if len(body) < size:
                    raise ProtocolError(
                        f"request {request}: short body ({len(body)} of {size} bytes)")
            self._dispatch_request(request, hdr_flags, body, fds)
        finally:
            _close_all(fds)
        return True

    def _receive(self, size: int) -> tuple[bytes, list[int], int]:
        data, ancillary, msg_flags, _ = self._sock.recvmsg(
            size, _ANCILLARY_SIZE, socket.MSG_CMSG_CLOEXEC)
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(payload[:len(payload) - len(payload) % received.itemsize])
                fds.extend(received)
        if msg_flags & socket.MSG_CTRUNC or len(fds) > MAX_FDS:
            _close_all(fds)
            raise ProtocolError(f"more than {MAX_FDS} fds with one message")
        return data, fds, msg_flags

    def _send(self, request: int, payload: bytes) -> None:
        message = HEADER.pack(request, VERSION | HeaderFlag.REPLY, len(payload)) + payload
        try:
            self._sock.sendall(message)
        except BlockingIOError as error:
            raise ProtocolError("the VMM does not read its replies") from error

    def _dispatch_request(self, request: int, flags: int, body: bytes, fds: list[int]) -> None:
        handler = self._dispatch.get(request)
        name = Request(request).name if request in Request._value2member_map_ else str(request)
        reply_due = request in REQUESTS_WITH_REPLY
        # A front-end that reconnects without negotiating again (QEMU's vhost-user-scmi
        # after a back-end restart) still asks for acknowledgements and waits for them.
        ack_wanted = (not reply_due and flags & HeaderFlag.NEED_REPLY
                      and (self.protocol_features & bit(ProtocolFeature.REPLY_ACK)
                           or not self._negotiated))
        if handler is None:
            log.warning("unsupported vhost-user request %s (%d fds), failed", name, len(fds))
            _close_all(fds)
            if reply_due:
                self._send(request, b"")  # a reply of the wrong size: the front-end fails it
            elif ack_wanted:
                self._send(request, U64.pack(1))
            return
        log.debug("vhost-user request %s (flags %#x, %d bytes, %d fds)",
                  name, flags, len(body), len(fds))
        try:
            reply = handler(body, fds)
        except RequestFailed as error:
            log.warning("vhost-user request %s failed: %s", name, error)
            reply, ok = b"", False
        else:
            ok = True
        # Fds not taken by the handler are closed before the VMM hears back.
        _close_all(fds)
        if reply_due:
            self._send(request, reply or b"")
        elif ack_wanted:
            self._send(request, U64.pack(0 if ok else 1))

    # --- helpers for the request handlers ----------------------------------------------------

    @staticmethod
    def _expect(body: bytes, size: int, fds: list[int], nfds: int = 0) -> None:
        if len(body) != size:
            raise RequestFailed(f"payload of {len(body)} bytes, expected {size}")
        if len(fds) != nfds:
            raise RequestFailed(f"{len(fds)} fds, expected {nfds}")

    def _queue(self, index: int) -> SplitQueue:
        if index >= len(self.queues):
            raise RequestFailed(f"queue index {index} out of range (have {len(self.queues)})")
        return self.queues[index]

    def _unwatch(self, queue: SplitQueue) -> None:
        if queue.kick_fd >= 0:
            self._watcher.unwatch_kick(queue.kick_fd)

    def _kick_callback(self, index: int) -> Callable[[], object]:
        """What the loop calls when queue `index` is kicked: `kick(index)`, or for a
        queue with a request handler the same work in one compiled call (no Python
        frame of ours on the way to the handler: this is every request's path). Its kick
        fd is unwatched before the connection closes, so no state check is needed."""
        handler = self._handlers[index]
        if handler is None:
            return functools.partial(self.kick, index)
        return functools.partial(self.queues[index].serve_kick, handler)

    def _run_queue(self, index: int) -> int:
        queue = self.queues[index]
        if not queue.ready:
            return 0
        handler = self._handlers[index]
        if handler is not None:
            return queue.process(handler)
        self._device.buffers_posted(index, queue)
        return 0

    def _apply_features(self) -> None:
        acked = self.acked_features
        for queue in self.queues:
            queue.event_idx = bool(acked & bit(VirtioFeature.RING_EVENT_IDX))
            queue.notify_on_empty = bool(acked & bit(VirtioFeature.NOTIFY_ON_EMPTY))
            queue.indirect_desc = bool(acked & bit(VirtioFeature.RING_INDIRECT_DESC))

    @staticmethod
    def _unpack_region(raw: bytes) -> tuple[int, int, int, int]:
        return MEM_REGION.unpack(raw)

    # --- request handlers: body and fds in, reply payload (or None) out ----------------------
    # A handler that keeps an fd removes it from `fds`; the rest are closed by the caller.

    def _get_features(self, body: bytes, fds: list[int]) -> bytes:
        self._expect(body, 0, fds)
        return U64.pack(self.offered_features)

    def _set_features(self, body: bytes, fds: list[int]) -> None:
        self._expect(body, U64.size, fds)
        (features,) = U64.unpack(body)
        unknown = features & ~self.offered_features
        if unknown:
            raise RequestFailed(f"features {unknown:#x} were not offered")
        self.acked_features = features
        self._apply_features()
        if not features & bit(VirtioFeature.PROTOCOL_FEATURES):
            # Without VHOST_USER_F_PROTOCOL_FEATURES there is no SET_VRING_ENABLE:
            # rings are enabled from the start.
            for index, queue in enumerate(self.queues):
                queue.set_enabled(True)
                self._run_queue(index)

    def _get_protocol_features(self, body: bytes, fds: list[int]) -> bytes:
        self._expect(body, 0, fds)
        return U64.pack(self.offered_protocol_features)

    def _set_protocol_features(self, body: bytes, fds: list[int]) -> None:
        self._expect(body, U64.size, fds)
        (features,) = U64.unpack(body)
        unknown = features & ~self.offered_protocol_features
        if unknown:
            raise RequestFailed(f"protocol features {unknown:#x} were not offered")
        self.protocol_features = features
        self._negotiated = True

    def _get_queue_num(self, body: bytes, fds: list[int]) -> bytes:
        self._expect(body, 0, fds)
        return U64.pack(len(self.queues))

    def _set_owner(self, body: bytes, fds: list[int]) -> None:
        self._expect(body, 0, fds)
        self.owned = True

    def _reset_owner(self, body: bytes, fds: list[int]) -> None:
        self._reset_device(body, fds)
        self.owned = False

    def _reset_device(self, body: bytes, fds: list[int]) -> None:
        self._expect(body, 0, fds)
        for queue in self.queues:
            self._unwatch(queue)
            queue.reset()
        self.acked_features = 0
        self._apply_features()
        self.status = 0
        self._device.reset()

    def _set_mem_table(self, body: bytes, fds: list[int]) -> None:
        if len(body) < MEM_TABLE_HEADER.size:
            raise RequestFailed(f"memory table of {len(body)} bytes")
        count, _padding = MEM_TABLE_HEADER.unpack_from(body)
        if not 1 <= count <= MEM_TABLE_MAX_REGIONS:
            raise RequestFailed(f"{count} memory regions (1..{MEM_TABLE_MAX_REGIONS} allowed)")
        self._expect(body, MEM_TABLE_HEADER.size + count * MEM_REGION.size, fds, count)
        regions = []
        for number in range(count):
            gpa, size, uaddr, offset = MEM_REGION.unpack_from(
                body, MEM_TABLE_HEADER.size + number * MEM_REGION.size)
            regions.append((fds[number], gpa, size, uaddr, offset))
        try:
            self.memory.replace(regions)
        except GuestMemoryError as error:
            raise RequestFailed(str(error)) from error
        # The mappings hold the memory; the fds themselves are closed by the caller.
        log.info("guest memory: %s", self._describe_memory())

    def _get_max_mem_slots(self, body: bytes, fds: list[int]) -> bytes:
        self._expect(body, 0, fds)
        return U64.pack(MAX_MEMORY_REGIONS)

    def _add_mem_reg(self, body: bytes, fds: list[int]) -> None:
        self._expect(body, MEM_REG_MSG.size, fds, 1)
        _padding, raw = MEM_REG_MSG.unpack(body)
        gpa, size, uaddr, offset = self._unpack_region(raw)
        try:
            self.memory.add_region(fds[0], gpa, size, uaddr, offset)
        except GuestMemoryError as error:
            raise RequestFailed(str(error)) from error
        log.debug("guest memory: %s", self._describe_memory())

    def _rem_mem_reg(self, body: bytes, fds: list[int]) -> None:
        # The specification lets older front-ends send an fd here; it is closed unused.
        if len(fds) > 1:
            raise RequestFailed(f"{len(fds)} fds with REM_MEM_REG")
        self._expect(body, MEM_REG_MSG.size, [])
        _padding, raw = MEM_REG_MSG.unpack(body)
        gpa, size, uaddr, _offset = self._unpack_region(raw)
        try:
            self.memory.remove_region(gpa, size, uaddr)
        except GuestMemoryError as error:
            raise RequestFailed(str(error)) from error
        log.debug("guest memory: %s", self._describe_memory())

    def _describe_memory(self) -> str:
        return ", ".join(f"gpa {gpa:#x}+{size:#x} at uaddr {uaddr:#x}"
                         for gpa, size, uaddr, _offset in self.memory.regions) or "none"

    def _set_vring_num(self, body: bytes, fds: list[int]) -> None:
        self._expect(body, VRING_STATE.size, fds)
        index, num = VRING_STATE.unpack(body)
        try:
            self._queue(index).set_size(num)
        except ValueError as error:
            raise RequestFailed(str(error)) from error

    def _set_vring_addr(self, body: bytes, fds: list[int]) -> None:
        self._expect(body, VRING_ADDR.size, fds)
        index, _flags, desc, used, avail, _log = VRING_ADDR.unpack(body)
        queue = self._queue(index)
        try:
            queue.set_addresses(desc, used, avail)
        except ValueError as error:
            raise RequestFailed(str(error)) from error
        if len(self.memory) and queue.size and not queue.addresses_valid():
            # Kept: a later memory update may still bring the rings into view.
            raise RequestFailed(f"queue {index}: rings are not inside guest memory")

    def _set_vring_base(self, body: bytes, fds: list[int]) -> None:
        self._expect(body, VRING_STATE.size, fds)
        index, num = VRING_STATE.unpack(body)
        try:
            self._queue(index).set_base(num)
        except ValueError as error:
            raise RequestFailed(str(error)) from error

    def _get_vring_base(self, body: bytes, fds: list[int]) -> bytes:
        self._expect(body, VRING_STATE.size, fds)
        index, _num = VRING_STATE.unpack(body)
        queue = self._queue(index)
        self._unwatch(queue)
        queue.set_kick_fd(-1)
        queue.stop()
        return VRING_STATE.pack(index, queue.base)

    def _vring_fd(self, body: bytes, fds: list[int]) -> tuple[SplitQueue, int]:
        """Parse SET_VRING_KICK/CALL/ERR; return the queue and the fd (-1 for none),
        taken out of `fds` and made non-blocking."""
        if len(body) != U64.size:
            raise RequestFailed(f"payload of {len(body)} bytes, expected {U64.size}")
        (value,) = U64.unpack(body)
        if value & ~(VRING_INDEX_MASK | VRING_NOFD_MASK):
            raise RequestFailed(f"reserved bits set in {value:#x}")
        queue = self._queue(value & VRING_INDEX_MASK)
        if value & VRING_NOFD_MASK:
            if fds:
                raise RequestFailed("fd sent with the no-fd flag")
            return queue, -1
        if len(fds) != 1:
            raise RequestFailed(f"{len(fds)} fds, expected 1")
        fd = fds.pop()
        try:
            # A VMM-supplied eventfd must never block us (a drained or full counter).
            os.set_blocking(fd, False)
        except OSError as error:
            os.close(fd)
            raise RequestFailed(f"unusable fd: {error}") from error
        return queue, fd

    def _set_vring_kick(self, body: bytes, fds: list[int]) -> None:
        queue, fd = self._vring_fd(body, fds)
        if fd < 0:
            # Polling mode would cost CPU while idle; we only run on kicks.
            raise RequestFailed(f"queue {queue.index}: polling (no kick fd) is not supported")
        self._unwatch(queue)
        queue.set_kick_fd(fd)
        try:
            self._watcher.watch_kick(fd, self._kick_callback(queue.index))
        except (OSError, ValueError) as error:
            queue.set_kick_fd(-1)
            queue.stop()
            raise RequestFailed(
                f"queue {queue.index}: cannot watch the kick fd: {error}") from error
        queue.start()
        # Requests may already be waiting (a restarted ring).
        self._run_queue(queue.index)

    def _set_vring_call(self, body: bytes, fds: list[int]) -> None:
        queue, fd = self._vring_fd(body, fds)
        queue.set_call_fd(fd)

    def _set_vring_err(self, body: bytes, fds: list[int]) -> None:
        queue, fd = self._vring_fd(body, fds)
        queue.set_err_fd(fd)

    def _set_vring_enable(self, body: bytes, fds: list[int]) -> None:
        self._expect(body, VRING_STATE.size, fds)
        index, num = VRING_STATE.unpack(body)
        queue = self._queue(index)
        if num > 1:
            raise RequestFailed(f"queue {index}: enable value {num}")
        queue.set_enabled(bool(num))
        if num:
            self._run_queue(index)

    def _set_status(self, body: bytes, fds: list[int]) -> None:
        self._expect(body, U64.size, fds)
        (status,) = U64.unpack(body)
        if status > 0xFF:
            raise RequestFailed(f"device status {status:#x} does not fit 8 bits")
        self.status = status

    def _get_status(self, body: bytes, fds: list[int]) -> bytes:
        self._expect(body, 0, fds)
        return U64.pack(self.status)
