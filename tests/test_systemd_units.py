# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The systemd units in contrib/systemd: valid, and sandboxed.

`systemd-analyze verify` must accept the socket and service (with and without the
host-control drop-in) without a warning, and `systemd-analyze security --offline=true`
must rate an instance that only reads sensors at most 2.5 ("OK" or better), and an
instance with the host-control drop-in too: that drop-in opens only the sysfs files it
lists, and adds no capability.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
from prerequisites import require

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "contrib" / "systemd"
SERVICE, SOCKET = "vhost-device-scmi@.service", "vhost-device-scmi@.socket"
DROP_IN = UNITS / "host-control.conf"
TARGET = 2.5


def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    require(tool, "systemd-analyze (Debian package systemd) is not installed")
    return tool


def units_in(directory: Path, instance: str, drop_in: bool = False) -> Path:
    """The units copied into `directory`, their ExecStart= naming the installed script
    (verify checks that it exists), optionally with the host-control drop-in for
    `instance`, its paths replaced by ones this machine has."""
    script = Path(sysconfig.get_path("scripts")) / "vhost-device-scmi"
    require(script.exists(), f"the package is not installed for this Python (no {script})")
    for unit in (SERVICE, SOCKET):
        text = (UNITS / unit).read_text().replace("/usr/bin/vhost-device-scmi", str(script))
        (directory / unit).write_text(text)
    if drop_in:
        drop_in_dir = directory / f"vhost-device-scmi@{instance}.service.d"
        drop_in_dir.mkdir()
        text = re.sub(r"^ReadWritePaths=.*$", "ReadWritePaths=/sys/devices/system/cpu",
                      DROP_IN.read_text(), flags=re.MULTILINE)
        (drop_in_dir / DROP_IN.name).write_text(text)
    return directory / f"vhost-device-scmi@{instance}.service"


def verify(*units: Path) -> None:
    result = subprocess.run([analyze(), "verify", "--man=no", *map(str, units)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not result.stdout and not result.stderr, \
        result.stdout + result.stderr


def exposure(service: Path) -> float:
    result = subprocess.run([analyze(), "security", "--offline=true", "--no-pager",
                             str(service)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout[-2000:]
    return float(found.group(1))


def test_socket_and_service_verify_cleanly(tmp_path: Path) -> None:
    service = units_in(tmp_path, "vm1")
    verify(service, service.with_name("vhost-device-scmi@vm1.socket"))


def test_read_only_instance_is_rated_at_most_2_5(tmp_path: Path) -> None:
    assert exposure(units_in(tmp_path, "vm1")) <= TARGET


def test_host_control_drop_in_verifies_and_keeps_the_rating(tmp_path: Path) -> None:
    service = units_in(tmp_path, "vm2", drop_in=True)
    verify(service)
    assert exposure(service) <= TARGET


def settings(text: str) -> list[tuple[str, str]]:
    return [(key, value) for key, _, value in
            (line.partition("=") for line in text.splitlines()
             if line and not line.startswith(("#", "[")))]


def test_host_control_drop_in_opens_only_sysfs_files_and_adds_no_capability() -> None:
    keys = {key for key, _ in settings(DROP_IN.read_text())}
    assert keys == {"DynamicUser", "User", "PrivateUsers", "ReadWritePaths"}
    for key, value in settings(DROP_IN.read_text()):
        if key == "ReadWritePaths":
            assert value.startswith("/sys/") and " " not in value, value


@pytest.mark.parametrize(("key", "value"), [
    ("DynamicUser", "yes"), ("CapabilityBoundingSet", ""), ("UMask", "0077"),
    ("SystemCallFilter", "@system-service"), ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"), ("ProtectControlGroups", "yes"),
    ("RestrictNamespaces", "yes"), ("LockPersonality", "yes"), ("DevicePolicy", "closed"),
    ("RestrictAddressFamilies", "AF_UNIX"), ("PrivateNetwork", "yes"),
])
def test_service_sets(key: str, value: str) -> None:
    assert (key, value) in settings((UNITS / SERVICE).read_text())
