# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The runtime-pm and pci-reset device kinds on the host VM's real PCI functions.

tests/hostvm/inside.py serves a driverless function's runtime PM (control=state) and the
reset of the virtio function behind the root port twice (control=on, and read-only),
then records what the kernel shows around each SCMI request (see conftest.py).
"""

from __future__ import annotations

import re

from vhost_scmi.scmi.power import STATE_OFF as POWER_OFF
from vhost_scmi.scmi.power import STATE_ON as POWER_ON
from vhost_scmi.scmi.status import Status

from .conftest import HostVmRun

#: The daemon's line for each reset it makes.
RESET_LINE = re.compile(r"host: resetting PCI function (\S+) \(")


def steps(hostvm: HostVmRun) -> dict[int, dict]:
    assert "runtime_pm_domain" in hostvm.results, hostvm.report()
    return {step["set"]: step for step in hostvm.results["runtime_pm_domain"]["steps"]}


def test_power_off_lets_the_host_function_runtime_suspend(hostvm: HostVmRun) -> None:
    off = steps(hostvm)[POWER_OFF]
    assert off["status"] == Status.SUCCESS, off
    assert off["control"] == "auto"
    # Nothing holds the driverless function active: the kernel suspends it.
    assert off["runtime_status"] == "suspended"
    assert off["get"] == POWER_OFF


def test_power_on_keeps_the_host_function_active(hostvm: HostVmRun) -> None:
    on = steps(hostvm)[POWER_ON]
    assert on["status"] == Status.SUCCESS, on
    assert on["control"] == "on"
    assert on["runtime_status"] == "active"
    assert on["get"] == POWER_ON


def daemon_resets(hostvm: HostVmRun) -> list[str]:
    return RESET_LINE.findall((hostvm.outdir / "daemon.log").read_text(errors="replace"))


def test_a_reset_request_resets_the_host_function(hostvm: HostVmRun) -> None:
    reset = hostvm.results.get("pci_reset")
    assert reset is not None, hostvm.report()
    assert reset["reset"]["status"] == Status.SUCCESS, reset
    # The function was live (its virtio driver set device_status); the reset cleared it.
    assert reset["after_denied"] != 0, reset
    assert reset["after_reset"] == 0, reset
    assert daemon_resets(hostvm) == [reset["device"]]


def test_a_read_only_reset_domain_is_denied_and_writes_nothing(hostvm: HostVmRun) -> None:
    reset = hostvm.results.get("pci_reset")
    assert reset is not None, hostvm.report()
    assert reset["denied"]["status"] == Status.DENIED, reset
    assert reset["after_denied"] == reset["before"] != 0, reset
    # The one reset the daemon logged is the permitted one's.
    assert len(daemon_resets(hostvm)) == 1
