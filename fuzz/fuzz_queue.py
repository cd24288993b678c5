# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Fuzz the split-virtqueue engine with hostile rings in real mapped guest memory.

Two memfd regions, adjacent in guest-physical space (a buffer crossing from one into
the other must be refused), each mapped by GuestMemory between PROT_NONE guard pages
that this harness places and checks in /proc/self/maps: any access outside the
regions kills the process with SIGSEGV, which atheris reports as a crash. Each input
writes a descriptor table, an avail ring, indirect tables and raw bytes, picks the
queue size, ring addresses, base index and features, then runs process() or push().
Checked: the call returns (a per-input timeout catches a loop), serves at most one
ring's worth, hands the handler bytes no longer than max_request, and a refused ring
leaves the queue broken with a reason and the err eventfd signalled.

    python3 fuzz/fuzz_queue.py -runs=1000000 -timeout=5       # see fuzz/README.md
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
import struct
import sys

import atheris
from vhost_scmi.vhost.memory import GuestMemory
from vhost_scmi.vhost.virtqueue import ERROR_TEXT, SplitQueue

# The engine is compiled C that atheris cannot see into: the outcome of each input
# (which refusal, how much served) is turned into branches of this instrumented
# harness, so that inputs reaching new refusals are kept in the corpus.
logging.getLogger("vhost_scmi").setLevel(logging.CRITICAL)

PAGE = mmap.PAGESIZE
# (gpa, size, uaddr) of the two regions; region 1 starts where region 0 ends.
REGIONS = ((0x10000, 0x10000, 0x7F00_0000_0000), (0x20000, 0x4000, 0x7F00_1000_0000))
DESC = struct.Struct("<QIHH")
FLAG_NAMES = ("next", "write", "indirect")


_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.mmap.restype = ctypes.c_void_p
_LIBC.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long)
_LIBC.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_PROT_NONE, _MAP_PRIVATE, _MAP_ANONYMOUS, _MAP_FIXED_NOREPLACE = 0, 0x02, 0x20, 0x100000
_MAP_FAILED = ctypes.c_void_p(-1).value


def _reserve(address: int | None, length: int) -> int:
    """Map `length` bytes of PROT_NONE (at exactly `address` if given); kept forever."""
    flags = _MAP_PRIVATE | _MAP_ANONYMOUS | (_MAP_FIXED_NOREPLACE if address else 0)
    got = _LIBC.mmap(address, length, _PROT_NONE, flags, -1, 0)
    if got in (None, _MAP_FAILED) or (address and got != address):
        raise OSError(ctypes.get_errno(), f"cannot reserve {length:#x} bytes at {address}")
    return got


def _guest_mapping(name: str, size: int) -> tuple[int, int]:
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) > 5 and fields[5] == name:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                if end - start == size:
                    return start, end
    raise RuntimeError(f"{name} is not mapped")


def _setup() -> tuple[GuestMemory, list[mmap.mmap]]:
    """Map both regions into GuestMemory, each between two PROT_NONE guard pages.

    A PROT_NONE block of size + 2 pages is reserved and its middle unmapped, so that
    the kernel's next mapping of that size lands in the hole; where it does not, that
    spot is blocked and the mapping tried again. Checked from /proc/self/maps.
    """
    memory = GuestMemory()
    views = []
    for number, (gpa, size, uaddr) in enumerate(REGIONS):
        name = f"/memfd:fuzz-ram{number}"
        fd = os.memfd_create(name[len("/memfd:"):], os.MFD_CLOEXEC)
        os.ftruncate(fd, size)
        for _attempt in range(50):
            block = _reserve(None, size + 2 * PAGE)
            _LIBC.munmap(block + PAGE, size)
            memory.add_region(fd, gpa, size, uaddr, 0)
            start, end = _guest_mapping(name, size)
            if start == block + PAGE:
                break
            memory.remove_region(gpa, size, uaddr)
            _reserve(start, end - start)  # keep the kernel from choosing it again
            _reserve(block + PAGE, size)
        else:
            sys.exit(f"could not place guard pages around guest region {number}")
        views.append(mmap.mmap(fd, size))
        os.close(fd)
    return memory, views


MEMORY, VIEWS = _setup()
ERR_FD = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
CALL_FD = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
KICK_FD = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
MAX_REQUEST = 4096


def _gpa(fdp: atheris.FuzzedDataProvider) -> int:
    """A guest address: mostly inside or at the edges of the regions, sometimes anything."""
    pick = fdp.ConsumeIntInRange(0, 7)
    if pick == 0:
        return fdp.ConsumeIntInRange(0, (1 << 64) - 1)
    if pick == 1:  # near a region edge
        gpa, size, _ = REGIONS[fdp.ConsumeIntInRange(0, 1)]
        return gpa + size - fdp.ConsumeIntInRange(0, 64)
    gpa, size, _ = REGIONS[pick % 2]
    return gpa + fdp.ConsumeIntInRange(0, size)


def _length(fdp: atheris.FuzzedDataProvider) -> int:
    pick = fdp.ConsumeIntInRange(0, 7)
    if pick == 0:
        return fdp.ConsumeIntInRange(0, 0xFFFFFFFF)
    return fdp.ConsumeIntInRange(0, 64 << pick)


def _ring_uaddr(fdp: atheris.FuzzedDataProvider, offset: int) -> int:
    if fdp.ConsumeIntInRange(0, 15) == 0:
        return fdp.ConsumeIntInRange(0, (1 << 64) - 1) & ~15
    _gpa0, size, uaddr = REGIONS[0]
    if fdp.ConsumeIntInRange(0, 7) == 0:
        return uaddr + size - fdp.ConsumeIntInRange(0, 64) * 16
    return uaddr + offset


class Handler:
    def __init__(self, fdp: atheris.FuzzedDataProvider) -> None:
        self.response = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300))
        self.calls = 0
        self.raise_on = fdp.ConsumeIntInRange(0, 8)

    def __call__(self, request: bytes, writable: int) -> bytes:
        assert type(request) is bytes and len(request) <= MAX_REQUEST, len(request)
        assert 0 <= writable <= 0xFFFFFFFF, writable
        self.calls += 1
        if self.calls == self.raise_on:
            raise RuntimeError("handler failure (counted, not fatal)")
        return self.response


@atheris.instrument_func
def _outcome(queue: SplitQueue, served: int) -> int:
    """A distinct branch per refusal reason and per amount served."""
    score = 0
    for code, text in enumerate(ERROR_TEXT):
        if queue.error == text:
            score = code
    if served == 0:
        score += 100
    elif served == 1:
        score += 200
    elif served < 8:
        score += 300
    elif served < 64:
        score += 400
    else:
        score += 500
    return score


@atheris.instrument_func
def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    size = 1 << fdp.ConsumeIntInRange(0, 8)
    ring = VIEWS[0]
    ring[:0x4000] = bytes(0x4000)
    # Descriptor table at 0, avail at 0x1000, used at 0x2000, indirect tables at 0x3000.
    for index in range(size + fdp.ConsumeIntInRange(0, 2)):
        if index >= size and index * 16 >= 0x1000:
            break
        flags = fdp.ConsumeIntInRange(0, 7) if fdp.ConsumeIntInRange(0, 3) else \
            fdp.ConsumeIntInRange(0, 0xFFFF)
        next_ = fdp.ConsumeIntInRange(0, size + 1) if fdp.ConsumeBool() else \
            fdp.ConsumeIntInRange(0, 0xFFFF)
        gpa = _gpa(fdp)
        if flags & 4 and fdp.ConsumeBool():
            gpa = REGIONS[0][0] + 0x3000 + 16 * fdp.ConsumeIntInRange(0, 64)
        DESC.pack_into(ring, 16 * index, gpa, _length(fdp), flags, next_)
    # Indirect tables: structured entries, then raw bytes.
    for index in range(fdp.ConsumeIntInRange(0, 32)):
        DESC.pack_into(ring, 0x3000 + 16 * index, _gpa(fdp), _length(fdp),
                       fdp.ConsumeIntInRange(0, 7), fdp.ConsumeIntInRange(0, 40))
    base = fdp.ConsumeIntInRange(0, 0xFFFF)
    advance = fdp.ConsumeIntInRange(0, size + 2) if fdp.ConsumeIntInRange(0, 7) else \
        fdp.ConsumeIntInRange(0, 0xFFFF)
    struct.pack_into("<HH", ring, 0x1000, fdp.ConsumeIntInRange(0, 3),
                     (base + advance) & 0xFFFF)
    for slot in range(size):
        head = fdp.ConsumeIntInRange(0, size) if fdp.ConsumeIntInRange(0, 7) else \
            fdp.ConsumeIntInRange(0, 0xFFFF)
        struct.pack_into("<H", ring, 0x1004 + 2 * slot, head)
    struct.pack_into("<H", ring, 0x1004 + 2 * size, fdp.ConsumeIntInRange(0, 0xFFFF))
    raw = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 512))
    VIEWS[1][:len(raw)] = raw

    queue = SplitQueue(MEMORY, 0, 256, MAX_REQUEST)
    try:
        queue.set_size(size)
        queue.set_addresses(_ring_uaddr(fdp, 0), _ring_uaddr(fdp, 0x2000),
                            _ring_uaddr(fdp, 0x1000) & ~1)
        queue.set_base(base)
        queue.event_idx = fdp.ConsumeBool()
        queue.notify_on_empty = fdp.ConsumeBool()
        queue.indirect_desc = fdp.ConsumeBool()
        queue.set_err_fd(os.dup(ERR_FD))
        queue.set_call_fd(os.dup(CALL_FD))
        queue.set_kick_fd(os.dup(KICK_FD))
        queue.start()
        queue.set_enabled(True)
        handler = Handler(fdp)
        for _round in range(fdp.ConsumeIntInRange(1, 3)):
            before = queue.served
            if fdp.ConsumeBool():
                served = queue.process(handler)
                assert 0 <= served <= size, (served, size)
                assert queue.served - before == served
            else:
                queue.has_buffers()
                queue.push(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64)))
                assert queue.served - before <= 1
            _outcome(queue, queue.served - before)
            if queue.broken:
                assert isinstance(queue.error, str) and queue.error, queue.error
                try:
                    os.eventfd_read(ERR_FD)
                except BlockingIOError:
                    raise AssertionError("broken queue did not signal its err fd") from None
                break
    finally:
        queue.close_fds()
    assert not MEMORY.poisoned


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
