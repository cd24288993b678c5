# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The host side of SYSTEM_POWER_STATE_SET: a configured command, run without a shell.

An agent the configuration allows to request a system power state (shutdown, a reset,
suspend) makes the platform run the `[system-power]` command as

    COMMAND... AGENT_NAME STATE MODE        (STATE: shutdown, cold-reset, warm-reset,
                                             suspend; MODE: graceful or forceful)

with stdin from /dev/null and its output on the daemon's standard error. The exit
status is the answer: 0 is success. A command still running at its deadline is
killed (with its process group) and the request fails.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence

from vhost_scmi.devices.resource import DeviceError, Resource
from vhost_scmi.platform.host import HostTimeout

log = logging.getLogger(__name__)


class PowerCommand(Resource):
    """The host command that carries out agents' system power requests."""

    blocking = True

    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        self.name = "system-power"
        self.argv = tuple(argv)
        self.timeout = timeout
        # The command is killed at its own timeout; the executor's deadline comes after.
        self.call_timeout = timeout + 1.0

    def run(self, agent: str, state: str, graceful: bool) -> None:
        """Run the command for `agent`'s request; return when it succeeded.

        Raises DeviceError when it cannot start or exits non-zero, HostTimeout when
        it outlives `timeout` (it is then killed).
        """
        import subprocess  # only when a command runs: spared at start-up

        argv = [*self.argv, agent, state, "graceful" if graceful else "forceful"]
        log.info("host: agent %s requests system power state %s (%s): running %s",
                 agent, state, argv[-1], " ".join(argv))
        try:
            stderr = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            stderr = subprocess.DEVNULL
        try:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stderr,
                                       stderr=stderr, close_fds=True, start_new_session=True)
        except OSError as error:
            raise DeviceError(f"cannot run {argv[0]}: {error.strerror or error}",
                              error.errno) from None
        try:
            status = process.wait(self.timeout)
        except subprocess.TimeoutExpired:
            # Its own session: the whole group goes, children included.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:
                process.kill()
            process.wait()
            log.warning("host: system power command %s still running after %.1f s: killed",
                        argv[0], self.timeout)
            raise HostTimeout(f"{argv[0]} did not finish within {self.timeout} s") from None
        if status != 0:
            log.warning("host: system power command %s failed (exit status %d)", argv[0],
                        status)
            raise DeviceError(f"{argv[0]} exited with status {status}")
        log.info("host: system power command for agent %s succeeded", agent)
