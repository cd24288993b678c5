# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The command line, run through the installed console script as a user would."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

SCRIPT = shutil.which("vhost-device-scmi")


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    assert SCRIPT, "vhost-device-scmi console script is not installed"
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_help_lists_every_option() -> None:
    result = run("--help")
    assert result.returncode == 0
    for option in ("--socket-path", "--device", "--help-devices", "--log-level", "--version",
                   "--fd", "--socket-count", "--print-capabilities", "NOTIFY_SOCKET",
                   "LISTEN_FDS"):
        assert option in result.stdout


def test_version_names_the_program() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("vhost-device-scmi ")


def test_help_devices_lists_kinds_with_properties_and_example() -> None:
    result = run("--help-devices")
    assert result.returncode == 0, result.stderr
    assert "- fake: " in result.stdout
    assert "name (optional)" in result.stdout
    assert "--device iio,path=" in result.stdout


def test_python_dash_m_runs_the_same_cli() -> None:
    result = subprocess.run([sys.executable, "-P", "-m", "vhost_scmi", "--help-devices"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "- fake: " in result.stdout


def test_socket_path_is_required() -> None:
    result = run("-d", "fake")
    assert result.returncode == 2
    assert "--socket-path" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("nosuchkind", "unknown device kind 'nosuchkind'"),
        ("fake,colour=red", "unknown property 'colour'"),
        ("fake,name", "'name' is not PROPERTY=VALUE"),
        ("fake,name=a,name=b", "property 'name' given twice"),
        ("fake,name=abcdefghijklmnop", "longer than 15 bytes"),
        ("iio,channel=in_accel", "missing required property path"),
    ],
)
def test_bad_device_spec_is_one_clear_line(tmp_path, spec: str, expected: str) -> None:
    result = run("-s", str(tmp_path / "scmi.sock"), "-d", spec)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"'{spec}'" in lines[0]
    assert expected in lines[0]
    assert not (tmp_path / "scmi.sock").exists()


def test_bad_spec_after_good_ones_is_reported(tmp_path) -> None:
    # Several specs after one -d, and repeated -d, are both accepted forms.
    result = run("-s", str(tmp_path / "s.sock"), "-d", "fake", "fake,name=b", "-d", "bogus")
    assert result.returncode == 2
    assert "unknown device kind 'bogus'" in result.stderr


def test_unknown_log_level_is_rejected() -> None:
    result = run("-s", "x.sock", "--log-level", "loud")
    assert result.returncode == 2
    assert "--log-level" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-s", "x.sock", "--fd", "3"],
         "argument --fd: not allowed with argument -s/--socket-path"),
        (["--fd", "3", "--socket-path", "x.sock"], "not allowed with argument --fd"),
        (["-c", "2", "--fd", "3"], "argument -c/--socket-count: needs -s/--socket-path"),
        (["-c", "2"], "argument -c/--socket-count: needs -s/--socket-path"),
        (["-s", "x.sock", "-c", "0"], "argument -c/--socket-count: N must be at least 1"),
        (["-s", "x.sock", "-c", "two"], "argument -c/--socket-count: N must be at least 1"),
        (["--fd", "-1"], "argument --fd: FDNUM must be a file descriptor number"),
        (["--fd", "three"], "argument --fd: FDNUM must be a file descriptor number"),
        ([], "one of the arguments -s/--socket-path --fd --config is required"),
    ],
)
def test_socket_option_errors_are_one_clear_line(tmp_path, args: list[str],
                                                 expected: str) -> None:
    result = subprocess.run([SCRIPT, *args, "-d", "fake"], capture_output=True, text=True,
                            timeout=30, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vhost-device-scmi: error: ") and expected in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_socket_count_names_sockets_as_the_other_vhost_device_daemons() -> None:
    from vhost_scmi.listener import socket_paths

    assert socket_paths("/run/vm.sock", None) == ["/run/vm.sock"]
    assert socket_paths("/run/vm.sock", 3) == ["/run/vm.sock0", "/run/vm.sock1",
                                                "/run/vm.sock2"]


def modules_of_a_started_daemon(tmp_path, spec: str) -> set[str]:
    """The modules a daemon serving `-d spec` has imported (without the interpreter's
    site, whose .pth files are not the daemon's) once its socket accepts a VMM."""
    # The daemon's own main(), stopped by SIGTERM once its socket accepts a VMM.
    sock = tmp_path / "scmi.sock"
    code = ("import os, signal, socket, sys, threading, time\n"
            "def stop():\n"
            "    while True:\n"
            "        with socket.socket(socket.AF_UNIX) as probe:\n"
            "            try:\n"
            f"                probe.connect({str(sock)!r}); break\n"
            "            except OSError:\n"
            "                time.sleep(0.01)\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "threading.Thread(target=stop, daemon=True).start()\n"
            "from vhost_scmi import cli\n"
            f"status = cli.main(['-s', {str(sock)!r}, '-d', {spec!r}, '--log-level', 'error'])\n"
            "print(' '.join(sorted(sys.modules)))\n"
            "sys.exit(status)\n")
    result = subprocess.run([sys.executable, "-P", "-S", "-c",
                             f"import sys; sys.path[:0] = {sys.path!r}\n" + code],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


#: Protocols a daemon imports only for devices of theirs.
DOMAIN_PROTOCOLS = tuple(f"vhost_scmi.scmi.{name}" for name in (
    "performance", "power", "clock", "reset", "voltage", "powercap", "domain"))


def test_start_up_imports_only_what_serving_needs(tmp_path) -> None:
    """The running path imports what it needs when it needs it: the device kinds not
    named on the command line and the protocols of their resources, what only
    --help-devices, --print-capabilities, --write-descriptor or a sensor reconfiguration
    use, and standard modules that would only cost start-up time and memory
    (dataclasses brings inspect, ast and dis; argparse's own formatter, shutil and the
    compression modules), stay unimported."""
    loaded = modules_of_a_started_daemon(tmp_path, "fake")
    assert {"vhost_scmi.devices.fake", "vhost_scmi.scmi.sensor"} <= loaded
    for module in ("vhost_scmi.devices.iio", "vhost_scmi.devices.hwmon", "decimal",
                   "fractions", "json", "sysconfig", "vhost_scmi.frontend",
                   "vhost_scmi.scmi.client", "tomllib", "vhost_scmi.platform.config",
                   "vhost_scmi.control", "vhost_scmi.ctl", *DOMAIN_PROTOCOLS,
                   "dataclasses", "inspect", "ast", "dis", "shutil", "bz2", "lzma",
                   "zipfile", "tempfile", "pathlib", "importlib.metadata"):
        assert module not in loaded, module


def test_a_domain_device_brings_its_protocol_only(tmp_path) -> None:
    loaded = modules_of_a_started_daemon(tmp_path, "fake-clock,rates=100")
    assert {"vhost_scmi.scmi.clock", "vhost_scmi.scmi.domain"} <= loaded
    assert "vhost_scmi.scmi.sensor" not in loaded
    # Nor the sensor's model: the protocol registry's order does not matter then.
    assert "vhost_scmi.devices.sensor" not in loaded
    assert not loaded & (set(DOMAIN_PROTOCOLS) - {"vhost_scmi.scmi.clock",
                                                  "vhost_scmi.scmi.domain"})


@pytest.mark.parametrize("module", ["vhost_scmi", "vhost_scmi.bench", "vhost_scmi.frontend"])
def test_python_dash_m_in_the_source_tree_says_what_to_run(module: str) -> None:
    """In the checkout the unbuilt source tree shadows the installed package: one line
    says so and gives the command that works."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=root,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"`python -P -m {module}`" in result.stderr
    works = subprocess.run([sys.executable, "-P", "-m", module, "--help"], cwd=root,
                           capture_output=True, text=True, timeout=60)
    assert works.returncode == 0 and works.stdout.startswith("usage:"), works.stderr
