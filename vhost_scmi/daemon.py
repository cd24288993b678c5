# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The daemon: vhost-user sockets, one VMM at a time on each, an SCMI dispatcher behind each.

One thread and one `selectors` loop (epoll) watch the listening sockets, the VMMs'
connection sockets, the queues' kick eventfds, a wake-up pipe (signals, `stop()`) and
the executor's eventfd; the loop sleeps until the dispatcher's next event (or a host
call's deadline) is due, so an idle daemon uses no CPU. Host devices that may block
are called on the executor's worker threads (vhost_scmi/platform/executor.py): a
request waiting on one is answered later, out of order, while everything else goes
on. When a VMM disconnects, its connection is torn down (guest memory unmapped, every
fd it sent closed), the dispatcher is reset, and the next VMM is accepted.

A second VMM that connects while one is served is refused: accepted and closed at
once, with a log line, so that it fails fast instead of hanging on a socket that
nobody reads.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import select
import selectors
import signal
import socket
import sys
import time
import types
from collections.abc import Callable, Iterator, Sequence
from enum import IntEnum
from typing import Protocol

from vhost_scmi.devices.resource import Resource
from vhost_scmi.listener import ServedSocket, StartupError, open_all
from vhost_scmi.platform.agents import default_views
from vhost_scmi.platform.executor import DEFAULT_DEADLINE, Executor
from vhost_scmi.platform.view import AgentView
from vhost_scmi.scmi.dispatcher import build_dispatcher
from vhost_scmi.systemd import Notifier
from vhost_scmi.vhost.connection import PROTOCOL_FEATURES, BackendConnection
from vhost_scmi.vhost.device import RequestHandler, VirtioDevice
from vhost_scmi.vhost.virtqueue import SplitQueue

log = logging.getLogger(__name__)


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
#: Ready fds taken per epoll wait (more stay ready for the next one: level-triggered).
#: Small enough for the event buffer `epoll.poll` allocates on each call to come from
#: Python's small-object allocator (its default, 1023 events, costs a malloc and a free).
MAX_EVENTS = 32


class Dispatcher(Protocol):
    """The SCMI dispatcher as the daemon uses it (see docs/ARCHITECTURE.md)."""

    def handle(self, request: bytes, max_response: int) -> bytes | None: ...
    def attach(self, defer: Callable[[], object] | None,
               complete: Callable[[object, bytes], object] | None) -> None: ...
    def next_deadline(self) -> float | None: ...
    def notify_deadline(self, callback: Callable[[], object]) -> None: ...
    def take_events(self, now: float) -> list[bytes]: ...
    def reset(self) -> None: ...


class TimedDevice(VirtioDevice, Protocol):
    """A vhost device that also has timed work (notifications) for the event loop."""

    def next_deadline(self) -> float | None:
        """`time.monotonic()` when `deliver_due()` has work, or None."""

    def notify_deadline(self, callback: Callable[[], object]) -> None:
        """Call `callback()` from then on whenever `next_deadline()` may have moved
        earlier (the loop asks it only then, or while something is scheduled)."""

    def deliver_due(self, now: float) -> None:
        """Do the work that fell due by `now`."""


class ScmiDevice:
    """The virtio SCMI device: cmdq requests go to the dispatcher; notifications and
    delayed responses go out on the eventq when the guest has posted buffers."""

    queue_count = len(ScmiQueue)
    device_features = 1 << ScmiFeature.P2A_CHANNELS

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        # The loop asks after wake-ups (see EventLoop.run): the dispatcher answers directly.
        self.next_deadline = dispatcher.next_deadline  # type: ignore[method-assign]
        self._eventq: SplitQueue | None = None
        self._pending: collections.deque[bytes] = collections.deque()
        self._dropped = 0

    def queue_handler(self, index: int) -> RequestHandler | None:
        return self._dispatcher.handle if index == ScmiQueue.CMDQ else None

    def buffers_posted(self, index: int, queue: SplitQueue) -> None:
        self._flush()

    def connected(self, queues: Sequence[SplitQueue]) -> None:
        self._eventq = queues[ScmiQueue.EVENTQ]
        cmdq = queues[ScmiQueue.CMDQ]
        self._dispatcher.attach(cmdq.defer, cmdq.complete)

    def disconnected(self) -> None:
        self._eventq = None
        self._dispatcher.attach(None, None)
        self.reset()

    def reset(self) -> None:
        self._dispatcher.reset()
        self._pending.clear()

    def next_deadline(self) -> float | None:
        return self._dispatcher.next_deadline()

    def notify_deadline(self, callback: Callable[[], object]) -> None:
        self._dispatcher.notify_deadline(callback)

    def deliver_due(self, now: float) -> None:
        events = self._dispatcher.take_events(now)
        if not events:
            return
        queue = self._eventq
        if queue is None:
            log.debug("%d SCMI events with no VMM connected: dropped", len(events))
            return
        pending = self._pending
        if not pending and len(events) <= MAX_PENDING_EVENTS:
            # The usual case, inline: nothing held back, so the events go out in order
            # until the guest's buffers run out; the rest wait (none is dropped).
            for index, event in enumerate(events):
                if not queue.push(event):
                    pending.extend(events[index:])
                    return
            return
        pending.extend(events)
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
    """One listening socket, its device, and the connection of the VMM it serves.

    Without a listener, the endpoint serves the one VMM already `connected` and is
    finished when that VMM leaves; `on_finished` is then called.
    """

    def __init__(self, listener: socket.socket | None, device: TimedDevice, name: str, *,
                 protocol_features: int = PROTOCOL_FEATURES,
                 connected: socket.socket | None = None,
                 on_finished: Callable[[], None] | None = None) -> None:
        if listener is not None:
            listener.setblocking(False)
        self.protocol_features = protocol_features
        self.listener = listener
        self.device = device
        self.name = name
        self.connection: BackendConnection | None = None
        self._selector: selectors.BaseSelector | None = None
        self._connected = connected
        self._on_finished = on_finished

    @property
    def finished(self) -> bool:
        """No VMM is served, and none can connect any more."""
        return self.listener is None and self.connection is None and self._connected is None

    def attach(self, selector: selectors.BaseSelector) -> None:
        self._selector = selector
        if self.listener is not None:
            selector.register(self.listener, selectors.EVENT_READ, (self, self.accept))
        connected, self._connected = self._connected, None
        if connected is not None:
            self._serve(connected)

    # KickWatcher for the connection
    def watch_kick(self, fd: int, serve: Callable[[], object]) -> None:
        assert self._selector is not None
        self._selector.register(fd, selectors.EVENT_READ, (self, serve))

    def unwatch_kick(self, fd: int) -> None:
        assert self._selector is not None
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(fd)

    def accept(self) -> None:
        assert self.listener is not None
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
        self._serve(sock)

    def _serve(self, sock: socket.socket) -> None:
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
        if self.listener is not None:
            log.info("%s: connection closed; waiting for the next VMM", self.name)
            return
        log.info("%s: connection closed; no listening socket to take another VMM", self.name)
        if self._on_finished is not None:
            self._on_finished()

    def close(self) -> None:
        self._on_finished = None  # closing is not a VMM leaving
        self.drop()
        if self._connected is not None:  # never attached
            self._connected.close()
            self._connected = None
        if self.listener is None:
            return
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(self.listener)
        self.listener.close()


#: What the loop watches: file descriptors and sockets.
_FileLike = int | socket.socket


def _fd_of(fileobj: _FileLike) -> int:
    fd = fileobj if isinstance(fileobj, int) else int(fileobj.fileno())
    if fd < 0:
        raise ValueError(f"invalid file descriptor: {fd}")
    return fd


class _LoopSelector(selectors.BaseSelector):
    """An epoll selector whose registrations the loop also reads as a plain dict.

    Endpoints register and unregister through the `selectors` interface (reading
    only); the loop polls `epoll` itself and finds each ready fd's data in `data`,
    sparing the key tuples and ready list `selectors` builds on every wake-up.
    """

    def __init__(self) -> None:
        self.epoll = select.epoll()
        #: fd -> the data it was registered with.
        self.data: dict[int, object] = {}
        self._keys: dict[int, selectors.SelectorKey] = {}

    def register(self, fileobj: _FileLike, events: int,
                 data: object = None) -> selectors.SelectorKey:
        if events != selectors.EVENT_READ:
            raise ValueError(f"unsupported events {events!r}: the loop only reads")
        key = selectors.SelectorKey(fileobj, _fd_of(fileobj), events, data)
        if key.fd in self._keys:
            raise KeyError(f"{fileobj!r} (fd {key.fd}) is already registered")
        self.epoll.register(key.fd, select.EPOLLIN)
        self._keys[key.fd] = key
        self.data[key.fd] = data
        return key

    def unregister(self, fileobj: _FileLike) -> selectors.SelectorKey:
        try:
            fd = _fd_of(fileobj)
        except ValueError:  # a closed socket: find it by identity, as selectors does
            fd = next((key.fd for key in self._keys.values() if key.fileobj is fileobj), -1)
        key = self._keys.pop(fd)  # KeyError when not registered
        del self.data[fd]
        with contextlib.suppress(OSError):  # an fd already closed has left the epoll set
            self.epoll.unregister(fd)
        return key

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self.epoll.poll(None if timeout is None else max(timeout, 0.0))
        return [(self._keys[fd], selectors.EVENT_READ) for fd, _mask in ready
                if fd in self._keys]

    def get_map(self) -> types.MappingProxyType[int, selectors.SelectorKey]:
        return types.MappingProxyType(self._keys)

    def close(self) -> None:
        self.epoll.close()
        self._keys.clear()
        self.data.clear()


class Timed(Protocol):
    """Timed work for the loop besides the devices' (the executor's deadlines)."""

    def next_deadline(self) -> float | None: ...
    def notify_deadline(self, callback: Callable[[], object]) -> None: ...
    def deliver_due(self, now: float) -> None: ...


class EventLoop:
    """The daemon's single-threaded loop over a set of endpoints."""

    def __init__(self, endpoints: Sequence[Endpoint] = ()) -> None:
        self._selector = _LoopSelector()
        self._endpoints: list[Endpoint] = []
        self._timed: list[Timed] = []
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_read, selectors.EVENT_READ, (None, self._woken))
        self._running = False
        self._closed = False
        #: A deadline may have moved earlier since the loop last asked (see run()).
        self._ask_deadlines = True
        for endpoint in endpoints:
            self.add(endpoint)

    def add(self, endpoint: Endpoint) -> None:
        """Serve `endpoint` too (the loop closes it in `close()`)."""
        endpoint.attach(self._selector)
        endpoint.device.notify_deadline(self._deadline_moved)
        self._endpoints.append(endpoint)
        self._ask_deadlines = True

    def watch(self, fileobj: _FileLike, callback: _Callback) -> None:
        """Call `callback()` whenever `fileobj` is readable (until `unwatch`); an
        exception it raises is logged."""
        self._selector.register(fileobj, selectors.EVENT_READ, (None, callback))

    def unwatch(self, fileobj: _FileLike) -> None:
        """Stop watching `fileobj` (no error when it is not watched)."""
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(fileobj)

    def add_timed(self, timed: Timed) -> None:
        """Call `timed.deliver_due(now)` when its `next_deadline()` falls due."""
        timed.notify_deadline(self._deadline_moved)
        self._timed.append(timed)
        self._ask_deadlines = True

    @property
    def wakeup_fd(self) -> int:
        """Write end of the wake-up pipe (for `signal.set_wakeup_fd`)."""
        return self._wake_write

    def run(self) -> None:
        """Serve until `stop()` or SIGTERM/SIGINT (when routed here by `signal.set_wakeup_fd`)."""
        self._running = True
        # The hot path of every request: epoll, one dict lookup, the callback, and one
        # (cached) deadline question per endpoint.
        poll, registered = self._selector.epoll.poll, self._selector.data
        timeout = self._deliver_due()
        while self._running:
            # The deadlines are asked again only while something is scheduled, or when
            # a source said one moved: not after every request of a VMM that only reads
            # (that question would be on each round trip's path, after the answer).
            for fd, _mask in poll(timeout, MAX_EVENTS):
                # An earlier callback of this wake-up may have unregistered fd.
                entry = registered.get(fd)
                if entry is None:
                    continue
                endpoint, callback = entry
                try:
                    callback()
                except Exception:
                    # A bug must cost the connection, never the daemon.
                    log.exception("unexpected error; dropping the connection")
                    # (the executor's completions have no endpoint: logged only)
                    if endpoint is not None:
                        endpoint.drop()
            if timeout is not None or self._ask_deadlines:
                timeout = self._deliver_due()

    @staticmethod
    def _deliver(source: Timed, endpoint: Endpoint | None) -> float | None:
        """Run `source`'s work if it is due; return its next deadline. An error in an
        endpoint's device costs that endpoint's connection; in other timed work, a log line."""
        deadline = source.next_deadline()
        if deadline is None:
            return None
        now = time.monotonic()
        if deadline > now:
            return deadline
        try:
            source.deliver_due(now)
        except Exception:
            if endpoint is None:
                log.exception("unexpected error in timed work")
            else:
                log.exception("unexpected error delivering events; dropping the connection")
                endpoint.drop()
        return source.next_deadline()

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

    def _deadline_moved(self) -> None:
        self._ask_deadlines = True

    def _deliver_due(self) -> float | None:
        """Deliver the timed work that is due; return how long the loop may then sleep
        (None: until something happens)."""
        self._ask_deadlines = False  # what moves from here on is asked about next time
        earliest = None
        for timed in self._timed:
            deadline = self._deliver(timed, None)
            if deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        for endpoint in self._endpoints:
            deadline = self._deliver(endpoint.device, endpoint)
            if deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        if earliest is None:
            return None
        timeout = earliest - time.monotonic()
        return timeout if timeout > MIN_TIMER_SLEEP else MIN_TIMER_SLEEP


# --- signals and the daemon's life -------------------------------------------------------

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


def _count_in_words(resources: Sequence[Resource]) -> str:
    """"1 sensor", "2 sensors, 1 domain"...: what the start-up line says is served."""
    # No sensor exists unless the sensor model is loaded (and a domain-only daemon
    # never loads it).
    model = sys.modules.get("vhost_scmi.devices.sensor")
    sensors = sum(isinstance(resource, model.Sensor) for resource in resources) if model else 0
    domains = len(resources) - sensors
    words = f"{sensors} sensor{'' if sensors == 1 else 's'}"
    if domains:
        words += f", {domains} domain{'' if domains == 1 else 's'}"
    return words


def run(sensors: Sequence[Resource], *, paths: Sequence[str] = (),
        fds: Sequence[tuple[int, str]] = (), notifier: Notifier | None = None,
        views: Sequence[AgentView] | None = None, control_socket: str | None = None,
        deadline: float = DEFAULT_DEADLINE) -> int:
    """Serve `sensors` on a socket created at each of `paths` and on each inherited
    (fd, origin) of `fds`, until SIGTERM/SIGINT, or until the VMMs of inherited
    connected sockets have left when nothing else is served.

    Every socket is one agent: it serves one VMM at a time with SCMI state of its own
    (sensor configurations, notification subscriptions); the host resources are
    shared. `views` are the agents' views in socket order (inherited fds first, then
    paths); by default every agent sees and may control every resource. With
    `control_socket`, the control socket of vhost-device-scmi-ctl is served there.
    When a service manager listens (`notifier`, default from NOTIFY_SOCKET), READY=1
    is sent once every socket accepts VMMs, and STOPPING=1 when shutting down. Host calls
    on blocking devices run on worker threads and fail after `deadline` seconds.
    Returns the exit status (0). Raises StartupError when a socket cannot be used.
    """
    count = len(paths) + len(fds)
    if count == 0:
        raise StartupError("no socket to serve")
    if views is None:
        views = default_views(sensors, count)
    if len(views) != count:
        raise StartupError(f"{len(views)} agents for {count} sockets")
    executor = Executor(deadline=deadline)
    try:
        dispatchers = [build_dispatcher(view, executor) for view in views]
    except ValueError as error:
        executor.close()
        raise StartupError(f"cannot describe the sensors in SCMI terms: {error}") from error
    devices = [ScmiDevice(dispatcher) for dispatcher in dispatchers]
    if notifier is None:
        notifier = Notifier()
    loop = EventLoop()
    loop.watch(executor.fileno(), executor.run_completions)
    loop.add_timed(executor)
    endpoints: list[Endpoint] = []

    def endpoint_finished() -> None:
        if all(endpoint.finished for endpoint in endpoints):
            log.info("every VMM has left and no socket can take another: exiting")
            loop.stop()

    served: list[ServedSocket] = []
    control = None
    try:
        # Signals are routed before the sockets exist: a SIGTERM from then on is a
        # clean exit that removes the socket files.
        with signals_routed_to(loop):
            try:
                served = open_all(paths, fds)
                for socket_, device in zip(served, devices, strict=True):
                    endpoint = Endpoint(socket_.sock if socket_.listening else None, device,
                                        socket_.name, on_finished=endpoint_finished,
                                        connected=None if socket_.listening else socket_.sock)
                    endpoints.append(endpoint)
                    loop.add(endpoint)
                if control_socket is not None:
                    from vhost_scmi.control import AgentHandle, ControlServer

                    control = ControlServer(control_socket, [
                        AgentHandle(view, dispatcher, endpoint)
                        for view, dispatcher, endpoint in zip(views, dispatchers, endpoints,
                                                              strict=True)])
                    control.open(loop)
                names = ", ".join(f"{socket_.name} (agent {view.agent_name})"
                                  for socket_, view in zip(served, views, strict=True))
                log.info("serving %s with %s", names, _count_in_words(sensors))
                ready = notifier.notify("READY=1", f"STATUS=serving {names}")
                try:
                    loop.run()
                finally:
                    if ready:
                        notifier.notify("STOPPING=1")
            finally:
                if control is not None:
                    control.close()
                loop.close()
                for socket_ in served:
                    socket_.sock.close()
                    socket_.remove_file()
    finally:
        loop.close()
        # Idle workers stop; one stuck in a system call is a daemon thread and does
        # not hold the exit up.
        executor.close()
    return 0
