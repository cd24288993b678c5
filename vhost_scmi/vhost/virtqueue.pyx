# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The device side of a virtio split virtqueue, living in guest memory.

`SplitQueue.process(handler)` serves every request the driver has made available,
in one call: for each descriptor chain it gathers the driver-readable part into a
`bytes`, calls `handler(request, writable_len)` once, scatters the returned bytes
into the device-writable part, and adds a used entry. A handler that cannot answer
at once calls `defer()` and returns None: the chain is held, and answered later with
`complete(ticket, data)`, out of order (virtio lets a device use buffers in any order).
`SplitQueue.push(data)` fills
one driver-posted buffer (a device-to-driver queue such as an event queue: buffers
stay in the avail ring until there is something to deliver).

The ring and the descriptors are written by the guest and must be treated as
hostile: every index, address and length is checked here before use (release
builds compile without Cython's own bounds checks). A malformed ring or chain
marks the queue broken; it stays broken until it is set up again, and the VMM is
told through the SET_VRING_ERR eventfd. Requests before the bad one are served.
"""

import logging

from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_Check,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from posix.unistd cimport close, read

from .memory cimport GuestMemory

log = logging.getLogger(__name__)

cdef extern from *:
    """
    #include <stdint.h>
    #include <unistd.h>
    /* Ring indexes are shared with another CPU: the driver publishes avail->idx
       after filling the ring entries (so we load it with acquire), and we publish
       used->idx after filling the used entries (store with release). The full
       fences order our index store against our later load of the driver's
       suppression fields, as the virtio memory model requires. */
    static inline uint16_t vq_load_acquire16(const uint16_t *p)
    { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline uint16_t vq_load_relaxed16(const uint16_t *p)
    { return __atomic_load_n(p, __ATOMIC_RELAXED); }
    static inline void vq_store_release16(uint16_t *p, uint16_t v)
    { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline void vq_store_relaxed16(uint16_t *p, uint16_t v)
    { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
    static inline void vq_full_fence(void)
    { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
    /* Add 1 to an eventfd; a full counter (EAGAIN) already means "signalled". */
    static inline int vq_signal_fd(int fd)
    {
        uint64_t one = 1;
        ssize_t n;
        do { n = write(fd, &one, sizeof one); } while (n < 0 && errno == EINTR);
        return n == (ssize_t)sizeof one || errno == EAGAIN ? 0 : -1;
    }
    """
    uint16_t vq_load_acquire16(const uint16_t *p) noexcept nogil
    uint16_t vq_load_relaxed16(const uint16_t *p) noexcept nogil
    void vq_store_release16(uint16_t *p, uint16_t v) noexcept nogil
    void vq_store_relaxed16(uint16_t *p, uint16_t v) noexcept nogil
    void vq_full_fence() noexcept nogil
    int vq_signal_fd(int fd) noexcept nogil


# Descriptor flags (virtio 1.x, split ring).
cdef enum:
    DESC_F_NEXT = 1
    DESC_F_WRITE = 2
    DESC_F_INDIRECT = 4
    AVAIL_F_NO_INTERRUPT = 1
    DESC_SIZE = 16
    USED_ELEM_SIZE = 8
    MAX_CHAIN_BYTES = 0xFFFFFFFF

#: Largest queue size a back-end may be configured with.
MAX_QUEUE_SIZE = 1024

# Why a chain or ring was refused (index into ERROR_TEXT).
cdef enum ChainError:
    OK = 0
    E_HEAD_RANGE
    E_NEXT_RANGE
    E_TOO_LONG
    E_NESTED_INDIRECT
    E_INDIRECT_WITH_NEXT
    E_INDIRECT_LENGTH
    E_INDIRECT_ADDRESS
    E_INDIRECT_NOT_NEGOTIATED
    E_BUFFER_ADDRESS
    E_READ_AFTER_WRITE
    E_CHAIN_BYTES
    E_AVAIL_INDEX
    E_RING_ADDRESS
    E_MEMORY_FAULT

ERROR_TEXT = (
    "no error",
    "descriptor head index out of range",
    "descriptor next index out of range",
    "descriptor chain longer than its table (loop?)",
    "indirect descriptor inside an indirect table",
    "indirect descriptor with the NEXT flag",
    "indirect table length is zero, not a multiple of 16, or longer than the queue",
    "indirect table is not inside one guest memory region",
    "indirect descriptor without VIRTIO_F_INDIRECT_DESC",
    "buffer is not inside one guest memory region",
    "driver-readable descriptor after a device-writable one",
    "descriptor chain longer than 4 GiB",
    "avail index moved by more than the queue size",
    "ring is not inside one guest memory region",
    "guest memory fault (the VMM shrank a region's file)",
)


cdef struct Descriptor:
    uint64_t addr
    uint32_t len
    uint16_t flags
    uint16_t next


cdef struct Segment:
    uint8_t *host
    uint32_t length


cdef inline bint need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx) noexcept nogil:
    # The driver asked to be signalled when the used index passes `event`.
    return <uint16_t>(new_idx - event - 1) < <uint16_t>(new_idx - old_idx)


def memory_fence() -> None:
    """A full memory barrier, for a driver written in Python (the in-tree front-end)."""
    vq_full_fence()


cdef class SplitQueue:
    """One split virtqueue: ring state, notification fds, and the request engine."""

    cdef GuestMemory memory
    cdef readonly int index
    cdef readonly unsigned int max_size
    cdef readonly unsigned int size
    cdef uint64_t desc_uaddr, avail_uaddr, used_uaddr
    cdef readonly bint addresses_set
    # Pointers into guest memory, valid while mapped_generation == memory.generation.
    cdef uint8_t *desc
    cdef uint16_t *avail
    cdef uint8_t *used
    cdef unsigned long mapped_generation
    cdef bint mapped
    cdef readonly uint16_t next_avail
    cdef readonly uint16_t next_used
    cdef uint16_t signalled_used
    cdef bint signalled_used_valid
    # Negotiated features that change the engine's behaviour.
    cdef public bint event_idx
    cdef public bint notify_on_empty
    cdef public bint indirect_desc
    cdef readonly bint started
    cdef readonly bint enabled
    cdef readonly bint broken
    cdef readonly str error
    cdef int _kick_fd, _call_fd, _err_fd
    # Scratch space for one chain: the readable segments, then the writable ones.
    cdef Segment *segments
    cdef unsigned int n_segments
    cdef unsigned int n_readable
    cdef uint64_t readable_bytes
    cdef uint64_t writable_bytes
    #: Requests with a longer readable part are completed with 0 bytes, unread.
    cdef public Py_ssize_t max_request
    #: Statistics: requests served, call signals sent, handler exceptions.
    cdef readonly unsigned long long served
    cdef readonly unsigned long long signals
    cdef readonly unsigned long long handler_errors
    # Out-of-order completion: the head being handled (-1 outside a handler call),
    # whether its handler deferred it, the heads held, and the generation of the ring
    # (a ticket from before a reset or stop answers nothing).
    cdef int _current_head
    cdef bint _deferred
    cdef set _held
    cdef unsigned int _generation

    def __cinit__(self, GuestMemory memory not None, int index, unsigned int max_size=MAX_QUEUE_SIZE,
                  Py_ssize_t max_request=65536):
        if max_size == 0 or max_size > 32768 or (max_size & (max_size - 1)):
            raise ValueError(f"max queue size {max_size} is not a power of two <= 32768")
        self.memory = memory
        self.index = index
        self.max_size = max_size
        self.max_request = max_request
        self._kick_fd = -1
        self._call_fd = -1
        self._err_fd = -1
        self.error = None
        self._current_head = -1
        self._held = set()
        self._generation = 0
        # A chain is at most one table of `size` plus one indirect table of `size`.
        self.segments = <Segment *>malloc(2 * max_size * sizeof(Segment))
        if self.segments == NULL:
            raise MemoryError()
        self.reset()

    def __dealloc__(self):
        free(self.segments)
        self.segments = NULL
        for fd in (self._kick_fd, self._call_fd, self._err_fd):
            if fd >= 0:
                close(fd)

    # --- configuration (vhost-user messages) --------------------------------------------------

    def reset(self) -> None:
        """Back to the initial state: stopped, disabled, unconfigured, not broken.

        Keeps the call and err fds (the VMM may not send them again); closes the kick fd.
        """
        self.size = 0
        self.addresses_set = False
        self.desc_uaddr = self.avail_uaddr = self.used_uaddr = 0
        self.mapped = False
        self.next_avail = 0
        self.next_used = 0
        self.signalled_used_valid = False
        self.started = False
        self.enabled = False
        self.broken = False
        self.error = None
        self._forget_held()
        self.set_kick_fd(-1)

    def set_size(self, unsigned int size) -> None:
        """SET_VRING_NUM: ValueError unless a power of two in 1..max_size."""
        if size == 0 or size > self.max_size or (size & (size - 1)):
            raise ValueError(f"queue size {size} is not a power of two in 1..{self.max_size}")
        self.size = size
        self.mapped = False
        self._clear_broken()

    def set_addresses(self, uint64_t desc, uint64_t used, uint64_t avail) -> None:
        """SET_VRING_ADDR (VMM virtual addresses): ValueError if misaligned."""
        if desc % 16 or avail % 2 or used % 4:
            raise ValueError(
                f"ring addresses desc={desc:#x} avail={avail:#x} used={used:#x} are misaligned")
        self.desc_uaddr = desc
        self.used_uaddr = used
        self.avail_uaddr = avail
        self.addresses_set = True
        self.mapped = False
        self._clear_broken()

    def addresses_valid(self) -> bool:
        """Whether the configured rings lie inside guest memory as it is now."""
        return self.size != 0 and self.addresses_set and self._map()

    def set_base(self, unsigned int base) -> None:
        """SET_VRING_BASE: the next avail index to process (and next used index)."""
        if base > 0xFFFF:
            raise ValueError(f"ring base {base} does not fit 16 bits")
        self.next_avail = base
        self.next_used = base
        self.signalled_used_valid = False
        self._clear_broken()

    @property
    def base(self) -> int:
        """GET_VRING_BASE: the next avail index to process."""
        return self.next_avail

    def start(self) -> None:
        """The ring may run (it has a kick fd)."""
        self.started = True
        self.signalled_used_valid = False

    def stop(self) -> None:
        """GET_VRING_BASE: stop processing. Chains still held are returned to the
        driver with nothing written (the ring base then accounts for every chain)."""
        cdef unsigned long faults
        cdef int code = OK
        if self._held and self._runnable():
            faults = self.memory.fault_count()
            for head in sorted(self._held):
                code = self._walk(<uint16_t>head)
                if code != OK:
                    break
                self._add_used(<uint16_t>head, 0)
            self._publish_used()
            self._signal_used()
            if code == OK and self.memory.fault_count() != faults:
                code = E_MEMORY_FAULT
            if code != OK:
                self._break(code)
        self._forget_held()
        self.started = False

    cdef void _forget_held(self):
        self._held.clear()
        self._generation = (self._generation + 1) & 0xFFFF

    @property
    def held(self) -> int:
        """Chains taken from the ring whose answer is still to come."""
        return len(self._held)

    def defer(self) -> int:
        """Called by a request handler inside `process()`: hold the chain being
        handled (the handler then returns None); return the ticket that answers it
        with `complete()`. RuntimeError outside a handler call."""
        if self._current_head < 0:
            raise RuntimeError("defer() outside a request handler")
        self._deferred = True
        self._held.add(self._current_head)
        return self._generation << 16 | self._current_head

    def complete(self, ticket: int, bytes data not None) -> bool:
        """Answer the chain held by `ticket` with `data` (truncated to its writable
        part) and return it to the driver. False when the ticket answers nothing any
        more (the ring was reset or stopped meanwhile) or the queue cannot run."""
        cdef uint16_t head = ticket & 0xFFFF
        if ticket >> 16 != self._generation or head not in self._held:
            return False
        if self._current_head >= 0:
            raise RuntimeError("complete() inside a request handler")
        self._held.discard(head)
        if not self._runnable():
            return False
        # The chain is walked again: guest memory may have been remapped meanwhile.
        return self._deliver(head, data, self.memory.fault_count(), False)

    def set_enabled(self, bint enabled) -> None:
        """SET_VRING_ENABLE."""
        self.enabled = enabled

    @property
    def ready(self) -> bool:
        """Whether the queue would process requests now."""
        return (self.started and self.enabled and not self.broken and self.size != 0
                and self.addresses_set)

    cdef void _clear_broken(self) noexcept:
        self.broken = False
        self.error = None

    @property
    def kick_fd(self) -> int:
        return self._kick_fd

    @property
    def call_fd(self) -> int:
        return self._call_fd

    @property
    def err_fd(self) -> int:
        return self._err_fd

    def set_kick_fd(self, int fd) -> None:
        """Take ownership of `fd` (-1 for none) as the kick eventfd; closes the old one."""
        if self._kick_fd >= 0 and self._kick_fd != fd:
            close(self._kick_fd)
        self._kick_fd = fd

    def set_call_fd(self, int fd) -> None:
        """Take ownership of `fd` (-1 for none) as the call eventfd; closes the old one."""
        if self._call_fd >= 0 and self._call_fd != fd:
            close(self._call_fd)
        self._call_fd = fd
        self.signalled_used_valid = False

    def set_err_fd(self, int fd) -> None:
        """Take ownership of `fd` (-1 for none) as the error eventfd; closes the old one."""
        if self._err_fd >= 0 and self._err_fd != fd:
            close(self._err_fd)
        self._err_fd = fd

    def close_fds(self) -> None:
        """Close the kick, call and err fds."""
        self.set_kick_fd(-1)
        self.set_call_fd(-1)
        self.set_err_fd(-1)

    def drain_kick(self) -> None:
        """Consume a pending kick (the fd is non-blocking; nothing pending is fine)."""
        self._drain_kick()

    def serve_kick(self, object handler) -> int:
        """The kick fd is readable: consume the kick, then `process(handler)`; return the
        requests served. The event loop's callback on every request, in one call."""
        self._drain_kick()
        return self.process(handler)

    cdef void _drain_kick(self) noexcept:
        # The fd is non-blocking: the read returns at once, so the GIL is kept (handing it
        # over and taking it back would cost more than the read, on every request).
        cdef uint64_t value
        if self._kick_fd >= 0:
            read(self._kick_fd, &value, sizeof(value))

    # --- ring access --------------------------------------------------------------------

    cdef bint _map(self) noexcept:
        """Translate the ring addresses if memory changed; False if they are not mapped."""
        if self.mapped and self.mapped_generation == self.memory.generation:
            return True
        cdef uint64_t n = self.size
        self.desc = self.memory.uaddr_to_host(self.desc_uaddr, DESC_SIZE * n)
        self.avail = <uint16_t *>self.memory.uaddr_to_host(self.avail_uaddr, 6 + 2 * n)
        self.used = self.memory.uaddr_to_host(self.used_uaddr, 6 + USED_ELEM_SIZE * n)
        self.mapped = self.desc != NULL and self.avail != NULL and self.used != NULL
        self.mapped_generation = self.memory.generation
        return self.mapped

    cdef bint _runnable(self):
        if not self.ready:
            return False
        if not self._map():
            self._break(E_RING_ADDRESS)
            return False
        if self.memory.poisoned:
            # Stand-in pages since a SIGBUS (see memory.pyx): nothing there is the guest's.
            self._break(E_MEMORY_FAULT)
            return False
        return True

    cdef void _break(self, int code):
        self.broken = True
        self.error = ERROR_TEXT[code]
        log.warning("queue %d broken: %s", self.index, self.error)
        if self._err_fd >= 0:
            vq_signal_fd(self._err_fd)

    cdef int _walk(self, uint16_t head) noexcept nogil:
        """Validate the chain at `head` and record its segments; 0 or a ChainError."""
        cdef uint8_t *table = self.desc
        cdef unsigned int table_size = self.size
        cdef unsigned int hops = 0
        cdef unsigned int index = head
        cdef bint in_indirect = False
        cdef bint seen_writable = False
        cdef Descriptor d
        cdef uint8_t *host
        self.n_segments = 0
        self.n_readable = 0
        self.readable_bytes = 0
        self.writable_bytes = 0
        if index >= table_size:
            return E_HEAD_RANGE
        while True:
            hops += 1
            if hops > table_size:
                return E_TOO_LONG
            # One copy of the descriptor: the guest may change it while we look.
            memcpy(&d, table + DESC_SIZE * index, DESC_SIZE)
            if d.flags & DESC_F_INDIRECT:
                if not self.indirect_desc:
                    return E_INDIRECT_NOT_NEGOTIATED
                if in_indirect:
                    return E_NESTED_INDIRECT
                if d.flags & DESC_F_NEXT:
                    return E_INDIRECT_WITH_NEXT
                if d.len == 0 or d.len % DESC_SIZE or d.len // DESC_SIZE > self.size:
                    return E_INDIRECT_LENGTH
                table = self.memory.gpa_to_host(d.addr, d.len)
                if table == NULL:
                    return E_INDIRECT_ADDRESS
                table_size = d.len // DESC_SIZE
                in_indirect = True
                hops = 0
                index = 0
                continue
            if d.len:
                host = self.memory.gpa_to_host(d.addr, d.len)
                if host == NULL:
                    return E_BUFFER_ADDRESS
                self.segments[self.n_segments].host = host
                self.segments[self.n_segments].length = d.len
                self.n_segments += 1
            if d.flags & DESC_F_WRITE:
                seen_writable = True
                self.writable_bytes += d.len
                if self.writable_bytes > MAX_CHAIN_BYTES:
                    return E_CHAIN_BYTES
            else:
                if seen_writable:
                    return E_READ_AFTER_WRITE
                if d.len:
                    self.n_readable += 1
                self.readable_bytes += d.len
                if self.readable_bytes > MAX_CHAIN_BYTES:
                    return E_CHAIN_BYTES
            if not (d.flags & DESC_F_NEXT):
                return OK
            index = d.next
            if index >= table_size:
                return E_NEXT_RANGE

    cdef uint32_t _scatter(self, const uint8_t *data, Py_ssize_t length) noexcept nogil:
        """Copy `data` into the writable segments; return the bytes written."""
        cdef unsigned int i
        cdef uint32_t written = 0
        cdef uint32_t chunk
        if length > <Py_ssize_t>self.writable_bytes:
            length = <Py_ssize_t>self.writable_bytes
        for i in range(self.n_readable, self.n_segments):
            if length <= 0:
                break
            chunk = self.segments[i].length
            if chunk > length:
                chunk = <uint32_t>length
            memcpy(self.segments[i].host, data + written, chunk)
            written += chunk
            length -= chunk
        return written

    cdef inline void _add_used(self, uint16_t head, uint32_t length) noexcept nogil:
        cdef uint8_t *elem = self.used + 4 + USED_ELEM_SIZE * (self.next_used & (self.size - 1))
        cdef uint32_t fields[2]
        fields[0] = head
        fields[1] = length
        memcpy(elem, fields, USED_ELEM_SIZE)
        self.next_used += 1

    cdef inline void _publish_used(self) noexcept nogil:
        vq_store_release16(<uint16_t *>(self.used + 2), self.next_used)

    cdef inline void _set_avail_event(self) noexcept nogil:
        if self.event_idx:
            vq_store_relaxed16(<uint16_t *>(self.used + 4 + USED_ELEM_SIZE * self.size),
                               self.next_avail)

    cdef bint _need_signal(self) noexcept nogil:
        cdef uint16_t old_used, used_event
        cdef bint valid
        vq_full_fence()
        if self.notify_on_empty and vq_load_relaxed16(&self.avail[1]) == self.next_avail:
            return True
        if not self.event_idx:
            return not (vq_load_relaxed16(&self.avail[0]) & AVAIL_F_NO_INTERRUPT)
        valid = self.signalled_used_valid
        old_used = self.signalled_used
        self.signalled_used = self.next_used
        self.signalled_used_valid = True
        used_event = vq_load_relaxed16(&self.avail[2 + self.size])
        return not valid or need_event(used_event, self.next_used, old_used)

    cdef void _signal_used(self) noexcept nogil:
        if self._call_fd >= 0 and self._need_signal():
            vq_signal_fd(self._call_fd)
            self.signals += 1

    cdef int _available(self) noexcept nogil:
        """Chains waiting in the avail ring, or -1 when the index moved impossibly far."""
        cdef uint16_t pending = vq_load_acquire16(&self.avail[1]) - self.next_avail
        if pending > self.size:
            return -1
        return pending

    # --- the engine ----------------------------------------------------------------------

    cpdef int process(self, object handler) except -1:
        """Serve every available request with `handler(request, writable_len) -> bytes`.

        Returns the number of requests served: at most one ring's worth per call (then
        the queue kicks itself, so that a busy driver cannot starve the event loop). Signals the call eventfd when the
        driver wants it. A malformed ring marks the queue broken (see module doc).
        """
        if not self._runnable():
            return 0
        cdef unsigned long faults = self.memory.fault_count()
        cdef int served = 0
        cdef int added = 0
        cdef int pending
        cdef int code
        cdef uint16_t head
        cdef object request
        cdef object response
        cdef uint32_t written
        cdef unsigned int i
        cdef char *cursor
        while True:
            pending = self._available()
            if pending < 0:
                code = E_AVAIL_INDEX
                break
            if pending and served >= <int>self.size:
                # A driver that keeps adding requests must not hold the daemon here:
                # after one ring's worth, kick ourselves so the event loop comes back
                # to this queue after serving everything else.
                if self._kick_fd >= 0:
                    vq_signal_fd(self._kick_fd)
                code = OK
                break
            if pending == 0:
                if self.event_idx:
                    # Ask for a kick on the next request, then look once more so
                    # that one made available meanwhile is not missed.
                    self._set_avail_event()
                    vq_full_fence()
                    pending = self._available()
                    if pending != 0:
                        continue
                code = OK
                break
            code = OK
            if pending > <int>self.size - served:
                pending = <int>self.size - served
            while pending > 0:
                head = vq_load_relaxed16(&self.avail[2 + (self.next_avail & (self.size - 1))])
                code = self._walk(head)
                if code != OK:
                    break
                self.next_avail += 1
                pending -= 1
                written = 0
                if self.readable_bytes <= <uint64_t>self.max_request:
                    request = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>self.readable_bytes)
                    cursor = PyBytes_AS_STRING(request)
                    for i in range(self.n_readable):
                        memcpy(cursor, self.segments[i].host, self.segments[i].length)
                        cursor += self.segments[i].length
                    self._current_head = head
                    self._deferred = False
                    try:
                        response = handler(request, <Py_ssize_t>self.writable_bytes)
                        if response is None and self._deferred:
                            self._current_head = -1
                            served += 1
                            continue
                        if not PyBytes_Check(response):
                            response = bytes(response)
                    except Exception:
                        self.handler_errors += 1
                        log.exception("queue %d: request handler failed", self.index)
                        response = b""
                    self._current_head = -1
                    if self._deferred:  # deferred, yet answered now: not held any more
                        self._held.discard(head)
                    written = self._scatter(<const uint8_t *>PyBytes_AS_STRING(response),
                                            PyBytes_GET_SIZE(response))
                self._add_used(head, written)
                added += 1
                served += 1
            if code != OK:
                break
            self._publish_used()
        if added:
            self._publish_used()
            self.served += added
            self._signal_used()
        if self.memory.fault_count() != faults:
            code = E_MEMORY_FAULT
        if code != OK:
            self._break(code)
        return served

    def has_buffers(self) -> bool:
        """Whether the driver has made a buffer available (for push)."""
        if not self._runnable():
            return False
        cdef unsigned long faults = self.memory.fault_count()
        cdef int pending = self._available()
        if self.memory.fault_count() != faults:
            self._break(E_MEMORY_FAULT)
            return False
        if pending < 0:
            self._break(E_AVAIL_INDEX)
            return False
        return pending > 0

    cpdef bint push(self, bytes data) except -1:
        """Fill the next driver-posted buffer with `data` and return it to the driver.

        Returns False (and keeps `data` undelivered) when no buffer is available or
        the queue is not running; the driver's next kick says buffers arrived.
        A longer `data` than the buffer is truncated to fit.
        """
        if not self._runnable():
            return False
        cdef unsigned long faults = self.memory.fault_count()
        cdef int pending = self._available()
        if pending == 0 and self.event_idx:
            self._set_avail_event()
            vq_full_fence()
            pending = self._available()
        if self.memory.fault_count() != faults:
            self._break(E_MEMORY_FAULT)
            return False
        if pending < 0:
            self._break(E_AVAIL_INDEX)
            return False
        if pending == 0:
            return False
        cdef uint16_t head = vq_load_relaxed16(&self.avail[2 + (self.next_avail & (self.size - 1))])
        # No kick is asked for while buffers remain: the driver's returned buffers need
        # no wake-up (avail_event is set above, when the ring runs dry).
        return self._deliver(head, data, faults, True)

    cdef bint _deliver(self, uint16_t head, bytes data, unsigned long faults, bint consume):
        """Walk the chain at `head`, write `data` into its writable part (truncated) and
        return it used, signalling the driver; with `consume`, the chain is the next avail
        entry, taken once it proved valid. False (the queue broken) when the chain is bad
        or guest memory faulted since `faults` was read."""
        cdef int code = self._walk(head)
        if code != OK or self.memory.fault_count() != faults:
            self._break(code if code != OK else E_MEMORY_FAULT)
            return False
        if consume:
            self.next_avail += 1
        cdef uint32_t written = self._scatter(<const uint8_t *>PyBytes_AS_STRING(data),
                                              PyBytes_GET_SIZE(data))
        self._add_used(head, written)
        self._publish_used()
        self.served += 1
        self._signal_used()
        if self.memory.fault_count() != faults:
            self._break(E_MEMORY_FAULT)
        return True
