# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""SCMI Base protocol (0x10), version 2.0: discovery, agents, permissions, error events.

The platform's agents are its guests, one per socket, with agent ids 1..N (0 names the
platform itself); each sees Base report the number of agents and the protocols that
have something for it. An agent is not trusted to manage others: permission and reset
requests naming another agent are DENIED. The platform manages no devices by SCMI
device id, so the permission messages find no device to act on;
RESET_AGENT_CONFIGURATION returns every protocol of the calling agent to its start-up
state.
"""

from __future__ import annotations

import logging
import re
import struct
from enum import IntEnum

from vhost_scmi import __version__
from vhost_scmi.scmi.codec import pack_header
from vhost_scmi.scmi.protocol import (
    HEADER_STATUS_U32,
    MAX_PAYLOAD,
    U32,
    U32X2,
    Message,
    Platform,
    Protocol,
    ok,
    pack_name,
    status_only,
)
from vhost_scmi.scmi.status import MessageType, ProtocolId, ScmiError, Status

log = logging.getLogger(__name__)

#: Base protocol 2.0 (SCMI 2.0 to 3.1): every message below.
VERSION = 0x20000
VENDOR = "Python"
SUB_VENDOR = "vhost-device"
#: DISCOVER_AGENT's "the calling agent".
CALLING_AGENT = 0xFFFFFFFF
#: Most message headers one BASE_ERROR_EVENT reports, and most events kept pending.
MAX_ERROR_REPORTS = 8
MAX_PENDING_ERROR_EVENTS = 16


class BaseMessage(IntEnum):
    """Base protocol message ids."""

    DISCOVER_VENDOR = 0x3
    DISCOVER_SUB_VENDOR = 0x4
    DISCOVER_IMPLEMENTATION_VERSION = 0x5
    DISCOVER_LIST_PROTOCOLS = 0x6
    DISCOVER_AGENT = 0x7
    NOTIFY_ERRORS = 0x8
    SET_DEVICE_PERMISSIONS = 0x9
    SET_PROTOCOL_PERMISSIONS = 0xA
    RESET_AGENT_CONFIGURATION = 0xB


class BaseNotification(IntEnum):
    """Base protocol notification ids."""

    BASE_ERROR_EVENT = 0x0


def implementation_version(version: str = __version__) -> int:
    """Return DISCOVER_IMPLEMENTATION_VERSION for a package version "MAJOR.MINOR.PATCH...".

    Layout: bits 31:24 major, 23:16 minor, 15:0 patch (each saturated); a version
    that does not start with numbers gives 0.
    """
    match = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", version)
    if match is None:
        return 0
    major, minor, patch = (int(part or 0) for part in match.groups())
    return min(major, 0xFF) << 24 | min(minor, 0xFF) << 16 | min(patch, 0xFFFF)


class BaseProtocol(Protocol):
    """The Base protocol, as one agent sees it."""

    protocol_id = ProtocolId.BASE
    version = VERSION

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform)
        self.add_messages(
            Message(BaseMessage.DISCOVER_VENDOR, self._vendor),
            Message(BaseMessage.DISCOVER_SUB_VENDOR, self._sub_vendor),
            Message(BaseMessage.DISCOVER_IMPLEMENTATION_VERSION, self._implementation_version),
            Message(BaseMessage.DISCOVER_LIST_PROTOCOLS, self._list_protocols, 4),
            Message(BaseMessage.DISCOVER_AGENT, self._discover_agent, 4),
            Message(BaseMessage.NOTIFY_ERRORS, self._notify_errors, 4),
            Message(BaseMessage.SET_DEVICE_PERMISSIONS, self._set_device_permissions, 12),
            Message(BaseMessage.SET_PROTOCOL_PERMISSIONS, self._set_protocol_permissions, 16),
            Message(BaseMessage.RESET_AGENT_CONFIGURATION, self._reset_agent_configuration, 8),
        )
        self._implementation = implementation_version()
        self._notify_errors_enabled = False
        self._error_headers: list[int] = []
        self._error_events: list[bytes] = []

    def attributes(self) -> bytes:
        # bits 15:8 number of agents, 7:0 number of protocols other than Base.
        others = sum(1 for pid in self.platform.protocol_ids if pid != ProtocolId.BASE)
        agents = len(self.platform.agent_names) - 1
        return U32.pack((agents & 0xFF) << 8 | others)

    def reset(self) -> None:
        self._notify_errors_enabled = False
        self._error_headers.clear()
        self._error_events.clear()

    def report_error(self, header: int) -> None:
        """Note a message from the agent that broke the protocol (BASE_ERROR_EVENT)."""
        if not self._notify_errors_enabled:
            return
        if len(self._error_headers) < MAX_ERROR_REPORTS:
            self._error_headers.append(header)
        else:
            self._flush_error_event()
            self._error_headers.append(header)
        self.platform.deadline_changed()  # a BASE_ERROR_EVENT is now due

    def next_deadline(self) -> float | None:
        return 0.0 if self._error_headers or self._error_events else None

    def take_events(self, now: float) -> list[bytes]:
        self._flush_error_event()
        events, self._error_events = self._error_events, []
        return events

    def _flush_error_event(self) -> None:
        if not self._error_headers:
            return
        if len(self._error_events) >= MAX_PENDING_ERROR_EVENTS:
            log.debug("dropping a BASE_ERROR_EVENT: %d pending", len(self._error_events))
        else:
            # Payload: u32 agent id, u32 error status (bit 31 fatal, 9:0 number of
            # reports), then one u64 per offending message (its header, zero-extended).
            count = len(self._error_headers)
            header = pack_header(BaseNotification.BASE_ERROR_EVENT, MessageType.NOTIFICATION,
                                 ProtocolId.BASE, 0)
            self._error_events.append(
                struct.pack(f"<III{count}Q", header, self.platform.agent_id, count,
                            *self._error_headers))
        self._error_headers.clear()

    def _vendor(self, header: int, request: bytes, room: int) -> bytes:
        return ok(header, pack_name(VENDOR))

    def _sub_vendor(self, header: int, request: bytes, room: int) -> bytes:
        return ok(header, pack_name(SUB_VENDOR))

    def _implementation_version(self, header: int, request: bytes, room: int) -> bytes:
        return HEADER_STATUS_U32.pack(header, Status.SUCCESS, self._implementation)

    def _list_protocols(self, header: int, request: bytes, room: int) -> bytes:
        (skip,) = U32.unpack_from(request, 4)
        others = sorted(pid for pid in self.platform.protocol_ids if pid != ProtocolId.BASE)
        if skip > len(others):
            raise ScmiError(Status.INVALID_PARAMETERS, f"skip {skip} > {len(others)}")
        # u32 count, then the ids as bytes, four to a word, zero padded.
        fits = (min(room, MAX_PAYLOAD) - 4) // 4 * 4
        if fits <= 0 and skip < len(others):
            raise ScmiError(Status.COMMS_ERROR, "no protocol id fits the response buffer")
        chosen = bytes(others[skip:skip + max(fits, 0)])
        padded = chosen.ljust(-(-len(chosen) // 4) * 4, b"\0")
        return ok(header, U32.pack(len(chosen)) + padded)

    def _discover_agent(self, header: int, request: bytes, room: int) -> bytes:
        (agent_id,) = U32.unpack_from(request, 4)
        if agent_id == CALLING_AGENT:
            agent_id = self.platform.agent_id
        names = self.platform.agent_names
        if agent_id >= len(names):
            raise ScmiError(Status.NOT_FOUND, f"no agent {agent_id}")
        return ok(header, U32.pack(agent_id) + pack_name(names[agent_id]))

    def _notify_errors(self, header: int, request: bytes, room: int) -> bytes:
        (notify_enable,) = U32.unpack_from(request, 4)
        if notify_enable & ~1:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved bits set")
        self._notify_errors_enabled = bool(notify_enable)
        if not notify_enable:
            self._error_headers.clear()
        return status_only(header, Status.SUCCESS)

    def _check_agent(self, agent_id: int) -> None:
        """Only the calling agent itself may be named: others are not its to manage."""
        if agent_id == 0 or agent_id >= len(self.platform.agent_names):
            raise ScmiError(Status.NOT_FOUND, f"no agent {agent_id}")
        if agent_id != self.platform.agent_id:
            raise ScmiError(Status.DENIED, f"agent {agent_id} is not the caller's to manage")

    def _set_device_permissions(self, header: int, request: bytes, room: int) -> bytes:
        agent_id, device_id, flags = struct.unpack_from("<III", request, 4)
        if flags & ~1:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved bits set")
        self._check_agent(agent_id)
        # The platform manages no device by SCMI device id.
        raise ScmiError(Status.NOT_FOUND, f"no device {device_id}")

    def _set_protocol_permissions(self, header: int, request: bytes, room: int) -> bytes:
        agent_id, device_id, command_id, flags = struct.unpack_from("<IIII", request, 4)
        if flags & ~1 or command_id & ~0xFF:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved bits set")
        if command_id == ProtocolId.BASE:
            # Access to the Base protocol cannot be changed.
            raise ScmiError(Status.INVALID_PARAMETERS, "the Base protocol is always allowed")
        self._check_agent(agent_id)
        if command_id not in self.platform.protocol_ids:
            raise ScmiError(Status.NOT_FOUND, f"no protocol {command_id:#x}")
        raise ScmiError(Status.NOT_FOUND, f"no device {device_id}")

    def _reset_agent_configuration(self, header: int, request: bytes, room: int) -> bytes:
        agent_id, flags = U32X2.unpack_from(request, 4)
        if flags & ~1:
            raise ScmiError(Status.INVALID_PARAMETERS, "reserved bits set")
        self._check_agent(agent_id)
        # Bit 0 asks for access permissions to be reset too; the guest's are fixed.
        self.platform.reset_agent()
        return status_only(header, Status.SUCCESS)
