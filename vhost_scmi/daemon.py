# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The daemon: a vhost-user socket, one VMM at a time, the SCMI dispatcher behind it.

One thread and one `selectors` loop (epoll) watch the listening socket, the VMM's
connection socket, the queues' kick eventfds and a wake-up pipe (signals, `stop()`);
the loop sleeps until the dispatcher's next event is due, so an idle daemon uses no
CPU. When a VMM disconnects, its connection is torn down (guest memory unmapped,
every fd it sent closed), the dispatcher is reset, and the next VMM is accepted.

A second VMM that connects while one is served is refused: accepted and closed at
once, with a log line, so that it fails fast instead of hanging on a socket that
nobody reads.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import selectors
import signal
import socket
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from enum import IntEnum
from typing import Protocol

from vhost_scmi.devices.sensor import Sensor
from vhost_scmi.scmi.dispatcher import build_dispatcher
from vhost_scmi.vhost.connection import PROTOCOL_FEATURES, BackendConnection
from vhost_scmi.vhost.device import RequestHandler, VirtioDevice
from vhost_scmi.vhost.virtqueue import SplitQueue

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The daemon cannot start (socket path unusable); the message says why."""


class ScmiQueue(IntEnum):
    """Virtqueues of the virtio SCMI device (virtio spec, device id 32)."""

    CMDQ = 0
    EVENTQ = 1


class ScmiFeature(IntEnum):
    """Device-specific virtio feature bits of the SCMI device."""

    P2A_CHANNELS = 0  # VIRTIO_SCMI_F_P2A_CHANNELS: the eventq exists
    SHARED_MEMORY = 1  # VIRTIO_SCMI_F_SHARED_MEMORY: not offered


#: Notifications kept while the guest has no eventq buffer posted; the oldest go first.
MAX_PENDING_EVENTS = 256
#: Shortest sleep when the dispatcher reports a deadline already past (a guard, not a poll).
MIN_TIMER_SLEEP = 0.001


class Dispatcher(Protocol):
    """The SCMI dispatcher as the daemon uses it (see docs/ARCHITECTURE.md)."""

    def handle(self, request: bytes, max_response: int) -> bytes: ...
    def next_deadline(self) -> float | None: ...
    def take_events(self, now: float) -> list[bytes]: ...
    def reset(self) -> None: ...


class TimedDevice(VirtioDevice, Protocol):
    """A vhost device that also has timed work (notifications) for the event loop."""

    def next_deadline(self) -> float | None:
        """`time.monotonic()` when `deliver_due()` has work, or None."""

    def deliver_due(self, now: float) -> None:
        """Do the work that fell due by `now`."""


class ScmiDevice:
    """The virtio SCMI device: cmdq requests go to the dispatcher; notifications and
    delayed responses go out on the eventq when the guest has posted buffers."""

    queue_count = len(ScmiQueue)
    device_features = 1 << ScmiFeature.P2A_CHANNELS

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._eventq: SplitQueue | None = None
        self._pending: collections.deque[bytes] = collections.deque()
        self._dropped = 0

    def queue_handler(self, index: int) -> RequestHandler | None:
        return self._dispatcher.handle if index == ScmiQueue.CMDQ else None

    def buffers_posted(self, index: int, queue: SplitQueue) -> None:
        self._flush()

    def connected(self, queues: Sequence[SplitQueue]) -> None:
        self._eventq = queues[ScmiQueue.EVENTQ]

    def disconnected(self) -> None:
        self._eventq = None
        self.reset()

    def reset(self) -> None:
        self._dispatcher.reset()
        self._pending.clear()

    def next_deadline(self) -> float | None:
        return self._dispatcher.next_deadline()

    def deliver_due(self, now: float) -> None:
        events = self._dispatcher.take_events(now)
        if not events:
            return
        if self._eventq is None:
            log.debug("%d SCMI events with no VMM connected: dropped", len(events))
            return
        self._pending.extend(events)
        excess = len(self._pending) - MAX_PENDING_EVENTS
        if excess > 0:
            for _ in range(excess):
                self._pending.popleft()
            self._dropped += excess
            log.warning("eventq: no buffers from the guest; %d oldest events dropped so far",
                        self._dropped)
        self._flush()

    def _flush(self) -> None:
        queue, pending = self._eventq, self._pending
        while pending and queue is not None and queue.push(pending[0]):
            pending.popleft()


# --- the event loop -----------------------------------------------------------------------

_Callback = Callable[[], None]


class Endpoint:
    """One listening socket, its device, and the connection of the VMM it serves."""

    def __init__(self, listener: socket.socket, device: TimedDevice, name: str, *,
                 protocol_features: int = PROTOCOL_FEATURES) -> None:
        listener.setblocking(False)
        self.protocol_features = protocol_features
        self.listener = listener
        self.device = device
        self.name = name
        self.connection: BackendConnection | None = None
        self._selector: selectors.BaseSelector | None = None

    def attach(self, selector: selectors.BaseSelector) -> None:
        self._selector = selector
        selector.register(self.listener, selectors.EVENT_READ, (self, self.accept))

    # KickWatcher for the connection
    def watch_kick(self, fd: int, index: int) -> None:
        assert self._selector is not None and self.connection is not None
        self._selector.register(fd, selectors.EVENT_READ,
                                (self, functools.partial(self.connection.kick, index)))

    def unwatch_kick(self, fd: int) -> None:
        assert self._selector is not None
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(fd)

    def accept(self) -> None:
        try:
            sock, _address = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:  # e.g. out of fds; the VMM will retry
            log.warning("%s: accept failed: %s", self.name, error)
            return
        if self.connection is not None:
            # The previous VMM may have left just before this one connected: read
            # what its socket holds first, so that its EOF is not mistaken for a
            # live VMM (a fast reconnect must not be refused).
            try:
                self.readable()
            except Exception:
                log.exception("%s: unexpected error; dropping the connection", self.name)
                self.drop()
        if self.connection is not None:
            log.warning("%s: refusing a second VMM: one is already connected", self.name)
            sock.close()
            return
        log.info("%s: VMM connected", self.name)
        assert self._selector is not None
        self.connection = BackendConnection(sock, self.device, self,
                                            protocol_features=self.protocol_features)
        self._selector.register(sock, selectors.EVENT_READ, (self, self.readable))

    def readable(self) -> None:
        if self.connection is not None and not self.connection.handle_readable():
            self.drop()

    def drop(self) -> None:
        """Tear the VMM's connection down (idempotent)."""
        connection, self.connection = self.connection, None
        if connection is None:
            return
        assert self._selector is not None
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(connection.fileno())
        connection.close()
        log.info("%s: connection closed; waiting for the next VMM", self.name)

    def close(self) -> None:
        self.drop()
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(self.listener)
        self.listener.close()


class EventLoop:
    """The daemon's single-threaded loop over a set of endpoints."""

    def __init__(self, endpoints: Sequence[Endpoint] = ()) -> None:
        self._selector = selectors.DefaultSelector()
        self._endpoints: list[Endpoint] = []
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_read, selectors.EVENT_READ, (None, self._woken))
        self._running = False
        self._closed = False
        for endpoint in endpoints:
            self.add(endpoint)

    def add(self, endpoint: Endpoint) -> None:
        """Serve `endpoint` too (the loop closes it in `close()`)."""
        endpoint.attach(self._selector)
        self._endpoints.append(endpoint)

    @property
    def wakeup_fd(self) -> int:
        """Write end of the wake-up pipe (for `signal.set_wakeup_fd`)."""
        return self._wake_write

    def run(self) -> None:
        """Serve until `stop()` or SIGTERM/SIGINT (when routed here by `signal.set_wakeup_fd`)."""
        self._running = True
        select = self._selector.select
        while self._running:
            for key, _mask in select(self._timeout()):
                endpoint, callback = key.data
                try:
                    callback()
                except Exception:
                    # A bug must cost the connection, never the daemon.
                    log.exception("unexpected error; dropping the connection")
                    if endpoint is not None:
                        endpoint.drop()
            self._deliver_due()

    def stop(self) -> None:
        """Make `run()` return (callable from another thread)."""
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_write, b"\0")

    def close(self) -> None:
        """Close every endpoint and connection, and the loop itself (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for endpoint in self._endpoints:
            endpoint.close()
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _woken(self) -> None:
        try:
            data = os.read(self._wake_read, 512)
        except BlockingIOError:
            return
        for number in data:
            if number in (signal.SIGTERM, signal.SIGINT):
                log.info("%s: shutting down", signal.Signals(number).name)
                self._running = False
            elif number == signal.SIGHUP:
                log.info("SIGHUP ignored")
            elif number == 0:
                self._running = False

    def _timeout(self) -> float | None:
        deadlines = [deadline for endpoint in self._endpoints
                     if (deadline := endpoint.device.next_deadline()) is not None]
        if not deadlines:
            return None
        return max(min(deadlines) - time.monotonic(), MIN_TIMER_SLEEP)

    def _deliver_due(self) -> None:
        now = time.monotonic()
        for endpoint in self._endpoints:
            deadline = endpoint.device.next_deadline()
            if deadline is not None and deadline <= now:
                try:
                    endpoint.device.deliver_due(now)
                except Exception:
                    log.exception("unexpected error delivering events; dropping the connection")
                    endpoint.drop()


# --- the socket file -------------------------------------------------------------------------

def open_listener(path: str) -> tuple[socket.socket, tuple[int, int]]:
    """Create the listening socket at `path` (mode 0600), replacing a stale socket file.

    Returns the socket and the (device, inode) identity of the socket file.
    Raises StartupError for a missing directory, a symlink or a non-socket at `path`,
    or any failure to bind.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise StartupError(f"cannot create socket {path}: directory {directory} does not exist")
    try:
        existing = os.lstat(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise StartupError(f"cannot use socket path {path}: {error.strerror}") from error
    else:
        if stat.S_ISLNK(existing.st_mode):
            raise StartupError(f"refusing socket path {path}: it is a symbolic link")
        if not stat.S_ISSOCK(existing.st_mode):
            raise StartupError(f"refusing socket path {path}: it exists and is not a socket")
        try:
            os.unlink(path)
        except OSError as error:
            raise StartupError(f"cannot replace socket {path}: {error.strerror}") from error
        log.info("replaced the existing socket file %s", path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    # The socket file gets 0600 from the umask at bind time: no window where others may connect.
    old_umask = os.umask(0o177)
    try:
        listener.bind(path)
        listener.listen(1)
        created = os.stat(path)
    except OSError as error:
        listener.close()
        raise StartupError(f"cannot create socket {path}: {error.strerror or error}") from error
    finally:
        os.umask(old_umask)
    return listener, (created.st_dev, created.st_ino)


def remove_socket(path: str, identity: tuple[int, int]) -> None:
    """Remove the socket file at `path` if it is still the one we created."""
    try:
        current = os.lstat(path)
        if (current.st_dev, current.st_ino) == identity:
            os.unlink(path)
    except OSError:
        pass


@contextlib.contextmanager
def signals_routed_to(loop: EventLoop) -> Iterator[None]:
    """SIGTERM/SIGINT stop `loop`; SIGHUP is logged and ignored (main thread only)."""
    previous_fd = signal.set_wakeup_fd(loop.wakeup_fd, warn_on_full_buffer=False)
    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    # The C-level handler writes the signal number to the wake-up fd; the loop acts on it.
    previous = {number: signal.signal(number, lambda _number, _frame: None)
                for number in handled}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        signal.set_wakeup_fd(previous_fd)


def run(socket_path: str, sensors: list[Sensor]) -> int:
    """Serve `sensors` to one VMM at a time on `socket_path` until SIGTERM/SIGINT.

    Returns the exit status (0). Raises StartupError when the socket cannot be created.
    """
    try:
        device = ScmiDevice(build_dispatcher(sensors))
    except ValueError as error:
        raise StartupError(f"cannot describe the sensors in SCMI terms: {error}") from error
    loop = EventLoop()
    try:
        # Signals are routed before the socket exists: a SIGTERM from then on is a
        # clean exit that removes the socket file.
        with signals_routed_to(loop):
            listener, identity = open_listener(socket_path)
            try:
                loop.add(Endpoint(listener, device, socket_path))
                log.info("listening on %s with %d sensors", socket_path, len(sensors))
                loop.run()
            finally:
                loop.close()
                remove_socket(socket_path, identity)
    finally:
        loop.close()
    return 0
