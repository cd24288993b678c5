# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The two systemd protocols the daemon speaks, written against the environment directly.

Socket activation: the service manager passes listening sockets as fds 3, 4, ... and
says so in LISTEN_FDS (how many), LISTEN_PID (for which process: a child that
inherited the environment must not take them) and LISTEN_FDNAMES (colon-separated
names, optional).

Readiness notification: when NOTIFY_SOCKET names a datagram socket (a path, or an
abstract-namespace name written with a leading '@'), state lines such as READY=1 and
STOPPING=1 are sent to it, one datagram per notification.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import namedtuple
from collections.abc import MutableMapping

log = logging.getLogger(__name__)

#: The first fd the service manager passes (after stdin, stdout and stderr).
LISTEN_FDS_START = 3


class ActivationError(Exception):
    """The socket-activation variables are addressed to us but malformed."""


class ActivatedSocket(namedtuple("ActivatedSocket", ["fd", "name"])):
    """One fd passed by socket activation: `fd` (int) and its `name` (str, from
    LISTEN_FDNAMES)."""

    __slots__ = ()


def listen_fds(environ: MutableMapping[str, str] | None = None) -> list[ActivatedSocket]:
    """The sockets passed to this process by socket activation (empty when none).

    The variables are removed from `environ` (default: os.environ) whether or not they
    were addressed to this process, so that no child process takes the fds for its own.
    Raises ActivationError when LISTEN_PID is ours but LISTEN_FDS is not a count.
    """
    env = os.environ if environ is None else environ
    pid = env.pop("LISTEN_PID", None)
    count = env.pop("LISTEN_FDS", None)
    names = env.pop("LISTEN_FDNAMES", None)
    if pid is None or count is None:
        return []
    if pid.strip() != str(os.getpid()):
        log.debug("LISTEN_PID=%s is not this process (%d): no activated sockets",
                  pid, os.getpid())
        return []
    try:
        number = int(count)
    except ValueError:
        raise ActivationError(f"LISTEN_FDS={count!r} is not a number") from None
    if number < 0:
        raise ActivationError(f"LISTEN_FDS={count!r} is negative")
    name_list = names.split(":") if names else []
    if len(name_list) != number:
        name_list = []  # names that do not match the fds are not trusted
    return [ActivatedSocket(LISTEN_FDS_START + index,
                            name_list[index] if name_list else "activated")
            for index in range(number)]


def _address(value: str) -> str | bytes | None:
    if value.startswith("@"):
        return b"\0" + os.fsencode(value[1:])
    if value.startswith("/"):
        return value
    return None


class Notifier:
    """Sends state changes to the service manager named by NOTIFY_SOCKET (if any)."""

    def __init__(self, notify_socket: str | None = None) -> None:
        value = os.environ.get("NOTIFY_SOCKET") if notify_socket is None else notify_socket
        self._address = _address(value) if value else None
        if value and self._address is None:
            log.warning("NOTIFY_SOCKET=%s is not a path or an abstract socket: not notifying",
                        value)

    @property
    def enabled(self) -> bool:
        """Whether a service manager is listening."""
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send `assignments` (e.g. "READY=1") as one datagram; return whether it went.

        A failure is logged, never raised: the daemon serves its VMMs either way.
        """
        if self._address is None:
            return False
        message = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self._address)
        except OSError as error:
            log.warning("cannot notify the service manager (%s): %s",
                        ", ".join(assignments), error)
            return False
        return True
