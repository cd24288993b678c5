# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Driving protocol coroutines: host calls of blocking resources run on worker threads.

`Executor.start(coroutine)` steps a coroutine (a request handler's, or background
work's) on the calling thread, the event loop's. Each `HostCall` it awaits on a
non-blocking resource (`Resource.blocking = False`: the in-memory fakes) is made at
once, inline; a call on a blocking resource goes to that resource's worker thread, and
the coroutine is suspended. The `Task` then finishes later: the worker puts the result
on a list, writes the executor's eventfd (`fileno()`), and the event loop, woken,
calls `run_completions()`, which resumes the coroutine on the loop's thread. Protocol
code therefore never runs on a worker, and needs no locks.

Workers: one thread per blocking resource, started on its first call. Calls on one
resource run one at a time, in order (a host driver serialises them anyway); calls on
different resources run side by side, so a slow or hung device delays only the
requests that use it.

Deadlines: every call on a worker has one (`deadline` seconds, default 1 s, or the
resource's own `call_timeout`). When it passes (`deliver_due()`, called by the loop at
`next_deadline()`), `HostTimeout` is raised at the coroutine's `await` and the
resource counts as *stuck*: later calls on it fail at once with `HostTimeout`, without
queueing behind the stuck one, until its worker comes back from that call. A late
result is dropped. Worker threads are daemon threads: one stuck in a system call never
keeps the process from exiting.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from vhost_scmi.devices.resource import Resource
from vhost_scmi.platform.host import HostCall, HostTimeout

log = logging.getLogger(__name__)

#: Seconds a host call may take before its request fails (and its resource is stuck).
DEFAULT_DEADLINE = 1.0


class Task:
    """One coroutine driven by an executor.

    `done` says whether it has finished; then `value` is what it returned, or `error`
    what it raised. `callback(task)`, when set, is called on the loop's thread when a
    task that did not finish in `start()` finishes.
    """

    __slots__ = ("callback", "coroutine", "deadline", "done", "error", "serial", "value",
                 "worker")

    def __init__(self, coroutine: Coroutine[HostCall[Any], Any, Any]) -> None:
        self.coroutine = coroutine
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.callback: Callable[[Task], None] | None = None
        #: Counts the worker calls made; a late result carries an older serial.
        self.serial = 0
        self.deadline = 0.0
        self.worker: _Worker | None = None


class _Worker:
    """The thread that makes one blocking resource's calls, one at a time."""

    def __init__(self, executor: Executor, resource: Resource) -> None:
        self.resource = resource
        self.name = resource.name
        #: Set (on the loop's thread) when a call overran its deadline; cleared when the
        #: worker reports back.
        self.stuck_since: float | None = None
        self._jobs: collections.deque[tuple[Task, int, HostCall[Any]] | None] = (
            collections.deque())
        self._ready = threading.Semaphore(0)
        self._executor = executor
        self._thread = threading.Thread(target=self._run, name=f"host:{resource.name}",
                                        daemon=True)
        self._thread.start()

    def submit(self, task: Task, serial: int, call: HostCall[Any]) -> None:
        self._jobs.append((task, serial, call))
        self._ready.release()

    def stop(self) -> None:
        self._jobs.append(None)
        self._ready.release()

    def _run(self) -> None:
        finished, wake = self._executor._finished, self._executor._wake
        while True:
            self._ready.acquire()
            job = self._jobs.popleft()
            if job is None:
                return
            task, serial, call = job
            if task.serial != serial:  # timed out while queued: do not call the device,
                finished.append((self, None, 0, None, None))  # but say it is free
                wake()
                continue
            try:
                value, error = call.run(), None
            except BaseException as exc:  # handed to the coroutine, whatever it is
                value, error = None, exc
            finished.append((self, task, serial, value, error))
            wake()


class Executor:
    """Runs coroutines for the event loop (see the module docstring).

    With `threads=False` every host call runs inline (tools and tests without a loop):
    then every task finishes inside `start()`.
    """

    def __init__(self, *, deadline: float = DEFAULT_DEADLINE, threads: bool = True) -> None:
        self.deadline = deadline
        self.threads = threads
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC) if threads else -1
        #: (worker, task, serial, value, error) put by workers, taken by the loop.
        self._finished: collections.deque[tuple[_Worker, Task | None, int, Any,
                                                BaseException | None]] = collections.deque()
        self._workers: dict[int, _Worker] = {}
        #: Tasks waiting on a worker.
        self._waiting: set[Task] = set()
        self._closed = False
        self._deadline_moved: Callable[[], object] = _nothing

    # --- the loop's side --------------------------------------------------------------

    def fileno(self) -> int:
        """The eventfd the loop watches; readable when `run_completions()` has work."""
        return self._fd

    def _wake(self) -> None:
        try:
            os.eventfd_write(self._fd, 1)
        except OSError:  # closed at shutdown, or the counter is full (already readable)
            pass

    def run_completions(self) -> None:
        """Resume the tasks whose host calls returned (on the loop's thread)."""
        try:
            os.eventfd_read(self._fd)
        except (BlockingIOError, OSError):
            pass
        finished = self._finished
        while finished:
            worker, task, serial, value, error = finished.popleft()
            if worker.stuck_since is not None:
                log.warning("host: %s answered again after %.1f s", worker.name,
                            time.monotonic() - worker.stuck_since)
                worker.stuck_since = None
            if task is None or task.serial != serial or task not in self._waiting:
                log.debug("host: late result of %s dropped", worker.name)
                continue
            self._waiting.discard(task)
            task.worker = None
            self._step(task, value, error)

    def next_deadline(self) -> float | None:
        """`time.monotonic()` when the earliest host call in flight overruns, or None."""
        if not self._waiting:
            return None
        return min(task.deadline for task in self._waiting)

    def notify_deadline(self, callback: Callable[[], object]) -> None:
        """Call `callback()` from then on whenever `next_deadline()` may have moved
        earlier (a host call went to a worker)."""
        self._deadline_moved = callback

    def deliver_due(self, now: float) -> None:
        """Fail the host calls whose deadline passed by `now` (HostTimeout)."""
        for task in [task for task in self._waiting if task.deadline <= now]:
            worker = task.worker
            assert worker is not None
            self._waiting.discard(task)
            task.worker = None
            task.serial += 1  # its result, if it ever comes, is dropped
            limit = worker.resource.call_timeout or self.deadline
            if worker.stuck_since is None:
                worker.stuck_since = now - limit
                log.warning("host: %s did not answer within %.3g s; failing its calls "
                            "until it does", worker.name, limit)
            self._step(task, None, HostTimeout(
                f"{worker.name}: no answer within {limit:.3g} s", errno.ETIMEDOUT))

    # --- protocol code's side ---------------------------------------------------------

    def start(self, coroutine: Coroutine[HostCall[Any], Any, Any]) -> Task:
        """Run `coroutine` until it finishes or waits on a worker; return its Task."""
        task = Task(coroutine)
        self._step(task, None, None)
        return task

    def spawn(self, coroutine: Coroutine[HostCall[Any], Any, Any]) -> None:
        """Run background work; what it raises is logged (AgentView.spawn)."""
        task = self.start(coroutine)
        if task.done:
            _log_failure(task)
        else:
            task.callback = _log_failure

    def stuck(self, resource: Resource) -> bool:
        """Whether `resource`'s worker is stuck in a call that overran its deadline."""
        worker = self._workers.get(id(resource))
        return worker is not None and worker.stuck_since is not None

    def close(self) -> None:
        """Stop the idle workers (a stuck one is left: it is a daemon thread)."""
        if self._closed:
            return
        self._closed = True
        for worker in self._workers.values():
            worker.stop()
        self._workers.clear()
        self._waiting.clear()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _step(self, task: Task, value: Any, error: BaseException | None) -> None:
        coroutine = task.coroutine
        while True:
            try:
                call = coroutine.send(value) if error is None else coroutine.throw(error)
            except StopIteration as stop:
                task.value = stop.value
                break
            except Exception as exc:
                task.error = exc
                break
            value = error = None
            if type(call) is not HostCall:
                error = TypeError(f"a platform coroutine awaited {call!r}, not a HostCall")
                continue
            resource = call.resource
            if not (resource.blocking and self.threads):
                try:
                    value = call.run()
                except Exception as exc:
                    error = exc
                continue
            worker = self._workers.get(id(resource))
            if worker is None:
                if self._closed:
                    error = HostTimeout(f"{resource.name}: shutting down", errno.ESHUTDOWN)
                    continue
                worker = self._workers[id(resource)] = _Worker(self, resource)
            elif worker.stuck_since is not None:
                error = HostTimeout(f"{resource.name}: still stuck in an earlier call",
                                    errno.ETIMEDOUT)
                continue
            task.serial += 1
            task.deadline = time.monotonic() + (resource.call_timeout or self.deadline)
            task.worker = worker
            self._waiting.add(task)
            self._deadline_moved()
            worker.submit(task, task.serial, call)
            return
        task.done = True
        callback = task.callback
        if callback is not None:
            task.callback = None
            callback(task)


def _nothing() -> None:
    """No one to tell that a deadline moved."""


def _log_failure(task: Task) -> None:
    if task.error is not None:
        log.error("background platform work failed", exc_info=task.error)
