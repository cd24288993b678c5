# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The example plugin's GPIO kinds on gpio-sim lines, inside the host VM.

tests/hostvm/inside.py serves four lines of the gpio-sim chip: an active-low reset line
(control=on), a read-only reset line, an enable line as a power domain (control=state)
and a read-only input as a power domain. It records gpio-sim's `sim_gpioN/value` (the
line's physical level, which the daemon drives or the simulated outside world pulls)
around each SCMI request, and the kernel's debugfs view of who holds the lines.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from vhost_scmi.scmi.power import STATE_OFF, STATE_ON
from vhost_scmi.scmi.status import Status

from .conftest import HostVmRun

#: The plugin's line for each level it drives: chip, offset, domain, what, level.
DRIVE_LINE = re.compile(r"host: (\S+) line (\d+) \(([^)]+)\): (.+), line (high|low)$",
                        re.MULTILINE)


@pytest.fixture
def gpio(hostvm: HostVmRun) -> dict[str, Any]:
    assert "gpio_plugin" in hostvm.results, hostvm.report()
    return hostvm.results["gpio_plugin"]


def drives(hostvm: HostVmRun, domain: str) -> list[tuple[str, str]]:
    """(what, level) of each line the daemon logged driving `domain`'s GPIO."""
    log = (hostvm.outdir / "daemon.log").read_text(errors="replace")
    return [(what, level) for _, _, name, what, level in DRIVE_LINE.findall(log)
            if name == domain]


def test_the_domains_are_served_under_their_names(gpio: dict[str, Any]) -> None:
    assert gpio["names"] == {"reset": "gpio-rst", "reset_ro": "gpio-rst-ro",
                             "power": "gpio-pwr", "power_ro": "gpio-pwr-ro"}


def test_the_kernel_shows_each_line_held_under_its_consumer_label(
        hostvm: HostVmRun, gpio: dict[str, Any]) -> None:
    chip = hostvm.results["where"]["gpiochip"]
    lines = {offset: line for offset, line in enumerate(
        gpio["debugfs"].splitlines()[1:])}  # the chip's lines, in order after its header
    assert gpio["debugfs"].startswith(f"{chip}:"), gpio["debugfs"]
    assert "(scmi:gpio-rst)" in lines[0] and "output" in lines[0], lines
    assert "(scmi:gpio-rst-ro)" in lines[1] and "input" in lines[1], lines
    assert "(scmi:gpio-pwr)" in lines[2] and "output" in lines[2], lines
    # A read-only domain takes its line as-is: the input stays an input.
    assert "(scmi:gpio-pwr-ro)" in lines[3] and "input" in lines[3], lines
    assert "<unused>" in lines[4], lines


def test_control_takes_the_reset_line_deasserted_and_logs_it(
        hostvm: HostVmRun, gpio: dict[str, Any]) -> None:
    # Pulled down before the daemon: an active-low reset held. Served: driven high.
    assert hostvm.results["where"]["gpio_before_daemon"]["reset"] == "0"
    assert gpio["served"]["reset"] == "1"
    assert drives(hostvm, "gpio-rst")[0] == ("taken as output, reset deasserted", "high")


def test_assert_and_deassert_drive_the_active_low_line(
        hostvm: HostVmRun, gpio: dict[str, Any]) -> None:
    assert gpio["assert"]["status"] == Status.SUCCESS, gpio["assert"]
    assert gpio["assert"]["value"] == "0"  # asserted = active = low
    assert gpio["deassert"]["status"] == Status.SUCCESS, gpio["deassert"]
    assert gpio["deassert"]["value"] == "1"
    assert drives(hostvm, "gpio-rst")[1:3] == [("reset asserted", "low"),
                                               ("reset deasserted", "high")]


def test_an_autonomous_reset_pulses_the_line(hostvm: HostVmRun, gpio: dict[str, Any]) -> None:
    pulse = gpio["pulse"]
    assert pulse["status"] == Status.SUCCESS, pulse
    # Seen from outside while the request ran: high, low for the pulse, high again.
    assert pulse["seen"] == ["1", "0", "1"], pulse
    assert pulse["value"] == "1"
    # The request is answered once the pulse is over.
    assert pulse["ms"] >= gpio["pulse_us"] / 1000, pulse
    assert drives(hostvm, "gpio-rst")[3:] == [
        (f"reset pulse of {gpio['pulse_us']} us", "low"), ("reset pulse ends", "high")]


def test_a_read_only_reset_line_is_denied_and_left_alone(
        hostvm: HostVmRun, gpio: dict[str, Any]) -> None:
    before = hostvm.results["where"]["gpio_before_daemon"]["reset_ro"]
    assert before == gpio["served"]["reset_ro"] == "1"  # pulled up, and not driven
    for request in ("ro_assert", "ro_pulse"):
        assert gpio[request]["status"] == Status.DENIED, gpio[request]
        assert gpio[request]["value"] == before
    assert drives(hostvm, "gpio-rst-ro") == []


def test_power_state_set_drives_the_enable_line_and_reads_it_back(
        hostvm: HostVmRun, gpio: dict[str, Any]) -> None:
    # Served at the level it had (pulled down: off).
    assert gpio["served"]["power"] == "0"
    assert gpio["power_initial"] == STATE_OFF
    for step, state, value in (("power_on", STATE_ON, "1"), ("power_off", STATE_OFF, "0")):
        assert gpio[step]["status"] == Status.SUCCESS, gpio[step]
        assert (gpio[step]["value"], gpio[step]["get"]) == (value, state), gpio[step]
    assert drives(hostvm, "gpio-pwr") == [("taken as output, kept off", "low"),
                                          ("power on", "high"), ("power off", "low")]


def test_a_read_only_input_follows_the_outside_world(gpio: dict[str, Any]) -> None:
    expected = {"pull-down": ("0", STATE_OFF), "pull-up": ("1", STATE_ON)}
    assert [step["pull"] for step in gpio["input"]] == ["pull-down", "pull-up", "pull-down"]
    for step in gpio["input"]:
        assert (step["value"], step["get"]) == expected[step["pull"]], step


def test_a_read_only_power_line_is_denied_and_left_alone(
        hostvm: HostVmRun, gpio: dict[str, Any]) -> None:
    denied = gpio["ro_set"]
    assert denied["status"] == Status.DENIED, denied
    assert (denied["value"], denied["get"]) == ("0", STATE_OFF), denied
    assert drives(hostvm, "gpio-pwr-ro") == []


@pytest.mark.parametrize(("label", "message"), [
    ("busy", "line 0 of /dev/{chip} is busy (used by 'scmi:gpio-rst')"),
    ("no_line", "/dev/{chip} has lines 0 to 7, not 8"),
])
def test_an_unusable_line_is_one_error_line_at_start_up(
        hostvm: HostVmRun, gpio: dict[str, Any], label: str, message: str) -> None:
    chip = hostvm.results["where"]["gpiochip"]
    start = gpio["bad_specs"][label]
    assert start["exit"] == 2, start
    assert start["stdout"] == "", start
    lines = start["stderr"].splitlines()
    assert len(lines) == 1, start
    assert lines[0].startswith("vhost-device-scmi: error: device spec 'example-gpio-"), start
    assert lines[0].endswith(message.format(chip=chip)), start
