# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""One guest boot against clocks, reset domains, voltage domains and powercap domains.

The guest's own drivers probe them (clk-scmi, scmi-regulator, arm_scmi_powercap; the
device tree nodes are guest.SCMI_DOMAIN_NODES, merged in with dtb_with), then the guest
sends every message of the four protocols, well-formed and malformed, through Linux's
SCMI raw mode: one boot checks all of that (the machine is small and TCG boots are
slow). A second test boots two guests at once on two sockets of one daemon, to see
arbitration and a notification travel between agents.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from vhost_scmi.scmi.status import Status

from .guest import SCMI_DOMAIN_NODES, dtb_with
from .test_guest_raw import parse_reply

CLOCK, RESET, VOLTAGE, POWERCAP = 0x14, 0x16, 0x17, 0x18
S = Status
#: Tokens of the raw requests: well above those Linux's own drivers are using.
FIRST_TOKEN = 0x200


@dataclass(frozen=True)
class Case:
    name: str
    protocol: int
    message: int
    payload: bytes
    status: Status
    asynchronous: bool = False


def u32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def rate(hz: int) -> bytes:
    return struct.pack("<Q", hz)


MALFORMED = {S.INVALID_PARAMETERS, S.PROTOCOL_ERROR}

CASES = [
    # Clock: 0 uart (24/48/96 MHz), 1 spi-controller-reference (1-50 MHz, 1 MHz steps),
    # 2 pll0 (the example plugin's file clock: 100/200 MHz).
    Case("clk_version", CLOCK, 0x0, b"", S.SUCCESS),
    Case("clk_attributes", CLOCK, 0x1, b"", S.SUCCESS),
    Case("clk_msg_attr", CLOCK, 0x2, u32(0xF), S.SUCCESS),
    Case("clk_msg_attr_unknown", CLOCK, 0x2, u32(0x30), S.NOT_FOUND),
    Case("clk_clock_attributes", CLOCK, 0x3, u32(0), S.SUCCESS),
    Case("clk_clock_attributes_bad_id", CLOCK, 0x3, u32(9), S.NOT_FOUND),
    Case("clk_clock_attributes_short", CLOCK, 0x3, b"\0", S.INVALID_PARAMETERS),
    Case("clk_describe_discrete", CLOCK, 0x4, u32(0, 0), S.SUCCESS),
    Case("clk_describe_range", CLOCK, 0x4, u32(1, 0), S.SUCCESS),
    Case("clk_describe_past_end", CLOCK, 0x4, u32(0, 3), S.INVALID_PARAMETERS),
    Case("clk_rate_set", CLOCK, 0x5, u32(0, 0) + rate(48_000_000), S.SUCCESS),
    Case("clk_rate_get", CLOCK, 0x6, u32(0), S.SUCCESS),
    Case("clk_rate_set_plugin", CLOCK, 0x5, u32(0, 2) + rate(200_000_000), S.SUCCESS),
    Case("clk_rate_get_plugin", CLOCK, 0x6, u32(2), S.SUCCESS),
    Case("clk_rate_set_async", CLOCK, 0x5, u32(1, 1) + rate(7_500_000), S.SUCCESS,
         asynchronous=True),
    Case("clk_rate_get_after_async", CLOCK, 0x6, u32(1), S.SUCCESS),
    Case("clk_rate_set_too_low", CLOCK, 0x5, u32(0, 0) + rate(1), S.OUT_OF_RANGE),
    Case("clk_rate_set_reserved_flags", CLOCK, 0x5, u32(0x10, 0) + rate(48_000_000),
         S.INVALID_PARAMETERS),
    Case("clk_rate_set_bad_id", CLOCK, 0x5, u32(0, 9) + rate(48_000_000), S.NOT_FOUND),
    Case("clk_rate_set_short", CLOCK, 0x5, u32(0, 0), S.INVALID_PARAMETERS),
    Case("clk_config_set_enable", CLOCK, 0x7, u32(0, 1, 0), S.SUCCESS),
    Case("clk_config_get", CLOCK, 0xB, u32(0, 0), S.SUCCESS),
    Case("clk_config_set_reserved_state", CLOCK, 0x7, u32(0, 2, 0), S.INVALID_PARAMETERS),
    Case("clk_config_set_oem", CLOCK, 0x7, u32(0, 1 << 16 | 1, 0), S.NOT_SUPPORTED),
    Case("clk_config_get_oem", CLOCK, 0xB, u32(0, 1), S.NOT_SUPPORTED),
    Case("clk_name_get_long", CLOCK, 0x8, u32(1), S.SUCCESS),
    Case("clk_name_get_short", CLOCK, 0x8, u32(0), S.NOT_SUPPORTED),
    Case("clk_rate_notify", CLOCK, 0x9, u32(0, 1), S.SUCCESS),
    Case("clk_rate_notify_reserved", CLOCK, 0x9, u32(0, 2), S.INVALID_PARAMETERS),
    Case("clk_rate_notify_off", CLOCK, 0x9, u32(0, 0), S.SUCCESS),
    Case("clk_request_notify", CLOCK, 0xA, u32(0, 1), S.SUCCESS),
    Case("clk_request_notify_off", CLOCK, 0xA, u32(0, 0), S.SUCCESS),
    Case("clk_parents_get", CLOCK, 0xC, u32(0, 0), S.NOT_SUPPORTED),
    Case("clk_parent_set", CLOCK, 0xD, u32(0, 1), S.NOT_SUPPORTED),
    Case("clk_parent_get", CLOCK, 0xE, u32(0), S.NOT_SUPPORTED),
    Case("clk_permissions", CLOCK, 0xF, u32(0), S.SUCCESS),
    Case("clk_permissions_bad_id", CLOCK, 0xF, u32(9), S.NOT_FOUND),
    Case("clk_unknown_message", CLOCK, 0x40, u32(0), S.NOT_FOUND),  # scmi-tests b004
    # Reset domains: 0 eth-reset (fake), 1 a PCI function without control=on.
    Case("rst_version", RESET, 0x0, b"", S.SUCCESS),
    Case("rst_attributes", RESET, 0x1, b"", S.SUCCESS),
    Case("rst_msg_attr", RESET, 0x2, u32(0x6), S.SUCCESS),
    Case("rst_domain_attributes", RESET, 0x3, u32(0), S.SUCCESS),
    Case("rst_domain_attributes_bad_id", RESET, 0x3, u32(5), S.NOT_FOUND),
    Case("rst_reset", RESET, 0x4, u32(0, 1, 0), S.SUCCESS),
    Case("rst_assert", RESET, 0x4, u32(0, 2, 0), S.SUCCESS),
    Case("rst_deassert", RESET, 0x4, u32(0, 0, 0), S.SUCCESS),
    Case("rst_reset_async", RESET, 0x4, u32(0, 5, 0), S.SUCCESS, asynchronous=True),
    Case("rst_autonomous_and_explicit", RESET, 0x4, u32(0, 3, 0), S.INVALID_PARAMETERS),
    Case("rst_impdef_type", RESET, 0x4, u32(0, 1, 1 << 31), S.NOT_SUPPORTED),
    Case("rst_reserved_flags", RESET, 0x4, u32(0, 8, 0), S.INVALID_PARAMETERS),
    Case("rst_pci_denied", RESET, 0x4, u32(1, 1, 0), S.DENIED),
    Case("rst_short", RESET, 0x4, u32(0, 1), S.INVALID_PARAMETERS),
    Case("rst_notify", RESET, 0x5, u32(0, 1), S.SUCCESS),
    Case("rst_notify_reserved", RESET, 0x5, u32(0, 4), S.INVALID_PARAMETERS),
    Case("rst_name_get", RESET, 0x6, u32(0), S.NOT_SUPPORTED),
    Case("rst_name_get_bad_id", RESET, 0x6, u32(7), S.NOT_FOUND),
    # Voltage domains: 0 the host regulator (read-only), 1 vdd-io (fake: 0.9/1.8/3.3 V).
    Case("volt_version", VOLTAGE, 0x0, b"", S.SUCCESS),
    Case("volt_attributes", VOLTAGE, 0x1, b"", S.SUCCESS),
    Case("volt_msg_attr", VOLTAGE, 0x2, u32(0x9), S.SUCCESS),
    Case("volt_domain_attributes", VOLTAGE, 0x3, u32(0), S.SUCCESS),
    Case("volt_domain_attributes_bad_id", VOLTAGE, 0x3, u32(2), S.NOT_FOUND),
    Case("volt_describe_segment", VOLTAGE, 0x4, u32(0, 0), S.SUCCESS),
    Case("volt_describe_list", VOLTAGE, 0x4, u32(1, 0), S.SUCCESS),
    Case("volt_describe_past_end", VOLTAGE, 0x4, u32(1, 3), S.INVALID_PARAMETERS),
    Case("volt_config_get_host", VOLTAGE, 0x6, u32(0), S.SUCCESS),
    Case("volt_config_set_host", VOLTAGE, 0x5, u32(0, 0), S.DENIED),
    Case("volt_config_set_off", VOLTAGE, 0x5, u32(1, 0), S.SUCCESS),
    Case("volt_config_get_off", VOLTAGE, 0x6, u32(1), S.SUCCESS),
    Case("volt_config_set_on", VOLTAGE, 0x5, u32(1, 7), S.SUCCESS),
    Case("volt_config_set_reserved", VOLTAGE, 0x5, u32(1, 3), S.INVALID_PARAMETERS),
    Case("volt_config_set_impdef", VOLTAGE, 0x5, u32(1, 8), S.NOT_SUPPORTED),
    Case("volt_level_get_host", VOLTAGE, 0x8, u32(0), S.SUCCESS),
    Case("volt_level_set_host", VOLTAGE, 0x7, u32(0, 0, 1_800_000), S.DENIED),
    Case("volt_level_set", VOLTAGE, 0x7, u32(1, 0, 3_300_000), S.SUCCESS),
    Case("volt_level_get", VOLTAGE, 0x8, u32(1), S.SUCCESS),
    Case("volt_level_set_async", VOLTAGE, 0x7, u32(1, 1, 1_800_000), S.SUCCESS,
         asynchronous=True),
    Case("volt_level_get_after_async", VOLTAGE, 0x8, u32(1), S.SUCCESS),
    Case("volt_level_set_out_of_range", VOLTAGE, 0x7, u32(1, 0, 5), S.OUT_OF_RANGE),
    Case("volt_level_set_between", VOLTAGE, 0x7, u32(1, 0, 1_000_000), S.INVALID_PARAMETERS),
    Case("volt_level_set_short", VOLTAGE, 0x7, u32(1, 0), S.INVALID_PARAMETERS),
    Case("volt_name_get", VOLTAGE, 0x9, u32(0), S.SUCCESS),
    Case("volt_name_get_short_name", VOLTAGE, 0x9, u32(1), S.NOT_SUPPORTED),
    # Powercap domains: 0 the host zone (read-only), 1 soc (fake: 1-100 W).
    Case("pcap_version", POWERCAP, 0x0, b"", S.SUCCESS),
    Case("pcap_attributes", POWERCAP, 0x1, b"", S.SUCCESS),
    Case("pcap_msg_attr", POWERCAP, 0x2, u32(0xC), S.SUCCESS),
    Case("pcap_domain_attributes", POWERCAP, 0x3, u32(1), S.SUCCESS),
    Case("pcap_domain_attributes_bad_id", POWERCAP, 0x3, u32(4), S.NOT_FOUND),
    Case("pcap_cap_get_host", POWERCAP, 0x4, u32(0), S.SUCCESS),
    Case("pcap_cap_set_host", POWERCAP, 0x5, u32(0, 0, 10_000_000), S.DENIED),
    Case("pcap_cap_set", POWERCAP, 0x5, u32(1, 0, 20_000_000), S.SUCCESS),
    Case("pcap_cap_get", POWERCAP, 0x4, u32(1), S.SUCCESS),
    Case("pcap_cap_set_async", POWERCAP, 0x5, u32(1, 2, 30_000_000), S.SUCCESS,
         asynchronous=True),
    Case("pcap_cap_get_after_async", POWERCAP, 0x4, u32(1), S.SUCCESS),
    Case("pcap_cap_set_out_of_range", POWERCAP, 0x5, u32(1, 0, 5), S.OUT_OF_RANGE),
    Case("pcap_cap_set_reserved_flags", POWERCAP, 0x5, u32(1, 4, 20_000_000),
         S.INVALID_PARAMETERS),
    Case("pcap_pai_get", POWERCAP, 0x6, u32(1), S.SUCCESS),
    Case("pcap_pai_set", POWERCAP, 0x7, u32(1, 0, 50_000), S.SUCCESS),
    Case("pcap_pai_set_out_of_range", POWERCAP, 0x7, u32(1, 0, 1), S.OUT_OF_RANGE),
    Case("pcap_pai_set_host", POWERCAP, 0x7, u32(0, 0, 50_000), S.DENIED),
    Case("pcap_name_get", POWERCAP, 0x8, u32(1), S.NOT_SUPPORTED),
    Case("pcap_measurements_get", POWERCAP, 0x9, u32(1), S.SUCCESS),
    Case("pcap_measurements_get_host", POWERCAP, 0x9, u32(0), S.SUCCESS),
    Case("pcap_cap_notify", POWERCAP, 0xA, u32(1, 1), S.SUCCESS),
    Case("pcap_measurements_notify_bad_window", POWERCAP, 0xB, u32(1, 1, 10, 5),
         S.INVALID_PARAMETERS),
    Case("pcap_measurements_notify", POWERCAP, 0xB, u32(1, 1, 1, 2), S.SUCCESS),
    Case("pcap_fastchannel", POWERCAP, 0xC, u32(1, 0x5), S.NOT_SUPPORTED),
    Case("pcap_fastchannel_unknown_message", POWERCAP, 0xC, u32(1, 0x70), S.NOT_FOUND),
    Case("pcap_short", POWERCAP, 0x5, u32(1), S.INVALID_PARAMETERS),
]
#: Sent after reading the measurement notification.
STOP_MEASUREMENTS = Case("pcap_measurements_notify_off", POWERCAP, 0xB, u32(1, 0, 0, 0),
                         S.SUCCESS)


def wire(case: Case, token: int) -> bytes:
    header = case.message | case.protocol << 10 | token << 18
    return struct.pack("<I", header) + case.payload


def octal(data: bytes) -> str:
    return "".join(f"\\{byte:03o}" for byte in data)


READ = "timeout 60 dd if={entry} bs=512 count=1 2>/dev/null | od -An -v -tx1 | tr -d ' \\n'"


def guest_script(cases: list[Case]) -> str:
    lines = [
        "raw=/sys/kernel/debug/scmi/0/raw",
        "sed 's/^/clk: /' /sys/kernel/debug/clk/clk_summary",
        "for r in /sys/class/regulator/*; do",
        '    echo "regulator=$(cat $r/name):$(cat $r/microvolts 2>/dev/null)"',
        "done",
        "for z in /sys/class/powercap/*; do",
        '    echo "powercap=$(basename $z):$(cat $z/name 2>/dev/null):'
        '$(cat $z/constraint_0_power_limit_uw 2>/dev/null)"',
        "done",
        "echo 1 > $raw/reset",
        "send() {",
        '    printf "$3" > /tmp/msg',
        '    dd if=/tmp/msg of=$raw/$2 bs=512 2>/dev/null || echo "$1_write=failed"',
        f'    echo "$1=$({READ.format(entry="$raw/$2")})"',
        # An asynchronous command may give back its response and its delayed response.
        '    if [ "$2" = message_async ]; then',
        f'        echo "$1_more=$({READ.format(entry="$raw/$2").replace("60", "3")})"',
        "    fi",
        "}",
    ]
    for token, case in enumerate(cases, FIRST_TOKEN):
        entry = "message_async" if case.asynchronous else "message"
        lines.append(f"send {case.name} {entry} '{octal(wire(case, token))}'")
    # Measured power is far above the 1..2 uW window: a notification within a period.
    lines.append(f'echo "measurement_event=$({READ.format(entry="$raw/notification")})"')
    token = FIRST_TOKEN + len(cases)
    lines.append(f"send {STOP_MEASUREMENTS.name} message '{octal(wire(STOP_MEASUREMENTS, token))}'")
    lines.append(f'echo "errors=$({READ.format(entry="$raw/errors").replace("60", "3")})"')
    # clk-scmi does not cache rates: the summary now shows the rates set in raw mode.
    lines.append("sed 's/^/clk_after: /' /sys/kernel/debug/clk/clk_summary")
    return "\n".join(lines) + "\n"


def make_host_tree(root: Path) -> dict[str, Path]:
    """sysfs-shaped host devices: a PCI function, a regulator, a powercap zone, a rate file."""
    pci = root / "pci" / "0000:00:02.0"
    pci.mkdir(parents=True)
    (pci / "reset").write_text("")
    regulator = root / "regulator.7"
    regulator.mkdir()
    for name, value in (("name", "vdd-host-core-regulator"), ("microvolts", "1800000"),
                        ("min_microvolts", "800000"), ("max_microvolts", "3300000"),
                        ("state", "enabled")):
        (regulator / name).write_text(value + "\n")
    zone = root / "intel-rapl:0"
    zone.mkdir()
    for name, value in (("name", "package-0"), ("constraint_0_power_limit_uw", "15000000"),
                        ("constraint_0_time_window_us", "27983872"), ("enabled", "1"),
                        ("energy_uj", "123456789"), ("max_energy_range_uj", "262143328850")):
        (zone / name).write_text(value + "\n")
    pll = root / "pll0"
    pll.write_text("100000000\n")
    return {"pci": pci, "regulator": regulator, "zone": zone, "pll": pll}


def test_guest_sees_clocks_resets_regulators_powercaps(e2e, tmp_path):
    host = make_host_tree(tmp_path / "host")
    daemon = e2e.start_daemon(
        "fake-clock,name=uart,rates=24000000:48000000:96000000",
        "fake-clock,name=spi-controller-reference,range=1000000:50000000:1000000",
        f"example-file-clock,path={host['pll']},rates=100000000:200000000",
        "fake-reset,name=eth-reset",
        f"pci-reset,device={host['pci']}",
        f"regulator,path={host['regulator']}",
        "fake-voltage,name=vdd-io,levels=900000:1800000:3300000",
        f"powercap,zone={host['zone']}",
        "fake-powercap,name=soc",
    )
    result = e2e.run_guest(guest_script(CASES), daemon.socket_path,
                           dtb=dtb_with(e2e.image, SCMI_DOMAIN_NODES))
    assert result.rc == 0, result.report()
    values = result.values()
    report = result.report()

    # clk-scmi registered every clock at its rate (the plugin's one included).
    summary = {line.split()[1]: line.split() for line in result.output
               if line.startswith("clk: ") and len(line.split()) > 6}
    after = {line.split()[1]: line.split() for line in result.output
             if line.startswith("clk_after: ") and len(line.split()) > 6}
    assert summary.get("uart", [None] * 6)[5] == "24000000", report
    assert summary.get("spi-controller-reference", [None] * 6)[5] == "1000000", report
    assert summary.get("pll0", [None] * 6)[5] == "100000000", report
    # scmi-regulator: the DT's regulator@0 is the host regulator, at its microvolts.
    regulators = [line.removeprefix("regulator=") for line in result.output
                  if line.startswith("regulator=")]
    assert "scmi-vdd0:1800000" in regulators, report
    # arm_scmi_powercap: both domains are zones of the arm-scmi control type.
    zones = [line.removeprefix("powercap=") for line in result.output
             if line.startswith("powercap=")]
    assert any(zone.startswith("arm-scmi") for zone in zones), report
    powercap_names = {zone.split(":")[-2] for zone in zones}
    assert {"package-0", "soc"} <= powercap_names, report

    replies = {}
    delayed: dict[str, bytes] = {}
    for token, case in enumerate(CASES, FIRST_TOKEN):
        assert f"{case.name}_write" not in values, report
        assert values.get(case.name), f"no reply to {case.name}\n{report}"
        command = case.message | case.protocol << 10 | token << 18
        reply = parse_reply(values[case.name])
        if case.asynchronous:
            # Raw mode hands back the response (type 0, no payload), the delayed response
            # (type 2), or both, depending on how close together they arrive.
            for text in (values[case.name], values.get(f"{case.name}_more")):
                if text:
                    got = parse_reply(text)
                    assert got.status == S.SUCCESS, f"{case.name}: {got}"
                    assert got.header in (command, command | 2 << 8), f"{case.name}: {got}"
                    if got.header == command | 2 << 8:
                        delayed[case.name] = got.payload
                    else:
                        assert got.payload == b"", f"{case.name}: {got}"
            continue
        assert reply.header == command, f"{case.name}: {reply}"
        assert reply.status == case.status, f"{case.name}: {reply}"
        if case.status != S.SUCCESS:
            assert reply.payload == b"", f"{case.name}: {reply}"
        replies[case.name] = reply

    def payload(name: str) -> bytes:
        return replies[name].payload

    # Versions Linux 6.12 implements.
    assert payload("clk_version") == u32(0x30000)
    assert payload("rst_version") == u32(0x30000)
    assert payload("volt_version") == u32(0x20000)
    assert payload("pcap_version") == u32(0x20000)
    assert payload("clk_attributes")[:2] == struct.pack("<H", 3)
    assert payload("rst_attributes") == u32(2)
    assert payload("volt_attributes") == u32(2)
    assert payload("pcap_attributes") == u32(2)
    # Clock: names, rates; a rate set reaches the fake (and the plugin's file).
    assert payload("clk_clock_attributes")[4:9] == b"uart\0"
    assert payload("clk_describe_discrete") == u32(3) + rate(24_000_000) + rate(
        48_000_000) + rate(96_000_000)
    assert payload("clk_describe_range") == u32(3 | 1 << 12) + rate(1_000_000) + rate(
        50_000_000) + rate(1_000_000)
    assert payload("clk_rate_get") == rate(48_000_000)
    assert payload("clk_rate_get_plugin") == rate(200_000_000)
    assert host["pll"].read_text().strip() == "200000000"
    assert "fake-clock uart: rate 24000000 -> 48000000 Hz" in daemon.log(), daemon.describe()
    assert after.get("uart", [None] * 6)[5] == "48000000", report
    assert after.get("pll0", [None] * 6)[5] == "200000000", report
    assert delayed.get("clk_rate_set_async", u32(1) + rate(7_000_000)) == u32(1) + rate(7_000_000)
    assert payload("clk_rate_get_after_async") == rate(7_000_000)
    assert payload("clk_config_get") == u32(0, 1, 0)
    assert payload("clk_name_get_long")[4:29] == b"spi-controller-reference\0"
    assert payload("clk_permissions") == u32(0xA0000000)
    # Reset: the fake was reset twice (once asynchronously), the PCI function never.
    assert payload("rst_domain_attributes")[8:18] == b"eth-reset\0"
    assert delayed.get("rst_reset_async", u32(0)) == u32(0)
    assert "fake-reset eth-reset: reset (2 so far)" in daemon.log(), daemon.describe()
    assert host["pci"].joinpath("reset").read_text() == ""
    # Voltage: the host regulator is a segment around its level; the fake is set.
    assert payload("volt_describe_segment") == u32(3 | 1 << 12) + struct.pack(
        "<3i", 800_000, 3_300_000, 1)
    assert payload("volt_describe_list") == u32(3) + struct.pack(
        "<3i", 900_000, 1_800_000, 3_300_000)
    assert payload("volt_config_get_host") == u32(7)
    assert payload("volt_config_get_off") == u32(0)
    assert payload("volt_level_get_host") == struct.pack("<i", 1_800_000)
    assert payload("volt_level_get") == struct.pack("<i", 3_300_000)
    expected = u32(1) + struct.pack("<i", 1_800_000)
    assert delayed.get("volt_level_set_async", expected) == expected
    assert payload("volt_level_get_after_async") == struct.pack("<i", 1_800_000)
    assert payload("volt_name_get")[4:28] == b"vdd-host-core-regulator\0"
    # Powercap: the host zone's limit; the fake's cap and interval are set.
    assert payload("pcap_cap_get_host") == u32(15_000_000)
    assert payload("pcap_cap_get") == u32(20_000_000)
    assert delayed.get("pcap_cap_set_async", u32(1, 30_000_000)) == u32(1, 30_000_000)
    assert payload("pcap_cap_get_after_async") == u32(30_000_000)
    assert payload("pcap_domain_attributes")[4:8] == b"soc\0"
    power, pai = struct.unpack("<II", payload("pcap_measurements_get"))
    assert pai == 50_000 and power > 0
    event = bytes.fromhex(values.get("measurement_event", ""))
    assert len(event) == 16, report
    event_header, agent, domain, measured = struct.unpack("<4I", event)
    assert event_header == 0x1 | 3 << 8 | POWERCAP << 10, event.hex()
    assert domain == 1 and measured > 2
    assert values.get("errors") == "", report
    assert daemon.alive(), daemon.describe()



def test_two_guests_share_a_reset_domain_and_a_clock(e2e):
    """Two guests on the two sockets of one daemon are agents 1 and 2: guest 2 subscribes
    to RESET_ISSUED and hears of guest 1's resets; guest 1 takes the clock's rate, and
    guest 2's rate set is DENIED."""
    daemon = e2e.start_daemon("fake-reset,name=shared-reset",
                              "fake-clock,name=bus,rates=100000000:200000000",
                              socket_path=e2e.socket_path("agents"), socket_count=2)
    first, second = (Path(f"{e2e.socket_path('agents')}{index}") for index in (0, 1))
    setup = ["raw=/sys/kernel/debug/scmi/0/raw",
             "send() {",
             '    printf "$2" > /tmp/msg',
             "    dd if=/tmp/msg of=$raw/message bs=512 2>/dev/null",
             f'    echo "$1=$({READ.format(entry="$raw/message")})"',
             "}"]
    take_rate = Case("take_rate", CLOCK, 0x5, u32(0, 0) + rate(200_000_000), S.SUCCESS)
    reset = Case("reset", RESET, 0x4, u32(0, 1, 0), S.SUCCESS)
    # Guest 1 takes the rate, then resets the domain every second for a while (guest 2
    # boots alongside and subscribes at some point in between).
    one = setup + [f"send take_rate '{octal(wire(take_rate, 0x300))}'",
                   "i=0", "while [ $i -lt 40 ]; do",
                   f"    send reset '{octal(wire(reset, 0x301))}' > /dev/null",
                   "    i=$((i + 1)); sleep 1",
                   "done"]
    subscribe = Case("subscribe", RESET, 0x5, u32(0, 1), S.SUCCESS)
    steal_rate = Case("steal_rate", CLOCK, 0x5, u32(0, 0) + rate(100_000_000), S.DENIED)
    two = setup + [f"send subscribe '{octal(wire(subscribe, 0x302))}'",
                   f'echo "issued=$({READ.format(entry="$raw/notification")})"',
                   f"send steal_rate '{octal(wire(steal_rate, 0x303))}'"]
    dtb = dtb_with(e2e.image, SCMI_DOMAIN_NODES)
    vm_one = e2e.boot("\n".join(one) + "\n", first, name="agent1", dtb=dtb)
    vm_two = e2e.boot("\n".join(two) + "\n", second, name="agent2", dtb=dtb)
    result_two = vm_two.wait_result(240)
    result_one = vm_one.wait_result(240)
    assert result_one.rc == 0 and result_two.rc == 0, result_one.report() + result_two.report()
    values_one, values_two = result_one.values(), result_two.values()
    assert parse_reply(values_one["take_rate"]).status == S.SUCCESS, result_one.report()
    assert parse_reply(values_two["subscribe"]).status == S.SUCCESS, result_two.report()
    issued = bytes.fromhex(values_two.get("issued", ""))
    assert len(issued) == 16, result_two.report()
    head, agent, domain, state = struct.unpack("<4I", issued)
    # RESET_ISSUED (notification 0x0 of protocol 0x16), caused by agent 1, domain 0.
    assert (head, agent, domain, state) == (3 << 8 | RESET << 10, 1, 0, 0), issued.hex()
    assert parse_reply(values_two["steal_rate"]).status == S.DENIED, result_two.report()
    assert "fake-clock bus: rate 100000000 -> 200000000 Hz" in daemon.log()
    assert "-> 100000000 Hz" not in daemon.log()
