# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""A writer of cpio archives in the "newc" format, which the Linux initramfs unpacker reads.

Written here rather than calling cpio(1) so that an archive is made in memory, with
exact modes and device nodes, without root and without a staging directory.
"""

from __future__ import annotations

import stat

_MAGIC = b"070701"


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


class CpioWriter:
    """Collects entries and returns the archive bytes from `finish()`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", nlink: int = 1,
               rdev: tuple[int, int] = (0, 0)) -> None:
        encoded = name.encode() + b"\0"
        fields = (
            self._ino, mode, 0, 0, nlink, 0, len(data),
            0, 0, rdev[0], rdev[1], len(encoded), 0,
        )
        header = _MAGIC + b"".join(b"%08X" % value for value in fields)
        self._parts += [header, encoded, _pad4(len(header) + len(encoded)), data, _pad4(len(data))]
        self._ino += 1

    def directory(self, name: str, mode: int = 0o755) -> None:
        """Add a directory (parents are not implied: add them first)."""
        self._entry(name, stat.S_IFDIR | mode, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        """Add a regular file with the given content."""
        self._entry(name, stat.S_IFREG | mode, data)

    def char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        """Add a character device node."""
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        """Return the archive, terminated by its trailer entry."""
        self._entry("TRAILER!!!", 0, nlink=1)
        return b"".join(self._parts)
