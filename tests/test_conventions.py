# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The vhost-user "Backend program conventions", run against the installed daemon.

Inherited sockets (--fd, listening or connected), systemd socket activation
(LISTEN_FDS/LISTEN_PID set by a shell that then execs the daemon, so that the pid
matches), --print-capabilities, the discovery descriptor, -c/--socket-count with
several VMMs at once, and readiness notification on a datagram socket.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import START_TIMEOUT, Daemon, Session
from prerequisites import require
from scmi_helpers import BASE, SENSOR, command

from vhost_scmi import backend_info
from vhost_scmi.devices.fake import FakeAccelerometer
from vhost_scmi.platform.agents import default_views
from vhost_scmi.scmi.dispatcher import build_dispatcher
from vhost_scmi.vhost.frontend import GuestRam, VhostUserFrontend

SCRIPT = shutil.which("vhost-device-scmi")
#: The keys QEMU's schema defines for a backend descriptor (VhostUserBackend).
DESCRIPTOR_KEYS = {"description", "type", "binary", "tags"}
REQUIRED_DESCRIPTOR_KEYS = {"description", "type", "binary"}

QUERIES = [command(BASE, 0), command(BASE, 1), command(BASE, 6, 0), command(SENSOR, 0),
           command(SENSOR, 3, 0), command(SENSOR, 7, 0, 0), command(BASE, 7, 0xFFFFFFFF)]
CONFIG_GET, CONFIG_SET, CONTINUOUS_UPDATE_NOTIFY = 0x9, 0xA, 0xB
SENSOR_UPDATE = 0x1


def status_of(response: bytes) -> int:
    return struct.unpack_from("<i", response, 4)[0]


def config_of(vm: Session, sensor: int) -> int:
    response = vm.cmdq.transact(command(SENSOR, CONFIG_GET, sensor), 256)
    assert status_of(response) == 0
    return struct.unpack_from("<I", response, 8)[0]


@contextlib.contextmanager
def session(target: str | Path | socket.socket) -> Iterator[Session]:
    """A front-end on `target` (a socket path, or a connected socket), handshake done."""
    frontend = VhostUserFrontend(target if isinstance(target, socket.socket) else str(target))
    ram = GuestRam()
    vm = Session(frontend, ram, [])
    try:
        vm.queues = frontend.setup(ram)
        yield vm
    finally:
        vm.close()


def assert_serves_scmi(vm: Session, agent: int = 0, agents: int = 1) -> None:
    """`vm` gets what agent `agent` of `agents` (one per socket) gets: Base counts
    the agents, and each is told its own id."""
    reference = build_dispatcher(default_views([FakeAccelerometer()], agents)[agent])
    for request in QUERIES:
        assert vm.cmdq.transact(request, 256) == reference.handle(request, 256)


def run_script(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    assert SCRIPT, "the vhost-device-scmi console script is not installed"
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL, **kwargs)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def high_fd(sock: socket.socket) -> int:
    """An inheritable duplicate of `sock` at fd 100 or above (clear of 3, 4, ...)."""
    fd = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD, 100)
    os.set_inheritable(fd, True)
    return fd


def listening_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(4)
    return sock


@pytest.fixture
def spawn(short_tmp: Path) -> Iterator[Callable[..., Daemon]]:
    """Start a daemon from a full argv (Popen keyword arguments allowed); killed at teardown."""
    started: list[Daemon] = []

    def start(argv: list[str], socket_path: Path | None = None, **popen_kwargs) -> Daemon:
        daemon = Daemon(argv, socket_path or short_tmp / "none",
                        short_tmp / f"spawned{len(started)}.log", **popen_kwargs)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


@pytest.fixture
def notify_socket(short_tmp: Path, request) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for the service manager, and its NOTIFY_SOCKET value."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if getattr(request, "param", "path") == "abstract":
        name = f"vscmi-test-{os.getpid()}-{secrets.token_hex(4)}"
        sock.bind(b"\0" + name.encode())
        value = "@" + name
    else:
        path = short_tmp / "notify"
        sock.bind(str(path))
        value = str(path)
    yield sock, value
    sock.close()


def receive_states(sock: socket.socket) -> list[str]:
    sock.settimeout(START_TIMEOUT)
    return sock.recv(4096).decode().splitlines()


# --- --print-capabilities and the descriptor -------------------------------------------------

def test_print_capabilities_prints_the_capabilities_object() -> None:
    result = run_script("--print-capabilities")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    document = json.loads(result.stdout)
    # VHostUserBackendCapabilities: the type, and no members the schema does not define
    # for it (features exist only for block, input and gpu).
    assert document == {"type": "scmi"}


def test_print_capabilities_ignores_every_other_argument(short_tmp: Path) -> None:
    path = short_tmp / "never.sock"
    result = run_script("-s", str(path), "--no-such-option", "-d", "nosuchkind",
                        "--print-capabilities", "--fd", "-7")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"type": "scmi"}
    assert not path.exists()
    # The same through python -m.
    module = subprocess.run([sys.executable, "-P", "-m", "vhost_scmi", "--print-capabilities"],
                            capture_output=True, text=True, timeout=30)
    assert module.returncode == 0 and module.stdout == result.stdout


def generate_descriptor(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the generator as the build does (meson.build's vhost-user-descriptor target)."""
    return subprocess.run([sys.executable, "-P", "-m", "vhost_scmi.backend_info",
                           "--output", str(tmp_path / "descriptor.json"), *args],
                          capture_output=True, text=True, timeout=30)


def test_descriptor_follows_the_schema(tmp_path: Path) -> None:
    result = generate_descriptor(tmp_path, "--binary", "/usr/bin/vhost-device-scmi",
                                 "--version", "9.8.7")
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "descriptor.json").read_text())
    assert REQUIRED_DESCRIPTOR_KEYS <= set(document) <= DESCRIPTOR_KEYS
    assert document["type"] == json.loads(run_script("--print-capabilities").stdout)["type"]
    assert document["binary"] == "/usr/bin/vhost-device-scmi"
    assert document["description"] == backend_info.SUMMARY
    assert document["tags"] == ["version=9.8.7"]


def test_descriptor_names_the_installed_console_script(tmp_path: Path) -> None:
    assert generate_descriptor(tmp_path).returncode == 0
    binary = json.loads((tmp_path / "descriptor.json").read_text())["binary"]
    assert binary == os.path.join(sysconfig.get_path("scripts"), "vhost-device-scmi")
    require(os.path.exists(binary), f"the package is not installed for {sys.executable} "
            f"(no {binary})")
    assert os.access(binary, os.X_OK)
    output = subprocess.run([binary, "--print-capabilities"], capture_output=True, text=True,
                            timeout=30).stdout
    assert json.loads(output) == {"type": "scmi"}


def test_descriptor_refuses_a_relative_binary(tmp_path: Path) -> None:
    result = generate_descriptor(tmp_path, "--binary", "bin/vhost-device-scmi")
    assert result.returncode == 2
    assert "absolute" in result.stderr
    assert not (tmp_path / "descriptor.json").exists()


# --- --fd: an inherited socket ---------------------------------------------------------------

def test_inherited_listening_socket(spawn, short_tmp: Path) -> None:
    path = short_tmp / "inherited.sock"
    with listening_socket(path) as listener:
        fd = high_fd(listener)
        daemon = spawn([SCRIPT, "--fd", str(fd), "-d", "fake"], path, pass_fds=(fd,))
        os.close(fd)
    daemon.wait_accepting()
    for _ in range(2):  # VMMs one after another on the same socket
        with session(path) as vm:
            assert_serves_scmi(vm)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    # The socket file belongs to whoever passed the socket: it stays.
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    assert f"fd {fd}: VMM connected" in daemon.log()


def test_inherited_connected_socket(spawn) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    fd = high_fd(theirs)
    theirs.close()
    daemon = spawn([SCRIPT, "--fd", str(fd), "-d", "fake"], pass_fds=(fd,))
    os.close(fd)
    with session(ours) as vm:
        assert_serves_scmi(vm)
    # Nobody else can connect: the daemon is done once its VMM leaves.
    assert daemon.wait_exit() == 0
    assert "no listening socket to take another VMM" in daemon.log()


def _not_listening_stream() -> socket.socket:
    return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)


def _datagram() -> socket.socket:
    return socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)


def _tcp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


@pytest.mark.parametrize(("make", "expected"), [
    (None, "is not open"),
    ("pipe", "is not a socket"),
    (_datagram, "is not a stream socket"),
    (_tcp, "is not a Unix domain socket"),
    (_not_listening_stream, "is neither listening nor connected"),
], ids=["closed", "pipe", "datagram", "tcp", "unconnected"])
def test_unusable_inherited_fd_is_one_clear_line(make, expected: str) -> None:
    keep: list = []
    if make is None:
        fd = os.open(os.devnull, os.O_RDONLY)
        os.close(fd)  # a number with nothing behind it
        pass_fds: tuple[int, ...] = ()
    elif make == "pipe":
        read_end, write_end = os.pipe()
        keep = [read_end, write_end]
        fd, pass_fds = read_end, (read_end,)
    else:
        sock = make()
        keep = [sock]
        fd = sock.fileno()
        pass_fds = (fd,)
    try:
        result = run_script("--fd", str(fd), "-d", "fake", pass_fds=pass_fds)
    finally:
        for item in keep:
            item.close() if isinstance(item, socket.socket) else os.close(item)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert f"fd {fd}" in line and expected in line


# --- systemd socket activation ---------------------------------------------------------------

#: Moves the fds named before "--" to 3, 4, ..., sets LISTEN_PID to its own pid and
#: execs the rest of argv, which keeps that pid: what a service manager does. With
#: "child" first, it runs argv as a child process instead, whose pid differs.
ACTIVATOR = """
import os, subprocess, sys
mode, split = sys.argv[1], sys.argv.index("--")
fds, argv = [int(fd) for fd in sys.argv[2:split]], sys.argv[split + 1:]
for index, fd in enumerate(fds):
    os.dup2(fd, 3 + index)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
if mode == "child":
    sys.exit(subprocess.run(argv, pass_fds=range(3, 3 + len(fds))).returncode)
os.execv(argv[0], argv)
"""


def activated(fds: list[int], *args: str, mode: str = "exec") -> list[str]:
    """argv that runs the daemon with `fds` as fds 3, 4, ... under socket activation."""
    return [sys.executable, "-c", ACTIVATOR, mode, *map(str, fds), "--", SCRIPT, *args]


def activation_env(count: int, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET")}
    return {**env, "LISTEN_FDS": str(count), **extra}


def test_socket_activation_serves_every_passed_socket(spawn, short_tmp: Path) -> None:
    paths = [short_tmp / "act-a.sock", short_tmp / "act-b.sock"]
    listeners = [listening_socket(path) for path in paths]
    fds = [high_fd(listener) for listener in listeners]
    daemon = spawn(activated(fds, "-d", "fake"), paths[0], pass_fds=fds,
                   env=activation_env(2, LISTEN_FDNAMES="vm-a:vm-b"))
    for fd in fds:
        os.close(fd)
    for listener in listeners:
        listener.close()
    daemon.wait_accepting()
    with session(paths[0]) as first, session(paths[1]) as second:
        assert_serves_scmi(first, 0, 2)
        assert_serves_scmi(second, 1, 2)
    log = daemon.wait_log("fd 4 (vm-b): connection closed")
    assert "fd 3 (vm-a): VMM connected" in log
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    assert all(path.exists() for path in paths)  # systemd's sockets, not ours to remove


def test_activation_for_another_process_is_ignored(short_tmp: Path) -> None:
    with listening_socket(short_tmp / "other.sock") as listener:
        fd = high_fd(listener)
        try:
            # LISTEN_PID names the activator, which runs the daemon as its child.
            result = subprocess.run(activated([fd], "-d", "fake", mode="child"),
                                    env=activation_env(1), pass_fds=(fd,),
                                    capture_output=True, text=True, timeout=30)
        finally:
            os.close(fd)
    assert result.returncode == 2
    assert "--socket-path" in one_line(result.stderr)


def test_malformed_activation_is_one_clear_line(short_tmp: Path) -> None:
    with listening_socket(short_tmp / "bad.sock") as listener:
        fd = high_fd(listener)
        try:
            result = subprocess.run(activated([fd], "-d", "fake"),
                                    env=activation_env(1, LISTEN_FDS="one"), pass_fds=(fd,),
                                    capture_output=True, text=True, timeout=30)
        finally:
            os.close(fd)
    assert result.returncode == 2
    assert "LISTEN_FDS='one' is not a number" in one_line(result.stderr)


@pytest.mark.parametrize(("option", "named"), [(["-s", "x.sock"], "-s/--socket-path"),
                                               (["--fd", "3"], "--fd")], ids=["socket", "fd"])
def test_activation_and_an_explicit_socket_conflict(short_tmp: Path, option: list[str],
                                                    named: str) -> None:
    with listening_socket(short_tmp / "both.sock") as listener:
        fd = high_fd(listener)
        try:
            result = subprocess.run(activated([fd], *option, "-d", "fake"),
                                    env=activation_env(1), pass_fds=(fd,), cwd=short_tmp,
                                    capture_output=True, text=True, timeout=30)
        finally:
            os.close(fd)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "socket activation" in line and f"argument {named}:" in line
    assert not (short_tmp / "x.sock").exists()


# --- -c/--socket-count ----------------------------------------------------------------------

def test_socket_count_serves_one_vmm_per_socket_with_its_own_state(start_daemon,
                                                                   short_tmp: Path) -> None:
    base = short_tmp / "vm.sock"
    paths = [Path(f"{base}{index}") for index in range(3)]
    daemon = start_daemon("-c", "3", "-d", "fake", socket_path=base, wait=False)
    for path in paths:
        daemon.socket_path = path
        daemon.wait_accepting()
    assert not base.exists()
    assert all(stat.S_IMODE(os.lstat(path).st_mode) == 0o600 for path in paths)
    with contextlib.ExitStack() as stack:
        vms = [stack.enter_context(session(path)) for path in paths]
        for index, vm in enumerate(vms):
            assert_serves_scmi(vm, index, 3)
            vm.eventq.post_buffers(8, 136)
        # The fake accelerometer starts disabled. VM 0 enables it and subscribes to
        # its readings; the other VMs' copies of that state must not change.
        first = vms[0]
        assert config_of(first, 0) & 1 == 0
        enable = command(SENSOR, CONFIG_SET, 0, 1)
        assert status_of(first.cmdq.transact(enable, 256)) == 0
        subscribe = command(SENSOR, CONTINUOUS_UPDATE_NOTIFY, 0, 1)
        assert status_of(first.cmdq.transact(subscribe, 256)) == 0
        events = first.eventq.wait_used(2)
        assert all(struct.unpack_from("<I", event.data)[0] & 0xFF == SENSOR_UPDATE
                   and struct.unpack_from("<I", event.data)[0] >> 10 & 0xFF == SENSOR
                   for event in events)
        assert config_of(first, 0) & 1 == 1
        for other in vms[1:]:
            assert config_of(other, 0) & 1 == 0
            assert other.eventq.collect() == []
        # A second VMM on socket 1 is refused; the VMMs on the other sockets carry on.
        with VhostUserFrontend(str(paths[1])) as intruder:
            assert intruder.sock.recv(1) == b""
        for vm in vms:
            assert status_of(vm.cmdq.transact(command(BASE, 0), 256)) == 0
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    assert not any(path.exists() for path in paths)


def test_socket_count_opens_all_sockets_or_none(start_daemon, short_tmp: Path) -> None:
    base = short_tmp / "vm.sock"
    Path(f"{base}1").write_text("not a socket")
    daemon = start_daemon("-c", "3", "-d", "fake", socket_path=base, wait=False)
    assert daemon.wait_exit() == 1
    assert f"{base}1" in one_line(daemon.log())
    assert not Path(f"{base}0").exists() and not Path(f"{base}2").exists()


# --- readiness -------------------------------------------------------------------------------

@pytest.mark.parametrize("notify_socket", ["path", "abstract"], indirect=True)
def test_ready_and_stopping_are_notified(spawn, short_tmp: Path, notify_socket) -> None:
    receiver, value = notify_socket
    path = short_tmp / "ready.sock"
    env = {**os.environ, "NOTIFY_SOCKET": value}
    daemon = spawn([SCRIPT, "-s", str(path), "-d", "fake"], path, env=env)
    assert "READY=1" in receive_states(receiver)
    # Ready means accepting: no waiting, no retry.
    with session(path) as vm:
        assert_serves_scmi(vm)
    daemon.signal(signal.SIGTERM)
    assert "STOPPING=1" in receive_states(receiver)
    assert daemon.wait_exit() == 0


def test_ready_with_several_sockets_means_all_accept(spawn, short_tmp: Path,
                                                     notify_socket) -> None:
    receiver, value = notify_socket
    base = short_tmp / "many.sock"
    env = {**os.environ, "NOTIFY_SOCKET": value}
    daemon = spawn([SCRIPT, "-s", str(base), "-c", "4", "-d", "fake"], base, env=env)
    assert "READY=1" in receive_states(receiver)
    with contextlib.ExitStack() as stack:
        vms = [stack.enter_context(session(f"{base}{index}")) for index in range(4)]
        for vm in vms:
            assert status_of(vm.cmdq.transact(command(BASE, 0), 256)) == 0
    daemon.signal(signal.SIGINT)
    assert "STOPPING=1" in receive_states(receiver)
    assert daemon.wait_exit() == 0


def test_socket_failure_exits_early_without_ready(short_tmp: Path, notify_socket) -> None:
    receiver, value = notify_socket
    result = run_script("-s", str(short_tmp / "missing" / "x.sock"), "-d", "fake",
                        env={**os.environ, "NOTIFY_SOCKET": value})
    assert result.returncode == 1
    assert "does not exist" in one_line(result.stderr)
    receiver.setblocking(False)
    with pytest.raises(BlockingIOError):
        receiver.recv(4096)  # the daemon has exited: anything it sent would be here


def test_notify_socket_that_is_gone_does_not_stop_the_daemon(spawn, short_tmp: Path) -> None:
    path = short_tmp / "lonely.sock"
    env = {**os.environ, "NOTIFY_SOCKET": str(short_tmp / "nobody-listens")}
    daemon = spawn([SCRIPT, "-s", str(path), "-d", "fake"], path, env=env)
    daemon.wait_accepting()
    with session(path) as vm:
        assert_serves_scmi(vm)
    assert "cannot notify the service manager" in daemon.log()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
