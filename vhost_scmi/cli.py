# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Command line of the `vhost-device-scmi` daemon.

`build_parser()` is the single source of the options: argparse reads it at run
time and argparse-manpage reads it to generate man/vhost-device-scmi.1. The
program's name, summary and capabilities come from `backend_info`, which also
generates the vhost-user descriptor at build time.

The options follow the "Backend program conventions" of QEMU's vhost-user
specification: --socket-path or --fd, --print-capabilities, no daemonizing,
fds 0-2 used as stdio only, a prompt exit on SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from vhost_scmi import __version__, backend_info, systemd
from vhost_scmi.devices.registry import devices_help
from vhost_scmi.devices.resource import DeviceSpecError, Resource
from vhost_scmi.devices.spec import create_resources
from vhost_scmi.listener import socket_paths
from vhost_scmi.logsetup import LEVELS, setup_logging

if TYPE_CHECKING:
    from vhost_scmi.platform.config import AgentConfig, PlatformConfig
    from vhost_scmi.platform.view import AgentView

PROG = backend_info.PROG

DESCRIPTION = """\
vhost-device-scmi is a vhost-user backend for a VirtIO SCMI device. A virtual
machine monitor such as QEMU (-device vhost-user-scmi-pci) connects to its Unix
socket; the guest then reads host sensors, and uses performance, power, clock,
reset, voltage and powercap domains, through the SCMI protocols of those names
as if they were its own firmware's. Each -d option names a device kind and its
properties; the guest sees the resulting resources in command-line order (ids
per protocol). Host writes are opt-in: host-backed kinds are read-only unless
given control=. Installed plugins add device kinds (see --help-devices).

The daemon serves one socket, -s PATH; or N sockets PATH0 ... PATH<N-1> with
-c N, one VMM on each at a time, each with SCMI state (sensor configurations,
notification subscriptions) of its own over the same host sensors; or a socket
inherited from its parent, --fd FDNUM or systemd socket activation. It never
daemonizes, and exits on SIGTERM or SIGINT.
"""

EPILOG = """\
examples:
  Start the daemon with one fake accelerometer named foo:
    vhost-device-scmi --socket-path=scmi.sock --device fake,name=foo

  Expose a host IIO accelerometer and a fake sensor:
    vhost-device-scmi -s scmi.sock \\
      -d iio,path=/sys/bus/iio/devices/iio:device0,channel=in_accel -d fake

  Then start QEMU with shared guest memory:
    qemu-system-aarch64 -M virt,memory-backend=mem -m 512 \\
      -object memory-backend-memfd,id=mem,size=512M,share=on \\
      -chardev socket,path=scmi.sock,id=vscmi \\
      -device vhost-user-scmi-pci,chardev=vscmi ...

  Serve three virtual machines (scmi.sock0, scmi.sock1, scmi.sock2):
    vhost-device-scmi -s scmi.sock -c 3 -d fake

  Serve the socket a parent process passed as file descriptor 5:
    vhost-device-scmi --fd 5 -d fake

  Try socket activation without a service manager:
    systemd-socket-activate -l /run/scmi.sock vhost-device-scmi -d fake

environment:
  RUST_LOG
    log level (error, warn, info, debug, trace) without --log-level
  LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES
    systemd socket activation: when LISTEN_PID is the daemon's pid,
    it serves the LISTEN_FDS sockets (listening or connected) passed
    as fds 3, 4, ...; -s and --fd are then not allowed
  NOTIFY_SOCKET
    the service manager's datagram socket (a path, or @name for the
    abstract namespace): READY=1 is sent once every socket accepts
    VMMs, STOPPING=1 when the daemon shuts down

exit status:
  0  after SIGTERM or SIGINT; after --help, --version, --help-devices
     or --print-capabilities; when the VMM of an inherited connected
     socket leaves
  1  a socket cannot be created or used
  2  a usage error (one line on standard error)

Run --help-devices for the device kinds and their properties.
Licensed under Apache-2.0 OR BSD-3-Clause.
"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, as the device spec errors are."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, sized to the terminal as argparse sizes it, but without
    importing shutil for that: argparse makes a formatter for every add_argument, and
    shutil (with the compression modules it imports) would cost every start-up."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            width = _terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


def _terminal_columns() -> int:
    """$COLUMNS, else the width of the terminal on stdout, else 80."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def _number(minimum: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{what}, not {text!r}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    """Return the daemon's argument parser (also the source of the man page)."""
    parser = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    socket_source = parser.add_mutually_exclusive_group()
    socket_source.add_argument(
        "-s", "--socket-path", metavar="PATH",
        help="location of the vhost-user Unix domain socket (required unless --fd is "
             "given or the socket is passed by systemd socket activation); created "
             "mode 0600, an old socket file there is replaced, removed at exit",
    )
    socket_source.add_argument(
        "--fd", metavar="FDNUM", type=_number(0, "FDNUM must be a file descriptor number"),
        help="serve the vhost-user socket inherited as file descriptor FDNUM: a Unix "
             "stream socket, listening (VMMs connect one after another) or connected "
             "to one VMM (the daemon exits when it leaves); incompatible with "
             "--socket-path",
    )
    parser.add_argument(
        "-c", "--socket-count", metavar="N", type=_number(1, "N must be at least 1"),
        help="serve N sockets, named PATH0 to PATH<N-1> after --socket-path, one VMM "
             "on each at a time, each with its own SCMI state over the same devices",
    )
    parser.add_argument(
        "--config", metavar="FILE",
        help="read devices, agents (one per socket: name, socket, visible devices, "
             "permissions), the control socket and the system power command from the "
             "TOML file FILE; incompatible with -s, -c and -d (see CONFIGURATION FILE)",
    )
    parser.add_argument(
        "--control-socket", metavar="PATH",
        help="serve the control socket of vhost-device-scmi-ctl(1) at PATH (status, "
             "host-requested guest shutdown and reboot); created mode 0600, removed at "
             "exit; not allowed when the --config file sets control-socket",
    )
    parser.add_argument(
        "-d", "--device", metavar="SPEC", action="extend", nargs="+", default=[],
        help="device to expose, as ID,PROPERTY=VALUE,... (e.g. fake,name=foo); "
             "may be given several times; see --help-devices",
    )
    parser.add_argument(
        "--host-timeout", metavar="MS", type=_number(1, "MS must be at least 1"),
        default=1000,
        help="milliseconds a host device may take to answer one read or write (default "
             "1000); past it, the request fails with HARDWARE_ERROR and the device's "
             "later requests fail at once until it answers again; other devices and "
             "VMs are never held up by a slow one",
    )
    parser.add_argument(
        "--help-devices", action="store_true",
        help="print the available device kinds and their properties, and exit",
    )
    parser.add_argument(
        "--print-capabilities", action="store_true",
        help="print the backend's capabilities as the JSON object of QEMU's vhost-user "
             "specification, and exit; every other option is ignored",
    )
    parser.add_argument(
        "--write-descriptor", metavar="DIR", nargs="?", const="",
        help="write the vhost-user backend descriptor naming this program "
             f"({backend_info.DESCRIPTOR_NAME}) into DIR, by default "
             "$XDG_CONFIG_HOME/qemu/vhost-user where QEMU's management tools look "
             "(~/.config/qemu/vhost-user), and exit",
    )
    parser.add_argument(
        "--log-level", choices=[name for name in LEVELS if name != "off"],
        help="log level on standard error (default: RUST_LOG, else info)",
    )
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def asks_for_capabilities(argv: Sequence[str]) -> bool:
    """Whether `argv` holds --print-capabilities (before any `--`), whatever else it holds."""
    for token in argv:
        if token == "--":
            return False
        if token == "--print-capabilities":
            return True
    return False


def _activated(parser: argparse.ArgumentParser) -> list[systemd.ActivatedSocket]:
    try:
        return systemd.listen_fds()
    except systemd.ActivationError as error:
        parser.error(f"socket activation: {error}")


def _socket_sources(parser: argparse.ArgumentParser, args: argparse.Namespace
                    ) -> tuple[list[str], list[tuple[int, str]]]:
    """The socket paths to create and the inherited (fd, origin) pairs to serve."""
    activated = _activated(parser)
    if args.socket_count is not None and not args.socket_path:
        parser.error("argument -c/--socket-count: needs -s/--socket-path")
    if activated and (args.socket_path or args.fd is not None):
        option = "-s/--socket-path" if args.socket_path else "--fd"
        parser.error(f"argument {option}: not allowed with systemd socket activation "
                     f"(LISTEN_FDS={len(activated)})")
    if args.socket_path:
        return socket_paths(args.socket_path, args.socket_count), []
    if args.fd is not None:
        return [], [(args.fd, "")]
    if activated:
        return [], [(socket_.fd, socket_.name) for socket_ in activated]
    parser.error("one of the arguments -s/--socket-path --fd --config is required "
                 "(or a socket passed by systemd socket activation)")


def _running_program() -> str:
    """The absolute path of this program: the console script that was run, else the one
    installed beside the interpreter (`python -m vhost_scmi`)."""
    import os

    if os.path.basename(sys.argv[0]) == PROG and os.path.isfile(sys.argv[0]):
        return os.path.abspath(sys.argv[0])
    return backend_info.default_binary()


def _write_descriptor(directory: str) -> int:
    try:
        path = backend_info.write_descriptor(directory or backend_info.user_descriptor_dir(),
                                             _running_program(), __version__)
    except OSError as error:
        sys.stderr.write(f"{PROG}: error: cannot write the descriptor: {error}\n")
        return 1
    sys.stdout.write(f"{path}\n")
    return 0


def _config_sources(parser: argparse.ArgumentParser, args: argparse.Namespace,
                    config: PlatformConfig) -> tuple[list[str], list[tuple[int, str]],
                                                     list[AgentConfig]]:
    """Socket paths to create, inherited (fd, origin) pairs, and the agents in the
    order of the sockets (inherited first, as the daemon opens them)."""
    for given, option in ((args.socket_path, "-s/--socket-path"),
                          (args.socket_count is not None, "-c/--socket-count")):
        if given:
            parser.error(f"argument {option}: not allowed with --config (each [[agent]] "
                         f"names its socket)")
    if args.device:
        parser.error("argument -d/--device: not allowed with --config (the devices are "
                     "the file's [[device]] tables)")
    if args.control_socket and config.control_socket:
        parser.error(f"argument --control-socket: {config.path} sets control-socket "
                     f"already")
    activated = _activated(parser)
    if activated and args.fd is not None:
        parser.error(f"argument --fd: not allowed with systemd socket activation "
                     f"(LISTEN_FDS={len(activated)})")
    inherited = [agent for agent in config.agents if agent.socket is None]
    created = [agent for agent in config.agents if agent.socket is not None]
    fds: list[tuple[int, str]] = []
    if args.fd is not None:
        fds = [(args.fd, "")]
    elif activated:
        by_name = {socket_.name: socket_ for socket_ in activated}
        if {agent.name for agent in inherited} == set(by_name) and len(by_name) == len(
                activated):
            # FileDescriptorName= of each socket unit names its agent.
            activated = [by_name[agent.name] for agent in inherited]
        fds = [(socket_.fd, socket_.name) for socket_ in activated]
    source = "--fd" if args.fd is not None else "socket activation"
    if fds and not inherited:
        parser.error(f"{source}: every [[agent]] in {config.path} has a socket of its "
                     f"own; leave out 'socket' for the agents of inherited sockets")
    if inherited and len(fds) != len(inherited):
        names = ", ".join(agent.name for agent in inherited)
        parser.error(f"{config.path}: {len(inherited)} [[agent]] without 'socket' ({names}) "
                     f"but {len(fds)} inherited socket(s) (--fd or socket activation)")
    paths = [agent.socket for agent in created if agent.socket is not None]
    return paths, fds, inherited + created


def _configured_platform(parser: argparse.ArgumentParser, args: argparse.Namespace
                         ) -> tuple[list[str], list[tuple[int, str]], list[Resource],
                                    list[AgentView], str | None]:
    """Everything --config describes: sockets, resources, agents' views, control socket."""
    # Imported here: a daemon started without --config does not pay for them.
    from vhost_scmi.platform.agents import configured_views
    from vhost_scmi.platform.config import ConfigError, PlatformConfig, load_config

    try:
        config = load_config(args.config)
    except ConfigError as error:
        parser.exit(2, f"{PROG}: error: {error}\n")
    paths, fds, agents = _config_sources(parser, args, config)
    setup_logging(args.log_level)
    by_id: dict[str, list[Resource]] = {}
    try:
        for device in config.devices:
            try:
                by_id[device.id] = create_resources([device.spec])
            except DeviceSpecError as error:
                raise DeviceSpecError(f"{config.path}: [[device]] '{device.id}': key "
                                      f"'spec': {error}") from error
    except DeviceSpecError as error:
        for resources in by_id.values():
            for resource in resources:
                resource.close()
        parser.exit(2, f"{PROG}: error: {error}\n")
    ordered = PlatformConfig(config.path, config.devices, tuple(agents),
                             config.control_socket, config.power_command, config.specs)
    views = configured_views(ordered, by_id)
    resources = [resource for group in by_id.values() for resource in group]
    return paths, fds, resources, views, args.control_socket or config.control_socket


def main(argv: list[str] | None = None) -> int:
    """Run the daemon as the command line asks; return the exit status."""
    if asks_for_capabilities(sys.argv[1:] if argv is None else argv):
        sys.stdout.write(backend_info.to_json(backend_info.capabilities()))
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.help_devices:
        sys.stdout.write(devices_help())
        return 0
    if args.print_capabilities:  # an abbreviation of the option
        sys.stdout.write(backend_info.to_json(backend_info.capabilities()))
        return 0
    if args.write_descriptor is not None:
        return _write_descriptor(args.write_descriptor)
    views: list[AgentView] | None = None
    if args.config:
        paths, fds, sensors, views, control_socket = _configured_platform(parser, args)
    else:
        paths, fds = _socket_sources(parser, args)
        control_socket = args.control_socket
        setup_logging(args.log_level)
        try:
            sensors = create_resources(args.device)
        except DeviceSpecError as error:
            parser.exit(2, f"{PROG}: error: {error}\n")

    if control_socket is not None and control_socket in paths:
        parser.error(f"argument --control-socket: {control_socket} is also a vhost-user "
                     f"socket")

    from vhost_scmi import daemon

    try:
        return daemon.run(sensors, paths=paths, fds=fds, views=views,
                          control_socket=control_socket,
                          deadline=args.host_timeout / 1000)
    except daemon.StartupError as error:
        logging.getLogger(__name__).debug("start-up failed", exc_info=True)
        sys.stderr.write(f"{PROG}: error: {error}\n")
        return 1
    finally:
        for sensor in sensors:
            sensor.close()
