# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Fuzz the SCMI dispatcher: any request bytes get a well-formed answer, never an error.

Structure-aware: the protocol and message ids come from the dispatcher's own tables
(with some unknown ones mixed in), then a header, a random payload and a random
response room. Checked for every input:
  - handle() returns bytes no longer than max_response; b"" only when fewer than 8
    bytes are writable or the request has no complete header;
  - a response echoes the request header and carries a known SCMI status;
  - nothing is logged as an internal error (the dispatcher's catch-all would hide a
    crash as GENERIC_ERROR; that is a finding here);
  - events (notifications, delayed responses) are bytes; reset() works.

    python3 fuzz/fuzz_dispatcher.py -runs=1000000          # see fuzz/README.md
"""

from __future__ import annotations

import logging
import struct
import sys

import atheris

with atheris.instrument_imports():
    from vhost_scmi.scmi.codec import pack_header

    from vhost_scmi.devices.clock import RateRange
    from vhost_scmi.devices.fake import FakeAccelerometer
    from vhost_scmi.devices.fake_clock import FakeClock
    from vhost_scmi.devices.fake_perf import FakePerformanceDomain
    from vhost_scmi.devices.fake_power import FakePowerDomain
    from vhost_scmi.devices.fake_powercap import FakePowercap
    from vhost_scmi.devices.fake_reset import FakeReset
    from vhost_scmi.devices.fake_voltage import FakeVoltage
    from vhost_scmi.devices.performance import PerfControl
    from vhost_scmi.devices.sensor import DeviceError, Sensor, Unit
    from vhost_scmi.scmi.dispatcher import build_dispatcher
    from vhost_scmi.scmi.status import Status


class FlakySensor(Sensor):
    """A scalar sensor whose host device fails when the input says so."""

    unit = Unit.DEGREES_C
    exponent = -3

    def __init__(self, name: str) -> None:
        self.name = name
        self.failing = False
        self.value = 0

    def read(self) -> tuple[int]:
        if self.failing:
            raise DeviceError(f"{self.name}: device gone")
        return (self.value,)


class InternalErrors(logging.Handler):
    """Collects records logged with an exception (the dispatcher's catch-alls)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


FLAKY = FlakySensor("flaky")
DISPATCHER = build_dispatcher([
    FakeAccelerometer(), FLAKY, FakeAccelerometer("fake2"),
    FakePerformanceDomain("cpu", (600000, 1200000, 1800000), PerfControl.LEVEL),
    FakePerformanceDomain("a-long-named-performance-domain", (1, 2), PerfControl.LIMITS),
    FakePowerDomain("pd", controllable=True), FakePowerDomain("pd-read-only"),
    FakeClock("uart", rates=(24_000_000, 48_000_000)),
    FakeClock("a-clock-with-a-long-name", rate_range=RateRange(1, 1 << 40, 3)),
    FakeReset("reset"), FakeVoltage("vdd", (-5, 900_000, 1_800_000)), FakePowercap("soc"),
])
ROUTES = sorted((protocol_id, sorted(protocol.messages))
                for protocol_id, protocol in DISPATCHER.protocols.items())
STATUSES = {int(status) for status in Status}
ERRORS = InternalErrors()
logging.getLogger("vhost_scmi").addHandler(ERRORS)
logging.getLogger("vhost_scmi").propagate = False
CLOCK = [1000.0]


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    choice = fdp.ConsumeIntInRange(0, 15)
    if choice < 13:
        protocol_id, messages = ROUTES[choice % len(ROUTES)]
        message_id = messages[fdp.ConsumeIntInRange(0, len(messages) - 1)]
    elif choice == 13:
        protocol_id, message_id = fdp.ConsumeIntInRange(0, 0xFF), fdp.ConsumeIntInRange(0, 0xFF)
    else:
        protocol_id, message_id = ROUTES[0][0], fdp.ConsumeIntInRange(0, 0xFF)
    message_type = 0 if fdp.ConsumeBool() else fdp.ConsumeIntInRange(0, 3)
    token = fdp.ConsumeIntInRange(0, 0x3FF)
    FLAKY.failing = fdp.ConsumeBool()
    FLAKY.value = fdp.ConsumeIntInRange(-(1 << 63), (1 << 63) - 1)
    max_response = fdp.PickValueInList([0, 4, 7, 8, 12, 16, 64, 128, 256, 4096,
                                        fdp.ConsumeIntInRange(0, 1 << 16)])
    header = pack_header(message_id, message_type, protocol_id, token)
    if fdp.ConsumeIntInRange(0, 31) == 0:
        request = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 3))  # not even a header
    else:
        request = struct.pack("<I", header) + fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 600))

    response = DISPATCHER.handle(request, max_response)
    assert isinstance(response, bytes), type(response)
    assert len(response) <= max_response, (len(response), max_response)
    if len(request) >= 4 and max_response >= 8:
        assert len(response) >= 8, (request, max_response, response)
    if response:
        assert len(response) >= 8, response
        echoed, status = struct.unpack_from("<Ii", response)
        assert echoed == struct.unpack_from("<I", request)[0], (hex(echoed), request)
        assert status in STATUSES, status
    assert not ERRORS.records, ERRORS.records[0].getMessage()

    # Time moves on now and then: notifications and delayed responses fall due.
    if fdp.ConsumeIntInRange(0, 7) == 0:
        CLOCK[0] += fdp.ConsumeIntInRange(0, 5000) / 1000
        deadline = DISPATCHER.next_deadline()
        assert deadline is None or isinstance(deadline, float)
        for event in DISPATCHER.take_events(CLOCK[0]):
            assert isinstance(event, bytes) and len(event) >= 4
    if fdp.ConsumeIntInRange(0, 63) == 0:
        DISPATCHER.reset()
    assert not ERRORS.records, ERRORS.records[0].getMessage()


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
