# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The sockets the daemon serves VMMs on: created at a path, or inherited as an fd.

A socket created here is a socket file (mode 0600) that the daemon removes when it
exits. An inherited socket (`--fd`, systemd socket activation) belongs to whoever
passed it: it is either listening, so that VMMs connect to it one after another, or
already connected to one VMM; the daemon never removes its file.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from collections.abc import Sequence

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The daemon cannot start (a socket unusable); the message says why."""


class ServedSocket:
    """A socket to serve VMMs on."""

    def __init__(self, sock: socket.socket, name: str, listening: bool,
                 path: str | None = None, identity: tuple[int, int] | None = None) -> None:
        self.sock = sock
        #: How log lines name it: the path, or the fd.
        self.name = name
        #: True: accept VMMs on it; False: it is one VMM's connection already.
        self.listening = listening
        #: The socket file we created, and its (device, inode), to remove at exit.
        self.path = path
        self.identity = identity

    def __repr__(self) -> str:
        return f"ServedSocket({self.name!r}, listening={self.listening})"

    def remove_file(self) -> None:
        """Remove the socket file if we created it and it is still ours."""
        if self.path is not None and self.identity is not None:
            remove_socket(self.path, self.identity)


def socket_paths(path: str, count: int | None) -> list[str]:
    """The socket paths to create: `path` alone, or `path0` ... `path{count-1}`.

    With a count, the index is appended to the path, as rust-vmm's other
    vhost-device daemons name their sockets.
    """
    if count is None:
        return [path]
    return [f"{path}{index}" for index in range(count)]


def open_listener(path: str) -> ServedSocket:
    """Create the listening socket at `path` (mode 0600), replacing a stale socket file.

    Raises StartupError for a missing directory, a symlink or a non-socket at `path`,
    or any failure to bind.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise StartupError(f"cannot create socket {path}: directory {directory} does not exist")
    try:
        existing = os.lstat(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise StartupError(f"cannot use socket path {path}: {error.strerror}") from error
    else:
        if stat.S_ISLNK(existing.st_mode):
            raise StartupError(f"refusing socket path {path}: it is a symbolic link")
        if not stat.S_ISSOCK(existing.st_mode):
            raise StartupError(f"refusing socket path {path}: it exists and is not a socket")
        try:
            os.unlink(path)
        except OSError as error:
            raise StartupError(f"cannot replace socket {path}: {error.strerror}") from error
        log.info("replaced the existing socket file %s", path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    # The socket file gets 0600 from the umask at bind time: no window where others may connect.
    old_umask = os.umask(0o177)
    try:
        listener.bind(path)
        listener.listen(1)
        created = os.stat(path)
    except OSError as error:
        listener.close()
        raise StartupError(f"cannot create socket {path}: {error.strerror or error}") from error
    finally:
        os.umask(old_umask)
    return ServedSocket(listener, path, listening=True, path=path,
                        identity=(created.st_dev, created.st_ino))


def remove_socket(path: str, identity: tuple[int, int]) -> None:
    """Remove the socket file at `path` if it is still the one we created."""
    try:
        current = os.lstat(path)
        if (current.st_dev, current.st_ino) == identity:
            os.unlink(path)
    except OSError:
        pass


def adopt_fd(fd: int, origin: str = "") -> ServedSocket:
    """Take over inherited fd `fd`: a Unix stream socket, listening or connected.

    `origin` says where the fd came from, for messages. The fd is made close-on-exec.
    Raises StartupError, naming the fd, when it is not open, not such a socket, or
    neither listening nor connected; the fd is then left as it was.
    """
    name = f"fd {fd}" + (f" ({origin})" if origin else "")
    try:
        mode = os.fstat(fd).st_mode
    except OSError as error:
        if error.errno == errno.EBADF:
            raise StartupError(f"{name} is not open") from error
        raise StartupError(f"cannot use {name}: {error.strerror}") from error
    if not stat.S_ISSOCK(mode):
        raise StartupError(f"{name} is not a socket")
    # A socket object on a duplicate inspects the fd without taking ownership of it yet.
    probe = socket.socket(fileno=os.dup(fd))
    try:
        if probe.family != socket.AF_UNIX:
            raise StartupError(f"{name} is not a Unix domain socket")
        if probe.type != socket.SOCK_STREAM:
            raise StartupError(f"{name} is not a stream socket")
        listening = bool(probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
        if not listening:
            try:
                probe.getpeername()
            except OSError as error:
                raise StartupError(f"{name} is neither listening nor connected") from error
    finally:
        probe.close()
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(False)
    return ServedSocket(sock, name, listening=listening)


def open_all(paths: Sequence[str], fds: Sequence[tuple[int, str]]) -> list[ServedSocket]:
    """Create the sockets at `paths` and adopt the (fd, origin) pairs `fds`: all or none.

    Raises StartupError for the first that fails, after closing (and removing the
    files of) those already opened.
    """
    opened: list[ServedSocket] = []
    try:
        for fd, origin in fds:
            opened.append(adopt_fd(fd, origin))
        for path in paths:
            opened.append(open_listener(path))
    except BaseException:
        for served in opened:
            served.sock.close()
            served.remove_file()
        raise
    return opened
