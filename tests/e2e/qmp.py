# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""A minimal client of QEMU's machine protocol (QMP): JSON commands over a Unix socket."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any


class QmpError(Exception):
    """QEMU answered a command with an error, or the connection failed."""


class QmpClient:
    """One QMP session; events that arrive between replies are kept in `events`."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.settimeout(timeout)
            try:
                self._sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError) as error:
                self._sock.close()
                if time.monotonic() > deadline:
                    raise QmpError(f"cannot connect to QMP at {path}: {error}") from None
                time.sleep(0.05)
        self._file = self._sock.makefile("rwb")
        self.events: list[dict[str, Any]] = []
        greeting = self._read()
        if "QMP" not in greeting:
            raise QmpError(f"not a QMP greeting: {greeting}")
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        try:
            line = self._file.readline()
        except OSError as error:
            raise QmpError(f"reading from QEMU: {error}") from error
        if not line:
            raise QmpError("QEMU closed the QMP connection")
        return json.loads(line)

    def execute(self, command: str, **arguments: Any) -> Any:
        """Run `command`; return its "return" value or raise QmpError."""
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        try:
            self._file.write(json.dumps(message).encode() + b"\n")
            self._file.flush()
        except OSError as error:
            raise QmpError(f"{command}: writing to QEMU: {error}") from error
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
            elif "error" in reply:
                raise QmpError(f"{command}: {reply['error']}")
            elif "return" in reply:
                return reply["return"]

    def wait_event(self, name: str) -> dict[str, Any]:
        """Return the first event called `name`, reading more until it comes."""
        while True:
            for index, event in enumerate(self.events):
                if event["event"] == name:
                    return self.events.pop(index)
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)

    def close(self) -> None:
        self._file.close()
        self._sock.close()
