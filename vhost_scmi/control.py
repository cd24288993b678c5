# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The control socket (`--control-socket PATH`), served by the daemon's event loop.

vhost-device-scmi-ctl (vhost_scmi.ctl) connects, sends one request and reads one
reply; the daemon then closes the connection. Both are one JSON object on one line:

    {"command": "status"}
        -> {"ok": true, "agents": [{"id", "name", "socket", "connected",
                                    "resources": [...], "protocols": {...}}, ...]}
    {"command": "power", "agent": NAME or null, "state": "shutdown" | "reboot",
     "forceful": false, "timeout": SECONDS}
        -> {"ok": true, "agent": NAME, "generation": N}   (the notification is queued)
    anything else
        -> {"ok": false, "error": "..."}

A request is at most MAX_REQUEST bytes; the socket is created mode 0600, and only
the daemon's user (or root) is served. No request reaches guest memory or host files:
the commands only read the platform's state and queue System Power notifications.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from vhost_scmi.listener import StartupError, open_listener
from vhost_scmi.platform.view import AgentView
from vhost_scmi.scmi.dispatcher import Dispatcher
from vhost_scmi.scmi.status import ProtocolId
from vhost_scmi.scmi.system_power import SystemPowerProtocol, SystemState

log = logging.getLogger(__name__)

#: Longest request accepted, in bytes (a request is a few dozen).
MAX_REQUEST = 4096
#: Most control connections kept open at once; a new one beyond drops the oldest.
MAX_CLIENTS = 8
#: Seconds a reply may take to send before the client is dropped.
SEND_TIMEOUT = 1.0
#: Most seconds a client may ask to wait for a guest to go down (passed on as the
#: graceful timeout of the notification).
MAX_TIMEOUT = 3600.0
#: The host requests the control socket offers, as System Power states.
POWER_STATES = {"shutdown": SystemState.SHUTDOWN, "reboot": SystemState.COLD_RESET}

_PEERCRED = struct.Struct("3i")


class _Loop(Protocol):
    def watch(self, fileobj: Any, callback: Callable[[], None]) -> None: ...
    def unwatch(self, fileobj: Any) -> None: ...


class _Endpoint(Protocol):
    name: str
    connection: object | None


@dataclass
class AgentHandle:
    """What the control socket knows of one agent."""

    view: AgentView
    dispatcher: Dispatcher
    endpoint: _Endpoint

    @property
    def connected(self) -> bool:
        return self.endpoint.connection is not None

    @property
    def system_power(self) -> SystemPowerProtocol | None:
        protocol = self.dispatcher.protocols.get(ProtocolId.SYSTEM_POWER)
        return protocol if isinstance(protocol, SystemPowerProtocol) else None


class RequestError(Exception):
    """A control request that cannot be carried out; the message is the reply."""


class ControlServer:
    """The control socket and its clients, on the daemon's event loop."""

    def __init__(self, path: str, agents: list[AgentHandle]) -> None:
        self.path = path
        self.agents = agents
        self._served = None
        self._loop: _Loop | None = None
        #: Open client connections and what each has sent so far, oldest first.
        self._clients: dict[socket.socket, bytearray] = {}

    def open(self, loop: _Loop) -> None:
        """Create the socket (0600; an old socket file there is replaced) and serve it
        on `loop`. Raises StartupError when it cannot be created."""
        try:
            self._served = open_listener(self.path)
        except StartupError as error:
            raise StartupError(f"control socket: {error}") from error
        self._served.sock.listen(MAX_CLIENTS)
        self._served.sock.setblocking(False)
        self._loop = loop
        loop.watch(self._served.sock, self._accept)
        log.info("control socket %s ready", self.path)

    def close(self) -> None:
        """Drop every client, close the socket and remove its file (idempotent)."""
        for client in list(self._clients):
            self._drop(client)
        if self._served is not None:
            if self._loop is not None:
                self._loop.unwatch(self._served.sock)
            self._served.sock.close()
            self._served.remove_file()
            self._served = None

    # --- connections ------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._served is not None and self._loop is not None
        try:
            client, _ = self._served.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            log.warning("control socket: accept failed: %s", error)
            return
        try:
            _pid, uid, _gid = _PEERCRED.unpack(
                client.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
        except OSError:
            uid = -1
        if uid not in (0, os.getuid()):
            log.warning("control socket: refusing a client of uid %d", uid)
            client.close()
            return
        if len(self._clients) >= MAX_CLIENTS:
            oldest = next(iter(self._clients))
            log.warning("control socket: too many clients; dropping the oldest")
            self._drop(oldest)
        client.setblocking(False)
        self._clients[client] = bytearray()
        self._loop.watch(client, lambda: self._readable(client))

    def _drop(self, client: socket.socket) -> None:
        self._clients.pop(client, None)
        if self._loop is not None:
            self._loop.unwatch(client)
        client.close()

    def _readable(self, client: socket.socket) -> None:
        buffer = self._clients.get(client)
        if buffer is None:
            return
        try:
            data = client.recv(MAX_REQUEST + 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client)
            return
        buffer += data
        if len(buffer) > MAX_REQUEST:
            self._reply(client, {"ok": False, "error": f"request longer than {MAX_REQUEST} "
                                                       f"bytes"})
            return
        if b"\n" not in buffer and data:
            return  # more to come
        if not buffer.strip():
            self._drop(client)  # connected and left without asking anything
            return
        line = bytes(buffer).split(b"\n", 1)[0]
        self._reply(client, self.answer(line))

    def _reply(self, client: socket.socket, reply: dict[str, Any]) -> None:
        try:
            client.settimeout(SEND_TIMEOUT)
            client.sendall(json.dumps(reply).encode() + b"\n")
        except OSError as error:
            log.debug("control socket: reply not delivered: %s", error)
        self._drop(client)

    # --- requests ---------------------------------------------------------------------------

    def answer(self, line: bytes) -> dict[str, Any]:
        """The reply to one request line (never raises for any input)."""
        try:
            request = json.loads(line)
        except (ValueError, RecursionError):
            return {"ok": False, "error": "request is not JSON"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "request is not a JSON object"}
        command = request.get("command")
        try:
            if command == "status":
                return {"ok": True, "agents": [self._status(agent) for agent in self.agents]}
            if command == "power":
                return self._power(request)
            raise RequestError(f"unknown command {command!r}"[:200])
        except RequestError as error:
            return {"ok": False, "error": str(error)}
        except Exception:
            log.exception("control socket: internal error answering %r", command)
            return {"ok": False, "error": "internal error (see the daemon's log)"}

    def _status(self, agent: AgentHandle) -> dict[str, Any]:
        view = agent.view
        ids: dict[str, int] = {}
        resources = []
        for resource in view.resources:
            kind = _kind_name(resource)
            resources.append({"type": kind, "id": ids.setdefault(kind, 0), "name": resource.name,
                              "access": "control" if view.may_control(resource)
                              else "read-only"})
            ids[kind] += 1
        protocols = {}
        for protocol_id, protocol in agent.dispatcher.protocols.items():
            try:
                name = ProtocolId(protocol_id).name.lower()
            except ValueError:
                name = f"{protocol_id:#x}"
            state = protocol.status()
            if state:
                protocols[name] = state
        shared = [{"resource": setting.resource.name, "setting": str(setting.name),
                   "value": _jsonable(setting.value),
                   "request": _jsonable(setting.requests.get(view.agent_id))}
                  for setting in view.arbiter.settings() if setting.resource in view.resources]
        return {"id": view.agent_id, "name": view.agent_name, "socket": agent.endpoint.name,
                "connected": agent.connected, "resources": resources, "shared": shared,
                "protocols": protocols}

    def _find(self, name: object) -> AgentHandle:
        if name is None:
            if len(self.agents) != 1:
                names = ", ".join(agent.view.agent_name for agent in self.agents)
                raise RequestError(f"several agents ({names}): name one")
            return self.agents[0]
        if not isinstance(name, str):
            raise RequestError("'agent' must be a name")
        for agent in self.agents:
            if agent.view.agent_name == name:
                return agent
        raise RequestError(f"no agent named {name!r}"[:200])

    def _power(self, request: dict[str, Any]) -> dict[str, Any]:
        agent = self._find(request.get("agent"))
        state = POWER_STATES.get(request.get("state"))  # type: ignore[arg-type]
        if state is None:
            raise RequestError(f"'state' must be one of {', '.join(POWER_STATES)}")
        forceful = request.get("forceful", False)
        if not isinstance(forceful, bool):
            raise RequestError("'forceful' must be true or false")
        timeout = request.get("timeout", 0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not (
                0 <= timeout <= MAX_TIMEOUT):
            raise RequestError(f"'timeout' must be a number of seconds from 0 to "
                               f"{MAX_TIMEOUT:g}")
        name = agent.view.agent_name
        if not agent.connected:
            raise RequestError(f"agent {name}: no VMM connected")
        protocol = agent.system_power
        if protocol is None or not protocol.request_transition(
                state, graceful=not forceful, timeout_ms=int(timeout * 1000)):
            raise RequestError(f"agent {name}: the guest has not subscribed to System "
                               f"Power notifications (no SCMI system power driver?)")
        log.info("control socket: %s %s of agent %s requested",
                 "forceful" if forceful else "graceful", request["state"], name)
        return {"ok": True, "agent": name, "generation": protocol.generation}


def _kind_name(resource: object) -> str:
    """The resource's model type, as its protocol counts ids: one sequence per type."""
    from vhost_scmi.devices.performance import PerformanceDomain
    from vhost_scmi.devices.power_domain import PowerDomain
    from vhost_scmi.devices.sensor import Sensor

    for model, name in ((Sensor, "sensor"), (PerformanceDomain, "performance-domain"),
                        (PowerDomain, "power-domain")):
        if isinstance(resource, model):
            return name
    return type(resource).__name__.lower()


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)

