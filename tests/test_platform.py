# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The virtual platform through the installed daemon: a configuration file with two
agents on two sockets, each guest's own view, System Power both ways, and the control
socket driven by the installed vhost-device-scmi-ctl."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Daemon, Session
from scmi_helpers import BASE, SENSOR, command, header, name16, response, u32s

from vhost_scmi.scmi.status import Status
from vhost_scmi.vhost.frontend import GuestRam, VhostUserFrontend

SYSTEM_POWER = 0x12
CALLER = 0xFFFFFFFF
CTL = "vhost-device-scmi-ctl"


def config_text(tmp: Path) -> str:
    return f"""
control-socket = "{tmp}/ctl"

[system-power]
command = ["/bin/sh", "-c", 'echo "$@" >> {tmp}/power.log; exit $EXIT_STATUS', "sh"]
timeout = 2

[[device]]
id = "a"
spec = "fake,name=alpha"

[[device]]
id = "b"
spec = "fake,name=beta"

[[agent]]
name = "vm1"
socket = "{tmp}/vm1.sock"
control = ["a"]
system-power = ["shutdown", "warm-reset"]

[[agent]]
name = "vm2"
socket = "{tmp}/vm2.sock"
devices = ["b"]
"""


@pytest.fixture
def platform(short_tmp: Path) -> Iterator[Daemon]:
    config = short_tmp / "platform.toml"
    config.write_text(config_text(short_tmp))
    script = shutil.which("vhost-device-scmi")
    assert script
    daemon = Daemon([script, "--config", str(config)], short_tmp / "vm1.sock",
                    short_tmp / "daemon.log", env={**os.environ, "EXIT_STATUS": "0"})
    try:
        daemon.wait_accepting()
        daemon.wait_log("serving")  # the control socket too
        yield daemon
    finally:
        daemon.kill()


@contextlib.contextmanager
def session(path: Path) -> Iterator[Session]:
    frontend = VhostUserFrontend(str(path))
    ram = GuestRam()
    vm = Session(frontend, ram, [])
    try:
        vm.queues = frontend.setup(ram)
        yield vm
    finally:
        vm.close()


def ask(vm: Session, request: bytes) -> bytes:
    return vm.cmdq.transact(request, 136)


def ctl(tmp: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    script = shutil.which(CTL)
    assert script, f"{CTL} is not installed"
    return subprocess.run([script, "--control-socket", str(tmp / "ctl"), *args],
                          capture_output=True, text=True, timeout=timeout)


def protocols(vm: Session) -> bytes:
    return ask(vm, command(BASE, 0x6, 0))


# --- agents -------------------------------------------------------------------------------

def test_each_agent_sees_its_own_platform(platform: Daemon, short_tmp: Path) -> None:
    with session(short_tmp / "vm1.sock") as one, session(short_tmp / "vm2.sock") as two:
        # Two agents; vm1 has System Power and Sensor, vm2 too (it sees one sensor).
        for vm in (one, two):
            assert ask(vm, command(BASE, 0x1)) == response(BASE, 0x1, 0, u32s(0x0202))
            assert ask(vm, command(BASE, 0x7, 0)) == response(BASE, 0x7, 0,
                                                              u32s(0) + name16("platform"))
            assert ask(vm, command(BASE, 0x7, 1)) == response(BASE, 0x7, 0,
                                                              u32s(1) + name16("vm1"))
            assert ask(vm, command(BASE, 0x7, 2)) == response(BASE, 0x7, 0,
                                                              u32s(2) + name16("vm2"))
            assert ask(vm, command(BASE, 0x7, 3)) == response(BASE, 0x7, Status.NOT_FOUND)
            assert protocols(vm) == response(BASE, 0x6, 0,
                                             u32s(2) + bytes([SYSTEM_POWER, SENSOR, 0, 0]))
        assert ask(one, command(BASE, 0x7, CALLER)) == response(BASE, 0x7, 0,
                                                                u32s(1) + name16("vm1"))
        assert ask(two, command(BASE, 0x7, CALLER)) == response(BASE, 0x7, 0,
                                                                u32s(2) + name16("vm2"))
        # Sensor ids are contiguous over what each agent sees.
        assert ask(one, command(SENSOR, 0x1))[8:10] == struct.pack("<H", 2)
        assert ask(two, command(SENSOR, 0x1))[8:10] == struct.pack("<H", 1)
        assert ask(one, command(SENSOR, 0x3, 0))[24:40] == name16("alpha")
        assert ask(two, command(SENSOR, 0x3, 0))[24:40] == name16("beta")
        assert ask(two, command(SENSOR, 0x6, 1, 0)) == response(SENSOR, 0x6, Status.NOT_FOUND)
        # Managing another agent is not an agent's business.
        assert ask(two, command(BASE, 0xB, 1, 0)) == response(BASE, 0xB, Status.DENIED)
        assert ask(two, command(BASE, 0xB, 2, 0)) == response(BASE, 0xB, 0)
        assert ask(two, command(BASE, 0x9, 1, 0, 0)) == response(BASE, 0x9, Status.DENIED)
    assert platform.alive()


# --- System Power -------------------------------------------------------------------------

def test_system_power_messages(platform: Daemon, short_tmp: Path) -> None:
    log = short_tmp / "power.log"
    with session(short_tmp / "vm1.sock") as one, session(short_tmp / "vm2.sock") as two:
        for vm in (one, two):
            assert ask(vm, command(SYSTEM_POWER, 0x0)) == response(SYSTEM_POWER, 0, 0,
                                                                   u32s(0x20000))
            assert ask(vm, command(SYSTEM_POWER, 0x1)) == response(SYSTEM_POWER, 1, 0, u32s(0))
            assert ask(vm, command(SYSTEM_POWER, 0x2, 0x5)) == response(SYSTEM_POWER, 2, 0,
                                                                        u32s(0))
            for message in (0x4, 0x6, 0xFF):
                assert ask(vm, command(SYSTEM_POWER, 0x2, message)) == response(
                    SYSTEM_POWER, 2, Status.NOT_FOUND)
                # An unknown message of a served protocol (scmi-tests b004).
                assert ask(vm, command(SYSTEM_POWER, message, 0, 0)) == response(
                    SYSTEM_POWER, message, Status.NOT_FOUND)
        # SYSTEM_POWER_STATE_SET attributes: vm1 may warm-reset, not suspend.
        assert ask(one, command(SYSTEM_POWER, 0x2, 0x3)) == response(SYSTEM_POWER, 2, 0,
                                                                     u32s(1 << 31))
        assert ask(two, command(SYSTEM_POWER, 0x2, 0x3)) == response(SYSTEM_POWER, 2, 0,
                                                                     u32s(0))
        # Malformed requests, whoever sends them.
        for vm in (one, two):
            for request, status in [
                    (command(SYSTEM_POWER, 0x3), Status.INVALID_PARAMETERS),
                    (command(SYSTEM_POWER, 0x3, 1), Status.INVALID_PARAMETERS),
                    (command(SYSTEM_POWER, 0x3, 2, 0), Status.INVALID_PARAMETERS),
                    (command(SYSTEM_POWER, 0x3, 1, 3), Status.INVALID_PARAMETERS),  # power up
                    (command(SYSTEM_POWER, 0x3, 1, 5), Status.INVALID_PARAMETERS),
                    (command(SYSTEM_POWER, 0x3, 0, 0x80000000), Status.NOT_SUPPORTED),
                    (command(SYSTEM_POWER, 0x5), Status.INVALID_PARAMETERS),
                    (command(SYSTEM_POWER, 0x5, 2), Status.INVALID_PARAMETERS)]:
                assert ask(vm, request) == response(SYSTEM_POWER, request[0], status), request
        # Not allowed: DENIED, and no command runs.
        assert ask(two, command(SYSTEM_POWER, 0x3, 1, 0)) == response(SYSTEM_POWER, 3,
                                                                      Status.DENIED)
        assert ask(one, command(SYSTEM_POWER, 0x3, 1, 1)) == response(SYSTEM_POWER, 3,
                                                                      Status.DENIED)
        assert not log.exists()
        # Allowed: the host command runs with agent, state and mode.
        assert ask(one, command(SYSTEM_POWER, 0x3, 1, 0)) == response(SYSTEM_POWER, 3, 0)
        assert ask(one, command(SYSTEM_POWER, 0x3, 0, 2)) == response(SYSTEM_POWER, 3, 0)
        assert log.read_text().splitlines() == ["vm1 shutdown graceful",
                                                "vm1 warm-reset forceful"]
    assert platform.alive()
    assert "agent vm1 requests system power state shutdown" in platform.log()


def test_system_power_command_failure_and_deadline(short_tmp: Path) -> None:
    script = shutil.which("vhost-device-scmi")
    assert script
    config = short_tmp / "p.toml"
    config.write_text(f"""
[system-power]
command = ["/bin/sh", "-c", 'case $2 in shutdown) exit 3;; *) sleep 30;; esac', "sh"]
timeout = 0.5
[[device]]
spec = "fake"
[[agent]]
name = "vm"
socket = "{short_tmp}/vm.sock"
system-power = ["shutdown", "cold-reset"]
""")
    daemon = Daemon([script, "--config", str(config)], short_tmp / "vm.sock",
                    short_tmp / "daemon.log")
    try:
        daemon.wait_accepting()
        with session(short_tmp / "vm.sock") as vm:
            assert ask(vm, command(SYSTEM_POWER, 0x3, 1, 0)) == response(
                SYSTEM_POWER, 3, Status.GENERIC_ERROR)
            started = time.monotonic()
            answer = vm.cmdq.transact(command(SYSTEM_POWER, 0x3, 1, 1), 136, timeout=20)
            assert answer == response(SYSTEM_POWER, 3, Status.GENERIC_ERROR)
            assert time.monotonic() - started < 10  # killed at its deadline, not after 30 s
            assert ask(vm, command(BASE, 0x0)) == response(BASE, 0, 0, u32s(0x20000))
        assert "killed" in daemon.log()
        assert daemon.alive()
    finally:
        daemon.kill()


def test_ctl_shutdown_notifies_and_waits_for_the_vmm(platform: Daemon, short_tmp: Path) -> None:
    with session(short_tmp / "vm2.sock") as vm:
        # Not subscribed yet: an error, non-zero.
        result = ctl(short_tmp, "shutdown", "--agent", "vm2", "--timeout", "5")
        assert result.returncode == 1, result
        assert "not subscribed" in result.stderr
        vm.eventq.post_buffers(4, 136)
        assert ask(vm, command(SYSTEM_POWER, 0x5, 1)) == response(SYSTEM_POWER, 5, 0)
        process = subprocess.Popen([shutil.which(CTL), "--control-socket",
                                    str(short_tmp / "ctl"), "reboot", "--agent", "vm2",
                                    "--timeout", "20"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            [event] = vm.eventq.wait_used(1, timeout=10)
            # SYSTEM_POWER_STATE_NOTIFIER from the platform (agent 0): graceful cold
            # reset, 20 s to comply.
            assert event.data == struct.pack("<IIIII", header(SYSTEM_POWER, 0, 0, 3), 0, 1, 1,
                                             20000)
            assert process.poll() is None  # still waiting for the guest
        except BaseException:
            process.kill()
            raise
    # The VMM left: the command reports success.
    out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "vm2: went down" in out


def test_ctl_reports_a_guest_that_stays_up(platform: Daemon, short_tmp: Path) -> None:
    with session(short_tmp / "vm1.sock") as vm:
        vm.eventq.post_buffers(4, 136)
        assert ask(vm, command(SYSTEM_POWER, 0x5, 1)) == response(SYSTEM_POWER, 5, 0)
        started = time.monotonic()
        result = ctl(short_tmp, "shutdown", "--agent", "vm1", "--forceful", "--timeout", "1")
        assert result.returncode == 1, result
        assert "did not go down within 1 s" in result.stderr
        assert time.monotonic() - started < 10
        [event] = vm.eventq.wait_used(1)
        # Forceful: flags 0, no timeout.
        assert event.data == struct.pack("<IIIII", header(SYSTEM_POWER, 0, 0, 3), 0, 0, 0, 0)


# --- the control socket -------------------------------------------------------------------

def test_ctl_status(platform: Daemon, short_tmp: Path) -> None:
    with session(short_tmp / "vm2.sock") as vm:
        assert ask(vm, command(SYSTEM_POWER, 0x5, 1)) == response(SYSTEM_POWER, 5, 0)
        result = ctl(short_tmp, "status", "--json")
        assert result.returncode == 0, result
        agents = json.loads(result.stdout)
        assert [(a["id"], a["name"], a["connected"]) for a in agents] == [
            (1, "vm1", False), (2, "vm2", True)]
        assert agents[0]["resources"] == [
            {"type": "sensor", "id": 0, "name": "alpha", "access": "control"},
            {"type": "sensor", "id": 1, "name": "beta", "access": "read-only"}]
        assert agents[1]["resources"] == [
            {"type": "sensor", "id": 0, "name": "beta", "access": "read-only"}]
        assert agents[1]["protocols"]["system_power"]["subscribed"] is True
        assert agents[0]["protocols"]["system_power"]["may_request"] == ["shutdown",
                                                                         "warm-reset"]
        text = ctl(short_tmp, "status")
        assert text.returncode == 0
        assert "agent 2 vm2: VMM connected" in text.stdout
        assert "sensor 0: beta (read-only)" in text.stdout
    # Several agents: shutdown must name one.
    result = ctl(short_tmp, "shutdown")
    assert result.returncode == 1 and "name one" in result.stderr
    result = ctl(short_tmp, "shutdown", "--agent", "nobody")
    assert result.returncode == 1 and "no agent named 'nobody'" in result.stderr


def connect(sock: socket.socket, path: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            sock.connect(str(path))
            return
        except BlockingIOError:  # the backlog is full until the daemon accepts
            assert time.monotonic() < deadline
            time.sleep(0.01)


def raw_control(path: Path, data: bytes, *, shut: bool = True) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        connect(sock, path)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
            if shut:
                sock.shutdown(socket.SHUT_WR)
        reply = bytearray()
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(4096):
                reply += chunk
        return bytes(reply)


@pytest.mark.parametrize(("request_bytes", "error"), [
    (b"garbage\n", "not JSON"),
    (b"\xff\xfe\x00\n", "not JSON"),
    (b"[1, 2]\n", "not a JSON object"),
    (b'{"command": "format-disk"}\n', "unknown command"),
    (b'{"command": "power", "agent": "vm1", "state": "explode"}\n', "'state' must be"),
    (b'{"command": "power", "agent": "vm1", "state": "shutdown", "timeout": -1}\n',
     "'timeout' must be"),
    (b'{"command": "power", "agent": "vm1", "state": "shutdown", "forceful": 1}\n',
     "'forceful' must be"),
    (b'{"command": "power", "agent": ["vm1"], "state": "shutdown"}\n', "must be a name"),
    (b"[" * 100000, "longer than"),
    (b'{"command": "status"' + b" " * 5000 + b"}\n", "longer than"),
    (b"[" * 2000 + b"]" * 2000 + b"\n", "not JSON"),
], ids=["garbage", "binary", "array", "unknown-command", "bad-state", "bad-timeout",
        "bad-forceful", "bad-agent", "oversized-no-newline", "oversized-line", "deep"])
def test_bad_control_requests_get_an_error_reply(platform: Daemon, short_tmp: Path,
                                                 request_bytes: bytes, error: str) -> None:
    reply = json.loads(raw_control(short_tmp / "ctl", request_bytes))
    assert reply["ok"] is False and error in reply["error"], reply
    assert json.loads(raw_control(short_tmp / "ctl", b'{"command": "status"}\n'))["ok"]
    assert platform.alive()


def test_control_socket_survives_idle_and_vanishing_clients(platform: Daemon,
                                                            short_tmp: Path) -> None:
    idle = []
    for _ in range(20):  # more than the daemon keeps: the oldest are dropped
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connect(sock, short_tmp / "ctl")
        idle.append(sock)
    assert raw_control(short_tmp / "ctl", b"") == b""  # connects and leaves
    assert raw_control(short_tmp / "ctl", b'{"command": "st', shut=True)  # cut short
    assert json.loads(raw_control(short_tmp / "ctl", b'{"command": "status"}'))["ok"]
    for sock in idle:
        sock.close()
    assert platform.alive()


def test_control_socket_mode_and_removal(platform: Daemon, short_tmp: Path) -> None:
    mode = os.stat(short_tmp / "ctl").st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    platform.signal(15)
    assert platform.wait_exit() == 0
    assert not (short_tmp / "ctl").exists()
    assert not (short_tmp / "vm1.sock").exists()


def test_control_socket_option_without_config(start_daemon, short_tmp: Path) -> None:
    daemon = start_daemon("-c", "2", "-d", "fake", "--control-socket", str(short_tmp / "ctl"),
                          socket_path=short_tmp / "scmi.sock", wait=False)
    daemon.socket_path = short_tmp / "scmi.sock0"
    daemon.wait_accepting()
    result = ctl(short_tmp, "status", "--json")
    assert result.returncode == 0, result
    agents = json.loads(result.stdout)
    assert [(a["id"], a["name"]) for a in agents] == [(1, "guest0"), (2, "guest1")]
    assert all(a["resources"][0]["access"] == "control" for a in agents)


def test_control_socket_errors(start_daemon, short_tmp: Path) -> None:
    script = shutil.which("vhost-device-scmi")
    assert script
    sock = str(short_tmp / "s.sock")
    same = subprocess.run([script, "-s", sock, "-d", "fake", "--control-socket", sock],
                          capture_output=True, text=True, timeout=30)
    assert same.returncode == 2
    assert same.stderr.count("\n") == 1 and "is also a vhost-user socket" in same.stderr
    missing = subprocess.run([script, "-s", sock, "-d", "fake", "--control-socket",
                              str(short_tmp / "no" / "ctl")],
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1].startswith(
        "vhost-device-scmi: error: control socket: cannot create socket")
    assert not os.path.exists(sock)  # nothing served, nothing left behind


def test_status_shows_domains_permissions_and_shared_state(short_tmp: Path) -> None:
    script = shutil.which("vhost-device-scmi")
    assert script
    config = short_tmp / "domains.toml"
    config.write_text(f"""
control-socket = "{short_tmp}/ctl"
[[device]]
id = "cpu"
spec = "fake-perf,name=cpu,levels=600000:1200000,control=level"
[[device]]
id = "gpu"
spec = "fake-power,name=gpu"
[[agent]]
name = "vm1"
socket = "{short_tmp}/vm1.sock"
control = ["cpu"]
[[agent]]
name = "vm2"
socket = "{short_tmp}/vm2.sock"
devices = ["cpu"]
""")
    daemon = Daemon([script, "--config", str(config)], short_tmp / "vm1.sock",
                    short_tmp / "daemon.log")
    perf, level_set, level_get = 0x13, 0x7, 0x8
    try:
        daemon.wait_accepting()
        daemon.wait_log("serving")
        with session(short_tmp / "vm1.sock") as one, session(short_tmp / "vm2.sock") as two:
            # vm2 sees the domain read-only: its request is DENIED, vm1's reaches the host.
            assert ask(two, command(perf, level_set, 0, 1200000)) == response(
                perf, level_set, Status.DENIED)
            assert ask(one, command(perf, level_set, 0, 1200000)) == response(perf,
                                                                              level_set, 0)
            assert ask(two, command(perf, level_get, 0)) == response(perf, level_get, 0,
                                                                     u32s(1200000))
            result = ctl(short_tmp, "status", "--json")
            assert result.returncode == 0, result
            one_status, two_status = json.loads(result.stdout)
            assert one_status["resources"] == [
                {"type": "performance-domain", "id": 0, "name": "cpu", "access": "control"},
                {"type": "power-domain", "id": 0, "name": "gpu", "access": "read-only"}]
            assert two_status["resources"] == [
                {"type": "performance-domain", "id": 0, "name": "cpu", "access": "read-only"}]
            level = {"resource": "cpu", "setting": "level", "value": 1200000}
            assert {**level, "request": 1200000} in one_status["shared"]
            assert {**level, "request": None} in two_status["shared"]
            text = ctl(short_tmp, "status").stdout
            assert "cpu level: 1200000 (requested: 1200000)" in text
        assert "host: level of cpu set to 1200000" in daemon.log()
    finally:
        daemon.kill()
