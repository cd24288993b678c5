# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The `cpufreq`, `runtime-pm`, `fake-perf` and `fake-power` device kinds against
sysfs-shaped trees built in tmp_path, through the dispatcher and the real daemon."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from scmi_helpers import LINUX_RESPONSE, command, header, response, u32s

from vhost_scmi.devices.cpufreq import CpufreqDomain
from vhost_scmi.devices.fake_perf import FakePerformanceDomain
from vhost_scmi.devices.fake_power import FakePowerDomain
from vhost_scmi.devices.performance import DeviceError, Limits, PerfControl
from vhost_scmi.devices.runtime_pm import RuntimePmDomain
from vhost_scmi.devices.spec import DeviceSpecError, create_resources
from vhost_scmi.platform.arbitration import Arbiter
from vhost_scmi.platform.view import AgentView
from vhost_scmi.scmi.dispatcher import build_dispatcher
from vhost_scmi.scmi.status import Status

PERF, POWER = 0x13, 0x11
ON, OFF = 0, 1 << 30

POLICY = {
    "affected_cpus": "0 1",
    "cpuinfo_cur_freq": "1200000",
    "cpuinfo_max_freq": "1800000",
    "cpuinfo_min_freq": "600000",
    "cpuinfo_transition_latency": "150000",
    "related_cpus": "0 1",
    "scaling_available_frequencies": "600000 1200000 1800000 ",
    "scaling_available_governors": "userspace performance schedutil",
    "scaling_cur_freq": "1200000",
    "scaling_driver": "cpufreq-dt",
    "scaling_governor": "userspace",
    "scaling_max_freq": "1800000",
    "scaling_min_freq": "600000",
    "scaling_setspeed": "1200000",
}


def tree(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content + "\n")
    return root


def policy(tmp_path: Path, **changes: str | None) -> Path:
    files = {k: v for k, v in {**POLICY, **changes}.items() if v is not None}
    return tree(tmp_path / "cpufreq" / "policy0", files)


def device(tmp_path: Path, status: str = "active", control: str = "on") -> Path:
    return tree(tmp_path / "0000:01:00.0", {"power/control": control,
                                            "power/runtime_status": status,
                                            "vendor": "0x1af4"})


def ask(dispatcher, protocol: int, message: int, *params: int) -> bytes:
    return dispatcher.handle(command(protocol, message, *params), LINUX_RESPONSE)


def text(path: Path) -> str:
    return path.read_text().strip()


# --- cpufreq ---------------------------------------------------------------------------------

def test_cpufreq_levels_limits_and_level_from_the_policy(tmp_path: Path) -> None:
    directory = policy(tmp_path)
    [domain] = create_resources([f"cpufreq,policy={directory}"])
    assert isinstance(domain, CpufreqDomain)
    assert (domain.name, domain.levels, domain.control) == (
        "policy0", (600000, 1200000, 1800000), PerfControl.NONE)
    assert domain.transition_latency_us == 150
    assert domain.level() == 1200000
    assert domain.limits() == Limits(600000, 1800000)
    (directory / "scaling_cur_freq").write_text("600000\n")
    assert domain.level() == 600000


def test_cpufreq_without_a_frequency_list_uses_cpuinfo_min_and_max(tmp_path: Path) -> None:
    directory = policy(tmp_path, scaling_available_frequencies=None)
    [domain] = create_resources([f"cpufreq,policy={directory},name=big"])
    assert (domain.name, domain.levels) == ("big", (600000, 1800000))


def test_cpufreq_read_only_by_default_denies_sets_and_never_writes(tmp_path: Path) -> None:
    directory = policy(tmp_path)
    dispatcher = build_dispatcher(create_resources([f"cpufreq,policy={directory}"]))
    assert ask(dispatcher, PERF, 0x7, 0, 600000) == response(PERF, 0x7, Status.DENIED)
    assert ask(dispatcher, PERF, 0x5, 0, 1200000, 600000) == response(PERF, 0x5,
                                                                       Status.DENIED)
    assert text(directory / "scaling_setspeed") == "1200000"
    assert text(directory / "scaling_max_freq") == "1800000"
    assert ask(dispatcher, PERF, 0x8, 0) == response(PERF, 0x8, 0, u32s(1200000))
    assert ask(dispatcher, PERF, 0x6, 0) == response(PERF, 0x6, 0, u32s(1800000, 600000))


def test_cpufreq_control_level_writes_scaling_setspeed_and_logs(tmp_path: Path,
                                                                caplog) -> None:
    directory = policy(tmp_path)
    dispatcher = build_dispatcher(create_resources(
        [f"cpufreq,policy={directory},control=level"]))
    with caplog.at_level("INFO"):
        assert ask(dispatcher, PERF, 0x7, 0, 600000) == response(PERF, 0x7, 0)
    assert text(directory / "scaling_setspeed") == "600000"
    assert any(r.getMessage() == "host: level of policy0 set to 600000 (requests: {1: 600000})"
               for r in caplog.records)
    assert ask(dispatcher, PERF, 0x5, 0, 1200000, 600000) == response(PERF, 0x5,
                                                                       Status.DENIED)


def test_cpufreq_control_limits_writes_min_and_max_in_a_valid_order(tmp_path: Path) -> None:
    directory = policy(tmp_path)
    dispatcher = build_dispatcher(create_resources(
        [f"cpufreq,policy={directory},control=limits"]))
    assert ask(dispatcher, PERF, 0x5, 0, 1200000, 600000) == response(PERF, 0x5, 0)
    assert (text(directory / "scaling_min_freq"), text(directory / "scaling_max_freq")) == (
        "600000", "1200000")
    assert ask(dispatcher, PERF, 0x5, 0, 1800000, 1800000) == response(PERF, 0x5, 0)
    assert (text(directory / "scaling_min_freq"), text(directory / "scaling_max_freq")) == (
        "1800000", "1800000")
    assert ask(dispatcher, PERF, 0x7, 0, 1800000) == response(PERF, 0x7, Status.DENIED)


def test_cpufreq_file_that_vanished_is_a_hardware_error_and_others_carry_on(
        tmp_path: Path, caplog) -> None:
    directory = policy(tmp_path)
    dispatcher = build_dispatcher(create_resources(
        [f"cpufreq,policy={directory},control=level", "fake-perf,levels=1:2,control=level"]))
    (directory / "scaling_setspeed").unlink()
    with caplog.at_level("DEBUG"):
        assert ask(dispatcher, PERF, 0x7, 0, 600000) == response(PERF, 0x7,
                                                                  Status.HARDWARE_ERROR)
    assert [r for r in caplog.records if "scaling_setspeed" in r.getMessage()]
    shutil.rmtree(directory)
    assert ask(dispatcher, PERF, 0x8, 0) == response(PERF, 0x8, Status.HARDWARE_ERROR)
    assert ask(dispatcher, PERF, 0x7, 1, 2) == response(PERF, 0x7, 0)


def test_cpufreq_write_to_something_not_a_file_fails_cleanly(tmp_path: Path) -> None:
    directory = policy(tmp_path)
    [domain] = create_resources([f"cpufreq,policy={directory},control=level"])
    (directory / "scaling_setspeed").unlink()
    os.mkfifo(directory / "scaling_setspeed")  # no reader: ENXIO, never a hang
    with pytest.raises(DeviceError) as caught:
        domain.set_level(600000)
    assert caught.value.errno is not None


@pytest.mark.parametrize(("changes", "spec", "message"), [
    ({}, "cpufreq,policy={d}/nope", "not a directory"),
    ({"scaling_available_frequencies": None, "cpuinfo_max_freq": None}, "cpufreq,policy={d}",
     "no usable frequencies"),
    ({"scaling_available_frequencies": "fast"}, "cpufreq,policy={d}", "no usable"),
    ({"scaling_available_frequencies": ""}, "cpufreq,policy={d}", "no performance levels"),
    ({"scaling_setspeed": None}, "cpufreq,policy={d},control=level", "scaling_setspeed"),
    ({}, "cpufreq,policy={d},control=all", "control=all: expected none|level|limits"),
    ({}, "cpufreq,policy={d},name=", "name '' must be 1 to 63 bytes"),
])
def test_cpufreq_spec_errors(tmp_path: Path, changes, spec: str, message: str) -> None:
    directory = policy(tmp_path, **changes)
    with pytest.raises(DeviceSpecError, match=message):
        create_resources([spec.format(d=directory)])


# --- runtime-pm ------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "control", "on"), [
    ("active", "on", True), ("resuming", "on", True), ("unsupported", "on", True),
    ("unsupported", "auto", True),  # runtime PM off: never suspends
    ("suspended", "auto", False), ("suspending", "auto", False),
    ("active", "auto", False),  # may suspend: off for the guest
])
def test_runtime_pm_state(tmp_path: Path, status: str, control: str, on: bool) -> None:
    [domain] = create_resources([f"runtime-pm,device={device(tmp_path, status, control)}"])
    assert isinstance(domain, RuntimePmDomain)
    assert domain.name == "0000:01:00.0"
    assert domain.is_on() is on
    dispatcher = build_dispatcher([domain])
    assert ask(dispatcher, POWER, 0x5, 0) == response(POWER, 0x5, 0, u32s(ON if on else OFF))


def test_runtime_pm_read_only_by_default(tmp_path: Path) -> None:
    directory = device(tmp_path)
    dispatcher = build_dispatcher(create_resources([f"runtime-pm,device={directory}"]))
    assert ask(dispatcher, POWER, 0x4, 0, 0, OFF) == response(POWER, 0x4, Status.DENIED)
    assert text(directory / "power" / "control") == "on"


def test_runtime_pm_control_writes_power_control(tmp_path: Path) -> None:
    directory = device(tmp_path)
    dispatcher = build_dispatcher(create_resources(
        [f"runtime-pm,device={directory},control=state,name=nic"]))
    assert ask(dispatcher, POWER, 0x3, 0)[12:28] == b"nic".ljust(16, b"\0")
    assert ask(dispatcher, POWER, 0x4, 0, 0, OFF) == response(POWER, 0x4, 0)
    assert text(directory / "power" / "control") == "auto"
    # The agent reads back the state it set, even before the device suspends.
    assert ask(dispatcher, POWER, 0x5, 0) == response(POWER, 0x5, 0, u32s(OFF))
    assert ask(dispatcher, POWER, 0x4, 0, 0, ON) == response(POWER, 0x4, 0)
    assert text(directory / "power" / "control") == "on"
    assert ask(dispatcher, POWER, 0x5, 0) == response(POWER, 0x5, 0, u32s(ON))


def test_runtime_pm_odd_status_and_vanished_device(tmp_path: Path) -> None:
    directory = device(tmp_path)
    dispatcher = build_dispatcher(create_resources(
        [f"runtime-pm,device={directory},control=state", "fake-power"]))
    (directory / "power" / "runtime_status").write_text("error\n")
    assert ask(dispatcher, POWER, 0x5, 0) == response(POWER, 0x5, Status.HARDWARE_ERROR)
    shutil.rmtree(directory)
    assert ask(dispatcher, POWER, 0x4, 0, 0, OFF) == response(POWER, 0x4,
                                                               Status.HARDWARE_ERROR)
    assert ask(dispatcher, POWER, 0x5, 1) == response(POWER, 0x5, 0, u32s(ON))


@pytest.mark.parametrize(("files", "spec", "message"), [
    (None, "runtime-pm,device={d}", "not a directory"),
    ({"power/control": "on"}, "runtime-pm,device={d}", "no usable runtime PM"),
    ({"power/runtime_status": "active"}, "runtime-pm,device={d}", "no usable runtime PM"),
    ({"power/control": "on", "power/runtime_status": "what"}, "runtime-pm,device={d}",
     "runtime PM status 'what'"),
    ({"power/control": "maybe", "power/runtime_status": "active"}, "runtime-pm,device={d}",
     "'maybe'"),
    ({"power/control": "on", "power/runtime_status": "active"},
     "runtime-pm,device={d},control=on", "control=on: expected none|state"),
])
def test_runtime_pm_spec_errors(tmp_path: Path, files, spec: str, message: str) -> None:
    directory = tmp_path / "dev"
    if files is not None:
        tree(directory, files)
    with pytest.raises(DeviceSpecError, match=message):
        create_resources([spec.format(d=directory)])


# --- fakes -----------------------------------------------------------------------------------

def test_fake_kinds(caplog) -> None:
    perf, power = create_resources(["fake-perf,levels=1800000:600000:1200000,control=level",
                                    "fake-power,name=gpu,state=off,control=state"])
    assert isinstance(perf, FakePerformanceDomain) and isinstance(power, FakePowerDomain)
    assert (perf.name, perf.levels, perf.level()) == ("fake-perf", (600000, 1200000, 1800000),
                                                      600000)
    assert (power.name, power.is_on(), power.controllable) == ("gpu", False, True)
    with caplog.at_level("INFO"):
        perf.set_level(1200000)
        power.set_on(True)
    assert [r.getMessage() for r in caplog.records] == [
        "fake-perf: level 600000 kHz -> 1200000 kHz", "gpu: power off -> on"]


@pytest.mark.parametrize(("spec", "message"), [
    ("fake-perf", "missing required property levels"),
    ("fake-perf,levels=", "expected kHz values"),
    ("fake-perf,levels=1:x", "expected kHz values"),
    ("fake-perf,levels=0:5", "levels must be 1..4294967295 kHz"),
    ("fake-perf,levels=4294967296", "levels must be"),
    ("fake-power,state=half", "state=half: expected on|off"),
    ("fake-power,name=" + "x" * 64, "must be 1 to 63 bytes"),
])
def test_fake_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(DeviceSpecError, match=message):
        create_resources([spec])


# --- through the daemon ----------------------------------------------------------------------

def test_daemon_serves_a_cpufreq_level_set_and_logs_the_write(start_daemon,
                                                             tmp_path: Path) -> None:
    directory = policy(tmp_path)
    daemon = start_daemon("-d", f"cpufreq,policy={directory},control=level",
                          "-d", f"runtime-pm,device={device(tmp_path)}")
    with daemon.session() as vm:
        reply = vm.cmdq.transact(command(PERF, 0x7, 0, 1800000), LINUX_RESPONSE)
        assert reply == response(PERF, 0x7, 0)
        reply = vm.cmdq.transact(command(POWER, 0x5, 0), LINUX_RESPONSE)
        assert reply == response(POWER, 0x5, 0, u32s(ON))
        reply = vm.cmdq.transact(command(POWER, 0x4, 0, 0, OFF), LINUX_RESPONSE)
        assert reply == response(POWER, 0x4, Status.DENIED)
    assert text(directory / "scaling_setspeed") == "1800000"
    daemon.wait_log("host: level of policy0 set to 1800000")
    assert daemon.alive()


def test_bad_spec_is_one_line_and_exit_2(tmp_path: Path) -> None:
    script = shutil.which("vhost-device-scmi")
    assert script
    result = subprocess.run([script, "-s", str(tmp_path / "s.sock"), "-d",
                             f"cpufreq,policy={tmp_path}/none"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "not a directory" in result.stderr


def test_two_agents_on_one_cpufreq_policy_the_host_gets_the_higher_request(
        tmp_path: Path) -> None:
    directory = policy(tmp_path)
    resources = create_resources([f"cpufreq,policy={directory},control=level"])
    arbiter = Arbiter()
    one, two = (build_dispatcher(AgentView(resources=resources, agent_id=agent,
                                           agent_names=("platform", "vm1", "vm2"),
                                           arbiter=arbiter)) for agent in (1, 2))
    assert ask(one, PERF, 0xA, 0, 1) == response(PERF, 0xA, 0)  # vm1 subscribes
    assert ask(one, PERF, 0x7, 0, 1200000) == response(PERF, 0x7, 0)
    assert ask(two, PERF, 0x7, 0, 1800000) == response(PERF, 0x7, 0)
    assert text(directory / "scaling_setspeed") == "1800000"
    assert ask(one, PERF, 0x7, 0, 600000) == response(PERF, 0x7, 0)
    assert text(directory / "scaling_setspeed") == "1800000"
    # vm1 is told of vm2's change: PERF_LEVEL_CHANGED (agent 2, domain 0, level).
    assert one.take_events(0.0) == [struct.pack("<I", header(PERF, 0x1, message_type=3))
                                    + u32s(2, 0, 1800000)]
