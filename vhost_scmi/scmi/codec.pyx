# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""SCMI message header codec.

Header layout (32-bit little endian): bits 7:0 message id, 9:8 message type,
17:10 protocol id, 27:18 token; bits 31:28 are reserved and ignored on input.
"""

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
