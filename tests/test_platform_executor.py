# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The executor: host calls of blocking resources on worker threads, with deadlines.

The blocking resource here really blocks: its call reads a pipe, in the kernel, until
the test writes to it. The test plays the event loop: it waits for the executor's
eventfd, then calls `run_completions()`, and `deliver_due()` at deadlines.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Iterator

import pytest

from vhost_scmi.devices.resource import Resource
from vhost_scmi.platform.arbitration import Rule, SharedSetting
from vhost_scmi.platform.executor import Executor, Task
from vhost_scmi.platform.host import HostCall, HostTimeout


class PipeDevice(Resource):
    """A device whose read blocks in read(2) until the test writes a byte."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.read_fd, self.write_fd = os.pipe()

    def read(self) -> int:
        return os.read(self.read_fd, 1)[0]

    def release(self, value: int = 7) -> None:
        os.write(self.write_fd, bytes([value]))

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self.write_fd)


class Memory(Resource):
    blocking = False
    name = "memory"

    def read(self) -> int:
        return 1


async def read(resource: Resource) -> int:
    return await HostCall(resource, resource.read)  # type: ignore[attr-defined]


async def read_twice(first: Resource, second: Resource) -> tuple[int, int]:
    return (await HostCall(first, first.read),  # type: ignore[attr-defined]
            await HostCall(second, second.read))  # type: ignore[attr-defined]


@pytest.fixture
def executor() -> Iterator[Executor]:
    executor = Executor(deadline=0.3)
    yield executor
    executor.close()


@pytest.fixture
def devices() -> Iterator[list[PipeDevice]]:
    made = [PipeDevice("slow"), PipeDevice("other")]
    yield made
    for device in made:
        device.release()  # a worker still stuck in read() comes back
        time.sleep(0.01)
        device.close()


def wait_completion(executor: Executor, timeout: float = 5.0) -> None:
    """What the event loop does: sleep on the eventfd, then run the completions."""
    readable, _, _ = select.select([executor.fileno()], [], [], timeout)
    assert readable, "no completion within the timeout"
    executor.run_completions()


def test_non_blocking_calls_run_inline(executor: Executor) -> None:
    task = executor.start(read_twice(Memory(), Memory()))
    assert task.done and task.value == (1, 1) and task.error is None
    assert executor.next_deadline() is None


def test_blocking_call_runs_on_a_worker_and_resumes_on_the_loop(
        executor: Executor, devices: list[PipeDevice]) -> None:
    slow = devices[0]
    finished: list[Task] = []
    task = executor.start(read_twice(slow, Memory()))
    assert not task.done  # the caller (the loop) is free while read(2) blocks
    task.callback = finished.append
    deadline = executor.next_deadline()
    assert deadline is not None and deadline > time.monotonic()
    slow.release(42)
    wait_completion(executor)
    assert finished == [task] and task.value == (42, 1)
    assert executor.next_deadline() is None


def test_deadline_fails_the_call_and_later_calls_fail_fast_until_it_returns(
        executor: Executor, devices: list[PipeDevice]) -> None:
    slow, other = devices
    task = executor.start(read(slow))
    deadline = executor.next_deadline()
    assert deadline is not None
    time.sleep(max(deadline - time.monotonic(), 0) + 0.05)
    executor.deliver_due(time.monotonic())
    assert task.done and isinstance(task.error, HostTimeout)
    assert executor.stuck(slow)
    # The worker is still in read(2): a new call fails at once instead of queueing.
    again = executor.start(read(slow))
    assert again.done and isinstance(again.error, HostTimeout)
    # Other devices carry on.
    elsewhere = executor.start(read(other))
    other.release(5)
    wait_completion(executor)
    assert elsewhere.done and elsewhere.value == 5
    # The stuck read returns: its late result is dropped, the device is usable again.
    slow.release(9)
    wait_completion(executor)
    assert not executor.stuck(slow)
    recovered = executor.start(read(slow))
    slow.release(10)
    wait_completion(executor)
    assert recovered.done and recovered.value == 10


def test_calls_on_one_device_run_in_order(executor: Executor,
                                          devices: list[PipeDevice]) -> None:
    slow = devices[0]
    tasks = [executor.start(read(slow)) for _ in range(3)]
    for value in (1, 2, 3):
        slow.release(value)
    while not all(task.done for task in tasks):
        wait_completion(executor)
    assert [task.value for task in tasks] == [1, 2, 3]


def test_spawned_work_that_fails_is_logged(executor: Executor, devices: list[PipeDevice],
                                           caplog: pytest.LogCaptureFixture) -> None:
    async def failing() -> None:
        await HostCall(devices[0], devices[0].read)
        raise ValueError("boom")

    executor.spawn(failing())
    devices[0].release()
    wait_completion(executor)
    assert "background platform work failed" in caplog.text


def test_awaiting_something_else_is_an_error(executor: Executor) -> None:
    class NotACall:
        def __await__(self):
            yield "nonsense"

    async def confused() -> None:
        await NotACall()

    task = executor.start(confused())
    assert task.done and isinstance(task.error, TypeError)


def test_without_threads_every_call_is_inline(devices: list[PipeDevice]) -> None:
    inline = Executor(threads=False)
    devices[0].release(3)
    task = inline.start(read(devices[0]))
    assert task.done and task.value == 3


class BlockingKnob(Resource):
    """A host setting whose writes block in read(2) until the test lets one through."""

    name = "knob"

    def __init__(self) -> None:
        self.gate_read, self.gate_write = os.pipe()
        self.written: list[int] = []

    def apply(self, value: int) -> None:
        os.read(self.gate_read, 1)
        self.written.append(value)

    def close(self) -> None:
        os.close(self.gate_read)
        os.close(self.gate_write)


def test_requests_while_a_host_write_is_in_flight_are_not_lost(executor: Executor) -> None:
    knob = BlockingKnob()
    setting = SharedSetting(knob, "level", Rule.HIGHEST, 0, knob.apply)
    try:
        first = executor.start(setting.request(1, 7))  # writes 7; blocked in the host
        second = executor.start(setting.request(2, 5))  # while that write is in flight
        assert not first.done
        os.write(knob.gate_write, b"xxx")
        while not (first.done and second.done):
            wait_completion(executor)
        assert first.error is None and second.error is None
        # Both requests are kept, and the host ends with their combination.
        assert setting.requests == {1: 7, 2: 5}
        assert setting.value == 7 and knob.written[-1] == 7
    finally:
        os.write(knob.gate_write, b"xxxx")
        time.sleep(0.01)
        knob.close()


def test_a_resource_with_its_own_timeout_gets_that_deadline(
        executor: Executor, devices: list[PipeDevice]) -> None:
    slow = devices[0]
    slow.call_timeout = 30.0  # a host command killed at its own timeout
    task = executor.start(read(slow))
    deadline = executor.next_deadline()
    assert deadline is not None and deadline > time.monotonic() + 20
    slow.release(1)
    wait_completion(executor)
    assert task.value == 1
