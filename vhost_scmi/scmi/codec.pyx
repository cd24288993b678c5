# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""SCMI message header and sensor-reading codec.

Header layout (32-bit little endian): bits 7:0 message id, 9:8 message type,
17:10 protocol id, 27:18 token; bits 31:28 are reserved and ignored on input.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.string cimport memcpy

cdef enum:
    MESSAGE_ID_MASK = 0xFF
    TYPE_SHIFT = 8
    TYPE_MASK = 0x3
    PROTOCOL_SHIFT = 10
    PROTOCOL_MASK = 0xFF
    TOKEN_SHIFT = 18
    TOKEN_MASK = 0x3FF


cpdef unsigned int pack_header(unsigned int message_id, unsigned int message_type,
                               unsigned int protocol_id, unsigned int token):
    """Return the 32-bit header; each field is masked to its width."""
    return ((message_id & MESSAGE_ID_MASK)
            | ((message_type & TYPE_MASK) << TYPE_SHIFT)
            | ((protocol_id & PROTOCOL_MASK) << PROTOCOL_SHIFT)
            | ((token & TOKEN_MASK) << TOKEN_SHIFT))


cpdef tuple unpack_header(unsigned int header):
    """Return (message_id, message_type, protocol_id, token) of a 32-bit header."""
    return (header & MESSAGE_ID_MASK,
            (header >> TYPE_SHIFT) & TYPE_MASK,
            (header >> PROTOCOL_SHIFT) & PROTOCOL_MASK,
            (header >> TOKEN_SHIFT) & TOKEN_MASK)


# Sensor readings (SENSOR_READING_GET, its delayed response, SENSOR_UPDATE) are
# little-endian u32 words followed by, per axis, an s64 value and a u64 timestamp.
# Packing them here keeps the READING_GET path free of per-axis Python objects.


cdef inline void _put_u32(unsigned char* p, uint32_t v) noexcept:
    p[0] = v & 0xFF
    p[1] = (v >> 8) & 0xFF
    p[2] = (v >> 16) & 0xFF
    p[3] = (v >> 24) & 0xFF


cdef inline void _put_u64(unsigned char* p, uint64_t v) noexcept:
    _put_u32(p, <uint32_t>(v & 0xFFFFFFFFu))
    _put_u32(p + 4, <uint32_t>(v >> 32))


cdef bytes _pack(uint32_t w0, uint32_t w1, uint32_t w2, int words, object values,
                 uint64_t timestamp):
    cdef Py_ssize_t count = len(values)
    cdef Py_ssize_t size = 4 * words + 16 * count
    cdef bytes out = PyBytes_FromStringAndSize(NULL, size)
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
    cdef int64_t value
    cdef Py_ssize_t written = 0
    _put_u32(p, w0)
    if words > 1:
        _put_u32(p + 4, w1)
    if words > 2:
        _put_u32(p + 8, w2)
    p += 4 * words
    for item in values:
        if written == count:
            raise ValueError("values changed length while packing")
        value = item  # OverflowError outside the signed 64-bit range
        _put_u64(p, <uint64_t>value)
        _put_u64(p + 8, timestamp)
        p += 16
        written += 1
    if written != count:
        raise ValueError("values changed length while packing")
    return out


cpdef bytes pack_reading_response(unsigned int header, object values, Py_ssize_t count,
                                  unsigned long long timestamp):
    """Return a SUCCESS READING_GET response: header, status 0, then per value
    (s64 value, u64 timestamp). Raises ValueError unless there are `count` values,
    OverflowError for a value outside s64, TypeError for a value not an int."""
    if len(values) != count:
        raise ValueError(f"{len(values)} values, expected {count}")
    return _pack(header, 0, 0, 2, values, timestamp)


cpdef bytes pack_readings(unsigned int w0, unsigned int w1, unsigned int w2, int words,
                          object values, unsigned long long timestamp):
    """Return `words` (1 to 3) u32 words w0, w1, w2 followed by the readings of
    `values` (s64 value, u64 timestamp each). Raises OverflowError for a value
    outside s64, ValueError for a bad word count."""
    if words < 1 or words > 3:
        raise ValueError("words must be 1, 2 or 3")
    return _pack(w0, w1, w2, words, values, timestamp)


def u32_at(object data, Py_ssize_t offset) -> int:
    """Return the little-endian u32 at `offset` of `data` (bytes or any buffer) without
    the tuple `struct.unpack_from` builds; IndexError when the 4 bytes are not all there."""
    cdef const unsigned char* p
    if offset < 0 or offset > len(data) - 4:
        raise IndexError(f"no u32 at offset {offset} of {len(data)} bytes")
    if type(data) is not bytes:
        return int.from_bytes(bytes(data[offset:offset + 4]), "little")
    p = <const unsigned char*>PyBytes_AS_STRING(data) + offset
    return p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


# Routing a request to its handler is the other per-request cost every message pays;
# doing it here keeps a READING_GET round trip to one Python call, the handler's.

cdef enum:
    ROUTE_MASK = 0x3FCFF  # protocol id (17:10) and message id (7:0)
    COMMAND_TYPE_MASK = 0x300
    RESPONSE_MINIMUM = 8  # header and status
    MAX_PAYLOAD = 128  # what Linux's 136-byte buffers leave after header and status


cdef bytes _status_response(uint32_t header, int status):
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 8)
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
    _put_u32(p, header)
    _put_u32(p + 4, <uint32_t>status)
    return out


cpdef bytes status_response(unsigned int header, int status):
    """Return a response of `header` and `status` with no payload."""
    return _status_response(header, status)


def ok_response(unsigned int header, bytes payload not None) -> bytes:
    """Return a SUCCESS response to `header` carrying `payload` (one allocation)."""
    cdef Py_ssize_t length = len(payload)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, RESPONSE_MINIMUM + length)
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
    _put_u32(p, header)
    _put_u32(p + 4, 0)
    memcpy(p + RESPONSE_MINIMUM, PyBytes_AS_STRING(payload), length)
    return out


cpdef object route(dict routes, object request, Py_ssize_t max_response, object error_type,
                   object not_a_command):
    """Answer `request` through `routes` (protocol id << 10 | message id ->
    (bytes needed, handler(header, request, room)); a key protocol id << 10 | 0x300 marks
    a known protocol).

    Returns b"" when no status fits or there is no header; NOT_SUPPORTED for an unknown
    protocol, NOT_FOUND for an unknown message of a known protocol; INVALID_PARAMETERS
    for a short request;
    `not_a_command(header)` for a message that is not a command; `error_type` raised by
    a handler (with a `status`) becomes that status; COMMS_ERROR for an answer longer
    than `max_response`. A handler's answer that is not bytes (a coroutine still to be
    driven) is returned as it is. Other exceptions propagate.
    """
    cdef Py_ssize_t length = len(request)
    cdef const unsigned char* p
    cdef bytes head
    cdef uint32_t header
    cdef Py_ssize_t room
    if length < 4 or max_response < RESPONSE_MINIMUM:
        return b""
    if type(request) is bytes:
        p = <const unsigned char*>PyBytes_AS_STRING(request)
    else:
        head = bytes(request[:4])
        p = <const unsigned char*>PyBytes_AS_STRING(head)
    header = p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)
    if header & COMMAND_TYPE_MASK:
        return not_a_command(header)
    entry = routes.get(header & ROUTE_MASK)
    if entry is None:
        if (header & (PROTOCOL_MASK << PROTOCOL_SHIFT)) | COMMAND_TYPE_MASK in routes:
            return _status_response(header, -4)  # NOT_FOUND
        return _status_response(header, -1)  # NOT_SUPPORTED
    needed, handler = <tuple>entry
    if length < <Py_ssize_t>needed:
        return _status_response(header, -2)  # INVALID_PARAMETERS
    room = max_response - RESPONSE_MINIMUM
    if room > MAX_PAYLOAD:
        room = MAX_PAYLOAD
    try:
        response = handler(header, request, room)
    except error_type as error:
        return _status_response(header, error.status)
    if type(response) is not bytes:
        return response
    if len(<bytes>response) > max_response:
        return _status_response(header, -7)  # COMMS_ERROR
    return response
