# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Fuzz the vhost-user message state machine with hostile VMM messages.

Each input is a sequence of messages sent over a socketpair to a `BackendConnection`
serving the real SCMI device: request codes (mostly known ones), header flags, size
fields that may lie, payloads shaped like the request's (or not), and 0..40 real fds
of every kind (memfds of random sizes, eventfds, pipes, /dev/null). Then the queues
that came up are kicked. Checked for every input:
  - no exception escapes handle_readable(), kick() or close(); a refused message ends
    the connection (handle_readable() returns False) at worst;
  - after close(), the process holds exactly the fds and the guest memory mappings
    it held before the input: every fd the VMM sent was closed.

    python3 fuzz/fuzz_vhost_messages.py -runs=1000000       # see fuzz/README.md
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports():
    from vhost_scmi.daemon import ScmiDevice
    from vhost_scmi.devices.fake import FakeAccelerometer
    from vhost_scmi.scmi.dispatcher import build_dispatcher
    from vhost_scmi.vhost import connection as connection_module
    from vhost_scmi.vhost.connection import IMPLEMENTED_PROTOCOL_FEATURES, BackendConnection
    from vhost_scmi.vhost.protocol import (
        HEADER,
        MEM_REG_MSG,
        MEM_REGION,
        MEM_TABLE_HEADER,
        VERSION,
        VRING_ADDR,
        VRING_STATE,
        HeaderFlag,
        Request,
    )

logging.getLogger("vhost_scmi").setLevel(logging.CRITICAL)

DEVICE = ScmiDevice(build_dispatcher([FakeAccelerometer()]))
REQUESTS = sorted(int(request) for request in Request)
GPA = 0x4000_0000
UADDR = 0x7F00_0000_0000


class Watcher:
    """The event loop's side: remembers which kick fds are watched, and their callbacks."""

    def __init__(self) -> None:
        self.kicks: dict[int, Callable[[], object]] = {}

    def watch_kick(self, fd: int, serve: Callable[[], object]) -> None:
        self.kicks[fd] = serve

    def unwatch_kick(self, fd: int) -> None:
        self.kicks.pop(fd, None)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _guest_mappings() -> int:
    with open("/proc/self/maps") as maps:
        return sum("fuzz-vmm" in line for line in maps)


def _make_fd(fdp: atheris.FuzzedDataProvider) -> int:
    kind = fdp.ConsumeIntInRange(0, 4)
    if kind <= 1:
        fd = os.memfd_create("fuzz-vmm", os.MFD_CLOEXEC)
        os.ftruncate(fd, fdp.PickValueInList([0, 4096, 0x10000, fdp.ConsumeIntInRange(0, 1 << 20)]))
        return fd
    if kind == 2:
        return os.eventfd(0, os.EFD_CLOEXEC | (os.EFD_NONBLOCK if fdp.ConsumeBool() else 0))
    if kind == 3:
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        if fdp.ConsumeBool():
            os.close(write_end)
            return read_end  # a "kick fd" that never becomes readable, or reads EOF
        os.close(read_end)
        return write_end
    return os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)


def _u64(fdp: atheris.FuzzedDataProvider) -> int:
    pick = fdp.ConsumeIntInRange(0, 3)
    if pick == 0:
        return fdp.ConsumeIntInRange(0, (1 << 64) - 1)
    if pick == 1:
        return fdp.ConsumeIntInRange(0, 0x1_0000)
    return (UADDR if pick == 2 else GPA) + fdp.ConsumeIntInRange(0, 0x10000)


def _region(fdp: atheris.FuzzedDataProvider) -> bytes:
    return MEM_REGION.pack(GPA + fdp.ConsumeIntInRange(0, 3) * 0x10000,
                           fdp.PickValueInList([0, 0x1000, 0x10000, _u64(fdp)]),
                           UADDR + fdp.ConsumeIntInRange(0, 3) * 0x10000,
                           fdp.PickValueInList([0, 0x1000, _u64(fdp)]))


def _payload(fdp: atheris.FuzzedDataProvider, request: int) -> tuple[bytes, int]:
    """A payload shaped like `request`'s (most of the time), and how many fds it wants."""
    if fdp.ConsumeIntInRange(0, 7) == 0:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300)), fdp.ConsumeIntInRange(0, 3)
    index = fdp.ConsumeIntInRange(0, 2)
    if request == Request.SET_MEM_TABLE:
        count = fdp.ConsumeIntInRange(0, 9)
        return (MEM_TABLE_HEADER.pack(count, 0)
                + b"".join(_region(fdp) for _ in range(count))), count
    if request in (Request.ADD_MEM_REG, Request.REM_MEM_REG):
        return MEM_REG_MSG.pack(0, _region(fdp)), int(request == Request.ADD_MEM_REG)
    if request in (Request.SET_VRING_NUM, Request.SET_VRING_BASE, Request.GET_VRING_BASE,
                   Request.SET_VRING_ENABLE):
        value = fdp.PickValueInList([0, 1, 8, 256, fdp.ConsumeIntInRange(0, 0xFFFFFFFF)])
        return VRING_STATE.pack(index, value), 0
    if request == Request.SET_VRING_ADDR:
        return VRING_ADDR.pack(index, fdp.ConsumeIntInRange(0, 1), _u64(fdp) & ~15,
                               _u64(fdp) & ~3, _u64(fdp) & ~1, _u64(fdp)), 0
    if request in (Request.SET_VRING_KICK, Request.SET_VRING_CALL, Request.SET_VRING_ERR):
        nofd = fdp.ConsumeIntInRange(0, 3) == 0
        return struct.pack("<Q", index | (0x100 if nofd else 0)), 0 if nofd else 1
    if request == Request.SET_PROTOCOL_FEATURES:
        return struct.pack("<Q", IMPLEMENTED_PROTOCOL_FEATURES & _u64(fdp)), 0
    if request in (Request.SET_FEATURES, Request.SET_STATUS):
        return struct.pack("<Q", _u64(fdp)), 0
    return b"", 0


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    fds_before, maps_before = _open_fds(), _guest_mappings()
    vmm, backend = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    vmm.setblocking(False)
    watcher = Watcher()
    connection = BackendConnection(backend, DEVICE, watcher,
                                   protocol_features=IMPLEMENTED_PROTOCOL_FEATURES)
    alive = True
    try:
        for _message in range(fdp.ConsumeIntInRange(1, 24)):
            if fdp.ConsumeIntInRange(0, 15):
                request = REQUESTS[fdp.ConsumeIntInRange(0, len(REQUESTS) - 1)]
            else:
                request = fdp.ConsumeIntInRange(0, 0xFFFFFFFF)
            payload, nfds = _payload(fdp, request)
            flags = VERSION | (HeaderFlag.NEED_REPLY if fdp.ConsumeBool() else 0)
            if fdp.ConsumeIntInRange(0, 15) == 0:
                flags = fdp.ConsumeIntInRange(0, 0xFFFFFFFF)
            size = len(payload)
            if fdp.ConsumeIntInRange(0, 15) == 0:
                size = fdp.PickValueInList([0, 1, 4095, 4096, 4097, 0xFFFFFFFF,
                                            fdp.ConsumeIntInRange(0, 0xFFFFFFFF)])
            if fdp.ConsumeIntInRange(0, 15) == 0:
                nfds = fdp.PickValueInList([0, 1, 2, 31, 32, 33, 40])
            message = HEADER.pack(request, flags, size) + payload
            if fdp.ConsumeIntInRange(0, 31) == 0:
                message = message[:fdp.ConsumeIntInRange(0, len(message))]
            fds = [_make_fd(fdp) for _ in range(nfds)]
            try:
                ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                              struct.pack(f"{len(fds)}i", *fds))] if fds else []
                if message:
                    vmm.sendmsg([message], ancillary)
            except OSError:
                break
            finally:
                for fd in fds:
                    os.close(fd)
            # Drain replies so the back-end never sees a full socket by our doing.
            try:
                while vmm.recv(65536):
                    pass
            except BlockingIOError:
                pass
            if fdp.ConsumeIntInRange(0, 31) == 0:
                vmm.close()  # the VMM goes away mid-sequence
            if not connection.handle_readable():
                alive = False
                break
            if vmm.fileno() < 0:
                break
        if alive:
            for serve in list(watcher.kicks.values()):  # each queue kicked, as the loop would
                serve()
    finally:
        connection.close()
        vmm.close()
    assert not watcher.kicks, "kick fds still watched after close()"
    fds_after, maps_after = _open_fds(), _guest_mappings()
    assert fds_after == fds_before, f"fd leak: {fds_before} -> {fds_after}"
    assert maps_after == maps_before, f"mapping leak: {maps_before} -> {maps_after}"


def main() -> None:
    assert connection_module.MAX_FDS == 32
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
