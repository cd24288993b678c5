# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The machine's floor for one vhost-user style round trip, measured in C.

Two processes ping-pong through eventfds exactly as a VMM and a backend do:
the "frontend" writes the kick eventfd and waits in epoll for the call eventfd;
the "backend" waits in epoll for the kick, reads it and writes the call. Nothing
else happens per round trip, so no backend can answer a request faster than this.

The loop runs without the GIL and the child never re-enters Python (it leaves
with _exit), so the figure is the kernel's and the scheduler's, not Python's.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.errno cimport errno, EINTR
from libc.string cimport memset

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    enum: CLOCK_MONOTONIC
    int clock_gettime(int clk, timespec *ts)

cdef extern from "<sys/eventfd.h>" nogil:
    enum: EFD_CLOEXEC
    int eventfd(unsigned int initval, int flags)

cdef extern from "<sys/epoll.h>" nogil:
    enum: EPOLLIN
    enum: EPOLL_CTL_ADD
    enum: EPOLL_CLOEXEC
    union epoll_data_t "epoll_data":
        int fd
        uint64_t u64
    struct epoll_event:
        unsigned int events
        epoll_data_t data
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)

cdef extern from "<sched.h>" nogil:
    ctypedef struct cpu_set_t:
        pass
    void CPU_ZERO(cpu_set_t *s)
    void CPU_SET(int cpu, cpu_set_t *s)
    int sched_setaffinity(int pid, size_t size, const cpu_set_t *mask)

cdef extern from "<unistd.h>" nogil:
    ctypedef int pid_t
    ctypedef long ssize_t
    pid_t fork()
    ssize_t read(int fd, void *buf, size_t count)
    ssize_t write(int fd, const void *buf, size_t count)
    int close(int fd)
    void _exit(int status)

cdef extern from "<sys/wait.h>" nogil:
    pid_t waitpid(pid_t pid, int *status, int options)
    bint WIFEXITED(int status)
    int WEXITSTATUS(int status)

# A peer that has not answered within this long is gone (or the machine is
# hopelessly overloaded): give up rather than hang.
cdef int WAIT_MS = 5000


cdef int pin(int cpu) noexcept nogil:
    """Pin the calling process to `cpu`; a negative cpu leaves it free."""
    cdef cpu_set_t mask
    if cpu < 0:
        return 0
    CPU_ZERO(&mask)
    CPU_SET(cpu, &mask)
    return sched_setaffinity(0, sizeof(cpu_set_t), &mask)


cdef int wait_and_drain(int epfd, int fd) noexcept nogil:
    """Block in epoll until `fd` is readable, then read its counter. 0, or -1 on failure."""
    cdef epoll_event event
    cdef uint64_t counter
    cdef int ready
    while True:
        ready = epoll_wait(epfd, &event, 1, WAIT_MS)
        if ready == 1:
            break
        if ready == 0 or errno != EINTR:
            return -1
    if read(fd, &counter, 8) != 8:
        return -1
    return 0


cdef int signal_fd(int fd) noexcept nogil:
    cdef uint64_t one = 1
    return 0 if write(fd, &one, 8) == 8 else -1


cdef int watch(int fd) noexcept nogil:
    """Return an epoll instance watching `fd` for input, or -1."""
    cdef epoll_event event
    cdef int epfd = epoll_create1(EPOLL_CLOEXEC)
    if epfd < 0:
        return -1
    memset(&event, 0, sizeof(event))
    event.events = EPOLLIN
    event.data.fd = fd
    if epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) != 0:
        close(epfd)
        return -1
    return epfd


cdef inline int64_t now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef void backend_loop(int kick, int call, int rounds, int cpu) noexcept nogil:
    """Child side: answer `rounds` kicks with a call each, then leave without Python."""
    cdef int epfd
    cdef int i
    if pin(cpu) != 0:
        _exit(3)
    epfd = watch(kick)
    if epfd < 0:
        _exit(4)
    for i in range(rounds):
        if wait_and_drain(epfd, kick) != 0:
            _exit(5)
        if signal_fd(call) != 0:
            _exit(6)
    _exit(0)


def ping_pong(int rounds, int warmup=200, int frontend_cpu=-1, int backend_cpu=-1):
    """Time `rounds` eventfd round trips between this process and a forked child.

    frontend_cpu / backend_cpu pin this process / the child to one CPU for the
    run (negative: leave unpinned); this process's own affinity is restored
    afterwards. Returns the round-trip times in nanoseconds, one per round,
    after `warmup` untimed rounds. Raises OSError if a syscall fails and
    RuntimeError if the child fails or stops answering.
    """
    import os

    if rounds <= 0 or warmup < 0:
        raise ValueError("rounds must be positive and warmup non-negative")
    cdef int64_t *times = <int64_t *>malloc(rounds * sizeof(int64_t))
    if times == NULL:
        raise MemoryError()
    cdef int kick = -1
    cdef int call = -1
    cdef int epfd = -1
    cdef pid_t child = -1
    cdef int status = 0
    cdef int failed = 0
    cdef int i
    cdef int64_t start
    saved_affinity = os.sched_getaffinity(0)
    try:
        kick = eventfd(0, EFD_CLOEXEC)
        call = eventfd(0, EFD_CLOEXEC)
        if kick < 0 or call < 0:
            raise OSError(errno, "eventfd failed")
        epfd = watch(call)
        if epfd < 0:
            raise OSError(errno, "epoll setup failed")
        with nogil:
            # The child only ever runs the C loop above and _exit()s, so
            # forking without Python's fork hooks is safe here.
            child = fork()
            if child == 0:
                backend_loop(kick, call, warmup + rounds, backend_cpu)
            elif child > 0:
                if pin(frontend_cpu) != 0:
                    failed = 1
                for i in range(warmup):
                    if failed:
                        break
                    if signal_fd(kick) != 0 or wait_and_drain(epfd, call) != 0:
                        failed = 2
                for i in range(rounds):
                    if failed:
                        break
                    start = now_ns()
                    if signal_fd(kick) != 0 or wait_and_drain(epfd, call) != 0:
                        failed = 2
                        break
                    times[i] = now_ns() - start
                waitpid(child, &status, 0)
        if child < 0:
            raise OSError(errno, "fork failed")
        if failed == 1:
            raise OSError(errno, "sched_setaffinity failed")
        if failed or not WIFEXITED(status) or WEXITSTATUS(status) != 0:
            raise RuntimeError(f"ping-pong failed (stage {failed}, child status {status:#x})")
        return [times[i] for i in range(rounds)]
    finally:
        free(times)
        for fd in (kick, call, epfd):
            if fd >= 0:
                close(fd)
        os.sched_setaffinity(0, saved_affinity)


cdef class Doorbell:
    """The frontend's side of a queue's notifications, in the same C as the floor.

    Wraps a kick eventfd (written to notify the backend) and a call eventfd (the
    backend's answer). `ring()` kicks and waits for the call without the GIL, so a
    measured round trip carries exactly the harness cost the floor carries and the
    ratio to the floor isolates the backend. Does not own the fds.
    """

    cdef int kick_fd
    cdef int call_fd
    cdef int epfd

    def __cinit__(self, int kick_fd, int call_fd):
        self.epfd = -1
        self.kick_fd = kick_fd
        self.call_fd = call_fd
        self.epfd = watch(call_fd)
        if self.epfd < 0:
            raise OSError(errno, "epoll setup failed")

    def __dealloc__(self):
        if self.epfd >= 0:
            close(self.epfd)

    def kick(self) -> None:
        """Notify the backend."""
        if signal_fd(self.kick_fd) != 0:
            raise OSError(errno, "kick failed")

    def wait(self) -> int:
        """Block until the backend signals the call eventfd, and drain it.

        Returns the nanoseconds spent waiting.
        """
        cdef int result
        cdef int64_t start, end
        with nogil:
            start = now_ns()
            result = wait_and_drain(self.epfd, self.call_fd)
            end = now_ns()
        if result != 0:
            raise TimeoutError(f"no call from the backend within {WAIT_MS} ms")
        return end - start

    def ring(self) -> int:
        """Kick, wait for the call; return the nanoseconds in between."""
        cdef int64_t start, end
        cdef int result = 0
        with nogil:
            start = now_ns()
            if signal_fd(self.kick_fd) != 0:
                result = -2
            elif wait_and_drain(self.epfd, self.call_fd) != 0:
                result = -1
            end = now_ns()
        if result == -2:
            raise OSError(errno, "kick failed")
        if result == -1:
            raise TimeoutError(f"no call from the backend within {WAIT_MS} ms")
        return end - start
