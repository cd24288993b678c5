# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Shared fixtures: the installed daemon as a subprocess, and connected front-ends.

    def test_something(daemon):                  # `vhost-device-scmi -s SOCK -d fake`
        with daemon.session() as vm:             # handshake done, queues running
            response = vm.cmdq.transact(request, 256)
        assert daemon.alive()

    def test_other(start_daemon):
        d = start_daemon("-d", "fake", "-d", "fake,name=two")

Every daemon started here is killed by its pid at teardown.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vhost_scmi.vhost.frontend import DriverQueue, GuestRam, VhostUserFrontend

START_TIMEOUT = 15.0


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temporary directory (Unix socket paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="vscmi-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class Session:
    """A front-end with its guest RAM and running queues."""

    frontend: VhostUserFrontend
    ram: GuestRam
    queues: list[DriverQueue]

    @property
    def cmdq(self) -> DriverQueue:
        return self.queues[0]

    @property
    def eventq(self) -> DriverQueue:
        return self.queues[1]

    def close(self) -> None:
        self.frontend.close()
        self.ram.close()


class Daemon:
    """A running `vhost-device-scmi` process."""

    def __init__(self, argv: list[str], socket_path: Path, log_path: Path,
                 **popen_kwargs) -> None:
        self.argv = argv
        self.socket_path = socket_path
        self.log_path = log_path
        with open(log_path, "wb") as log_file:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                            stdout=log_file, stderr=log_file, **popen_kwargs)
        self.pid = self.process.pid

    def wait_accepting(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.process.returncode}:\n{self.log()}")
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(str(self.socket_path))
                    return
                except (FileNotFoundError, ConnectionRefusedError):
                    pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"daemon not accepting after {timeout} s:\n{self.log()}")
            time.sleep(0.01)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 10.0) -> str:
        """Wait until the daemon's log contains `text`; return the log."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not logged after {timeout} s:\n{log}")
            time.sleep(0.01)
        return log

    def alive(self) -> bool:
        return self.process.poll() is None

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def shared_mappings(self) -> int:
        """Mappings of guest RAM (memfd) in the daemon."""
        with open(f"/proc/{self.pid}/maps") as maps:
            return sum("guest-ram" in line for line in maps)

    def connect(self, **kwargs) -> VhostUserFrontend:
        return VhostUserFrontend(str(self.socket_path), **kwargs)

    @contextlib.contextmanager
    def session(self, layout=None, **setup_kwargs) -> Iterator[Session]:
        """Connect, run the whole handshake, yield the Session, disconnect."""
        frontend = self.connect()
        ram = GuestRam() if layout is None else GuestRam(layout)
        session = Session(frontend, ram, [])
        try:
            session.queues = frontend.setup(ram, **setup_kwargs)
            yield session
        finally:
            session.close()

    def signal(self, number: int) -> None:
        os.kill(self.pid, number)

    def wait_exit(self, timeout: float = 10.0) -> int:
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def start_daemon(short_tmp: Path) -> Iterator[Callable[..., Daemon]]:
    """Start the installed console script with the given arguments (after -s SOCK)."""
    started: list[Daemon] = []
    script = shutil.which("vhost-device-scmi")
    assert script, "the vhost-device-scmi console script is not installed"

    def start(*args: str, socket_path: Path | None = None, wait: bool = True,
              **popen_kwargs) -> Daemon:
        path = socket_path or short_tmp / f"scmi{len(started)}.sock"
        daemon = Daemon([script, "-s", str(path), *args], path,
                        short_tmp / f"daemon{len(started)}.log", **popen_kwargs)
        started.append(daemon)
        if wait:
            daemon.wait_accepting()
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


@pytest.fixture
def daemon(start_daemon: Callable[..., Daemon]) -> Daemon:
    """`vhost-device-scmi -s SOCK -d fake`, accepting connections."""
    return start_daemon("-d", "fake")

