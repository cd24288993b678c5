# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
# C-level interface of GuestMemory, for the virtqueue engine.

from libc.stdint cimport uint8_t, uint64_t

cdef enum:
    # Most regions mapped at once (GET_MAX_MEM_SLOTS answers this).
    MAX_REGIONS = 32


cdef struct Region:
    uint64_t gpa           # guest physical address of the first byte
    uint64_t size          # bytes of guest memory in the region
    uint64_t uaddr         # the VMM's virtual address of the first byte
    uint64_t mmap_offset   # where the region starts in the fd
    uint8_t *host          # our address of the first byte (map_base + mmap_offset)
    void *map_base         # what mmap returned
    size_t map_length      # what was mapped (mmap_offset + size)
    bint poisoned          # a SIGBUS hit it: pages past the fault are anonymous stand-ins


# The SIGBUS handler's view of one GuestMemory (a list linked through every live one).
cdef struct FaultNode:
    FaultNode *prev
    FaultNode *next
    Region *regions
    int *count
    unsigned long *faults
    bint *poisoned


cdef class GuestMemory:
    cdef Region regions[MAX_REGIONS]
    cdef int count
    cdef int last_hit
    # Bumped on every change of the region list, so that cached ring pointers
    # are translated again before use.
    cdef readonly unsigned long generation
    # SIGBUS faults contained in this memory's mappings (the VMM shrank a region's file),
    # and whether a still-mapped region holds stand-in pages since then.
    cdef readonly unsigned long faults
    cdef readonly bint poisoned
    cdef FaultNode node

    cdef uint8_t *gpa_to_host(self, uint64_t gpa, uint64_t length) noexcept nogil
    cdef uint8_t *uaddr_to_host(self, uint64_t uaddr, uint64_t length) noexcept nogil
    cdef _check_region(self, uint64_t gpa, uint64_t size, uint64_t uaddr,
                       uint64_t mmap_offset, int ignore_from, int ignore_to)
    cdef unsigned long fault_count(self) noexcept nogil
    cdef void _update_poisoned(self) noexcept
    cdef _map_into(self, int slot, int fd, uint64_t gpa, uint64_t size, uint64_t uaddr,
                   uint64_t mmap_offset)
