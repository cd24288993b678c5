# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Logging to stderr, with levels named as RUST_LOG names them."""

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


def setup_logging(level_name: str | None) -> None:
    """Send log records to stderr at `level_name`, or at RUST_LOG's level when None."""
    level = LEVELS[level_name] if level_name else level_from_env(os.environ.get("RUST_LOG"))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s %(levelname)s %(name)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
