# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The installed daemon on real kernel devices, inside the host VM (see conftest.py).

Every expectation is computed from what the kernel itself showed next to the reading:
(raw + offset) x scale in the IIO ABI's unit, the hwmon millidegrees. One boot serves
the whole module; tests/hostvm/inside.py says what it does in there.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from vhost_scmi.devices.sensor import Unit
from vhost_scmi.scmi.status import Status

from .conftest import HostVmRun

#: label -> SCMI unit and the exponent of the IIO ABI's unit in it (None: raw counts
#: without a unit, as the ABI gives _raw values no unit without a scale).
IIO_CASES: dict[str, tuple[Unit, int | None]] = {
    "dummy_voltage0": (Unit.VOLTS, -3),  # separate raw, offset and scale
    "dummy_diff12": (Unit.VOLTS, -3),  # differential, in_voltage-voltage_scale
    "dummy_diff34": (Unit.VOLTS, -3),
    "dummy_accel": (Unit.UNSPECIFIED, None),  # raw with calibscale only: no scale
    "dummy_steps": (Unit.COUNTS, 0),  # processed
    "dummy_walking": (Unit.PERCENTAGE, 0),  # modified, processed: percent confidence
    "dummy_running": (Unit.PERCENTAGE, 0),
    "dummy_out0": (Unit.UNSPECIFIED, None),  # an output channel without a scale
    "mma7660": (Unit.METERS_PER_SECOND_SQUARED, 0),  # 3 axes, type-shared scale
}


def kernel_value(files: dict[str, str], stem: str, unit_exponent: int | None) -> Decimal:
    """(raw + offset) x scale of one value, in the SCMI unit, from the kernel's texts."""
    value = next(Decimal(text) for name, text in files.items()
                 if name in (f"{stem}_raw", f"{stem}_input"))
    offset = next((Decimal(t) for n, t in files.items() if n.endswith("_offset")), Decimal(0))
    scale = next((Decimal(t) for n, t in files.items() if n.endswith("_scale")), None)
    if unit_exponent is None:
        assert scale is None
        return value + offset
    return (value + offset) * (scale if scale is not None else 1) * Decimal(10) ** unit_exponent


@pytest.fixture
def run(hostvm: HostVmRun) -> HostVmRun:
    """The VM's results; a failing test shows the VM's logs."""
    return hostvm


def check(run: HostVmRun, condition: bool, what: str) -> None:
    assert condition, f"{what}\n{run.report()}"


def test_the_vm_ran_everything_without_errors(run: HostVmRun) -> None:
    check(run, run.exit_status == "0" and not run.results["errors"],
          "inside.py failed:\n" + "\n".join(run.results.get("errors", [])))
    check(run, run.results.get("daemon_exit") == 0, "the daemon did not exit cleanly")


@pytest.mark.parametrize("label", IIO_CASES)
def test_iio_channel_matches_the_kernel(run: HostVmRun, label: str) -> None:
    unit, unit_exponent = IIO_CASES[label]
    case = run.results["iio"][label]
    sensor = run.results["sensors"][label]
    check(run, case["kernel"] == case["kernel_after"], f"{label}: the device changed")
    check(run, "values" in case, f"{label}: reading failed: {case}")
    files = case["kernel"]
    if sensor["axes"]:
        stems = [name.removesuffix("_raw") for name in files if name.endswith("_raw")]
        described = [(axis["unit"], axis["exponent"]) for axis in sensor["axes"]]
        assert [axis["name"] for axis in sensor["axes"]] == [
            f"accel_{stem[-1].upper()}" for stem in stems]
    else:
        stems = [next(name.rsplit("_", 1)[0] for name in files
                      if name.endswith(("_raw", "_input")))]
        described = [(sensor["unit"], sensor["exponent"])]
    assert len(case["values"]) == len(stems)
    for stem, value, (scmi_unit, exponent) in zip(stems, case["values"], described,
                                                  strict=True):
        assert scmi_unit == unit, f"{label} {stem}: unit {scmi_unit}"
        # Exact: the exponent is fine enough for the kernel's decimals.
        assert Decimal(value).scaleb(exponent) == kernel_value(files, stem, unit_exponent), (
            f"{label} {stem}: {value} x 10^{exponent} against the kernel's {files}")


def test_the_differential_channels_use_their_shared_scale(run: HostVmRun) -> None:
    # The finding: 33 raw counts were once reported as 33 mV.
    case = run.results["iio"]["dummy_diff12"]
    assert case["kernel"]["in_voltage1-voltage2_raw"] == "33"
    assert run.results["sensors"]["dummy_diff12"]["exponent"] == -12
    assert case["values"] == [33 * 1344]  # 33 x 0.000001344 mV


def test_mma7660_follows_its_registers(run: HostVmRun) -> None:
    moved = run.results["mma7660_moved"]
    assert moved["kernel"] == "-31"
    scale = Decimal(run.results["iio"]["mma7660"]["kernel"]["in_accel_scale"])
    exponent = run.results["sensors"]["mma7660"]["axes"][0]["exponent"]
    assert Decimal(moved["values"][0]).scaleb(exponent) == -31 * scale


def test_lm75_temperature_changed_under_the_daemon(run: HostVmRun) -> None:
    sensor = run.results["sensors"]["lm75"]
    assert (sensor["unit"], sensor["exponent"], sensor["axes"]) == (Unit.DEGREES_C, -3, [])
    steps = run.results["lm75"]
    assert [step["set"] for step in steps] == [25000, 31500, -12000]
    for step in steps:
        assert step["kernel"] == str(step["set"]), step
        assert step["values"] == [step["set"]], step


def test_unbound_device_gives_hardware_error_and_the_daemon_lives(run: HostVmRun) -> None:
    gone = run.results["unbound"]
    assert gone["hwmon_exists"] is False
    assert gone.get("status") == Status.HARDWARE_ERROR, gone
    assert gone["again"].get("status") == Status.HARDWARE_ERROR, gone
    # The other sensors and the base protocol still answer; the daemon still runs.
    assert "values" in gone["other_sensor"]
    assert gone["vendor"]
    assert gone["daemon_alive"] is True
    assert run.results["daemon_alive_at_end"] is True


def test_the_rig_offers_pci_runtime_pm_pci_reset_and_gpio_sim(run: HostVmRun) -> None:
    # What the runtime-pm, pci-reset and GPIO device kinds need (the first two are
    # driven in test_pci_power_and_reset.py).
    pci = run.results["pci"]
    assert all(device["power_control"] in ("on", "auto") for device in pci.values())
    resettable = [name for name, device in pci.items() if device["reset"]]
    assert resettable, "no PCI device with a reset attribute (behind the root port)"
    assert run.results["runtime_pm"]["status"] == "suspended", run.results["runtime_pm"]
    assert run.results["gpio"]["dev"] is True
