# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The virtual platform with a real guest: host-requested shutdown and reboot through
SCMI System Power and vhost-device-scmi-ctl, agents that see different devices, and
raw SCMI messages for the agent and System Power messages."""

from __future__ import annotations

import json
import struct
import subprocess
import time
from pathlib import Path

from vhost_scmi.scmi.status import Status

from .conftest import CTL, daemon_executable
from .test_guest_raw import RawCase, guest_script, parse_reply

IDLE = "@@E2E-IDLE@@"
# The guest's job: say so, then idle in its init until the host powers it off.
IDLE_SCRIPT = f"""
echo "{IDLE}"
while true; do sleep 1; done
"""
#: Seconds from `vhost-device-scmi-ctl shutdown` to the guest's power-off the issue allows.
POWER_DOWN_WITHIN = 10.0


def ctl(control: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([daemon_executable(CTL), "--control-socket", str(control), *args],
                          capture_output=True, text=True, timeout=timeout)


def wait_subscribed(control: Path, agent: str, timeout: float = 120) -> None:
    """Wait until the guest of `agent` subscribed to System Power notifications."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = ctl(control, "status", "--json")
        if last.returncode == 0:
            for entry in json.loads(last.stdout):
                power = entry["protocols"].get("system_power", {})
                if entry["name"] == agent and power.get("subscribed"):
                    return
        time.sleep(0.2)
    raise AssertionError(f"agent {agent} never subscribed to System Power: {last}")


def test_ctl_shutdown_powers_an_idle_guest_off(e2e):
    control = e2e.socket_dir / "ctl"
    daemon = e2e.start_daemon("fake,name=power", options=["--control-socket", str(control)])
    vm = e2e.boot(IDLE_SCRIPT, daemon.socket_path)
    vm.wait_for(IDLE, 240)
    wait_subscribed(control, "guest")
    started = time.monotonic()
    result = ctl(control, "shutdown", "--timeout", "30")
    vm.wait_for("reboot: Power down", POWER_DOWN_WITHIN - (time.monotonic() - started))
    elapsed = time.monotonic() - started
    assert result.returncode == 0, f"{result}\n{e2e.daemons_report()}"
    assert "guest: went down" in result.stdout
    assert vm.proc.wait(30) == 0
    assert elapsed < POWER_DOWN_WITHIN
    print(f"shutdown: power-off {elapsed:.2f} s after vhost-device-scmi-ctl started")
    console = vm.console()
    assert "Serving shutdown/reboot request: 0" in console or "Power down" in console
    assert daemon.alive(), daemon.describe()


def test_ctl_reboot_makes_qemu_exit_with_no_reboot(e2e):
    control = e2e.socket_dir / "ctl"
    daemon = e2e.start_daemon("fake", options=["--control-socket", str(control)])
    vm = e2e.boot(IDLE_SCRIPT, daemon.socket_path)  # QEMU runs with -no-reboot
    vm.wait_for(IDLE, 240)
    wait_subscribed(control, "guest")
    started = time.monotonic()
    result = ctl(control, "reboot", "--timeout", "30")
    vm.wait_for("reboot: Restarting system", 30)
    assert vm.proc.wait(30) == 0  # -no-reboot: the guest's reset ends QEMU
    elapsed = time.monotonic() - started
    assert result.returncode == 0, f"{result}\n{e2e.daemons_report()}"
    print(f"reboot: QEMU exited {elapsed:.2f} s after vhost-device-scmi-ctl started")
    assert daemon.alive(), daemon.describe()


LIST_SENSORS = r"""
for d in /sys/bus/iio/devices/iio:device*; do
    [ -e "$d/name" ] && echo "sensor=$(cat $d/name)"
done
echo "done=1"
"""


def two_agents_config(socket_dir: Path, power_log: Path) -> str:
    return f"""
control-socket = "{socket_dir}/ctl"

[system-power]
command = ["/bin/sh", "-c", 'echo "$@" >> {power_log}', "sh"]

[[device]]
id = "a"
spec = "fake,name=alpha"

[[device]]
id = "b"
spec = "fake,name=beta"

[[agent]]
name = "everything"
socket = "{socket_dir}/all.sock"

[[agent]]
name = "only-beta"
socket = "{socket_dir}/beta.sock"
devices = ["b"]
system-power = ["shutdown", "cold-reset"]
"""


def sensors_of(result) -> list[str]:
    return sorted(line.removeprefix("sensor=") for line in result.output
                  if line.startswith("sensor="))


def test_two_agents_see_their_own_devices(e2e):
    config = two_agents_config(e2e.socket_dir, e2e.workdir / "power.log")
    daemon = e2e.start_config_daemon(config, e2e.socket_dir / "all.sock")
    everything = e2e.run_guest(LIST_SENSORS, e2e.socket_dir / "all.sock", name="all")
    only_beta = e2e.run_guest(LIST_SENSORS, e2e.socket_dir / "beta.sock", name="beta")
    assert everything.rc == 0 and only_beta.rc == 0
    assert sensors_of(everything) == ["alpha", "beta"], everything.report()
    assert sensors_of(only_beta) == ["beta"], only_beta.report()
    assert daemon.alive(), daemon.describe()


BASE, SYSTEM_POWER = 0x10, 0x12
DISCOVER_LIST_PROTOCOLS, DISCOVER_AGENT = 0x6, 0x7
PROTOCOL_VERSION, PROTOCOL_ATTRIBUTES, PROTOCOL_MESSAGE_ATTRIBUTES = 0x0, 0x1, 0x2
STATE_SET, STATE_GET_V1, STATE_NOTIFY = 0x3, 0x4, 0x5


def u32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


# Tokens above those of test_guest_raw and of the guest's own drivers.
PLATFORM_CASES = [
    RawCase("agent_platform", BASE, DISCOVER_AGENT, u32(0), 0x3C0),
    RawCase("agent_caller", BASE, DISCOVER_AGENT, u32(0xFFFFFFFF), 0x3C1),
    RawCase("agent_1", BASE, DISCOVER_AGENT, u32(1), 0x3C2),
    RawCase("agent_2", BASE, DISCOVER_AGENT, u32(2), 0x3C3),
    RawCase("agent_3", BASE, DISCOVER_AGENT, u32(3), 0x3C4),
    RawCase("agent_short", BASE, DISCOVER_AGENT, b"\0\0", 0x3C5),
    RawCase("protocols", BASE, DISCOVER_LIST_PROTOCOLS, u32(0), 0x3C6),
    RawCase("base_attributes", BASE, PROTOCOL_ATTRIBUTES, b"", 0x3C7),
    RawCase("sp_version", SYSTEM_POWER, PROTOCOL_VERSION, b"", 0x3C8),
    RawCase("sp_attributes", SYSTEM_POWER, PROTOCOL_ATTRIBUTES, b"", 0x3C9),
    RawCase("sp_set_attributes", SYSTEM_POWER, PROTOCOL_MESSAGE_ATTRIBUTES, u32(STATE_SET),
            0x3CA),
    RawCase("sp_notify_attributes", SYSTEM_POWER, PROTOCOL_MESSAGE_ATTRIBUTES,
            u32(STATE_NOTIFY), 0x3CB),
    RawCase("sp_get_attributes", SYSTEM_POWER, PROTOCOL_MESSAGE_ATTRIBUTES, u32(STATE_GET_V1),
            0x3CC),
    RawCase("sp_attributes_short", SYSTEM_POWER, PROTOCOL_MESSAGE_ATTRIBUTES, b"", 0x3CD),
    RawCase("sp_get", SYSTEM_POWER, STATE_GET_V1, b"", 0x3CE),
    RawCase("sp_set_short", SYSTEM_POWER, STATE_SET, u32(1), 0x3CF),
    RawCase("sp_set_reserved_flags", SYSTEM_POWER, STATE_SET, u32(3, 0), 0x3D0),
    RawCase("sp_set_power_up", SYSTEM_POWER, STATE_SET, u32(1, 3), 0x3D1),
    RawCase("sp_set_reserved_state", SYSTEM_POWER, STATE_SET, u32(1, 5), 0x3D2),
    RawCase("sp_set_vendor_state", SYSTEM_POWER, STATE_SET, u32(1, 0x80000000), 0x3D3),
    RawCase("sp_set_warm_reset", SYSTEM_POWER, STATE_SET, u32(1, 2), 0x3D4),
    RawCase("sp_set_shutdown", SYSTEM_POWER, STATE_SET, u32(1, 0), 0x3D5),
    RawCase("sp_set_forceful_cold_reset", SYSTEM_POWER, STATE_SET, u32(0, 1), 0x3D6),
    RawCase("sp_notify_short", SYSTEM_POWER, STATE_NOTIFY, b"", 0x3D7),
    RawCase("sp_notify_reserved", SYSTEM_POWER, STATE_NOTIFY, u32(0x10), 0x3D8),
    RawCase("sp_notify_on", SYSTEM_POWER, STATE_NOTIFY, u32(1), 0x3D9),
    RawCase("sp_version_again", SYSTEM_POWER, PROTOCOL_VERSION, b"", 0x3DA),
]


def raw_replies(e2e, socket_path: Path, name: str) -> dict:
    result = e2e.run_guest(guest_script(PLATFORM_CASES), socket_path, name=name)
    assert result.rc == 0, result.report()
    values = result.values()
    replies = {}
    for case in PLATFORM_CASES:
        assert values.get(case.name), f"no reply to {case.name}\n{result.report()}"
        reply = parse_reply(values[case.name])
        assert reply.header == case.header, f"{case.name}: {reply}"
        replies[case.name] = reply
    assert values.get("errors") == "", result.report()
    return replies


def name16(name: str) -> bytes:
    return name.encode().ljust(16, b"\0")


def test_raw_agents_protocols_and_system_power(e2e):
    power_log = e2e.workdir / "power.log"
    config = two_agents_config(e2e.socket_dir, power_log)
    daemon = e2e.start_config_daemon(config, e2e.socket_dir / "all.sock")
    replies = {"everything": raw_replies(e2e, e2e.socket_dir / "all.sock", "all"),
               "only-beta": raw_replies(e2e, e2e.socket_dir / "beta.sock", "beta")}
    for agent, own_id in (("everything", 1), ("only-beta", 2)):
        got = replies[agent]

        def ok(name: str, payload: bytes, got=got, agent=agent) -> None:
            assert (got[name].status, got[name].payload) == (Status.SUCCESS, payload), \
                f"{agent} {name}: {got[name]}"

        def status(name: str, expected: Status, got=got, agent=agent) -> None:
            assert got[name].status == expected, f"{agent} {name}: {got[name]}"
            assert got[name].payload == b"", f"{agent} {name}: {got[name]}"

        ok("agent_platform", u32(0) + name16("platform"))
        ok("agent_caller", u32(own_id) + name16(agent))
        ok("agent_1", u32(1) + name16("everything"))
        ok("agent_2", u32(2) + name16("only-beta"))
        status("agent_3", Status.NOT_FOUND)
        assert got["agent_short"].status in (Status.INVALID_PARAMETERS, Status.PROTOCOL_ERROR)
        # Two agents; System Power and Sensor (each sees at least one sensor).
        ok("base_attributes", u32(2 << 8 | 2))
        ok("protocols", u32(2) + bytes([SYSTEM_POWER, 0x15, 0, 0]))
        ok("sp_version", u32(0x20000))
        ok("sp_attributes", u32(0))
        ok("sp_notify_attributes", u32(0))
        ok("sp_set_attributes", u32(0))  # neither may warm-reset nor suspend
        status("sp_get_attributes", Status.NOT_FOUND)  # 0x4 is gone in version 2.0
        assert got["sp_attributes_short"].status in (Status.INVALID_PARAMETERS,
                                                     Status.PROTOCOL_ERROR)
        status("sp_get", Status.NOT_FOUND)  # a message of version 1 only: unknown (b004)
        assert got["sp_set_short"].status in (Status.INVALID_PARAMETERS, Status.PROTOCOL_ERROR)
        assert got["sp_notify_short"].status in (Status.INVALID_PARAMETERS,
                                                 Status.PROTOCOL_ERROR)
        for name in ("sp_set_reserved_flags", "sp_set_power_up", "sp_set_reserved_state",
                     "sp_notify_reserved"):
            status(name, Status.INVALID_PARAMETERS)
        status("sp_set_vendor_state", Status.NOT_SUPPORTED)
        status("sp_set_warm_reset", Status.DENIED)  # nobody may
        ok("sp_notify_on", b"")
        ok("sp_version_again", u32(0x20000))
    # everything may not request system states; only-beta may shut down and cold-reset.
    for name in ("sp_set_shutdown", "sp_set_forceful_cold_reset"):
        assert replies["everything"][name].status == Status.DENIED
        assert replies["only-beta"][name].status == Status.SUCCESS
    assert power_log.read_text().splitlines() == ["only-beta shutdown graceful",
                                                  "only-beta cold-reset forceful"]
    assert daemon.alive(), daemon.describe()
