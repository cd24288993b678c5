# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Logging to stderr, with levels named as RUST_LOG names them.

On a terminal or a file each line carries its own time stamp. When stderr is the
journal (systemd sets JOURNAL_STREAM to its device and inode), each line starts with
its sd-daemon priority prefix instead (<3> error ... <7> debug), so that the journal
records the level (`journalctl -p warning`) and stamps the time once.
"""

from __future__ import annotations

import logging
import os
import sys

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

LEVELS = {
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
    "off": logging.CRITICAL + 10,
}
DEFAULT_LEVEL = "info"


def level_from_env(value: str | None) -> int:
    """Return the level a RUST_LOG-style value asks for; unknown or empty means info.

    Only a bare level (`debug`) or a `target=level` list is understood; for a list,
    the most verbose level named wins, as the daemon has a single target.
    """
    if not value:
        return LEVELS[DEFAULT_LEVEL]
    found = []
    for item in value.split(","):
        name = item.rpartition("=")[2].strip().lower()
        if name in LEVELS:
            found.append(LEVELS[name])
    return min(found) if found else LEVELS[DEFAULT_LEVEL]


def stderr_is_journal() -> bool:
    """Whether stderr is the journal's stream: JOURNAL_STREAM ("DEVICE:INODE", set by
    systemd) names the file that fd 2 is (not merely one a parent had)."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        status = os.fstat(2)
    except OSError:
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))


def journal_priority(levelno: int) -> int:
    """The syslog priority of a logging level: 3 error, 4 warning, 6 info, 7 debug."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(logging.Formatter):
    """`<priority>[LEVEL name] message`, the prefix on every line of a multi-line record."""

    def __init__(self) -> None:
        super().__init__("[%(levelname)s %(name)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{journal_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def setup_logging(level_name: str | None) -> None:
    """Send log records to stderr at `level_name`, or at RUST_LOG's level when None:
    time-stamped lines, or priority-prefixed ones when stderr is the journal."""
    level = LEVELS[level_name] if level_name else level_from_env(os.environ.get("RUST_LOG"))
    handler = logging.StreamHandler(sys.stderr)
    if stderr_is_journal():
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("[%(asctime)s %(levelname)s %(name)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
