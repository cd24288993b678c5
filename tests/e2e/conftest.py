# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Fixtures of the end-to-end tests: the installed daemon, QEMU and the arm64 guest.

The guest runs under TCG emulation (about 2 s per boot); the timeouts are generous
because a loaded CI machine can be many times slower. Every process a test starts is
ended by the test, by its pid, whatever the outcome.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from prerequisites import require

from .guest import GuestImage, GuestResult, GuestSetupError, GuestVM, prepare_guest

#: Seconds from QEMU's start to the guest's power-off. A guest request the daemon
#: never answers costs Linux's 60 s SCMI timeout, so leave room for a couple of those.
GUEST_TIMEOUT = 240.0
#: Seconds for the daemon to start listening, or to exit after SIGTERM.
DAEMON_TIMEOUT = 30.0

DAEMON = "vhost-device-scmi"
CTL = "vhost-device-scmi-ctl"


def daemon_executable(name: str = DAEMON) -> str:
    """The installed console script `name`, as a user would run it."""
    beside_python = Path(sysconfig.get_path("scripts")) / name
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"the {name} console script is not installed; run "
                    f"`pip install --no-build-isolation -e .` first", pytrace=False)
    return found


def unix_socket_states(path: Path) -> list[tuple[int, int]]:
    """(flags, state) of every Unix socket bound to `path`, from /proc/net/unix.

    A listener has flag __SO_ACCEPTCON (0x10000); a socket the listener accepted shares
    its path and is in state SS_CONNECTED (3).
    """
    wanted = str(path)
    states = []
    with open("/proc/net/unix") as table:
        next(table)
        for line in table:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == wanted:
                states.append((int(fields[3], 16), int(fields[5], 16)))
    return states


ACCEPTCON = 0x10000
SS_CONNECTED = 3


@dataclass
class Daemon:
    """A running `vhost-device-scmi` process."""

    proc: subprocess.Popen
    socket_path: Path
    log_path: Path
    argv: list[str]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def describe(self) -> str:
        status = "running" if self.alive() else f"exited with {self.proc.returncode}"
        return (f"--- daemon {' '.join(self.argv)} ({status}); log {self.log_path} ---\n"
                f"{self.log()[-6000:]}")

    def wait_listening(self, timeout: float = DAEMON_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(flags & ACCEPTCON for flags, _ in unix_socket_states(self.socket_path)):
                return
            if not self.alive():
                raise AssertionError(f"the daemon exited before listening\n{self.describe()}")
            time.sleep(0.05)
        raise AssertionError(f"the daemon did not listen on {self.socket_path} within "
                             f"{timeout} s\n{self.describe()}")

    def wait_connected(self, timeout: float = DAEMON_TIMEOUT) -> None:
        """Wait until the daemon has accepted a connection (a VMM is attached)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(state == SS_CONNECTED for _, state in unix_socket_states(self.socket_path)):
                return
            if not self.alive():
                raise AssertionError(f"the daemon exited\n{self.describe()}")
            time.sleep(0.05)
        raise AssertionError(f"no VMM connected to the daemon within {timeout} s\n"
                             f"{self.describe()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = DAEMON_TIMEOUT) -> int:
        """Send `sig` and wait for the exit; return the exit status."""
        if self.alive():
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the daemon did not exit within {timeout} s of signal "
                                 f"{sig}\n{self.describe()}") from None


class EndToEnd:
    """Starts daemons and guests for one test and ends all of them at teardown."""

    def __init__(self, image: GuestImage, workdir: Path, socket_dir: Path) -> None:
        self.image = image
        self.workdir = workdir
        self.socket_dir = socket_dir
        self.daemons: list[Daemon] = []
        self.guests: list[GuestVM] = []
        self._processes: list[subprocess.Popen] = []

    def socket_path(self, name: str = "scmi") -> Path:
        # A short directory: a Unix socket path must fit in 108 bytes.
        return self.socket_dir / f"{name}.sock"

    def start_daemon(self, *devices: str, socket_path: Path | None = None,
                     name: str = "daemon", options: Sequence[str] = (),
                     socket_count: int | None = None,
                     env: dict[str, str] | None = None,
                     listening: Path | None = None) -> Daemon:
        """Start the installed daemon with `--socket-path` and one `--device` per spec
        (and `options`), in `env`.

        With `socket_count` N (`-c N`) it serves PATH0..PATH<N-1>; the Daemon's
        socket_path is PATH0. Otherwise it waits until `listening` (default: the socket
        path) listens.
        """
        socket_path = socket_path or self.socket_path()
        argv = [daemon_executable(), "--socket-path", str(socket_path), *options]
        if socket_count is not None:
            argv += ["--socket-count", str(socket_count)]
        for spec in devices:
            argv += ["--device", spec]
        if socket_count is None:
            return self._start(argv, socket_path, name, env=env, listening=listening)
        # -c N: PATH0..PATH<N-1> listen; the Daemon is known by PATH0.
        paths = [Path(f"{socket_path}{index}") for index in range(socket_count)]
        daemon = self._start(argv, paths[-1], name, env=env)
        daemon.socket_path = paths[0]
        daemon.wait_listening()
        return daemon

    def start_config_daemon(self, config: str, socket_path: Path,
                            name: str = "daemon") -> Daemon:
        """Start the installed daemon with `--config` (the file's text is `config`);
        return once `socket_path`, one of its agents' sockets, listens."""
        config_path = self.workdir / f"{name}-{len(self.daemons)}.toml"
        config_path.write_text(config)
        return self._start([daemon_executable(), "--config", str(config_path)],
                           socket_path, name)

    def _start(self, argv: list[str], socket_path: Path, name: str, *,
               env: dict[str, str] | None = None, listening: Path | None = None) -> Daemon:
        log_path = self.workdir / f"{name}-{len(self.daemons)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=env)
        self._processes.append(proc)
        daemon = Daemon(proc, listening or socket_path, log_path, argv)
        self.daemons.append(daemon)
        daemon.wait_listening()
        return daemon

    def boot(self, script: str, socket_path: Path | None, *, reconnect: bool = False,
             name: str | None = None, dtb: Path | None = None) -> GuestVM:
        """Start a guest whose /init runs `script`; `socket_path` None boots without SCMI.

        `dtb` replaces the image's device tree (guest.dtb_with)."""
        vm = GuestVM(self.image, socket_path, script, self.workdir, reconnect=reconnect,
                     name=name or f"guest{len(self.guests)}", dtb=dtb)
        self.guests.append(vm)
        vm.start(self._processes.append)
        return vm

    def run_guest(self, script: str, socket_path: Path | None, **kwargs) -> GuestResult:
        """Boot a guest, wait for it to power off and return what it printed."""
        vm = self.boot(script, socket_path, **kwargs)
        try:
            return vm.wait_result(GUEST_TIMEOUT)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.daemons_report()}") from None

    def daemons_report(self) -> str:
        return "\n".join(daemon.describe() for daemon in self.daemons)

    def close(self) -> None:
        """End every process this test started, by pid: SIGTERM, then SIGKILL."""
        for proc in reversed(self._processes):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self._processes):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for vm in self.guests:
            vm.close()
        for proc in self._processes:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """On failure, attach every daemon's log and the guests' log files to the report."""
    outcome = yield
    report = outcome.get_result()
    env = getattr(item, "funcargs", {}).get("e2e")
    if report.failed and call.when == "call" and isinstance(env, EndToEnd):
        if env.daemons:
            report.sections.append(("vhost-device-scmi logs", env.daemons_report()))
        for vm in env.guests:
            report.sections.append((f"{vm.name} files", f"console {vm.console_log}\n"
                                    f"QEMU stderr {vm.qemu_log}"))


@pytest.fixture(scope="session")
def guest_image() -> GuestImage:
    """The guest's pieces; without them (a distribution's offline build) each e2e test
    is skipped naming what is missing, and fails under tools/run-tests."""
    try:
        return prepare_guest()
    except GuestSetupError as error:
        require(False, f"end-to-end guest unavailable: {error}")
        raise


@pytest.fixture
def e2e(guest_image: GuestImage, tmp_path: Path) -> Iterator[EndToEnd]:
    socket_dir = Path(tempfile.mkdtemp(prefix="vscmi-e2e-"))
    env = EndToEnd(guest_image, tmp_path, socket_dir)
    try:
        yield env
    finally:
        env.close()
        shutil.rmtree(socket_dir, ignore_errors=True)

