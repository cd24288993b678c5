# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Host calls: how protocol code calls a device without knowing where the call runs.

A protocol handler that uses a device is a coroutine (`async def`) and writes

    values = await HostCall(sensor, sensor.read)

The coroutine yields the `HostCall` to whoever drives it (`run_inline` here; the daemon's
executor runs blocking resources' calls on worker threads and resumes the coroutine on
the event loop when the call returns or its deadline passes). The result comes back as
the value of the `await`; a failure is raised there (DeviceError, HostTimeout...).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar

from vhost_scmi.devices.resource import DeviceError, Resource

T = TypeVar("T")


class HostTimeout(DeviceError):
    """A host call did not return by its deadline (the driver is slow or hung)."""


class HostCall(Generic[T]):
    """One call of `function(*args)` on `resource`, awaited by protocol code."""

    __slots__ = ("args", "function", "resource")

    def __init__(self, resource: Resource, function: Callable[..., T], *args: object) -> None:
        self.resource = resource
        self.function = function
        self.args = args

    def run(self) -> T:
        """Make the call here and now (in the calling thread)."""
        return self.function(*self.args)

    def __await__(self) -> Generator[HostCall[T], Any, T]:
        result = yield self
        return result


def run_inline(coroutine: Coroutine[HostCall[Any], Any, T]) -> T:
    """Drive `coroutine` to its end, making each host call it awaits in this thread.

    For tools and tests that need no event loop; raises what the coroutine raises.
    """
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            call = coroutine.send(value) if error is None else coroutine.throw(error)
        except StopIteration as stop:
            return stop.value
        value, error = None, None
        try:
            value = call.run()
        except Exception as exc:  # handed to the coroutine, as the executor does
            error = exc
