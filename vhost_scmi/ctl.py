# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Control a running vhost-device-scmi daemon over its control socket.

This is `vhost-device-scmi-ctl`.
`build_parser()` is the single source of the options, as for the daemon: argparse reads
it at run time and tools/gen_manpage.py generates man/vhost-device-scmi-ctl.1 from it.
The wire format is vhost_scmi.control's: one JSON request line, one JSON reply line.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from typing import Any, NoReturn

from vhost_scmi import __version__

PROG = "vhost-device-scmi-ctl"
SUMMARY = "control a running vhost-device-scmi daemon"

DESCRIPTION = """\
vhost-device-scmi-ctl talks to a running vhost-device-scmi daemon over the
control socket the daemon serves (--control-socket, or control-socket in its
--config file): it shows the agents (one per vhost-user socket, one guest each)
and what each sees, and asks a guest to shut down or reboot through the SCMI
System Power protocol, as a platform's power button would.

shutdown and reboot send a SYSTEM_POWER_STATE_NOTIFIER notification to the
guest, which needs an SCMI system power driver subscribed to it (Linux:
CONFIG_ARM_SCMI_POWER_CONTROL, with a protocol@12 node under the SCMI firmware
node of its device tree). The command then waits until the guest went down:
its VMM disconnected, its device was reset, or it started afresh (a reboot).
"""

EPILOG = """\
examples:
  Show every agent, whether a VMM is connected, and its devices:
    vhost-device-scmi-ctl --control-socket /run/vhost-device-scmi/vm.ctl status

  Shut the guest of agent vm1 down, allowing it 30 seconds:
    vhost-device-scmi-ctl --control-socket /run/vhost-device-scmi/vm.ctl \\
      shutdown --agent vm1 --timeout 30

exit status:
  0  the request succeeded (the guest went down in time)
  1  the daemon refused the request, could not be reached, or the guest did
     not go down in time (or never subscribed to System Power notifications)
  2  a usage error (one line on standard error)

Licensed under Apache-2.0 OR BSD-3-Clause.
"""

#: Seconds to wait for the daemon's reply to one request.
REPLY_TIMEOUT = 5.0
#: Seconds between two looks at whether the guest went down.
POLL_INTERVAL = 0.1
DEFAULT_TIMEOUT = 60.0


class _Parser(argparse.ArgumentParser):
    """Usage errors on one line, as the daemon's."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"SECONDS must be more than 0 and at most 3600, "
                                         f"not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser (also the source of the man page)."""
    parser = _Parser(prog=PROG, description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--control-socket", metavar="PATH", required=True,
                        help="the daemon's control socket")
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=_Parser)
    status = commands.add_parser("status", help="show the agents, their VMMs and devices",
                                 description="Show every agent: its socket, whether a VMM "
                                             "is connected, the devices it sees with their "
                                             "ids and access, and its protocols' state.")
    status.add_argument("--json", action="store_true",
                        help="print the daemon's reply as JSON instead of text")
    for name, what in (("shutdown", "shut down"), ("reboot", "reboot")):
        command = commands.add_parser(
            name, help=f"ask a guest to {what}",
            description=f"Ask the guest of an agent to {what} (SCMI System Power "
                        f"notification) and wait until it went down.")
        command.add_argument("--agent", metavar="NAME",
                             help="the agent (guest) to ask; needed when the daemon has "
                                  "several")
        command.add_argument("--forceful", action="store_true",
                             help="send a forceful request instead of a graceful one "
                                  "(Linux ignores forceful requests)")
        command.add_argument("--timeout", metavar="SECONDS", type=_seconds,
                             default=DEFAULT_TIMEOUT,
                             help="how long the guest has to go down, also told to it as "
                                  f"the graceful timeout (default {DEFAULT_TIMEOUT:g})")
    # The options first, then the commands (as in the man page's OPTIONS section).
    parser._action_groups.sort(key=lambda group: group is parser._positionals)
    return parser


class ControlError(Exception):
    """The daemon cannot be reached or refused the request."""


def request(path: str, message: dict[str, Any], timeout: float = REPLY_TIMEOUT
            ) -> dict[str, Any]:
    """Send `message` to the control socket at `path`; return the daemon's reply.

    Raises ControlError when the daemon cannot be reached, or replies with an error.
    """
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    sock.connect(path)
                    break
                except BlockingIOError:  # its backlog is full: the daemon is busy
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.01)
            sock.sendall(json.dumps(message).encode() + b"\n")
            data = bytearray()
            while chunk := sock.recv(65536):
                data += chunk
    except OSError as error:
        raise ControlError(f"control socket {path}: {error.strerror or error}") from None
    try:
        reply = json.loads(data)
    except ValueError:
        raise ControlError(f"control socket {path}: unreadable reply") from None
    if not isinstance(reply, dict):
        raise ControlError(f"control socket {path}: unreadable reply")
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error", "request failed")))
    return reply


def format_status(reply: dict[str, Any]) -> str:
    """The text `status` prints for the daemon's reply."""
    lines = []
    for agent in reply.get("agents", []):
        state = "VMM connected" if agent.get("connected") else "no VMM"
        lines.append(f"agent {agent.get('id')} {agent.get('name')}: {state} "
                     f"(socket {agent.get('socket')})")
        for resource in agent.get("resources", []):
            lines.append(f"  {resource.get('type')} {resource.get('id')}: "
                         f"{resource.get('name')} ({resource.get('access')})")
        sensors = {sensor.get("id"): sensor for sensor in
                   agent.get("protocols", {}).get("sensor", {}).get("sensors", [])}
        for sensor in sensors.values():
            flags = [name for name in ("enabled", "update_notify", "trip_notify")
                     if sensor.get(name)]
            lines.append(f"  sensor {sensor.get('id')} state: {', '.join(flags) or 'idle'}")
        for setting in agent.get("shared", []):
            lines.append(f"  {setting.get('resource')} {setting.get('setting')}: "
                         f"{setting.get('value')} (requested: {setting.get('request')})")
        power = agent.get("protocols", {}).get("system_power")
        if power is not None:
            subscribed = "subscribed" if power.get("subscribed") else "not subscribed"
            allowed = ", ".join(power.get("may_request") or []) or "nothing"
            lines.append(f"  system power: {subscribed}; may request {allowed}")
    return "\n".join(lines) + "\n"


def _agent_entry(reply: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((agent for agent in reply.get("agents", []) if agent.get("name") == name),
                None)


def went_down(path: str, agent: str, generation: int, timeout: float) -> bool:
    """Wait until `agent`'s VMM disconnected or its System Power generation moved
    past `generation`; return whether that happened within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        entry = _agent_entry(request(path, {"command": "status"}), agent)
        if entry is None or not entry.get("connected"):
            return True
        power = entry.get("protocols", {}).get("system_power", {})
        if power.get("generation", generation) != generation:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)


def main(argv: list[str] | None = None) -> int:
    """Run one command; return the exit status."""
    args = build_parser().parse_args(argv)
    path = args.control_socket
    try:
        if args.command == "status":
            reply = request(path, {"command": "status"})
            if args.json:
                sys.stdout.write(json.dumps(reply["agents"], indent=2) + "\n")
            else:
                sys.stdout.write(format_status(reply))
            return 0
        reply = request(path, {"command": "power", "agent": args.agent,
                               "state": args.command, "forceful": args.forceful,
                               "timeout": args.timeout})
        agent, generation = reply["agent"], reply["generation"]
        if went_down(path, agent, generation, args.timeout):
            sys.stdout.write(f"{agent}: went down\n")
            return 0
        sys.stderr.write(f"{PROG}: {agent}: did not go down within {args.timeout:g} s\n")
        return 1
    except ControlError as error:
        sys.stderr.write(f"{PROG}: {error}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
