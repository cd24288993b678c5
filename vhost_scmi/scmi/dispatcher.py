# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Routes SCMI requests to the protocol implementations; transport-free.

The daemon hands `Dispatcher.handle` the bytes of each request with the writable space
the request offered, and writes back what it returns. Notifications and delayed
responses come from `take_events` when `next_deadline` says they are due.

A handler that uses a host device returns a coroutine (`async def`, awaiting
`HostCall`s); the dispatcher drives it with its `Executor`. When the coroutine waits on
a blocking device, the request completes later: `handle` asks the transport to hold
the request (`defer()`, which returns a token) and returns None; when the answer is
ready, `complete(token, response)` gives it to the transport. Requests behind it do not
wait.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from vhost_scmi.devices.resource import DeviceError, Resource
from vhost_scmi.platform.executor import Executor, Task
from vhost_scmi.platform.view import AgentView
from vhost_scmi.scmi.base import BaseProtocol
from vhost_scmi.scmi.codec import route, status_response, u32_at
from vhost_scmi.scmi.protocol import (
    HEADER_STATUS,
    U32,
    Handler,
    Protocol,
    warn_limited,
)
from vhost_scmi.scmi.registry import usable_protocols
from vhost_scmi.scmi.status import ScmiError, Status

log = logging.getLogger(__name__)

# Header and status word.
_RESPONSE_MINIMUM = 8
#: Bits 9:8 (message type) of the route key marking a known protocol.
PROTOCOL_KEY = 0x300

#: Status of a request whose device call failed without the protocol saying how to
#: answer (a HostTimeout at the deadline, or a device still stuck): the device did not
#: respond. Linux turns it into -EREMOTEIO ("remote I/O error") and does not retry.
DEVICE_FAILED = Status.HARDWARE_ERROR


class Dispatcher:
    """SCMI platform: answers commands, produces notifications and delayed responses."""

    def __init__(self, protocols: Sequence[Protocol], executor: Executor | None = None) -> None:
        self.protocols = {protocol.protocol_id: protocol for protocol in protocols}
        self.executor = executor if executor is not None else Executor(threads=False)
        # Route key (protocol id << 10 | message id) -> (request bytes needed, handler);
        # codec.route() looks requests up here.
        self._routes: dict[int, tuple[int, Handler]] = {}
        for protocol in protocols:
            for message in protocol.messages.values():
                key = protocol.protocol_id << 10 | message.id
                self._routes[key] = (4 + message.request_length, message.handler)
        # Known protocols, for route() to tell an unknown message (NOT_FOUND) from an
        # unknown protocol (NOT_SUPPORTED); no command has these keys (message type 3).
        for protocol_id in self.protocols:
            self._routes[protocol_id << 10 | PROTOCOL_KEY] = (0, _no_handler)
        base = self.protocols.get(BaseProtocol.protocol_id)
        self._base = base if isinstance(base, BaseProtocol) else None
        #: The transport's hold on a request answered later (see the module docstring).
        self._defer: Callable[[], object] | None = None
        self._complete: Callable[[object, bytes], object] | None = None
        # The event loop asks for the next deadline after every wake-up; asking each
        # protocol costs more than most requests, so the answer is kept until a
        # protocol schedules something (Platform.deadline_changed), events are taken,
        # or the agent is reset. A deadline kept too early costs one empty wake-up;
        # one kept too late would delay events: every change that can bring a
        # deadline forward must invalidate it.
        self._deadline: float | None = None
        self._deadline_known = False
        #: Each protocol's own deadline, when `_deadline` is known: take_events asks only
        #: the protocols due, and only those again for their next deadline.
        self._scheduled: dict[Protocol, float] = {}
        #: Counts `_deadline_changed` calls (one during take_events forces a full recount).
        self._changes = 0
        #: Told when the deadline may have moved earlier (notify_deadline).
        self._deadline_moved: Callable[[], object] = _ignore_move
        self._platforms = {id(protocol.platform): protocol.platform for protocol in protocols}
        for protocol in protocols:
            protocol.platform.deadline_changed = self._deadline_changed

    def attach(self, defer: Callable[[], object] | None,
               complete: Callable[[object, bytes], object] | None) -> None:
        """Let requests complete later: `defer()` holds the request being handled and
        returns a token; `complete(token, response)` answers it. None detaches: then a
        request whose device call is pending at the end of `handle` is answered as
        failed (HARDWARE_ERROR) at once."""
        self._defer, self._complete = defer, complete

    def handle(self, request: bytes, max_response: int) -> bytes | None:
        """Return the complete response to `request` (header, int32 status, payload).

        The response is never longer than `max_response`; b"" means nothing could be
        answered (fewer than 8 writable bytes, or no header). None: the request waits on
        a host device and is answered later through `complete` (see `attach`). Never
        raises. Unknown protocols get NOT_SUPPORTED, unknown messages of a known
        protocol NOT_FOUND, short requests INVALID_PARAMETERS.
        """
        try:
            response = route(self._routes, request, max_response, ScmiError,
                             self._not_a_command)
            if type(response) is bytes:
                if not response:
                    warn_limited(log, "short", "unanswerable request: %d bytes, %d writable",
                                 len(request), max_response)
                return response
            return self._drive(request, response, max_response)
        except Exception:
            log.exception("internal error handling an SCMI request")
            return self._internal_error(request, max_response)

    def _drive(self, request: bytes, coroutine: Any, max_response: int) -> bytes | None:
        header = u32_at(request, 0)
        task = self.executor.start(coroutine)
        if task.done:
            return self._answer(header, task, max_response)
        defer, complete = self._defer, self._complete
        if defer is None or complete is None:
            task.callback = _ignore
            return status_response(header, DEVICE_FAILED)
        token = defer()

        def finished(task: Task) -> None:
            complete(token, self._answer(header, task, max_response))

        task.callback = finished
        return None

    @staticmethod
    def _answer(header: int, task: Task, max_response: int) -> bytes:
        """The response a finished handler coroutine gives."""
        error = task.error
        if error is None:
            response = task.value
            if type(response) is not bytes:
                log.error("an SCMI handler returned %r, not bytes", type(response))
                return status_response(header, Status.GENERIC_ERROR)
            if len(response) > max_response:
                return status_response(header, Status.COMMS_ERROR)
            return response
        if isinstance(error, ScmiError):
            return status_response(header, error.status)
        if isinstance(error, DeviceError):
            warn_limited(log, "device", "SCMI request %#010x: host device failed: %s",
                         header, error)
            return status_response(header, DEVICE_FAILED)
        log.error("internal error handling an SCMI request", exc_info=error)
        return status_response(header, Status.GENERIC_ERROR)

    def _not_a_command(self, header: int) -> bytes:
        warn_limited(log, "type", "SCMI message %#010x is not a command", header)
        if self._base is not None:
            self._base.report_error(header)
        return HEADER_STATUS.pack(header, Status.NOT_SUPPORTED)

    @staticmethod
    def _internal_error(request: bytes, max_response: int) -> bytes:
        try:
            if len(request) >= 4 and max_response >= _RESPONSE_MINIMUM:
                return HEADER_STATUS.pack(U32.unpack_from(request)[0], Status.GENERIC_ERROR)
        except Exception:  # noqa: S110 - nothing more can be done
            pass
        return b""

    def next_deadline(self) -> float | None:
        """Return the time.monotonic() at which take_events() has something, or None.

        A time in the past means "now".
        """
        if self._deadline_known:
            return self._deadline
        self._deadline = self._earliest_deadline()
        self._deadline_known = True
        return self._deadline

    def notify_deadline(self, callback: Callable[[], object]) -> None:
        """Call `callback()` from then on whenever `next_deadline()` may have moved
        earlier than last answered: a protocol scheduled something, or the agent was
        reset (taking events is not reported: the caller asks again after it)."""
        self._deadline_moved = callback

    def _deadline_changed(self) -> None:
        self._deadline_known = False
        self._changes += 1
        self._deadline_moved()

    def _earliest_deadline(self) -> float | None:
        scheduled = self._scheduled
        scheduled.clear()
        try:
            for protocol in self.protocols.values():
                due = protocol.next_deadline()
                if due is not None:
                    scheduled[protocol] = due
        except Exception:
            log.exception("internal error computing the next event deadline")
        return min(scheduled.values(), default=None)

    def take_events(self, now: float) -> list[bytes]:
        """Return the notifications and delayed responses due by `now`.

        Each is a complete event-queue message: a notification is header and payload,
        a delayed response header, status and payload.
        """
        known = self._deadline_known
        if not known:
            # Nothing known about the protocols' deadlines: ask every one.
            due_protocols: Iterable[Protocol] = self.protocols.values()
        elif self._deadline is None or self._deadline > now:
            return []
        else:
            # Only the protocols whose deadline has come have events (see next_deadline);
            # only their deadlines move.
            due_protocols = []
            for protocol, due in self._scheduled.items():
                if due <= now:
                    due_protocols.append(protocol)
        self._deadline_known = False  # taking events moves deadlines on
        changes = self._changes
        events: list[bytes] = []
        for protocol in due_protocols:
            try:
                events.extend(filter(None, protocol.take_events(now)))  # not b""
            except Exception:
                log.exception("internal error producing SCMI events")
        if known and self._changes == changes:
            self._reschedule(due_protocols)
        return events

    def _reschedule(self, protocols: Iterable[Protocol]) -> None:
        """Recount the deadline after `protocols` (only) took their events."""
        scheduled = self._scheduled
        try:
            for protocol in protocols:
                due = protocol.next_deadline()
                if due is None:
                    del scheduled[protocol]
                else:
                    scheduled[protocol] = due
        except Exception:
            log.exception("internal error computing the next event deadline")
            return  # asked again in full by next_deadline
        deadline = None
        for due in scheduled.values():
            if deadline is None or due < deadline:
                deadline = due
        self._deadline = deadline
        self._deadline_known = True

    def reset(self) -> None:
        """Forget the agent: subscriptions, sensor configurations, pending events."""
        self._deadline_known = False
        self._deadline_moved()
        for protocol in self.protocols.values():
            try:
                protocol.reset()
            except Exception:
                log.exception("internal error resetting an SCMI protocol")
        for platform in self._platforms.values():
            try:
                platform.release_shared()
            except Exception:
                log.exception("internal error releasing an agent's shared settings")


def build_dispatcher(platform: AgentView | Sequence[Resource],
                     executor: Executor | None = None) -> Dispatcher:
    """Return a dispatcher implementing the registered protocols for one agent: those
    with something visible to it (`Protocol.visible`), Base always.

    `platform` is the agent's view, or just the resources it sees (one agent, every
    resource controllable). Ids are indexes into the agent's resources of each type.
    `executor` runs the host calls (and becomes the view's `spawn`); without one, every
    host call is made inline. Raises ValueError when a resource cannot be described in
    SCMI terms (an exponent or resolution out of range).
    """
    if not isinstance(platform, AgentView):
        platform = AgentView(resources=list(platform))
    if executor is not None:
        platform.spawn = executor.spawn
    # A protocol with nothing for this agent does not exist for it: not listed by
    # Base, its messages NOT_SUPPORTED.
    protocols = [protocol for protocol_class in usable_protocols()
                 if (protocol := protocol_class(platform)).visible()]
    platform.protocol_ids[:] = [protocol.protocol_id for protocol in protocols]
    dispatcher = Dispatcher(protocols, executor)
    platform.reset_agent = dispatcher.reset
    return dispatcher


def _no_handler(header: int, request: bytes, room: int) -> bytes:
    raise AssertionError("a protocol key is never routed")


def _ignore(task: Task) -> None:
    """Callback of a task whose request was already answered."""


def _ignore_move() -> None:
    """No one to tell that the deadline moved."""
