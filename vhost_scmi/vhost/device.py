# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""What a virtio device must provide to be served over vhost-user.

The vhost-user layer knows queues, memory and features, never what the device
does with a request: the device answers through this interface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from vhost_scmi.vhost.virtqueue import SplitQueue

#: A request queue's handler: (driver-readable bytes, device-writable length) ->
#: response bytes (at most the writable length; longer is truncated), or None after
#: calling the queue's `defer()`: the request is answered later with `complete()`.
RequestHandler = Callable[[bytes, int], bytes | None]


class VirtioDevice(Protocol):
    """A device model behind a vhost-user back-end connection."""

    #: Number of virtqueues (GET_QUEUE_NUM).
    queue_count: int
    #: Device-specific virtio feature bits (0-23) the device offers.
    device_features: int

    def queue_handler(self, index: int) -> RequestHandler | None:
        """The handler serving requests on queue `index` (it may hold a request and
        answer it later, out of order: `SplitQueue.defer`/`complete` of the queue given
        to `connected()`), or None for a queue on which
        the driver posts buffers for the device to fill later (an event queue):
        its buffers stay posted until the device pushes data into them."""

    def buffers_posted(self, index: int, queue: SplitQueue) -> None:
        """The driver kicked device-to-driver queue `index`: there may be new buffers.
        The device may now `queue.push()` what it holds back."""

    def connected(self, queues: Sequence[SplitQueue]) -> None:
        """A VMM connected; `queues` (one per queue index) live until `disconnected()`.
        `push()` on a queue that is not running returns False, so the device may
        try at any time."""

    def disconnected(self) -> None:
        """The VMM went away: forget its queues and drop all guest-visible state."""

    def reset(self) -> None:
        """The VMM reset the device (RESET_DEVICE, RESET_OWNER): drop all guest-visible
        state (subscriptions, pending events); the queues stay."""
