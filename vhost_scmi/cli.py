# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Command line of the `vhost-device-scmi` daemon.

`build_parser()` is the single source of the options: argparse reads it at run
time and argparse-manpage reads it to generate man/vhost-device-scmi.1.
"""

from __future__ import annotations

import argparse
import logging
import sys

from vhost_scmi import __version__
from vhost_scmi.devices.registry import devices_help
from vhost_scmi.devices.sensor import DeviceSpecError
from vhost_scmi.devices.spec import create_sensors
from vhost_scmi.logsetup import LEVELS, setup_logging

PROG = "vhost-device-scmi"

DESCRIPTION = """\
vhost-device-scmi is a vhost-user backend for a VirtIO SCMI device. A virtual
machine monitor such as QEMU (-device vhost-user-scmi-pci) connects to its Unix
socket; the guest then reads host sensors through the SCMI Base and Sensor
Management protocols as if they were its own firmware's. Each -d option names a
device kind and its properties; the guest sees the resulting sensors in
command-line order.
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

environment:
  RUST_LOG  log level (error, warn, info, debug, trace) when --log-level is not given

Run --help-devices for the device kinds and their properties.
Licensed under Apache-2.0 OR BSD-3-Clause.
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the daemon's argument parser (also the source of the man page)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-s", "--socket-path", metavar="PATH",
        help="location of the vhost-user Unix domain socket (required)",
    )
    parser.add_argument(
        "-d", "--device", metavar="SPEC", action="extend", nargs="+", default=[],
        help="device to expose, as ID,PROPERTY=VALUE,... (e.g. fake,name=foo); "
             "may be given several times; see --help-devices",
    )
    parser.add_argument(
        "--help-devices", action="store_true",
        help="print the available device kinds and their properties, and exit",
    )
    parser.add_argument(
        "--log-level", choices=[name for name in LEVELS if name != "off"],
        help="log level on standard error (default: RUST_LOG, else info)",
    )
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the daemon as the command line asks; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.help_devices:
        sys.stdout.write(devices_help())
        return 0
    if not args.socket_path:
        parser.error("the following arguments are required: -s/--socket-path")
    setup_logging(args.log_level)
    try:
        sensors = create_sensors(args.device)
    except DeviceSpecError as error:
        parser.exit(2, f"{PROG}: error: {error}\n")

    from vhost_scmi import daemon

    try:
        return daemon.run(args.socket_path, sensors)
    except daemon.StartupError as error:
        logging.getLogger(__name__).debug("start-up failed", exc_info=True)
        sys.stderr.write(f"{PROG}: error: {error}\n")
        return 1
    finally:
        for sensor in sensors:
            sensor.close()
