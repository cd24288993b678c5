# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""What every SCMI protocol implementation shares: its message table and the common messages.

A protocol is one module with one `Protocol` subclass. The subclass lists its messages
(id from its message enum, handler, request length); the dispatcher finds a handler by
protocol and message id, checks the request is long enough, and calls it. A handler
returns the complete response (header, status, payload) or raises `ScmiError` to answer
with a status and no payload. A handler that uses a host device is a coroutine
(`async def`) that awaits `HostCall`s (vhost_scmi.platform.host): the dispatcher drives it.

A protocol instance serves one agent: `self.platform` is that agent's `AgentView`.
"""

from __future__ import annotations

import errno
import logging
import struct
from collections import namedtuple
from collections.abc import Awaitable, Callable

from vhost_scmi.devices.resource import DeviceError
from vhost_scmi.platform.arbitration import ArbitrationDenied
from vhost_scmi.platform.host import HostTimeout
from vhost_scmi.platform.view import AgentView
from vhost_scmi.scmi.status import CommonMessage, ProtocolId, ScmiError, Status

#: Most bytes a reply may carry after its status word: Linux's virtio transport posts
#: 136-byte buffers (header + status + 128).
MAX_PAYLOAD = 128

U32 = struct.Struct("<I")
U32X2 = struct.Struct("<II")
U32X3 = struct.Struct("<III")
HEADER_STATUS = struct.Struct("<Ii")
HEADER_STATUS_U32 = struct.Struct("<IiI")

#: handler(header, request, room) -> complete response, or a coroutine returning it.
#: `request` is the whole request including its 4-byte header; `room` is how many
#: payload bytes may follow the status word.
Handler = Callable[[int, bytes, int], bytes | Awaitable[bytes]]

#: The platform as one agent's protocols see it.
Platform = AgentView


# A named tuple rather than a dataclass: dataclasses would cost every start-up its
# import of inspect.
class Message(namedtuple("Message", ["id", "handler", "request_length", "attributes"],
                         defaults=(0, 0))):
    """One message a protocol implements: `id` (its enum member, which gives its name),
    `handler` (a Handler), `request_length` (bytes of parameters after the header that
    it needs, default 0) and `attributes` (what PROTOCOL_MESSAGE_ATTRIBUTES answers
    for it, default 0)."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return self.id.name


def ok(header: int, payload: bytes = b"") -> bytes:
    """Return a SUCCESS response to `header` carrying `payload`."""
    return HEADER_STATUS.pack(header, Status.SUCCESS) + payload


def status_only(header: int, status: Status) -> bytes:
    """Return a response to `header` carrying only `status`."""
    return HEADER_STATUS.pack(header, status)


#: Bytes of a short name field (attributes messages); the extended-name messages carry
#: a longer name when one does not fit.
SHORT_NAME_SIZE = 16


def has_long_name(name: str) -> bool:
    """Whether `name` needs the extended-name message (its short field keeps a NUL)."""
    return len(name.encode()) >= SHORT_NAME_SIZE


def pack_name(name: str, size: int = SHORT_NAME_SIZE) -> bytes:
    """Return `name` as a NUL-terminated, NUL-padded UTF-8 field of `size` bytes.

    A longer name is cut at a character boundary so the field keeps its NUL.
    """
    encoded = name.encode()[: size - 1]
    encoded = encoded.decode(errors="ignore").encode()
    return encoded.ljust(size, b"\0")


#: Warnings the guest can provoke are logged this many times per kind, then at debug level.
WARNINGS_PER_KIND = 10
_warning_counts: dict[str, int] = {}


def warn_limited(logger: logging.Logger, kind: str, message: str, *args: object) -> None:
    """Log a warning the guest can provoke at will, without letting it flood the log."""
    count = _warning_counts.get(kind, 0)
    if count < WARNINGS_PER_KIND:
        _warning_counts[kind] = count + 1
        suffix = " (further ones at debug level)" if count + 1 == WARNINGS_PER_KIND else ""
        logger.warning(message + suffix, *args)
    else:
        logger.debug(message, *args)


#: Host errno -> the status answered when a host write or read fails with it. Any
#: other failure (the file vanished: ENOENT, ENODEV, ENXIO; EIO; a deadline passed)
#: is HARDWARE_ERROR.
HOST_ERRNO_STATUS: dict[int, Status] = {
    errno.EACCES: Status.DENIED,
    errno.EPERM: Status.DENIED,
    errno.EROFS: Status.DENIED,
    errno.EBUSY: Status.BUSY,
    errno.EAGAIN: Status.BUSY,
    errno.EINVAL: Status.INVALID_PARAMETERS,
    errno.ERANGE: Status.OUT_OF_RANGE,
}


def host_error(logger: logging.Logger, what: str, err: BaseException) -> ScmiError:
    """Log in one line why a host call for `what` failed; return the error to answer.

    DeviceError maps by its errno (HOST_ERRNO_STATUS), a timeout or a vanished device
    to HARDWARE_ERROR, ArbitrationDenied to DENIED; anything else is a device kind's
    bug, logged with its traceback and answered GENERIC_ERROR.
    """
    if isinstance(err, ArbitrationDenied):
        warn_limited(logger, "arbitration", "%s: %s", what, err)
        return ScmiError(Status.DENIED, str(err))
    if isinstance(err, DeviceError):
        status = Status.HARDWARE_ERROR
        if not isinstance(err, HostTimeout) and err.errno is not None:
            status = HOST_ERRNO_STATUS.get(err.errno, Status.HARDWARE_ERROR)
        warn_limited(logger, "host", "%s failed: %s (answered %s)", what, err, status.name)
        return ScmiError(status, str(err))
    logger.error("%s failed", what, exc_info=err)
    return ScmiError(Status.GENERIC_ERROR, str(err))


def notify_enable(request: bytes, offset: int = 8) -> bool:
    """The enable word of a notify request (only bit 0 defined); ScmiError if reserved
    bits are set."""
    (control,) = U32.unpack_from(request, offset)
    if control & ~1:
        raise ScmiError(Status.INVALID_PARAMETERS, "reserved bits set")
    return bool(control)


def sign_extend(value: int, bits: int) -> int:
    """Return the `bits`-wide two's complement `value` as a Python int."""
    sign = 1 << (bits - 1)
    return (value & (sign - 1)) - (value & sign)


class Protocol:
    """Base of a protocol implementation: common messages and the event hooks."""

    #: SCMI protocol id (header bits 17:10).
    protocol_id: ProtocolId
    #: PROTOCOL_VERSION answer, major << 16 | minor.
    version: int

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.messages: dict[int, Message] = {}
        self.add_messages(
            Message(CommonMessage.PROTOCOL_VERSION, self._version),
            Message(CommonMessage.PROTOCOL_ATTRIBUTES, self._attributes),
            Message(CommonMessage.PROTOCOL_MESSAGE_ATTRIBUTES, self._message_attributes, 4),
        )

    def add_messages(self, *messages: Message) -> None:
        """Implement `messages` (each message id once)."""
        for message in messages:
            if message.id in self.messages:
                raise ValueError(f"message {message.id:#x} defined twice")
            self.messages[message.id] = message

    def attributes(self) -> bytes:
        """Return the payload of the PROTOCOL_ATTRIBUTES response."""
        raise NotImplementedError

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Forget the agent's configuration: subscriptions, settings, pending work."""

    def visible(self) -> bool:
        """Whether this agent has anything to use in this protocol (then it is listed
        by BASE_DISCOVER_LIST_PROTOCOLS and served; otherwise it does not exist for
        the agent). A protocol over resources answers whether the agent sees any."""
        return True

    def status(self) -> dict[str, object]:
        """What this agent's configuration of the protocol is now, for the control
        socket's `status` (JSON-compatible values)."""
        return {}

    def next_deadline(self) -> float | None:
        """Return when take_events() has something to deliver (time.monotonic()).

        The dispatcher keeps the answer until `platform.deadline_changed()` is called:
        call it whenever the answer may move earlier.
        """
        return None

    def take_events(self, now: float) -> list[bytes]:
        """Return notifications and delayed responses due by `now`."""
        return []

    def _version(self, header: int, request: bytes, room: int) -> bytes:
        return HEADER_STATUS_U32.pack(header, Status.SUCCESS, self.version)

    def _attributes(self, header: int, request: bytes, room: int) -> bytes:
        return ok(header, self.attributes())

    def _message_attributes(self, header: int, request: bytes, room: int) -> bytes:
        (message_id,) = U32.unpack_from(request, 4)
        message = self.messages.get(message_id)
        if message is None:
            raise ScmiError(Status.NOT_FOUND, f"message {message_id:#x} not implemented")
        return HEADER_STATUS_U32.pack(header, Status.SUCCESS, message.attributes)
