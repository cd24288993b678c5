# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""--config: a bad file, or a file combined ambiguously with other options, is one error
line naming the file, the table and the key, exit status 2, and nothing served."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from vhost_scmi.platform.config import ConfigError, load_config

SCRIPT = shutil.which("vhost-device-scmi")

GOOD = """
[[device]]
id = "a"
spec = "fake,name=alpha"
[[agent]]
name = "vm1"
socket = "SOCK"
"""


def run(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    assert SCRIPT
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=30,
                          env=env, **kwargs)


def write(tmp: Path, text: str) -> Path:
    path = tmp / "c.toml"
    path.write_text(text.replace("SOCK", str(tmp / "s.sock")))
    return path


BAD_FILES = [
    ("[[agent]\nname = 1", "TOML syntax"),
    ("colour = 1\n" + GOOD, "key 'colour': unknown key"),
    (GOOD + 'devicez = ["a"]\n', "[[agent]] 'vm1': key 'devicez': unknown key"),
    (GOOD.replace('id = "a"', 'id = "a"\nname = "x"'), "[[device]] #1: key 'name': unknown key"),
    (GOOD.replace('name = "vm1"', "name = 7"), "[[agent]] #1: key 'name': must be a string, "
                                               "not an integer"),
    (GOOD.replace('name = "vm1"', 'name = "a-name-of-16bytes"'), "longer than 15 bytes"),
    (GOOD + 'devices = "a"\n', "key 'devices': must be an array, not a string"),
    (GOOD + 'devices = ["a", "a"]\n', "key 'devices': 'a' is listed twice"),
    (GOOD + 'devices = ["z"]\n', "key 'devices': unknown device id 'z'"),
    (GOOD + 'control = ["z"]\n', "key 'control': unknown device id 'z'"),
    (GOOD + 'devices = []\ncontrol = ["a"]\n', "key 'control': device 'a' is not in this"),
    (GOOD + 'system-power = ["shutdown"]\n', "needs a [system-power] table"),
    (GOOD + 'system-power = ["nap"]\n', "key 'system-power': unknown state 'nap'"),
    (GOOD + '[[device]]\nid = "a"\nspec = "fake"\n', "[[device]] #2: key 'id': duplicate"),
    (GOOD + '[[agent]]\nname = "vm1"\n', "key 'name': duplicate agent name 'vm1'"),
    (GOOD + '[[agent]]\nname = "vm2"\nsocket = "SOCK"\n', "[[agent]] 'vm2': key 'socket': "
                                                          "socket"),
    (GOOD.replace("fake,name=alpha", "fake,colour=red"), "[[device]] #1: key 'spec': device "
                                                         "spec 'fake,colour=red'"),
    (GOOD.replace("fake,name=alpha", "fake,name=a-much-too-long-sensor-name"),
     "[[device]] 'a': key 'spec'"),
    ('[system-power]\ncommand = ["poweroff"]\n' + GOOD, "[system-power]: key 'command': "
                                                          "'poweroff' must be an absolute"),
    ('[system-power]\ncommand = ["/bin/true"]\ntimeout = 0\n' + GOOD,
     "[system-power]: key 'timeout'"),
    ('[system-power]\ncommand = ["/bin/true"]\nshell = true\n' + GOOD,
     "[system-power]: key 'shell': unknown key"),
    ('control-socket = 5\n' + GOOD, "key 'control-socket': must be a string"),
    ('[[device]]\nspec = "fake"\n', "key 'agent': missing"),
    ('agent = []\n', "key 'agent': at least one"),
    ('agent = [1]\n', "[[agent]] #1: must be a table"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_file_is_one_line_naming_file_table_and_key(short_tmp: Path, text: str,
                                                        message: str) -> None:
    path = write(short_tmp, text)
    result = run("--config", str(path))
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"vhost-device-scmi: error: {path}: "), result.stderr
    assert message in result.stderr, result.stderr
    assert not (short_tmp / "s.sock").exists()


def test_missing_and_binary_files(short_tmp: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(short_tmp / "none.toml"))
    (short_tmp / "bin.toml").write_bytes(b'name = "\xff"\n')
    with pytest.raises(ConfigError, match="bin.toml"):
        load_config(str(short_tmp / "bin.toml"))


def test_defaults(short_tmp: Path) -> None:
    config = load_config(str(write(short_tmp, GOOD + '[[device]]\nspec = "fake"\n')))
    [agent] = config.agents
    assert agent.devices == ("a", "device2")  # every device, in file order
    assert agent.control == frozenset() and agent.system_power == frozenset()
    assert config.control_socket is None and config.power_command is None


@pytest.mark.parametrize(("args", "message"), [
    (["-s", "x.sock"], "argument -s/--socket-path: not allowed with --config"),
    (["-d", "fake"], "argument -d/--device: not allowed with --config"),
    (["--control-socket", "c"], "argument --control-socket: "),
    (["--fd", "0"], "--fd: every [[agent]] in"),
])
def test_ambiguous_combinations_are_usage_errors(short_tmp: Path, args: list[str],
                                                 message: str) -> None:
    path = write(short_tmp, 'control-socket = "c"\n' + GOOD)
    result = run("--config", str(path), *args)
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_agent_without_socket_needs_an_inherited_one(short_tmp: Path) -> None:
    path = write(short_tmp, GOOD.replace('socket = "SOCK"\n', ""))
    result = run("--config", str(path))
    assert result.returncode == 2
    assert "1 [[agent]] without 'socket' (vm1) but 0 inherited socket(s)" in result.stderr


def wait_serving(process: subprocess.Popen) -> str:
    """Read the daemon's log until its "serving" line; return that line."""
    assert process.stdout is not None
    lines = []
    while line := process.stdout.readline():
        lines.append(line)
        if "serving" in line:
            return line
    raise AssertionError("the daemon exited before serving:\n" + "".join(lines))


def test_agent_without_socket_serves_the_fd(short_tmp: Path) -> None:
    path = write(short_tmp, GOOD.replace('socket = "SOCK"\n', ""))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(short_tmp / "inherited.sock"))
    listener.listen(1)
    fd = listener.fileno()
    assert SCRIPT
    process = subprocess.Popen([SCRIPT, "--config", str(path), "--fd", str(fd)],
                               pass_fds=[fd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        listener.close()
        serving = wait_serving(process)
        process.terminate()
        out, _ = process.communicate(timeout=20)
        assert process.returncode == 0, out
        assert "(agent vm1)" in serving
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_activated_sockets_are_matched_by_name(short_tmp: Path) -> None:
    # Two agents without 'socket'; the service manager names the fds after them, in
    # the other order.
    text = GOOD.replace('socket = "SOCK"\n', "") + '[[agent]]\nname = "vm2"\n'
    path = write(short_tmp, text)
    listeners = []
    for name in ("b", "a"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(short_tmp / f"{name}.sock"))
        sock.listen(1)
        listeners.append(sock)
    # The child gets them as fds 3 and 4, as systemd passes them.
    script = (f"import os,sys; os.dup2({listeners[0].fileno()}, 3); "
              f"os.dup2({listeners[1].fileno()}, 4); "
              "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='2', "
              "LISTEN_FDNAMES='vm2:vm1'); "
              f"os.execv({SCRIPT!r}, [{SCRIPT!r}, '--config', {str(path)!r}])")
    import sys
    process = subprocess.Popen([sys.executable, "-c", script],
                               pass_fds=[s.fileno() for s in listeners],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={k: v for k, v in os.environ.items()
                                    if not k.startswith("LISTEN_")})
    try:
        for sock in listeners:
            sock.close()
        serving = wait_serving(process)
        process.terminate()
        out, _ = process.communicate(timeout=20)
        assert process.returncode == 0, out
        assert "fd 4 (vm1) (agent vm1), fd 3 (vm2) (agent vm2)" in serving, serving
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_shipped_examples_are_valid() -> None:
    root = Path(__file__).resolve().parent.parent
    config = load_config(str(root / "contrib" / "systemd" / "example.toml"))
    assert [agent.devices for agent in config.agents] == [("foo", "bar"), ("bar",)]
    import tomllib

    from vhost_scmi.platform.config import parse_config

    readme = (root / "README.md").read_text()
    block = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    config = parse_config(tomllib.loads(block), "README.md")
    assert [agent.name for agent in config.agents] == ["vm1", "vm2"]
    assert config.agents[1].devices == ("cpu-temp",)
