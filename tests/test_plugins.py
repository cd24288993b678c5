# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Device kinds from plugins (entry-point group vhost_scmi.device_kinds): a good one
serves the guest through the daemon, broken and malformed ones are one warning each,
and the lookup costs nothing when only built-in kinds are named."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from domain_helpers import CLOCK
from scmi_helpers import BASE, header

GOOD = '''
from vhost_scmi.devices.clock import ClockDomain
from vhost_scmi.devices.kind import DeviceKind, Property


class Quartz(ClockDomain):
    blocking = False
    rates = (32768,)

    def __init__(self, name):
        self.name = name

    def get_rate(self):
        return 32768

    def set_rate(self, rate):
        pass

    def is_enabled(self):
        return True

    def set_enabled(self, enabled):
        pass


def _create(props):
    if props.get("name") == "explode":
        raise RuntimeError("the board\\nis on fire")
    return [Quartz(props.get("name", "quartz"))]


KIND = DeviceKind(id="quartz", summary="a test crystal", description="Always 32768 Hz.",
                  properties=(Property("name", "clock name"),), example="quartz",
                  create=_create)
WRONG_ID = DeviceKind(id="something-else", summary="s", description="d", properties=(),
                      example="x", create=_create)
SHADOW = DeviceKind(id="fake", summary="s", description="d", properties=(), example="x",
                    create=_create)
'''


def make_dist(site: Path, name: str, entry_points: dict[str, str],
              modules: dict[str, str]) -> None:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[vhost_scmi.device_kinds]\n{lines}")
    for module, text in modules.items():
        (site / f"{module}.py").write_text(text)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    make_dist(site, "good-plugin", {"quartz": "good_plugin:KIND"}, {"good_plugin": GOOD})
    make_dist(site, "broken-plugin", {"broken": "broken_plugin:KIND"},
              {"broken_plugin": "raise ImportError('needs libgpiod')\n"})
    make_dist(site, "malformed-plugin", {"number": "malformed_plugin:THING",
                                         "misnamed": "good_plugin:WRONG_ID",
                                         "fake": "good_plugin:SHADOW",
                                         "missing": "malformed_plugin:NOTHING"},
              {"malformed_plugin": "THING = 42\n"})
    return site


def env_with(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(site)
    return env


def script() -> str:
    found = shutil.which("vhost-device-scmi")
    assert found
    return found


def test_help_devices_lists_plugins_and_warns_once_per_bad_one(site: Path) -> None:
    done = subprocess.run([script(), "--help-devices"], env=env_with(site),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "- quartz: a test crystal (plugin)" in done.stdout
    for built_in in ("- fake:", "- fake-clock:", "- pci-reset:", "- powercap:"):
        assert built_in in done.stdout
    warnings = done.stderr.splitlines()
    assert len(warnings) == 5, done.stderr
    expected = {
        "'broken'": "cannot be loaded: ImportError: needs libgpiod",
        "'number'": "is malformed: it is a int, not a DeviceKind",
        "'misnamed'": "is malformed: its id 'something-else' differs",
        "'fake'": "is malformed: 'fake' is a built-in device kind",
        "'missing'": "cannot be loaded: AttributeError",
    }
    for name, text in expected.items():
        matching = [line for line in warnings if f"device kind plugin {name}" in line]
        assert len(matching) == 1 and text in matching[0], done.stderr


def test_plugin_kind_serves_a_guest_beside_built_ins(site: Path, start_daemon) -> None:
    daemon = start_daemon("-d", "quartz,name=xtal", "-d", "fake-clock,rates=100",
                          "-d", "fake", env=env_with(site))
    with daemon.session() as vm:
        protocols = vm.cmdq.transact(struct.pack("<II", header(BASE, 6), 0), 256)
        assert protocols[8:] == struct.pack("<I", 3) + bytes((0x12, 0x14, 0x15, 0))
        reply = vm.cmdq.transact(struct.pack("<II", header(CLOCK, 3), 0), 256)
        assert struct.unpack_from("<i", reply, 4)[0] == 0
        assert reply[12:17] == b"xtal\0"
        rate = vm.cmdq.transact(struct.pack("<II", header(CLOCK, 6), 0), 256)
        assert rate[8:] == struct.pack("<Q", 32768)
        other = vm.cmdq.transact(struct.pack("<II", header(CLOCK, 6), 1), 256)
        assert other[8:] == struct.pack("<Q", 100)
    assert daemon.alive()
    # Only the named plugin was loaded: the broken and malformed entry points of other
    # ids (each a warning when loaded) were never touched.
    assert "device kind plugin" not in daemon.log()


@pytest.mark.parametrize(("spec", "message"), [
    ("quartz,name=explode", "plugin device kind 'quartz' failed: RuntimeError: the board "
                            "is on fire"),
    ("nonesuch", "unknown device kind 'nonesuch' (known:"),
])
def test_bad_plugin_specs_are_one_error_line(site: Path, spec: str, message: str) -> None:
    done = subprocess.run([script(), "-s", str(site / "x.sock"), "-d", spec],
                          env=env_with(site), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "device kind plugin" not in line]
    assert len(errors) == 1, done.stderr
    if "known:" in message:
        assert "quartz" in errors[0] and "fake-clock" in errors[0]
    else:
        assert message in errors[0], done.stderr


def test_a_broken_plugin_named_by_a_spec_is_one_warning(site: Path) -> None:
    """Its id is then unknown: the error lists the kinds (loading every plugin), and the
    broken one is still named once."""
    done = subprocess.run([script(), "-s", str(site / "x.sock"), "-d", "broken"],
                          env=env_with(site), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    named = [line for line in lines if "device kind plugin 'broken'" in line]
    assert len(named) == 1 and "ImportError: needs libgpiod" in named[0], done.stderr
    errors = [line for line in lines if "device kind plugin" not in line]
    assert len(errors) == 1 and "unknown device kind 'broken' (known:" in errors[0]
    assert "quartz" in errors[0]


def test_plugins_are_looked_up_only_when_needed(site: Path) -> None:
    probe = ("import sys\n"
             "from vhost_scmi.devices.spec import create_resources\n"
             "create_resources(sys.argv[1:])\n"
             "print('importlib.metadata' in sys.modules)\n")
    builtin = subprocess.run([sys.executable, "-P", "-c", probe, "fake", "fake-reset"],
                             env=env_with(site), capture_output=True, text=True, timeout=60)
    assert builtin.stdout.strip() == "False", builtin.stderr
    plugin = subprocess.run([sys.executable, "-P", "-c", probe, "quartz"],
                            env=env_with(site), capture_output=True, text=True, timeout=60)
    assert plugin.stdout.strip() == "True", plugin.stderr
