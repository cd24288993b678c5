# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""vhost-user wire protocol: request numbers, flags, feature bits and message layouts.

Numbers follow QEMU's `docs/interop/vhost-user.rst`. Every integer on the wire is
little endian. A message is a 12-byte header (`request`, `flags`, `size`) followed
by `size` bytes of payload; file descriptors travel as SCM_RIGHTS ancillary data on
the same `sendmsg`.
"""

from __future__ import annotations

import struct
from enum import IntEnum, IntFlag


class Request(IntEnum):
    """Front-end → back-end request numbers."""

    GET_FEATURES = 1
    SET_FEATURES = 2
    SET_OWNER = 3
    RESET_OWNER = 4
    SET_MEM_TABLE = 5
    SET_LOG_BASE = 6
    SET_LOG_FD = 7
    SET_VRING_NUM = 8
    SET_VRING_ADDR = 9
    SET_VRING_BASE = 10
    GET_VRING_BASE = 11
    SET_VRING_KICK = 12
    SET_VRING_CALL = 13
    SET_VRING_ERR = 14
    GET_PROTOCOL_FEATURES = 15
    SET_PROTOCOL_FEATURES = 16
    GET_QUEUE_NUM = 17
    SET_VRING_ENABLE = 18
    SEND_RARP = 19
    NET_SET_MTU = 20
    SET_BACKEND_REQ_FD = 21
    IOTLB_MSG = 22
    SET_VRING_ENDIAN = 23
    GET_CONFIG = 24
    SET_CONFIG = 25
    CREATE_CRYPTO_SESSION = 26
    CLOSE_CRYPTO_SESSION = 27
    POSTCOPY_ADVISE = 28
    POSTCOPY_LISTEN = 29
    POSTCOPY_END = 30
    GET_INFLIGHT_FD = 31
    SET_INFLIGHT_FD = 32
    GPU_SET_SOCKET = 33
    RESET_DEVICE = 34
    VRING_KICK = 35
    GET_MAX_MEM_SLOTS = 36
    ADD_MEM_REG = 37
    REM_MEM_REG = 38
    SET_STATUS = 39
    GET_STATUS = 40
    GET_SHARED_OBJECT = 41
    SET_DEVICE_STATE_FD = 42
    CHECK_DEVICE_STATE = 43


#: Requests whose specification always calls for a reply message, whether or not
#: REPLY_ACK was negotiated. We answer the ones we do not implement with a failure.
REQUESTS_WITH_REPLY = frozenset({
    Request.GET_FEATURES, Request.GET_PROTOCOL_FEATURES, Request.GET_QUEUE_NUM,
    Request.GET_VRING_BASE, Request.GET_CONFIG, Request.CREATE_CRYPTO_SESSION,
    Request.POSTCOPY_ADVISE, Request.GET_INFLIGHT_FD, Request.GET_MAX_MEM_SLOTS,
    Request.GET_STATUS, Request.GET_SHARED_OBJECT, Request.SET_DEVICE_STATE_FD,
    Request.CHECK_DEVICE_STATE, Request.SET_LOG_BASE,
})


class HeaderFlag(IntFlag):
    """Bits of the header's `flags` word."""

    VERSION_MASK = 0x3
    REPLY = 1 << 2
    NEED_REPLY = 1 << 3


#: The only protocol version there is.
VERSION = 1


class ProtocolFeature(IntEnum):
    """VHOST_USER_PROTOCOL_F_* bit numbers (GET/SET_PROTOCOL_FEATURES)."""

    MQ = 0
    LOG_SHMFD = 1
    RARP = 2
    REPLY_ACK = 3
    NET_MTU = 4
    BACKEND_REQ = 5
    CROSS_ENDIAN = 6
    CRYPTO_SESSION = 7
    PAGEFAULT = 8
    CONFIG = 9
    BACKEND_SEND_FD = 10
    HOST_NOTIFIER = 11
    INFLIGHT_SHMFD = 12
    RESET_DEVICE = 13
    INBAND_NOTIFICATIONS = 14
    CONFIGURE_MEM_SLOTS = 15
    STATUS = 16
    XEN_MMAP = 17
    SHARED_OBJECT = 18
    DEVICE_STATE = 19


class VirtioFeature(IntEnum):
    """Device-independent virtio feature bit numbers (bits 24 and up)."""

    NOTIFY_ON_EMPTY = 24
    ANY_LAYOUT = 27
    RING_INDIRECT_DESC = 28
    RING_EVENT_IDX = 29
    #: Not a virtio bit: vhost-user's VHOST_USER_F_PROTOCOL_FEATURES.
    PROTOCOL_FEATURES = 30
    VERSION_1 = 32
    ACCESS_PLATFORM = 33
    RING_PACKED = 34
    RING_RESET = 40


def bit(number: int) -> int:
    """Return the mask of feature bit `number`."""
    return 1 << number


# Payload bit of SET_VRING_KICK/CALL/ERR: no file descriptor accompanies the message.
VRING_INDEX_MASK = 0xFF
VRING_NOFD_MASK = 1 << 8

#: SET_MEM_TABLE carries at most this many regions (VHOST_MEMORY_BASELINE_NREGIONS).
MEM_TABLE_MAX_REGIONS = 8

# --- byte layouts -------------------------------------------------------------------

#: u32 request, u32 flags, u32 size.
HEADER = struct.Struct("<III")
#: A single u64 (features, queue count, status, memory slots, ack, vring fd index).
U64 = struct.Struct("<Q")
#: struct vhost_vring_state: u32 index, u32 num.
VRING_STATE = struct.Struct("<II")
#: struct vhost_vring_addr: u32 index, u32 flags, u64 desc, used, avail, log (VMM virtual).
VRING_ADDR = struct.Struct("<IIQQQQ")
#: u32 number of regions, u32 padding (then the regions).
MEM_TABLE_HEADER = struct.Struct("<II")
#: One region: u64 guest_phys_addr, memory_size, userspace_addr, mmap_offset.
MEM_REGION = struct.Struct("<QQQQ")
#: ADD_MEM_REG / REM_MEM_REG: u64 padding, then one region.
MEM_REG_MSG = struct.Struct("<Q32s")

#: Largest message body we accept (the biggest we implement is a 8-region memory table).
MAX_BODY_SIZE = 4096
#: Most file descriptors one message may carry.
MAX_FDS = 32
