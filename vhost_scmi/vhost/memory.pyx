# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Guest memory shared by the VMM: mapped regions and checked address translation.

Each region arrives as a file descriptor plus (guest physical address, size,
VMM virtual address, offset in the fd). We map `mmap_offset + size` bytes of the
fd and translate guest-physical addresses (descriptors) and VMM-virtual addresses
(ring locations from SET_VRING_ADDR) into pointers. A translation succeeds only
when the whole [address, address + length) range lies inside one region: a
buffer crossing a region's end is refused, never turned into one host slice.

A VMM may shrink a region's file (ftruncate of an unsealed memfd) after we mapped it;
touching a page past the new end raises SIGBUS. A process-wide SIGBUS handler contains
that: when the faulting address lies in a mapped guest region, the pages from the fault
to the end of that mapping are replaced by anonymous zero pages, the region is marked
poisoned and the memory's fault count goes up; the access then completes on the
stand-in page. The queue engine turns a fault seen during a batch (or a poisoned
memory) into a broken queue. This costs nothing on the hot path (no setjmp per access),
and every access, including a future fast path's, is covered. Any other SIGBUS goes to
the handler installed before ours (or the default action).
"""

from libc.errno cimport errno
from libc.stdint cimport uint8_t, uint64_t, uintptr_t
from libc.string cimport memcpy, strerror
from posix.mman cimport MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE, mmap, munmap
from posix.stat cimport S_ISREG, fstat, struct_stat

cdef extern from *:
    """
    #include <signal.h>
    #include <stddef.h>
    #include <string.h>
    #include <sys/mman.h>
    #include <unistd.h>

    /* Returns 1 when the fault at `addr` was in guest memory and has been contained. */
    typedef int (*gm_contain_fn)(void *addr);
    static gm_contain_fn gm_contain = NULL;
    static struct sigaction gm_previous;

    static void gm_sigbus(int signum, siginfo_t *info, void *context)
    {
        /* si_code > 0: the kernel's, for a real access; kill() and raise() give <= 0. */
        int real = info != NULL && info->si_code > 0;
        if (real && gm_contain != NULL && gm_contain(info->si_addr))
            return;  /* the access is retried on the stand-in page */
        if (gm_previous.sa_handler != SIG_DFL && gm_previous.sa_handler != SIG_IGN) {
            if (gm_previous.sa_flags & SA_SIGINFO)
                gm_previous.sa_sigaction(signum, info, context);
            else
                gm_previous.sa_handler(signum);
            return;
        }
        /* The default action, as if we had never been installed: a real fault
           happens again when the access is retried, and is fatal then. */
        signal(SIGBUS, SIG_DFL);
        if (!real)
            raise(SIGBUS);
    }

    /* (Re)install the handler unless it is in place; 0, or -1 with errno. */
    static int gm_install(gm_contain_fn contain)
    {
        struct sigaction current, action;
        gm_contain = contain;
        if (sigaction(SIGBUS, NULL, &current) != 0)
            return -1;
        if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == gm_sigbus)
            return 0;
        memset(&action, 0, sizeof action);
        action.sa_sigaction = gm_sigbus;
        action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
        sigemptyset(&action.sa_mask);
        if (sigaction(SIGBUS, &action, &gm_previous) != 0)
            return -1;
        return 0;
    }

    /* Replace [start, end) by private anonymous zero pages (async-signal-safe: one syscall). */
    static int gm_stand_in(void *start, size_t length)
    {
        void *p = mmap(start, length, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        return p == MAP_FAILED ? -1 : 0;
    }
    """
    ctypedef int (*gm_contain_fn)(void *addr) noexcept nogil
    int gm_install(gm_contain_fn contain) noexcept nogil
    int gm_stand_in(void *start, size_t length) noexcept nogil
    long sysconf(int name) noexcept nogil
    int _SC_PAGESIZE

cdef uint64_t U64_MAX = 0xFFFFFFFFFFFFFFFF

# Every live GuestMemory, for the SIGBUS handler. Changed only with the GIL held, and
# guest memory is only touched with the GIL held, so the handler never sees it half-linked.
cdef FaultNode *_fault_nodes = NULL
cdef uintptr_t _page_mask = ~<uintptr_t>(sysconf(_SC_PAGESIZE) - 1)


cdef int _contain_fault(void *address) noexcept nogil:
    """SIGBUS inside a mapped guest region: stand-in pages from the fault on; 1 if handled."""
    cdef uintptr_t at = <uintptr_t>address
    cdef uintptr_t base, page
    cdef FaultNode *node = _fault_nodes
    cdef Region *region
    cdef int i
    while node != NULL:
        for i in range(node.count[0]):
            region = &node.regions[i]
            base = <uintptr_t>region.map_base
            if base <= at < base + region.map_length:
                page = at & _page_mask
                if gm_stand_in(<void *>page, base + region.map_length - page) != 0:
                    return 0
                region.poisoned = True
                node.poisoned[0] = True
                node.faults[0] += 1
                return 1
        node = node.next
    return 0


cdef void _install_fault_handler() except *:
    if gm_install(_contain_fault) != 0:
        raise OSError(errno, f"cannot install the SIGBUS handler: {strerror(errno).decode()}")


#: Most regions mapped at once (the answer to GET_MAX_MEM_SLOTS).
MAX_MEMORY_REGIONS = MAX_REGIONS


class GuestMemoryError(ValueError):
    """A region or an access was refused; the message says why."""


cdef inline bint _inside(uint64_t address, uint64_t length,
                         uint64_t start, uint64_t size) noexcept nogil:
    # Written so that no sum can wrap: address - start only when address >= start.
    if address < start:
        return False
    cdef uint64_t offset = address - start
    return offset <= size and length <= size - offset


cdef inline bint _overlap(uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size) noexcept nogil:
    # Both ranges are already known not to wrap.
    return a < b + b_size and b < a + a_size


cdef class GuestMemory:
    """The set of mapped guest memory regions of one VMM connection."""

    def __cinit__(self):
        global _fault_nodes
        self.count = 0
        self.last_hit = 0
        self.generation = 0
        self.faults = 0
        self.poisoned = False
        self.node.regions = self.regions
        self.node.count = &self.count
        self.node.faults = &self.faults
        self.node.poisoned = &self.poisoned
        self.node.prev = NULL
        self.node.next = _fault_nodes
        if _fault_nodes != NULL:
            _fault_nodes.prev = &self.node
        _fault_nodes = &self.node

    def __dealloc__(self):
        global _fault_nodes
        cdef int i
        for i in range(self.count):
            munmap(self.regions[i].map_base, self.regions[i].map_length)
        self.count = 0
        if self.node.prev != NULL:
            self.node.prev.next = self.node.next
        else:
            _fault_nodes = self.node.next
        if self.node.next != NULL:
            self.node.next.prev = self.node.prev

    # --- hot path (C) -----------------------------------------------------------------

    cdef uint8_t *gpa_to_host(self, uint64_t gpa, uint64_t length) noexcept nogil:
        """Return our pointer to guest-physical [gpa, gpa+length), or NULL if not one region's."""
        cdef int i = self.last_hit
        cdef Region *region
        if i < self.count:
            region = &self.regions[i]
            if _inside(gpa, length, region.gpa, region.size):
                return region.host + (gpa - region.gpa)
        for i in range(self.count):
            region = &self.regions[i]
            if _inside(gpa, length, region.gpa, region.size):
                self.last_hit = i
                return region.host + (gpa - region.gpa)
        return NULL

    cdef uint8_t *uaddr_to_host(self, uint64_t uaddr, uint64_t length) noexcept nogil:
        """Return our pointer to VMM-virtual [uaddr, uaddr+length), or NULL."""
        cdef int i
        cdef Region *region
        for i in range(self.count):
            region = &self.regions[i]
            if _inside(uaddr, length, region.uaddr, region.size):
                return region.host + (uaddr - region.uaddr)
        return NULL

    cdef unsigned long fault_count(self) noexcept nogil:
        """SIGBUS faults contained so far (a call, so that callers read it afresh)."""
        return self.faults

    # --- region management ---------------------------------------------------------------

    cdef void _update_poisoned(self) noexcept:
        cdef int i
        self.poisoned = False
        for i in range(self.count):
            if self.regions[i].poisoned:
                self.poisoned = True

    cdef _check_region(self, uint64_t gpa, uint64_t size, uint64_t uaddr, uint64_t mmap_offset,
                       int ignore_from, int ignore_to):
        if size == 0:
            raise GuestMemoryError("region size is 0")
        if gpa > U64_MAX - size or uaddr > U64_MAX - size or mmap_offset > U64_MAX - size:
            raise GuestMemoryError(
                f"region gpa={gpa:#x} uaddr={uaddr:#x} offset={mmap_offset:#x} "
                f"size={size:#x} wraps around")
        if mmap_offset + size > <uint64_t>(<size_t>-1 >> 1):
            raise GuestMemoryError(f"region offset+size {mmap_offset + size:#x} is too large")
        cdef int i
        cdef Region *other
        for i in range(self.count):
            if ignore_from <= i < ignore_to:
                continue
            other = &self.regions[i]
            if _overlap(gpa, size, other.gpa, other.size):
                raise GuestMemoryError(
                    f"region gpa {gpa:#x}+{size:#x} overlaps {other.gpa:#x}+{other.size:#x}")
            if _overlap(uaddr, size, other.uaddr, other.size):
                raise GuestMemoryError(
                    f"region uaddr {uaddr:#x}+{size:#x} overlaps "
                    f"{other.uaddr:#x}+{other.size:#x}")

    cdef _map_into(self, int slot, int fd, uint64_t gpa, uint64_t size, uint64_t uaddr,
                   uint64_t mmap_offset):
        cdef struct_stat st
        if fstat(fd, &st) != 0:
            raise GuestMemoryError(f"region fd {fd}: {strerror(errno).decode()}")
        # A mapping beyond the end of the file would fault (SIGBUS) on first touch.
        if not S_ISREG(st.st_mode):
            raise GuestMemoryError(f"region fd {fd} is not a regular file or memfd")
        if <uint64_t>st.st_size < mmap_offset + size:
            raise GuestMemoryError(
                f"region fd {fd} holds {st.st_size} bytes, fewer than offset+size "
                f"{mmap_offset + size}")
        # Installed again before each mapping, in case someone (faulthandler) replaced it.
        _install_fault_handler()
        cdef size_t length = <size_t>(mmap_offset + size)
        cdef void *base = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        if base == MAP_FAILED:
            raise GuestMemoryError(f"mmap of region fd {fd}: {strerror(errno).decode()}")
        cdef Region *region = &self.regions[slot]
        region.gpa = gpa
        region.size = size
        region.uaddr = uaddr
        region.mmap_offset = mmap_offset
        region.map_base = base
        region.map_length = length
        region.host = <uint8_t *>base + mmap_offset
        region.poisoned = False

    def add_region(self, int fd, uint64_t gpa, uint64_t size, uint64_t uaddr,
                   uint64_t mmap_offset) -> None:
        """Map one region of `fd` (the caller keeps and closes `fd`).

        Raises GuestMemoryError when the region is malformed, overlaps another,
        exceeds the slot count, or cannot be mapped.
        """
        if self.count >= MAX_REGIONS:
            raise GuestMemoryError(f"already {MAX_REGIONS} regions")
        self._check_region(gpa, size, uaddr, mmap_offset, 0, 0)
        self._map_into(self.count, fd, gpa, size, uaddr, mmap_offset)
        self.count += 1
        self.generation += 1

    def remove_region(self, uint64_t gpa, uint64_t size, uint64_t uaddr) -> None:
        """Unmap the region with exactly this guest address, size and VMM address."""
        cdef int i
        for i in range(self.count):
            if (self.regions[i].gpa == gpa and self.regions[i].size == size
                    and self.regions[i].uaddr == uaddr):
                munmap(self.regions[i].map_base, self.regions[i].map_length)
                self.count -= 1
                self.regions[i] = self.regions[self.count]
                self.last_hit = 0
                self.generation += 1
                self._update_poisoned()
                return
        raise GuestMemoryError(f"no region gpa={gpa:#x} size={size:#x} uaddr={uaddr:#x}")

    def replace(self, regions) -> None:
        """Replace every region by `regions`, a sequence of (fd, gpa, size, uaddr, mmap_offset).

        All-or-nothing: when one new region is refused, the old set stays mapped.
        """
        cdef int n = len(regions)
        if n > MAX_REGIONS:
            raise GuestMemoryError(f"{n} regions, more than {MAX_REGIONS}")
        cdef int old = self.count
        if old + n > MAX_REGIONS:
            # Not enough free slots to build the new set beside the old one.
            self.clear()
            old = 0
        cdef int i
        cdef int mapped = 0
        try:
            for i in range(n):
                fd, gpa, size, uaddr, mmap_offset = regions[i]
                # New regions are checked against each other, not against the old set.
                self.count = old + i
                self._check_region(gpa, size, uaddr, mmap_offset, 0, old)
                self._map_into(old + i, fd, gpa, size, uaddr, mmap_offset)
                mapped += 1
        except BaseException:
            for i in range(mapped):
                munmap(self.regions[old + i].map_base, self.regions[old + i].map_length)
            self.count = old
            raise
        for i in range(old):
            munmap(self.regions[i].map_base, self.regions[i].map_length)
        for i in range(n):
            self.regions[i] = self.regions[old + i]
        self.count = n
        self.last_hit = 0
        self.generation += 1
        self._update_poisoned()

    def clear(self) -> None:
        """Unmap every region."""
        cdef int i
        for i in range(self.count):
            munmap(self.regions[i].map_base, self.regions[i].map_length)
        self.count = 0
        self.last_hit = 0
        self.generation += 1
        self.poisoned = False

    # --- checked access from Python (tests, slow paths) ------------------------------------

    def __len__(self) -> int:
        return self.count

    @property
    def regions(self) -> list:
        """(gpa, size, uaddr, mmap_offset) of each mapped region."""
        return [(self.regions[i].gpa, self.regions[i].size, self.regions[i].uaddr,
                 self.regions[i].mmap_offset) for i in range(self.count)]

    def contains(self, uint64_t gpa, uint64_t length) -> bool:
        """Whether guest-physical [gpa, gpa+length) lies inside one region."""
        return self.gpa_to_host(gpa, length) != NULL

    def read(self, uint64_t gpa, uint64_t length) -> bytes:
        """Return `length` bytes of guest memory at `gpa`; GuestMemoryError if out of bounds."""
        cdef uint8_t *source = self.gpa_to_host(gpa, length)
        if source == NULL:
            raise GuestMemoryError(f"gpa {gpa:#x}+{length:#x} is not inside one region")
        return (<char *>source)[:length]

    def write(self, uint64_t gpa, const uint8_t[::1] data) -> None:
        """Copy `data` into guest memory at `gpa`; GuestMemoryError if out of bounds."""
        cdef uint64_t length = data.shape[0]
        cdef uint8_t *target = self.gpa_to_host(gpa, length)
        if target == NULL:
            raise GuestMemoryError(f"gpa {gpa:#x}+{length:#x} is not inside one region")
        if length:
            memcpy(target, &data[0], length)
