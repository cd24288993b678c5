# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Helpers for the domain protocol tests: a dispatcher per agent over shared resources."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from scmi_helpers import LINUX_RESPONSE, header

from vhost_scmi.devices.resource import Resource
from vhost_scmi.platform.arbitration import Arbiter
from vhost_scmi.platform.view import AgentView
from vhost_scmi.scmi.dispatcher import Dispatcher, build_dispatcher

CLOCK, RESET, VOLTAGE, POWERCAP = 0x14, 0x16, 0x17, 0x18


def agents(resources: Sequence[Resource], count: int = 2,
           controllable: Sequence[frozenset[Resource] | None] | None = None
           ) -> list[Dispatcher]:
    """One dispatcher per agent (ids 1..count), all over `resources` and one Arbiter."""
    arbiter = Arbiter()
    names = ["platform"] + [f"agent{i}" for i in range(1, count + 1)]
    return [build_dispatcher(AgentView(
        resources=list(resources), agent_id=i, agent_names=names, arbiter=arbiter,
        controllable=None if controllable is None else controllable[i - 1]))
        for i in range(1, count + 1)]


def call(dispatcher: Dispatcher, protocol: int, message: int, *params: int,
         payload: bytes = b"", room: int = LINUX_RESPONSE, token: int = 7) -> tuple[int, bytes]:
    """Send a command of u32 `params` (then `payload`); return (status, payload)."""
    request = struct.pack(f"<I{len(params)}I", header(protocol, message, token),
                          *params) + payload
    response = dispatcher.handle(request, room)
    head, status = struct.unpack_from("<Ii", response)
    assert head == header(protocol, message, token)
    return status, response[8:]


def u32s(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def events(dispatcher: Dispatcher, now: float = float("inf")) -> list[bytes]:
    return dispatcher.take_events(now)
