# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`cpufreq`: a performance domain over a host cpufreq policy
(/sys/devices/system/cpu/cpufreq/policyN).

Levels are the policy's `scaling_available_frequencies` (kHz), or `cpuinfo_min_freq`
and `cpuinfo_max_freq` when the driver lists none; the current level is
`scaling_cur_freq`, the limits `scaling_min_freq`..`scaling_max_freq`.
`control=level` writes a level set to `scaling_setspeed` (the host policy must use
the userspace governor), `control=limits` writes `scaling_min_freq` and
`scaling_max_freq`; `control=none` (the default) never writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from vhost_scmi.devices.kind import DeviceKind, Property
from vhost_scmi.devices.performance import (
    DeviceError,
    Limits,
    PerfControl,
    PerformanceDomain,
    check_levels,
    parse_perf_control,
)
from vhost_scmi.devices.resource import DeviceSpecError, Resource, check_resource_name
from vhost_scmi.devices.sysfs import Attribute, read_attribute, read_int, write_attribute

#: Longest transition latency SCMI can describe (a u16 of microseconds).
MAX_LATENCY_US = 0xFFFF


class CpufreqDomain(PerformanceDomain):
    """One host cpufreq policy."""

    def __init__(self, name: str, policy: Path, levels: tuple[int, ...],
                 control: PerfControl, transition_latency_us: int) -> None:
        self.name = name
        self.policy = policy
        self.levels = levels
        self.control = control
        self.transition_latency_us = transition_latency_us
        # Read on every request: kept open (a read is one pread). Writes are rarer
        # and open the file each time.
        self._cur = Attribute(policy / "scaling_cur_freq")
        self._min = Attribute(policy / "scaling_min_freq")
        self._max = Attribute(policy / "scaling_max_freq")
        self._setspeed = str(policy / "scaling_setspeed")

    def level(self) -> int:
        return self._cur.integer()

    def limits(self) -> Limits:
        return Limits(self._min.integer(), self._max.integer())

    def set_level(self, khz: int) -> None:
        write_attribute(self._setspeed, str(khz))

    def set_limits(self, limits: Limits) -> None:
        # The kernel refuses a minimum above the maximum: move the end that keeps
        # the range valid first.
        low, high = str(self._min.path), str(self._max.path)
        if limits.low > self._max.integer():
            write_attribute(high, str(limits.high))
            write_attribute(low, str(limits.low))
        else:
            write_attribute(low, str(limits.low))
            write_attribute(high, str(limits.high))

    def close(self) -> None:
        for attribute in (self._cur, self._min, self._max):
            attribute.close()


def _levels(policy: Path) -> tuple[int, ...]:
    where = str(policy)
    try:
        listed = (policy / "scaling_available_frequencies")
        if listed.exists():
            text = read_attribute(listed)
            values = [int(part) for part in text.split()]
        else:
            values = [read_int(policy / "cpuinfo_min_freq"),
                      read_int(policy / "cpuinfo_max_freq")]
    except (DeviceError, ValueError) as err:
        raise DeviceSpecError(f"cpufreq policy '{where}' has no usable frequencies: "
                              f"{err}") from err
    return check_levels(values, f"cpufreq policy '{where}'")


def create_cpufreq_domain(policy_dir: str, control: PerfControl,
                          name: str | None = None) -> CpufreqDomain:
    """Return the domain of cpufreq policy `policy_dir`.

    Raises DeviceSpecError when the directory, its frequencies or the files that
    `control` writes are missing or unreadable.
    """
    policy = Path(policy_dir)
    if not policy.is_dir():
        raise DeviceSpecError(f"cpufreq policy '{policy_dir}' is not a directory")
    levels = _levels(policy)
    if control is PerfControl.LEVEL:
        try:
            read_attribute(policy / "scaling_setspeed")
        except DeviceError as err:
            raise DeviceSpecError(f"cpufreq policy '{policy_dir}': {err}") from err
    try:
        latency_ns = read_int(policy / "cpuinfo_transition_latency")
    except DeviceError:
        latency_ns = 0
    latency_us = min(max(latency_ns, 0) // 1000, MAX_LATENCY_US)
    name = check_resource_name(policy.name if name is None else name)
    domain = CpufreqDomain(name, policy, levels, control, latency_us)
    try:
        domain.level()
        domain.limits()
    except DeviceError as err:
        domain.close()
        raise DeviceSpecError(f"cpufreq policy '{policy_dir}': {err}") from err
    return domain


def _create(props: Mapping[str, str]) -> list[Resource]:
    return [create_cpufreq_domain(props["policy"], parse_perf_control(props.get("control")),
                                  props.get("name"))]


KIND = DeviceKind(
    id="cpufreq",
    summary="performance domain over a host cpufreq policy",
    description="A host cpufreq policy as an SCMI performance domain: levels are its\n"
                "frequencies in kHz, as the guest's scmi-cpufreq shows them. Read-only\n"
                "unless control= is given: level writes scaling_setspeed (the host\n"
                "policy must use the userspace governor), limits writes\n"
                "scaling_min_freq and scaling_max_freq.",
    properties=(
        Property("policy", "the policy directory (e.g. /sys/devices/system/cpu/cpufreq/"
                 "policy0)", required=True),
        Property("control", "what agents may set: none (default, read-only), level or "
                 "limits"),
        Property("name", "domain name, at most 63 bytes (default: the directory's name)"),
    ),
    example="cpufreq,policy=/sys/devices/system/cpu/cpufreq/policy0,control=level",
    create=_create,
)
