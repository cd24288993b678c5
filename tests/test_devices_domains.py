# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Device kinds of clocks, resets, voltage and powercap domains, on sysfs-shaped trees
in a temporary directory and through the dispatcher."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from domain_helpers import POWERCAP, RESET, VOLTAGE, call, u32s

from vhost_scmi.devices.clock import ClockDomain
from vhost_scmi.devices.powercap import PowercapDomain
from vhost_scmi.devices.reset import ResetDomain
from vhost_scmi.devices.resource import DeviceError, DeviceSpecError
from vhost_scmi.devices.spec import create_resources
from vhost_scmi.devices.voltage import VoltageDomain
from vhost_scmi.scmi.dispatcher import build_dispatcher
from vhost_scmi.scmi.status import Status as S


def write(directory: Path, **attributes: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in attributes.items():
        (directory / name).write_text(value + "\n")
    return directory


def test_fake_kinds() -> None:
    clock, ranged, reset, vdd, cap = create_resources([
        "fake-clock,name=uart,rates=48000000:24000000",
        "fake-clock,range=1000:5000:1000,shared=on",
        "fake-reset",
        "fake-voltage,levels=3300000:1800000,name=vdd-io",
        "fake-powercap,name=soc",
    ])
    assert isinstance(clock, ClockDomain) and clock.rates == (24_000_000, 48_000_000)
    assert clock.get_rate() == 24_000_000 and not clock.is_enabled()
    assert isinstance(ranged, ClockDomain) and ranged.name == "clock" and ranged.shared_rate
    assert isinstance(reset, ResetDomain) and reset.name == "reset"
    assert isinstance(vdd, VoltageDomain) and vdd.levels == (1_800_000, 3_300_000)
    assert isinstance(cap, PowercapDomain) and cap.get_cap() == 50_000_000


@pytest.mark.parametrize(("spec", "message"), [
    ("fake-clock", "exactly one of rates"),
    ("fake-clock,rates=1:2,range=1:2:1", "exactly one of rates"),
    ("fake-clock,rates=1:x", "not integers"),
    ("fake-clock,rates=" + ":".join(map(str, range(1, 18))), "1 to 16 rates"),
    ("fake-clock,rates=5:5", "listed twice"),
    ("fake-clock,rates=0", "rates are 1 Hz"),
    ("fake-clock,range=1:10", "MIN:MAX:STEP"),
    ("fake-clock,range=10:1:1", "0 < MIN < MAX"),
    ("fake-clock,range=1:10:2", "multiple of STEP"),
    ("fake-clock,rates=1,shared=yes", "on or off"),
    ("fake-clock,rates=1,name=", "1 to 63 bytes"),
    ("fake-clock,rates=1,name=" + "x" * 64, "1 to 63 bytes"),
    ("fake-voltage", "missing required property levels"),
    ("fake-voltage,levels=1:1", "listed twice"),
    ("fake-voltage,levels=4294967295", "signed 32-bit"),
    ("pci-reset", "missing required property device"),
    ("regulator,path=/nonexistent", "is not a directory"),
    ("powercap,zone=/nonexistent", "is not a directory"),
])
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(DeviceSpecError, match=message) as caught:
        create_resources([spec])
    assert str(caught.value).startswith(f"device spec '{spec}'")


def test_pci_reset(tmp_path: Path) -> None:
    function = write(tmp_path / "devices" / "0000:03:00.1", reset="", vendor="0x8086")
    denied, allowed = create_resources([f"pci-reset,device={function}",
                                        f"pci-reset,device={function},control=on,name=nic"])
    assert denied.name == "0000:03:00.1" and denied.read_only
    assert allowed.name == "nic" and not allowed.read_only and allowed.blocking
    d = build_dispatcher([denied, allowed])
    assert call(d, RESET, 0x4, 0, 1, 0) == (S.DENIED, b"")
    assert (function / "reset").read_text() == "\n"
    assert call(d, RESET, 0x4, 1, 1, 0) == (S.SUCCESS, b"")
    assert (function / "reset").read_text() == "1"
    assert call(d, RESET, 0x4, 1, 2, 0) == (S.NOT_SUPPORTED, b"")  # no explicit assert
    (function / "reset").unlink()
    (function / "reset").mkdir()  # the attribute is gone: the host write fails
    assert call(d, RESET, 0x4, 1, 1, 0) == (S.HARDWARE_ERROR, b"")
    with pytest.raises(DeviceSpecError, match="no reset attribute"):
        create_resources([f"pci-reset,device={write(tmp_path / 'noreset')}"])


def test_regulator(tmp_path: Path) -> None:
    ranged = write(tmp_path / "regulator.3", name="vdd-cpu-big-cluster-supply",
                   microvolts="900000", min_microvolts="600000", max_microvolts="1100000",
                   state="enabled")
    fixed = write(tmp_path / "regulator.4", name="usb", microvolts="5000000",
                  state="disabled")
    one, two = create_resources([f"regulator,path={ranged}",
                                 f"regulator,path={fixed},name=vbus"])
    assert one.name == "vdd-cpu-big-cluster-supply" and one.read_only
    assert two.name == "vbus" and two.levels == (5_000_000,)
    d = build_dispatcher([one, two])
    assert call(d, VOLTAGE, 0x4, 0, 0) == (S.SUCCESS, u32s(3 | 1 << 12) + struct.pack(
        "<3i", 600_000, 1_100_000, 1))
    assert call(d, VOLTAGE, 0x4, 1, 0) == (S.SUCCESS, u32s(1) + struct.pack("<i", 5_000_000))
    assert call(d, VOLTAGE, 0x8, 0) == (S.SUCCESS, struct.pack("<i", 900_000))
    (ranged / "microvolts").write_text("950000\n")  # the host changed it: read live
    assert call(d, VOLTAGE, 0x8, 0) == (S.SUCCESS, struct.pack("<i", 950_000))
    assert call(d, VOLTAGE, 0x6, 0) == (S.SUCCESS, u32s(7))
    assert call(d, VOLTAGE, 0x6, 1) == (S.SUCCESS, u32s(0))
    assert call(d, VOLTAGE, 0x7, 0, 0, 900_000) == (S.DENIED, b"")
    assert call(d, VOLTAGE, 0x5, 1, 7) == (S.DENIED, b"")
    (ranged / "microvolts").write_text("garbage\n")
    assert call(d, VOLTAGE, 0x8, 0) == (S.HARDWARE_ERROR, b"")
    with pytest.raises(DeviceSpecError, match="no microvolts attribute"):
        create_resources([f"regulator,path={write(tmp_path / 'regulator.5', name='x')}"])


def zone(tmp_path: Path, **extra: str) -> Path:
    return write(tmp_path / "intel-rapl:0", name="package-0",
                 constraint_0_power_limit_uw="15000000",
                 constraint_0_time_window_us="27983872", enabled="1",
                 energy_uj="1000000", max_energy_range_uj="262143328850", **extra)


def test_powercap_zone_read_only(tmp_path: Path) -> None:
    path = zone(tmp_path)
    (domain,) = create_resources([f"powercap,zone={path}"])
    assert domain.name == "package-0" and domain.read_only
    assert not domain.cap_limits.configurable and domain.cap_limits.min == 15_000_000
    d = build_dispatcher([domain])
    assert call(d, POWERCAP, 0x4, 0) == (S.SUCCESS, u32s(15_000_000))
    assert call(d, POWERCAP, 0x6, 0) == (S.SUCCESS, u32s(27_983_872))
    assert call(d, POWERCAP, 0x5, 0, 0, 15_000_000) == (S.DENIED, b"")
    assert call(d, POWERCAP, 0x7, 0, 0, 27_983_872) == (S.DENIED, b"")
    assert (path / "constraint_0_power_limit_uw").read_text() == "15000000\n"
    (path / "energy_uj").write_text("2000000\n")
    status, payload = call(d, POWERCAP, 0x9, 0)
    power, pai = struct.unpack("<II", payload)
    assert status == S.SUCCESS and power > 0 and pai == 27_983_872
    (path / "energy_uj").write_text("5\n")  # wrapped
    status, payload = call(d, POWERCAP, 0x9, 0)
    assert status == S.SUCCESS and struct.unpack("<II", payload)[0] > 0
    (path / "enabled").write_text("0\n")
    assert call(d, POWERCAP, 0x4, 0) == (S.SUCCESS, u32s(0))


def test_powercap_zone_control(tmp_path: Path) -> None:
    path = zone(tmp_path, constraint_0_max_power_uw="25000000")
    (domain,) = create_resources([f"powercap,zone={path},control=on,name=pkg"])
    assert domain.name == "pkg" and not domain.read_only
    assert (domain.cap_limits.min, domain.cap_limits.max) == (1, 25_000_000)
    d = build_dispatcher([domain])
    assert call(d, POWERCAP, 0x5, 0, 0, 10_000_000) == (S.SUCCESS, b"")
    assert (path / "constraint_0_power_limit_uw").read_text() == "10000000"
    assert call(d, POWERCAP, 0x5, 0, 0, 30_000_000) == (S.OUT_OF_RANGE, b"")
    assert call(d, POWERCAP, 0x5, 0, 0, 0) == (S.SUCCESS, b"")
    assert (path / "enabled").read_text() == "0"
    assert call(d, POWERCAP, 0x7, 0, 0, 1000) == (S.SUCCESS, b"")
    assert (path / "constraint_0_time_window_us").read_text() == "1000"
    # A host write that fails comes back as HARDWARE_ERROR, and nothing is recorded.
    (path / "constraint_0_time_window_us").unlink()
    (path / "constraint_0_time_window_us").mkdir()
    assert call(d, POWERCAP, 0x7, 0, 0, 2000) == (S.HARDWARE_ERROR, b"")


def test_powercap_zone_without_meter(tmp_path: Path) -> None:
    path = zone(tmp_path)
    (path / "energy_uj").unlink()
    (domain,) = create_resources([f"powercap,zone={path}"])
    assert not domain.monitoring
    d = build_dispatcher([domain])
    assert call(d, POWERCAP, 0x9, 0) == (S.NOT_SUPPORTED, b"")
    with pytest.raises(DeviceSpecError, match="no constraint_0_time_window_us"):
        (path / "constraint_0_time_window_us").unlink()
        create_resources([f"powercap,zone={path}"])


def test_device_error_carries_errno(tmp_path: Path) -> None:
    from vhost_scmi.devices.sysfs import read_int, write_attribute
    with pytest.raises(DeviceError) as caught:
        read_int(tmp_path / "missing")
    assert caught.value.errno == 2
    with pytest.raises(DeviceError) as caught:
        write_attribute(tmp_path / "missing-dir" / "x", "1")
    assert caught.value.errno == 2
