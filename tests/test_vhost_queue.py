# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""SplitQueue, the compiled queue engine, against rings a driver writes in shared memfd RAM.

The driver side is the in-tree front-end's DriverQueue; the device side maps the same
memfds through GuestMemory, as the daemon does. Malformed rings are written raw.
"""

from __future__ import annotations

import os

import pytest
from vhost_scmi.vhost.memory import GuestMemory
from vhost_scmi.vhost.virtqueue import MAX_QUEUE_SIZE, SplitQueue

from vhost_scmi.vhost.frontend import (
    DESC_F_INDIRECT,
    DESC_F_NEXT,
    DESC_F_WRITE,
    DESCRIPTOR,
    DriverQueue,
    GuestRam,
)

RAM_BASE = 0x4000_0000
RAM_SIZE = 4 << 20


class Recorder:
    """A request handler that records its calls and answers b"re:" + the request."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, int]] = []

    def __call__(self, request: bytes, writable: int) -> bytes:
        self.calls.append((request, writable))
        return b"re:" + request


class Engine:
    """A driver queue and the device's SplitQueue over the same memory."""

    def __init__(self, size: int = 8, *, layout=((RAM_BASE, RAM_SIZE),), event_idx: bool = False,
                 indirect: bool = True, notify_on_empty: bool = False, data_region: int = 0,
                 max_request: int = 65536) -> None:
        self.ram = GuestRam(layout)
        self.driver = DriverQueue(self.ram, 0, size, data_region=data_region, arena_size=1 << 18)
        self.driver.event_idx = event_idx
        self.memory = GuestMemory()
        for region in self.ram.regions:
            self.memory.add_region(region.fd, region.gpa, region.size, region.uaddr,
                                   region.mmap_offset)
        queue = SplitQueue(self.memory, 0, MAX_QUEUE_SIZE, max_request)
        queue.set_size(size)
        queue.set_addresses(self.ram.uaddr(self.driver.desc_gpa),
                            self.ram.uaddr(self.driver.used_gpa),
                            self.ram.uaddr(self.driver.avail_gpa))
        queue.set_base(0)
        queue.set_call_fd(os.dup(self.driver.call_fd))
        queue.set_err_fd(os.dup(self.driver.err_fd))
        queue.set_kick_fd(os.dup(self.driver.kick_fd))
        queue.event_idx = event_idx
        queue.indirect_desc = indirect
        queue.notify_on_empty = notify_on_empty
        queue.start()
        queue.set_enabled(True)
        self.queue = queue
        self.driver.request_interrupt()

    def close(self) -> None:
        self.queue.close_fds()
        self.driver.close()
        self.memory.clear()
        self.ram.close()


@pytest.fixture
def make_engine():
    engines: list[Engine] = []

    def make(*args, **kwargs) -> Engine:
        engines.append(Engine(*args, **kwargs))
        return engines[-1]

    yield make
    for engine in engines:
        engine.close()


def test_one_request_round_trip(make_engine) -> None:
    engine = make_engine()
    handler = Recorder()
    head = engine.driver.add(b"ping", 64)
    engine.driver.publish([head])
    assert engine.queue.process(handler) == 1
    assert handler.calls == [(b"ping", 64)]
    [done] = engine.driver.collect()
    assert (done.head, done.length, done.data) == (head, 7, b"re:ping")
    assert engine.driver.signalled("call")
    assert not engine.driver.signalled("err")
    assert engine.queue.base == 1


def test_whole_batch_in_one_call_and_one_signal(make_engine) -> None:
    engine = make_engine(size=256)
    handler = Recorder()
    requests = [f"req{n}".encode() for n in range(256)]
    # A full queue: one descriptor per request, so each chain sits in an indirect table.
    engine.driver.publish([engine.driver.add(r, 32, indirect=True) for r in requests])
    assert engine.queue.process(handler) == 256
    assert [call[0] for call in handler.calls] == requests
    done = engine.driver.collect()
    assert [d.data for d in done] == [b"re:" + r for r in requests]
    assert engine.queue.signals == 1
    assert engine.queue.process(handler) == 0  # nothing left


def test_ring_wraps_around_the_16_bit_index(make_engine) -> None:
    engine = make_engine(size=4)
    engine.queue.set_base(0xFFFE)
    engine.driver.avail_idx = engine.driver.last_used = 0xFFFE
    handler = Recorder()
    for round_ in range(3):
        heads = [engine.driver.add(bytes([round_, n]), 8, indirect=True) for n in range(4)]
        engine.driver.publish(heads)
        assert engine.queue.process(handler) == 4
        assert [d.head for d in engine.driver.collect()] == heads
    assert engine.queue.base == (0xFFFE + 12) & 0xFFFF


def test_gather_and_scatter_over_several_descriptors(make_engine) -> None:
    engine = make_engine()
    received = []

    def handler(request: bytes, writable: int) -> bytes:
        received.append((request, writable))
        return bytes(range(10))

    head = engine.driver.add([b"ab", b"", b"cde"], [3, 0, 4, 16])
    engine.driver.publish([head])
    engine.queue.process(handler)
    assert received == [(b"abcde", 23)]
    [done] = engine.driver.collect()
    assert done.length == 10 and done.data == bytes(range(10))


def test_indirect_chain(make_engine) -> None:
    engine = make_engine()
    handler = Recorder()
    head = engine.driver.add([b"in", b"direct"], [4, 60], indirect=True)
    engine.driver.publish([head])
    assert engine.queue.process(handler) == 1
    assert handler.calls == [(b"indirect", 64)]
    assert engine.driver.collect()[0].data == b"re:indirect"


def test_buffers_in_a_second_region(make_engine) -> None:
    engine = make_engine(layout=((RAM_BASE, RAM_SIZE), (0x1_0000_0000, RAM_SIZE, 8192)),
                         data_region=1)
    handler = Recorder()
    engine.driver.publish([engine.driver.add(b"far", 16, indirect=True)])
    engine.queue.process(handler)
    assert engine.driver.collect()[0].data == b"re:far"


def test_response_is_truncated_to_the_writable_space(make_engine) -> None:
    engine = make_engine()
    engine.driver.publish([engine.driver.add(b"x", 5)])
    engine.queue.process(lambda request, writable: b"0123456789")
    [done] = engine.driver.collect()
    assert (done.length, done.data) == (5, b"01234")


def test_a_failing_handler_costs_only_its_request(make_engine) -> None:
    engine = make_engine()

    def handler(request: bytes, writable: int) -> bytes:
        if request == b"bad":
            raise RuntimeError("boom")
        return request.upper()

    engine.driver.publish([engine.driver.add(r, 8) for r in (b"one", b"bad", b"two")])
    assert engine.queue.process(handler) == 3
    assert [(d.length, d.data) for d in engine.driver.collect()] == [
        (3, b"ONE"), (0, b""), (3, b"TWO")]
    assert engine.queue.handler_errors == 1
    assert not engine.queue.broken


def test_oversized_request_is_returned_unread(make_engine) -> None:
    engine = make_engine(max_request=16)
    handler = Recorder()
    engine.driver.publish([engine.driver.add(b"x" * 17, 8), engine.driver.add(b"ok", 8)])
    assert engine.queue.process(handler) == 2
    assert handler.calls == [(b"ok", 8)]
    assert [d.length for d in engine.driver.collect()] == [0, 5]


def test_no_interrupt_flag_suppresses_the_call(make_engine) -> None:
    engine = make_engine()
    engine.driver.suppress_interrupts()
    engine.driver.publish([engine.driver.add(b"a", 8)])
    engine.queue.process(Recorder())
    assert not engine.driver.signalled("call")
    assert engine.driver.used_idx == 1


def test_notify_on_empty_overrides_suppression(make_engine) -> None:
    engine = make_engine(notify_on_empty=True)
    engine.driver.suppress_interrupts()
    engine.driver.publish([engine.driver.add(b"a", 8)])
    engine.queue.process(Recorder())
    assert engine.driver.signalled("call")


def test_event_idx_used_event_decides_the_call(make_engine) -> None:
    engine = make_engine(event_idx=True)
    driver = engine.driver
    # used_event = 0: signal when used idx passes 0.
    driver.publish([driver.add(b"a", 8)])
    engine.queue.process(Recorder())
    assert driver.signalled("call")
    # used_event left at 0 (driver did not re-arm): no signal for the next entries.
    driver.publish([driver.add(b"b", 8), driver.add(b"c", 8)])
    engine.queue.process(Recorder())
    assert not driver.signalled("call")
    # Re-armed at the current used index: signal again.
    driver.collect()  # re-arms at last_used
    driver.publish([driver.add(b"d", 8)])
    engine.queue.process(Recorder())
    assert driver.signalled("call")


def test_event_idx_avail_event_tracks_consumption(make_engine) -> None:
    engine = make_engine(event_idx=True)
    driver = engine.driver
    old = driver.avail_idx
    driver.publish([driver.add(b"a", 8), driver.add(b"b", 8)])
    engine.queue.process(Recorder())
    # avail_event = 2: the next request published after index 2 needs a kick.
    old = driver.avail_idx
    driver.publish([driver.add(b"c", 8)])
    assert driver.kick_needed(old)
    # Without processing, a further request does not need another kick.
    old = driver.avail_idx
    driver.publish([driver.add(b"d", 8)])
    assert not driver.kick_needed(old)


def test_stopped_or_disabled_queue_does_nothing(make_engine) -> None:
    engine = make_engine()
    handler = Recorder()
    engine.driver.publish([engine.driver.add(b"a", 8)])
    engine.queue.set_enabled(False)
    assert engine.queue.process(handler) == 0
    engine.queue.set_enabled(True)
    engine.queue.stop()
    assert engine.queue.process(handler) == 0
    engine.queue.start()
    assert engine.queue.process(handler) == 1


# --- requests answered later, out of order ---------------------------------------------------

class Deferring:
    """A handler that holds every request starting with b"later" (keeping its ticket)
    and answers the others at once."""

    def __init__(self, queue: SplitQueue) -> None:
        self.queue = queue
        self.tickets: dict[bytes, int] = {}

    def __call__(self, request: bytes, writable: int) -> bytes | None:
        if request.startswith(b"later"):
            self.tickets[request] = self.queue.defer()
            return None
        return b"re:" + request


def test_held_requests_complete_out_of_order(make_engine) -> None:
    engine = make_engine()
    handler = Deferring(engine.queue)
    heads = [engine.driver.add(r, 32) for r in (b"later-1", b"now", b"later-2")]
    engine.driver.publish(heads)
    assert engine.queue.process(handler) == 3
    # The request behind the held ones is answered at once.
    assert [(d.head, d.data) for d in engine.driver.collect()] == [(heads[1], b"re:now")]
    assert engine.queue.held == 2
    assert engine.queue.complete(handler.tickets[b"later-2"], b"second") is True
    assert engine.queue.complete(handler.tickets[b"later-1"], b"first" * 20) is True
    done = engine.driver.collect()
    assert [(d.head, d.data) for d in done] == [(heads[2], b"second"),
                                              (heads[0], (b"first" * 20)[:32])]
    assert engine.queue.held == 0
    # A ticket answers once.
    assert engine.queue.complete(handler.tickets[b"later-1"], b"again") is False
    assert engine.driver.collect() == []


def test_defer_outside_a_handler_is_refused(make_engine) -> None:
    engine = make_engine()
    with pytest.raises(RuntimeError):
        engine.queue.defer()


def test_a_reset_ring_drops_the_held_requests(make_engine) -> None:
    engine = make_engine()
    handler = Deferring(engine.queue)
    engine.driver.publish([engine.driver.add(b"later", 32)])
    assert engine.queue.process(handler) == 1
    engine.queue.reset()
    assert engine.queue.held == 0
    assert engine.queue.complete(handler.tickets[b"later"], b"late") is False


def test_stopping_the_ring_returns_the_held_requests_empty(make_engine) -> None:
    engine = make_engine()
    handler = Deferring(engine.queue)
    heads = [engine.driver.add(r, 32) for r in (b"later-a", b"later-b")]
    engine.driver.publish(heads)
    assert engine.queue.process(handler) == 2
    engine.queue.stop()
    # Every chain taken is accounted for at GET_VRING_BASE: returned with no data.
    assert sorted((d.head, d.length) for d in engine.driver.collect()) == sorted(
        (head, 0) for head in heads)
    assert engine.queue.base == 2
    assert engine.queue.complete(handler.tickets[b"later-a"], b"late") is False


# --- device-to-driver queue: held buffers ---------------------------------------------------

def test_push_waits_for_a_buffer(make_engine) -> None:
    engine = make_engine()
    assert not engine.queue.has_buffers()
    assert engine.queue.push(b"event") is False
    engine.driver.post_buffers(2, 16)
    assert engine.queue.has_buffers()
    # Buffers are held: nothing comes back until there is something to say.
    assert engine.driver.collect() == []
    assert engine.queue.push(b"event-1") is True
    [done] = engine.driver.collect()
    assert done.data == b"event-1"
    assert engine.driver.signalled("call")
    assert engine.queue.push(b"x" * 40) is True  # truncated to the 16-byte buffer
    assert engine.driver.collect()[0].data == b"x" * 16
    assert engine.queue.push(b"more") is False


def test_push_with_event_idx_rearms_avail_event(make_engine) -> None:
    engine = make_engine(event_idx=True)
    assert engine.queue.push(b"e") is False
    old = engine.driver.avail_idx
    engine.driver.post_buffers(1, 16)
    assert engine.driver.kick_needed(old)
    assert engine.queue.push(b"e") is True
    assert engine.driver.collect()[0].data == b"e"


def test_push_asks_for_no_kick_while_buffers_remain(make_engine) -> None:
    # A driver returning event buffers one by one (as Linux does) wakes the device only
    # when it had run dry.
    engine = make_engine(event_idx=True)
    assert engine.queue.push(b"e") is False  # dry: a kick is asked for
    old = engine.driver.avail_idx
    engine.driver.post_buffers(4, 16)
    assert engine.driver.kick_needed(old)
    for _ in range(3):
        assert engine.queue.push(b"e") is True
        [done] = engine.driver.collect(free=False)
        old = engine.driver.avail_idx
        engine.driver.publish([done.head])
        assert not engine.driver.kick_needed(old)


# --- malformed rings ----------------------------------------------------------------------

def _desc(engine: Engine, index: int, addr: int, length: int, flags: int, next_: int = 0) -> None:
    engine.driver.write_descriptor(index, addr, length, flags, next_)


def _buffer(engine: Engine, size: int = 64) -> int:
    return engine.ram.alloc(size, 16)


def bad_head(engine: Engine) -> list[int]:
    return [engine.driver.size]


def bad_next(engine: Engine) -> list[int]:
    _desc(engine, 7, _buffer(engine), 8, DESC_F_NEXT, engine.driver.size)
    return [7]


def loop(engine: Engine) -> list[int]:
    _desc(engine, 6, _buffer(engine), 8, DESC_F_NEXT, 7)
    _desc(engine, 7, _buffer(engine), 8, DESC_F_NEXT | DESC_F_WRITE, 6)
    return [6]


def self_loop(engine: Engine) -> list[int]:
    _desc(engine, 5, _buffer(engine), 8, DESC_F_NEXT, 5)
    return [5]


def _indirect(engine: Engine, entries: list[tuple[int, int, int, int]], head: int = 7,
              length: int | None = None) -> list[int]:
    table = engine.ram.alloc(16 * max(len(entries), 1), 16)
    for number, entry in enumerate(entries):
        engine.ram.write(table + 16 * number, DESCRIPTOR.pack(*entry))
    _desc(engine, head, table, 16 * len(entries) if length is None else length, DESC_F_INDIRECT)
    return [head]


def indirect_loop(engine: Engine) -> list[int]:
    buf = _buffer(engine)
    return _indirect(engine, [(buf, 8, DESC_F_NEXT, 1), (buf, 8, DESC_F_NEXT, 0)])


def nested_indirect(engine: Engine) -> list[int]:
    inner = engine.ram.alloc(16, 16)
    engine.ram.write(inner, DESCRIPTOR.pack(_buffer(engine), 8, 0, 0))
    return _indirect(engine, [(inner, 16, DESC_F_INDIRECT, 0)])


def indirect_with_next(engine: Engine) -> list[int]:
    table = engine.ram.alloc(16, 16)
    engine.ram.write(table, DESCRIPTOR.pack(_buffer(engine), 8, 0, 0))
    _desc(engine, 7, table, 16, DESC_F_INDIRECT | DESC_F_NEXT, 0)
    return [7]


def indirect_bad_length(engine: Engine) -> list[int]:
    return _indirect(engine, [(_buffer(engine), 8, 0, 0)], length=24)


def indirect_zero_length(engine: Engine) -> list[int]:
    return _indirect(engine, [(_buffer(engine), 8, 0, 0)], length=0)


def indirect_longer_than_queue(engine: Engine) -> list[int]:
    buf = _buffer(engine)
    count = engine.driver.size + 1
    return _indirect(engine, [(buf, 1, DESC_F_NEXT if n + 1 < count else 0, n + 1)
                              for n in range(count)])


def indirect_table_outside_memory(engine: Engine) -> list[int]:
    _desc(engine, 7, RAM_BASE + RAM_SIZE, 32, DESC_F_INDIRECT)
    return [7]


def indirect_bad_next(engine: Engine) -> list[int]:
    return _indirect(engine, [(_buffer(engine), 8, DESC_F_NEXT, 5)])


def buffer_outside_memory(engine: Engine) -> list[int]:
    _desc(engine, 7, 0x1000, 8, 0)
    return [7]


def buffer_crossing_region_end(engine: Engine) -> list[int]:
    _desc(engine, 7, RAM_BASE + RAM_SIZE - 4, 8, DESC_F_WRITE)
    return [7]


def buffer_address_wraps(engine: Engine) -> list[int]:
    _desc(engine, 7, 0xFFFF_FFFF_FFFF_FFF0, 0x20, 0)
    return [7]


def readable_after_writable(engine: Engine) -> list[int]:
    _desc(engine, 6, _buffer(engine), 8, DESC_F_WRITE | DESC_F_NEXT, 7)
    _desc(engine, 7, _buffer(engine), 8, 0)
    return [6]


def readable_after_writable_indirect(engine: Engine) -> list[int]:
    return _indirect(engine, [(_buffer(engine), 8, DESC_F_WRITE | DESC_F_NEXT, 1),
                              (_buffer(engine), 8, 0, 0)])


MALFORMED_CHAINS = [bad_head, bad_next, loop, self_loop, indirect_loop, nested_indirect,
                    indirect_with_next, indirect_bad_length, indirect_zero_length,
                    indirect_longer_than_queue, indirect_table_outside_memory, indirect_bad_next,
                    buffer_outside_memory, buffer_crossing_region_end, buffer_address_wraps,
                    readable_after_writable, readable_after_writable_indirect]


@pytest.mark.parametrize("make_chain", MALFORMED_CHAINS, ids=lambda f: f.__name__)
def test_malformed_chain_breaks_the_queue_after_serving_what_came_before(
        make_engine, make_chain) -> None:
    engine = make_engine()
    handler = Recorder()
    good = engine.driver.add(b"before", 16)
    bad = make_chain(engine)
    engine.driver.publish_raw([good, *bad, good])
    assert engine.queue.process(handler) == 1
    assert handler.calls == [(b"before", 16)]
    assert engine.queue.broken
    assert engine.queue.error
    assert engine.driver.signalled("err")
    assert engine.driver.signalled("call")
    assert [d.data for d in engine.driver.collect()] == [b"re:before"]
    # Broken stays broken until the ring is set up again.
    assert engine.queue.process(handler) == 0
    assert engine.queue.push(b"x") is False
    engine.queue.set_base(engine.queue.base + 1)  # the VMM restarts past the bad entry
    assert not engine.queue.broken


def test_indirect_without_the_feature_breaks_the_queue(make_engine) -> None:
    engine = make_engine(indirect=False)
    engine.driver.publish([engine.driver.add(b"a", 8, indirect=True)])
    assert engine.queue.process(Recorder()) == 0
    assert engine.queue.broken and "INDIRECT" in engine.queue.error


def test_chain_longer_than_4_gib_is_refused(make_engine) -> None:
    # A sparse 2 GiB + 4 KiB region: nothing is touched, only lengths are checked.
    engine = make_engine(layout=((RAM_BASE, RAM_SIZE), (0x1_0000_0000, 0x8000_1000)))
    for index in range(3):
        _desc(engine, 5 + index, 0x1_0000_0000, 0x8000_0000, DESC_F_WRITE | DESC_F_NEXT,
              6 + index)
    _desc(engine, 7, 0x1_0000_0000, 0x8000_0000, DESC_F_WRITE)
    engine.driver.publish_raw([5])
    handler = Recorder()
    assert engine.queue.process(handler) == 0
    assert handler.calls == []
    assert engine.queue.broken and "4 GiB" in engine.queue.error


def test_avail_index_jump_breaks_the_queue(make_engine) -> None:
    engine = make_engine()
    engine.driver.publish_raw([], avail_idx=engine.driver.size + 1)
    assert engine.queue.process(Recorder()) == 0
    assert engine.queue.broken and "avail index" in engine.queue.error
    assert engine.driver.signalled("err")


def test_rings_outside_memory_break_the_queue(make_engine) -> None:
    engine = make_engine()
    engine.queue.set_addresses(0x10, 0x20, 0x30)
    assert not engine.queue.addresses_valid()
    assert engine.queue.process(Recorder()) == 0
    assert engine.queue.broken and "ring" in engine.queue.error


def test_ring_follows_memory_replacement(make_engine) -> None:
    engine = make_engine()
    region = engine.ram.regions[0]
    engine.memory.remove_region(region.gpa, region.size, region.uaddr)
    engine.driver.publish([engine.driver.add(b"a", 8)])
    assert engine.queue.process(Recorder()) == 0
    assert engine.queue.broken
    engine.memory.add_region(region.fd, region.gpa, region.size, region.uaddr, 0)
    engine.queue.set_base(0)
    assert engine.queue.process(Recorder()) == 1


@pytest.mark.parametrize("size", [0, 3, 2048, 1 << 20])
def test_queue_size_must_be_a_power_of_two_up_to_the_maximum(size) -> None:
    queue = SplitQueue(GuestMemory(), 0)
    with pytest.raises(ValueError):
        queue.set_size(size)


@pytest.mark.parametrize("desc,used,avail", [(8, 0, 0), (0, 2, 0), (0, 0, 1)])
def test_misaligned_rings_are_refused(desc, used, avail) -> None:
    queue = SplitQueue(GuestMemory(), 0)
    with pytest.raises(ValueError, match="misaligned"):
        queue.set_addresses(desc, used, avail)


def test_kick_is_drained_without_blocking(make_engine) -> None:
    engine = make_engine()
    engine.driver.kick()
    engine.queue.drain_kick()
    engine.queue.drain_kick()  # nothing pending: returns at once
    with pytest.raises(BlockingIOError):
        os.eventfd_read(engine.driver.kick_fd)


def test_serve_kick_consumes_the_kick_and_serves_the_ring(make_engine) -> None:
    engine = make_engine()
    handler = Recorder()
    engine.driver.publish([engine.driver.add(b"one", 16), engine.driver.add(b"two", 16)])
    engine.driver.kick()
    assert engine.queue.serve_kick(handler) == 2
    assert [request for request, _ in handler.calls] == [b"one", b"two"]
    assert [done.data for done in engine.driver.collect()] == [b"re:one", b"re:two"]
    with pytest.raises(BlockingIOError):
        os.eventfd_read(engine.driver.kick_fd)
    # A stopped ring: the kick is still consumed (the loop must not spin), nothing served.
    engine.queue.stop()
    engine.driver.publish([engine.driver.add(b"three", 16)])
    engine.driver.kick()
    assert engine.queue.serve_kick(handler) == 0
    assert len(handler.calls) == 2
    with pytest.raises(BlockingIOError):
        os.eventfd_read(engine.driver.kick_fd)


def test_a_driver_that_never_stops_cannot_hold_the_engine(make_engine) -> None:
    engine = make_engine(size=4)
    driver = engine.driver
    head = driver.add(b"again", 16)

    def handler(request: bytes, writable: int) -> bytes:
        driver.publish_raw([head])  # every request brings the next one
        return b"ok"

    driver.publish_raw([head])
    assert engine.queue.process(handler) == 4
    # The rest waits for the next turn of the event loop: the queue kicked itself.
    assert os.eventfd_read(driver.kick_fd) == 1
    assert engine.queue.process(handler) == 4
    assert not engine.queue.broken
