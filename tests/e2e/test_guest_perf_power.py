# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Performance (0x13) and Power domain (0x11) protocols seen by a real guest: its
scmi-cpufreq over a host cpufreq policy, its genpd over host devices' runtime PM
(sysfs-shaped trees the tests build), and raw-mode messages from inside the guest."""

from __future__ import annotations

import struct
from pathlib import Path

from vhost_scmi.scmi.status import Status

from .guest import PERF_POWER_NODES, dtb_with
from .test_guest_raw import RawCase, guest_script, parse_reply

FREQUENCIES = ["600000", "1200000", "1800000"]


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content + "\n")
    return root


def host_policy(root: Path) -> Path:
    return write_tree(root, {
        "affected_cpus": "0",
        "cpuinfo_min_freq": FREQUENCIES[0],
        "cpuinfo_max_freq": FREQUENCIES[-1],
        "cpuinfo_transition_latency": "100000",
        "scaling_available_frequencies": " ".join(FREQUENCIES) + " ",
        "scaling_cur_freq": FREQUENCIES[1],
        "scaling_governor": "userspace",
        "scaling_min_freq": FREQUENCIES[0],
        "scaling_max_freq": FREQUENCIES[-1],
        "scaling_setspeed": FREQUENCIES[1],
    })


def host_device(root: Path, status: str, control: str) -> Path:
    return write_tree(root, {"power/runtime_status": status, "power/control": control})


def read(path: Path) -> str:
    return path.read_text().strip()


GUEST_SCRIPT = r"""
p=/sys/devices/system/cpu/cpufreq/policy0
echo "driver=$(cat $p/scaling_driver)"
echo "frequencies=$(cat $p/scaling_available_frequencies)"
echo "min=$(cat $p/cpuinfo_min_freq)"
echo "max=$(cat $p/cpuinfo_max_freq)"
echo userspace > $p/scaling_governor
echo "governor=$(cat $p/scaling_governor)"
lowest=$(cat $p/scaling_available_frequencies | tr ' ' '\n' | grep . | sort -n | head -1)
echo $lowest > $p/scaling_setspeed
echo "setspeed=$(cat $p/scaling_setspeed)"
sed 's/^/genpd: /' /sys/kernel/debug/pm_genpd/pm_genpd_summary
"""


def test_guest_cpufreq_and_genpd_drive_the_host(e2e, tmp_path):
    policy = host_policy(tmp_path / "cpufreq" / "policy0")
    sleeping = host_device(tmp_path / "dev-sleeping", "suspended", "auto")
    locked = host_device(tmp_path / "dev-locked", "active", "on")
    unused = host_device(tmp_path / "dev-unused", "active", "on")
    daemon = e2e.start_daemon(
        f"cpufreq,policy={policy},control=level,name=big",
        f"runtime-pm,device={sleeping},control=state,name=pd-sleeping",
        f"runtime-pm,device={locked},name=pd-locked",
        f"runtime-pm,device={unused},control=state,name=pd-unused",
    )
    result = e2e.run_guest(GUEST_SCRIPT, daemon.socket_path,
                           dtb=dtb_with(e2e.image, PERF_POWER_NODES))

    assert result.rc == 0, result.report()
    values = result.values()
    assert values.get("driver") == "scmi", result.report()
    # The guest's policy lists exactly the host policy's frequencies.
    assert values.get("frequencies", "").split() == FREQUENCIES, result.report()
    assert (values.get("min"), values.get("max")) == (FREQUENCIES[0], FREQUENCIES[-1])
    assert values.get("governor") == "userspace", result.report()
    assert values.get("setspeed") == FREQUENCIES[0], result.report()
    # ... and the lowest frequency the guest set reached the host policy.
    assert read(policy / "scaling_setspeed") == FREQUENCIES[0], daemon.describe()
    assert "level of big set to 600000" in daemon.log(), daemon.describe()

    # genpd lists the domains by name with the host's state; the unused domain it
    # powered off at boot reached the host; the read-only one was refused and stays on.
    genpd = {line.split()[1]: line.split()[2] for line in result.output
             if line.startswith("genpd: pd-")}
    assert genpd.get("pd-sleeping", "").startswith("off"), result.report()
    assert genpd.get("pd-locked") == "on", result.report()
    assert genpd.get("pd-unused", "").startswith("off"), result.report()
    assert read(unused / "power" / "control") == "auto", daemon.describe()
    assert read(locked / "power" / "control") == "on", daemon.describe()
    assert read(sleeping / "power" / "control") == "auto", daemon.describe()
    assert daemon.alive(), daemon.describe()


# --- raw mode: every message from inside the guest --------------------------------------------

PERF, POWER = 0x13, 0x11
ON, OFF = 0, 1 << 30
LONG_NAME = "power-domain-of-the-passthrough-device"
_tokens = iter(range(0x3C0, 0x3FF))


def case(name: str, protocol: int, message: int, *params: int, raw: bytes = b"") -> RawCase:
    payload = struct.pack(f"<{len(params)}I", *params) + raw
    return RawCase(name, protocol, message, payload, next(_tokens))


# (case, expected status, expected payload or None when only the status is checked)
RAW = [
    (case("perf_version", PERF, 0x0), Status.SUCCESS, struct.pack("<I", 0x40000)),
    (case("perf_attributes", PERF, 0x1), Status.SUCCESS, struct.pack("<HH3I", 1, 0, 0, 0, 0)),
    (case("perf_msg_level_set", PERF, 0x2, 0x7), Status.SUCCESS, struct.pack("<I", 0)),
    (case("perf_msg_unknown", PERF, 0x2, 0x20), Status.NOT_FOUND, b""),
    (case("perf_domain", PERF, 0x3, 0), Status.SUCCESS,
     struct.pack("<4I", 1 << 30 | 1 << 29 | 1 << 28, 0, 1800000, 1800000)
     + b"big".ljust(16, b"\0")),
    (case("perf_domain_unknown", PERF, 0x3, 7), Status.NOT_FOUND, b""),
    (case("perf_levels", PERF, 0x4, 0, 0), Status.SUCCESS,
     struct.pack("<HH", 3, 0) + b"".join(struct.pack("<IIHHII", int(f), 0, 100, 0, int(f), i)
                                         for i, f in enumerate(FREQUENCIES))),
    (case("perf_levels_past_end", PERF, 0x4, 0, 3), Status.INVALID_PARAMETERS, b""),
    (case("perf_limits_set_denied", PERF, 0x5, 0, 1800000, 600000), Status.DENIED, b""),
    (case("perf_limits_get", PERF, 0x6, 0), Status.SUCCESS, struct.pack("<II", 1800000, 600000)),
    (case("perf_level_out_of_range", PERF, 0x7, 0, 1800001), Status.OUT_OF_RANGE, b""),
    (case("perf_level_set", PERF, 0x7, 0, 1200000), Status.SUCCESS, b""),
    (case("perf_level_set_short", PERF, 0x7, 0), Status.INVALID_PARAMETERS, b""),
    (case("perf_level_get", PERF, 0x8, 0), Status.SUCCESS, struct.pack("<I", 1200000)),
    (case("perf_notify_limits", PERF, 0x9, 0, 1), Status.SUCCESS, b""),
    (case("perf_notify_level_reserved", PERF, 0xA, 0, 2), Status.INVALID_PARAMETERS, b""),
    (case("perf_fast_channel", PERF, 0xB, 0, 0x7), Status.NOT_SUPPORTED, b""),
    (case("perf_name_short", PERF, 0xC, 0), Status.NOT_SUPPORTED, b""),
    (case("perf_unknown_message", PERF, 0xD, 0), Status.NOT_FOUND, b""),
    (case("power_version", POWER, 0x0), Status.SUCCESS, struct.pack("<I", 0x30000)),
    (case("power_attributes", POWER, 0x1), Status.SUCCESS, struct.pack("<HH3I", 2, 0, 0, 0, 0)),
    (case("power_msg_dropped", POWER, 0x2, 0x7), Status.NOT_FOUND, b""),
    (case("power_domain", POWER, 0x3, 0), Status.SUCCESS,
     struct.pack("<I", 1 << 31 | 1 << 29 | 1 << 27) + LONG_NAME.encode()[:15] + b"\0"),
    (case("power_domain_read_only", POWER, 0x3, 1), Status.SUCCESS,
     struct.pack("<I", 1 << 31) + b"pd-ro".ljust(16, b"\0")),
    (case("power_domain_unknown", POWER, 0x3, 5), Status.NOT_FOUND, b""),
    (case("power_on", POWER, 0x4, 0, 0, ON), Status.SUCCESS, b""),
    (case("power_get", POWER, 0x5, 0), Status.SUCCESS, struct.pack("<I", ON)),
    (case("power_async", POWER, 0x4, 1, 0, OFF), Status.INVALID_PARAMETERS, b""),
    (case("power_bad_state", POWER, 0x4, 0, 0, 5), Status.INVALID_PARAMETERS, b""),
    (case("power_denied", POWER, 0x4, 0, 1, OFF), Status.DENIED, b""),
    (case("power_set_short", POWER, 0x4, 0, 0), Status.INVALID_PARAMETERS, b""),
    (case("power_off", POWER, 0x4, 0, 0, OFF), Status.SUCCESS, b""),
    (case("power_get_off", POWER, 0x5, 0), Status.SUCCESS, struct.pack("<I", OFF)),
    (case("power_notify", POWER, 0x6, 0, 1), Status.SUCCESS, b""),
    (case("power_notify_reserved", POWER, 0x6, 0, 3), Status.INVALID_PARAMETERS, b""),
    (case("power_name", POWER, 0x8, 0), Status.SUCCESS,
     struct.pack("<I", 0) + LONG_NAME.encode().ljust(64, b"\0")),
    (case("power_name_short", POWER, 0x8, 1), Status.NOT_SUPPORTED, b""),
    (case("power_unknown_message", POWER, 0x7, 0, 1), Status.NOT_FOUND, b""),
]


def test_raw_mode_every_performance_and_power_message(e2e, tmp_path):
    policy = host_policy(tmp_path / "cpufreq" / "policy0")
    daemon = e2e.start_daemon(
        f"cpufreq,policy={policy},control=level,name=big",
        f"fake-power,name={LONG_NAME},control=state",
        "fake-power,name=pd-ro",
    )
    cases = [raw_case for raw_case, _, _ in RAW]
    # The userspace governor: the guest's own cpufreq then leaves the level alone.
    script = ("echo userspace > /sys/devices/system/cpu/cpufreq/policy0/scaling_governor\n"
              + guest_script(cases))
    result = e2e.run_guest(script, daemon.socket_path,
                           dtb=dtb_with(e2e.image, PERF_POWER_NODES))

    assert result.rc == 0, result.report()
    values = result.values()
    for raw_case, status, payload in RAW:
        assert values.get(raw_case.name), f"no reply to {raw_case.name}\n{result.report()}"
        reply = parse_reply(values[raw_case.name])
        assert reply.header == raw_case.header, f"{raw_case.name}: {reply}"
        assert (reply.status, reply.payload) == (status, payload), \
            f"{raw_case.name}: {reply}\n{result.report()}"
    assert values.get("errors") == "", result.report()
    # The level set by hand reached the host like the guest's own.
    assert read(policy / "scaling_setspeed") == "1200000", daemon.describe()
    assert daemon.alive(), daemon.describe()
