# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Hand-made SCMI messages sent from inside the guest through Linux's SCMI raw mode.

`/sys/kernel/debug/scmi/0/raw/message` takes one complete little-endian SCMI message
per write and gives back one reply (header, int32 status, payload) per read; replies
that arrive late or match no request go to `raw/errors` instead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vhost_scmi.scmi.status import Status

BASE, SENSOR = 0x10, 0x15
PROTOCOL_VERSION = 0x0
DISCOVER_LIST_PROTOCOLS = 0x6
SENSOR_DESCRIPTION_GET = 0x3
SENSOR_READING_GET = 0x6
UNKNOWN_PROTOCOL = 0x99


def header(protocol: int, message: int, token: int) -> int:
    # bits 7:0 message id, 9:8 type (0 = command), 17:10 protocol id, 27:18 token
    return message | protocol << 10 | token << 18


@dataclass(frozen=True)
class RawCase:
    name: str
    protocol: int
    message: int
    payload: bytes
    token: int

    @property
    def header(self) -> int:
        return header(self.protocol, self.message, self.token)

    def wire(self) -> bytes:
        return struct.pack("<I", self.header) + self.payload

    def printf_escapes(self) -> str:
        # Octal escapes: understood by every shell's printf, and never a format directive.
        return "".join(f"\\{byte:03o}" for byte in self.wire())


# Tokens well above the ones Linux's own SCMI drivers are using at the time.
CASES = [
    RawCase("base_version", BASE, PROTOCOL_VERSION, b"", 0x3E0),
    RawCase("unknown_protocol", UNKNOWN_PROTOCOL, PROTOCOL_VERSION, b"", 0x3E1),
    RawCase("unknown_message", SENSOR, 0x7F, b"", 0x3E2),
    RawCase("reading_no_payload", SENSOR, SENSOR_READING_GET, b"", 0x3E3),
    RawCase("reading_short_payload", SENSOR, SENSOR_READING_GET, b"\0\0", 0x3E4),
    RawCase("list_protocols_no_payload", BASE, DISCOVER_LIST_PROTOCOLS, b"", 0x3E5),
    RawCase("reading_unknown_sensor", SENSOR, SENSOR_READING_GET, struct.pack("<II", 99, 0),
            0x3E6),
    RawCase("description_past_end", SENSOR, SENSOR_DESCRIPTION_GET, struct.pack("<I", 50),
            0x3E7),
    RawCase("reading_sensor0", SENSOR, SENSOR_READING_GET, struct.pack("<II", 0, 0), 0x3E8),
    # Asynchronous, on a sensor that does not advertise asynchronous reads.
    RawCase("reading_async_not_offered", SENSOR, SENSOR_READING_GET, struct.pack("<II", 0, 1),
            0x3EA),
    RawCase("base_version_again", BASE, PROTOCOL_VERSION, b"", 0x3E9),
]


def guest_script(cases: list[RawCase]) -> str:
    lines = [
        "raw=/sys/kernel/debug/scmi/0/raw",
        'ls $raw | sed "s/^/entry=/"',
        "echo 1 > $raw/reset",
        "send() {",
        '    printf "$2" > /tmp/msg',
        # One write of the whole message: dd copies the file in a single block.
        "    dd if=/tmp/msg of=$raw/message bs=512 2>/dev/null || echo \"$1_write=failed\"",
        # One read gives back one whole reply; a reply that never comes must not hang us.
        "    reply=$(timeout 90 dd if=$raw/message bs=512 count=1 2>/dev/null |"
        " od -An -v -tx1 | tr -d ' \\n')",
        '    echo "$1=$reply"',
        "}",
    ]
    lines += [f"send {case.name} '{case.printf_escapes()}'" for case in cases]
    lines += [
        # Anything the kernel could not match to a request (bad token, late reply) ends
        # up here; nothing should.
        "errors=$(timeout 3 dd if=$raw/errors bs=512 count=1 2>/dev/null |"
        " od -An -v -tx1 | tr -d ' \\n')",
        'echo "errors=$errors"',
        # The regular drivers still work beside raw mode.
        "d=/sys/bus/iio/devices/iio:device0",
        'echo "sysfs_read=$(cat $d/in_accel_x_raw)"',
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Reply:
    header: int
    status: int
    payload: bytes


def parse_reply(hex_text: str) -> Reply:
    data = bytes.fromhex(hex_text)
    assert len(data) >= 8, f"reply too short: {hex_text!r}"
    head, status = struct.unpack_from("<Ii", data)
    return Reply(head, status, data[8:])


def test_raw_mode_malformed_messages_get_error_status(e2e):
    daemon = e2e.start_daemon("fake,name=raw-target")
    result = e2e.run_guest(guest_script(CASES), daemon.socket_path)

    assert result.rc == 0, result.report()
    values = result.values()
    entries = {line.removeprefix("entry=") for line in result.output if line.startswith("entry=")}
    assert {"message", "errors", "reset"} <= entries, result.report()
    replies = {}
    for case in CASES:
        assert f"{case.name}_write" not in values, result.report()
        assert values.get(case.name), f"no reply to {case.name}\n{result.report()}"
        reply = parse_reply(values[case.name])
        # A reply repeats its request's header (and so its token).
        assert reply.header == case.header, f"{case.name}: {reply}\n{result.report()}"
        replies[case.name] = reply

    def status(name: str) -> int:
        return replies[name].status

    assert status("base_version") == Status.SUCCESS, replies["base_version"]
    assert replies["base_version"].payload[:4] == struct.pack("<I", 0x20000)
    assert status("unknown_protocol") == Status.NOT_SUPPORTED, replies["unknown_protocol"]
    # As Arm's compliance suite (scmi-tests b004) expects.
    assert status("unknown_message") == Status.NOT_FOUND, replies["unknown_message"]
    # scmi-tests' sensor test 015: no delayed response promised that was not offered.
    assert status("reading_async_not_offered") == Status.NOT_SUPPORTED, \
        replies["reading_async_not_offered"]
    # Too short for the message: the issue allows INVALID_PARAMETERS, or PROTOCOL_ERROR
    # where the specification asks for it; never success, never a crash.
    malformed = {Status.INVALID_PARAMETERS, Status.PROTOCOL_ERROR}
    for name in ("reading_no_payload", "reading_short_payload", "list_protocols_no_payload"):
        assert status(name) in malformed, f"{name}: {replies[name]}"
        assert replies[name].payload == b"", f"{name}: {replies[name]}"
    assert status("reading_unknown_sensor") == Status.NOT_FOUND, replies["reading_unknown_sensor"]
    assert status("description_past_end") == Status.INVALID_PARAMETERS, \
        replies["description_past_end"]
    # The daemon keeps serving after all that.
    reading = replies["reading_sensor0"]
    assert reading.status == Status.SUCCESS, reading
    assert len(reading.payload) == 3 * 16, reading  # v3 reading: 3 axes x (value, timestamp)
    x, y, z = (struct.unpack_from("<q", reading.payload, 16 * axis)[0] for axis in range(3))
    assert (y, z) == (x + 100, x + 200), reading
    assert status("base_version_again") == Status.SUCCESS, replies["base_version_again"]
    assert values.get("errors") == "", result.report()
    assert values.get("sysfs_read", "").lstrip("-").isdigit(), result.report()
    assert daemon.alive(), daemon.describe()
