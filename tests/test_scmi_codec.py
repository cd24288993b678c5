# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The codec helpers that keep tuples and copies off the per-request path, and the
DESCRIPTION_GET pages kept between requests."""

from __future__ import annotations

import struct

import pytest
from scmi_helpers import LINUX_RESPONSE, SENSOR, ScriptedSensor, command

from vhost_scmi.scmi import codec
from vhost_scmi.scmi.client import ScmiClient
from vhost_scmi.scmi.dispatcher import build_dispatcher


def test_u32_at_reads_bytes_and_other_buffers() -> None:
    data = struct.pack("<III", 1, 0xFFFFFFFF, 0x12345678)
    for wrapped in (data, bytearray(data), memoryview(data)):
        assert [codec.u32_at(wrapped, offset) for offset in (0, 4, 8)] == [
            1, 0xFFFFFFFF, 0x12345678]
        assert codec.u32_at(wrapped, 1) == struct.unpack_from("<I", data, 1)[0]
        for offset in (-1, 9, 12, 1 << 40):
            with pytest.raises(IndexError):
                codec.u32_at(wrapped, offset)
    with pytest.raises(IndexError):
        codec.u32_at(b"abc", 0)


def test_ok_response() -> None:
    assert codec.ok_response(0xFFFFFFFF, b"") == struct.pack("<Ii", 0xFFFFFFFF, 0)
    assert codec.ok_response(7, b"\1\2\3") == struct.pack("<Ii", 7, 0) + b"\1\2\3"
    with pytest.raises(TypeError):
        codec.ok_response(7, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        codec.ok_response(7, bytearray(b"x"))  # type: ignore[arg-type]


def test_description_pages_are_the_same_from_the_cache_and_for_every_room() -> None:
    # 20 sensors: four 28-byte descriptors fill a page of 124 bytes.
    sensors = [ScriptedSensor(f"s{i}") for i in range(20)]
    dispatcher = build_dispatcher(sensors)
    client = ScmiClient(lambda request: dispatcher.handle(request, LINUX_RESPONSE))
    assert [d.name for d in client.sensor_descriptions()] == [s.name for s in sensors]
    for first in (0, 3, 19):
        request = command(SENSOR, 0x3, first)
        full = dispatcher.handle(request, LINUX_RESPONSE)
        assert dispatcher.handle(request, LINUX_RESPONSE) == full
        assert dispatcher.handle(bytearray(request), LINUX_RESPONSE) == full
        assert dispatcher.handle(request, 1000) == full
        returned, remaining = struct.unpack_from("<HH", full, 8)
        assert returned == min(4, 20 - first) and remaining == 20 - first - returned
        # A smaller buffer gets no more than fits it, not the cached page.
        smaller = dispatcher.handle(request, LINUX_RESPONSE - 28)
        fits = min(3, 20 - first)
        assert struct.unpack_from("<HH", smaller, 8) == (fits, 20 - first - fits)
        assert smaller[12:] == full[12:12 + 28 * fits]
