# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""GuestMemory: mapping memfd regions, checked translation, replacement."""

from __future__ import annotations

import mmap
import os

import pytest
from vhost_scmi.vhost.memory import MAX_MEMORY_REGIONS, GuestMemory, GuestMemoryError

PAGE = mmap.PAGESIZE


def memfd(size: int, fill: bytes = b"") -> int:
    fd = os.memfd_create("guest-ram", os.MFD_CLOEXEC)
    os.ftruncate(fd, size)
    if fill:
        os.pwrite(fd, fill, 0)
    return fd


@pytest.fixture
def fds():
    opened: list[int] = []

    def make(size: int, fill: bytes = b"") -> int:
        opened.append(memfd(size, fill))
        return opened[-1]

    yield make
    for fd in opened:
        os.close(fd)


def own_mappings() -> int:
    with open("/proc/self/maps") as maps:
        return sum("guest-ram" in line for line in maps)


def test_read_write_through_shared_mapping(fds) -> None:
    fd = fds(4 * PAGE)
    memory = GuestMemory()
    memory.add_region(fd, 0x1000_0000, 4 * PAGE, 0x7000_0000, 0)
    memory.write(0x1000_0010, b"hello")
    assert os.pread(fd, 5, 0x10) == b"hello"
    os.pwrite(fd, b"world", 0x20)
    assert memory.read(0x1000_0020, 5) == b"world"
    assert memory.regions == [(0x1000_0000, 4 * PAGE, 0x7000_0000, 0)]


def test_mmap_offset_is_honoured(fds) -> None:
    fd = fds(3 * PAGE)
    os.pwrite(fd, b"region-start", PAGE)
    memory = GuestMemory()
    memory.add_region(fd, 0x8000, 2 * PAGE, 0x9000_0000, PAGE)
    assert memory.read(0x8000, 12) == b"region-start"


def test_access_crossing_region_end_is_refused(fds) -> None:
    memory = GuestMemory()
    memory.add_region(fds(PAGE), 0x10000, PAGE, 0x50000, 0)
    memory.add_region(fds(PAGE), 0x10000 + PAGE, PAGE, 0x50000 + PAGE, 0)
    assert memory.contains(0x10000, PAGE)
    assert memory.contains(0x10000 + PAGE - 1, 1)
    # Adjacent regions: a buffer spanning both is still not one host slice.
    assert not memory.contains(0x10000 + PAGE - 1, 2)
    with pytest.raises(GuestMemoryError):
        memory.read(0x10000 + PAGE - 4, 8)
    with pytest.raises(GuestMemoryError):
        memory.write(0x10000 + 2 * PAGE - 1, b"xy")
    assert not memory.contains(0xFFFF, 1)
    assert not memory.contains(0xFFFF_FFFF_FFFF_FFFF, 1)
    assert not memory.contains(0x10000, 0xFFFF_FFFF_FFFF_FFFF)


@pytest.mark.parametrize("gpa,size,uaddr,offset,reason", [
    (0x1000, 0, 0x1000, 0, "size is 0"),
    (0xFFFF_FFFF_FFFF_F000, 0x2000, 0x1000, 0, "wraps"),
    (0x1000, 0x2000, 0xFFFF_FFFF_FFFF_F000, 0, "wraps"),
    (0x1000, PAGE, 0x1000, 0xFFFF_FFFF_FFFF_F000, "wraps"),
    (0x1000, 64 * PAGE, 0x1000, 0, "fewer than"),  # the memfd is smaller
    (0x1000, PAGE, 0x1000, 4 * PAGE, "fewer than"),
])
def test_malformed_regions_are_refused(fds, gpa, size, uaddr, offset, reason) -> None:
    memory = GuestMemory()
    with pytest.raises(GuestMemoryError, match=reason):
        memory.add_region(fds(4 * PAGE), gpa, size, uaddr, offset)
    assert len(memory) == 0


def test_overlapping_regions_are_refused(fds) -> None:
    memory = GuestMemory()
    memory.add_region(fds(4 * PAGE), 0x10000, 4 * PAGE, 0x90000, 0)
    with pytest.raises(GuestMemoryError, match="overlaps"):
        memory.add_region(fds(PAGE), 0x10000 + PAGE, PAGE, 0x200000, 0)
    with pytest.raises(GuestMemoryError, match="overlaps"):
        memory.add_region(fds(PAGE), 0x200000, PAGE, 0x90000 + 3 * PAGE, 0)
    assert len(memory) == 1


def test_non_regular_fd_is_refused() -> None:
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(GuestMemoryError, match="regular file"):
            GuestMemory().add_region(read_end, 0, PAGE, 0, 0)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_closed_fd_is_refused() -> None:
    fd = memfd(PAGE)
    os.close(fd)
    with pytest.raises(GuestMemoryError):
        GuestMemory().add_region(fd, 0, PAGE, 0, 0)


def test_slot_limit(fds) -> None:
    memory = GuestMemory()
    fd = fds(PAGE)
    for slot in range(MAX_MEMORY_REGIONS):
        memory.add_region(fd, slot * PAGE, PAGE, 0x100000 + slot * PAGE, 0)
    with pytest.raises(GuestMemoryError, match="already"):
        memory.add_region(fd, 0x1000_0000, PAGE, 0x1000_0000, 0)
    assert len(memory) == MAX_MEMORY_REGIONS
    memory.clear()
    assert len(memory) == 0


def test_remove_region_unmaps_it(fds) -> None:
    before = own_mappings()
    memory = GuestMemory()
    memory.add_region(fds(PAGE), 0x0, PAGE, 0x40000, 0)
    memory.add_region(fds(PAGE), 0x10000, PAGE, 0x50000, 0)
    assert own_mappings() == before + 2
    generation = memory.generation
    with pytest.raises(GuestMemoryError, match="no region"):
        memory.remove_region(0x10000, PAGE, 0x40000)  # uaddr must match too
    memory.remove_region(0x0, PAGE, 0x40000)
    assert memory.generation != generation
    assert own_mappings() == before + 1
    assert not memory.contains(0x0, 1)
    assert memory.contains(0x10000, PAGE)


def test_replace_unmaps_the_old_set(fds) -> None:
    before = own_mappings()
    memory = GuestMemory()
    memory.replace([(fds(PAGE, b"old"), 0x0, PAGE, 0x40000, 0)])
    memory.replace([(fds(PAGE, b"new"), 0x0, PAGE, 0x40000, 0),
                    (fds(PAGE), 0x10000, PAGE, 0x50000, 0)])
    assert memory.read(0, 3) == b"new"
    assert own_mappings() == before + 2
    del memory
    assert own_mappings() == before


def test_failed_replace_keeps_the_old_set(fds) -> None:
    before = own_mappings()
    memory = GuestMemory()
    memory.replace([(fds(PAGE, b"old"), 0x0, PAGE, 0x40000, 0)])
    with pytest.raises(GuestMemoryError, match="overlaps"):
        memory.replace([(fds(PAGE), 0x0, PAGE, 0x40000, 0),
                        (fds(PAGE), 0x0, PAGE, 0x80000, 0)])
    assert memory.read(0, 3) == b"old"
    assert own_mappings() == before + 1


def test_memory_survives_the_fd_being_closed() -> None:
    fd = memfd(PAGE, b"kept")
    memory = GuestMemory()
    memory.add_region(fd, 0x0, PAGE, 0x0, 0)
    os.close(fd)
    assert memory.read(0, 4) == b"kept"
