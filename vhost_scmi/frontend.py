# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`python -m vhost_scmi.frontend --socket-path PATH`: query a vhost-user SCMI back-end.

Connects to any vhost-user SCMI device back-end (this one, rust-vmm's, ...) as a
VMM would, with memfd guest memory and real virtqueues, then prints the platform's
vendor, its protocols, every sensor with its unit and axes, and one reading of each
(enabling a disabled sensor for the reading, as Linux does, and disabling it again).
A way to check a back-end without booting a virtual machine.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from vhost_scmi.daemon import ScmiFeature, ScmiQueue
from vhost_scmi.devices.sensor import Unit
from vhost_scmi.scmi.client import ScmiClient, ScmiProtocolError, ScmiStatusError
from vhost_scmi.vhost.frontend import FrontendError, GuestRam, VhostUserFrontend

#: What Linux's virtio SCMI transport offers for a response: header, status, 128 bytes.
RESPONSE_SPACE = 136
PROTOCOL_NAMES = {0x10: "base", 0x11: "power domain", 0x12: "system power",
                  0x13: "performance", 0x14: "clock", 0x15: "sensor", 0x16: "reset",
                  0x17: "voltage", 0x18: "power capping", 0x19: "pin control"}


def unit_name(code: int, exponent: int) -> str:
    try:
        name = Unit(code).name.lower()
    except ValueError:
        name = f"type {code}"
    return name if exponent == 0 else f"{name} x 1e{exponent}"


def describe(client: ScmiClient, out: TextIO) -> None:
    """Print what the SCMI platform behind `client` offers, and one reading per sensor."""
    version = client.base_version()
    out.write(f"vendor: {client.vendor()}")
    try:
        out.write(f" / {client.sub_vendor()}")
    except ScmiStatusError:
        pass
    out.write(f", implementation {client.implementation_version():#x}, "
              f"base protocol {version >> 16}.{version & 0xFFFF}\n")
    protocols = client.list_protocols()
    out.write("protocols: " + ", ".join(
        f"{pid:#x} ({PROTOCOL_NAMES.get(pid, 'unknown')})" for pid in protocols) + "\n")
    if 0x15 not in protocols:
        return
    version = client.sensor_version()
    sensors = client.sensor_descriptions()
    out.write(f"sensors: {len(sensors)} (sensor protocol {version >> 16}.{version & 0xFFFF})\n")
    for sensor in sensors:
        axes = client.axis_descriptions(sensor.id) if sensor.axis_count else []
        if axes:
            out.write(f"  {sensor.id}: {sensor.name}, {len(axes)} axes\n")
            for axis in axes:
                out.write(f"       axis {axis.id} {axis.name}: "
                          f"{unit_name(axis.unit, axis.exponent)}\n")
        else:
            out.write(f"  {sensor.id}: {sensor.name}, "
                      f"{unit_name(sensor.unit, sensor.exponent)}\n")
        try:
            with client.sensor_enabled(sensor.id):
                readings = client.read(sensor.id)
        except ScmiStatusError as error:
            out.write(f"       reading failed: {error}\n")
            continue
        names = [axis.name for axis in axes] or ["value"]
        out.write("       reading: " + ", ".join(
            f"{name}={reading.value}" for name, reading in zip(names, readings, strict=False))
            + "\n")


def query(socket_path: str, out: TextIO, timeout: float = 5.0) -> None:
    """Connect to the back-end at `socket_path` and `describe()` it on `out`."""
    ram = GuestRam()
    try:
        with VhostUserFrontend(socket_path, timeout=timeout) as frontend:
            queues = frontend.setup(ram, queue_count=len(ScmiQueue),
                                    device_features=1 << ScmiFeature.P2A_CHANNELS)
            cmdq = queues[ScmiQueue.CMDQ]

            def transact(request: bytes) -> bytes:
                return cmdq.transact(request, RESPONSE_SPACE, timeout=timeout)

            describe(ScmiClient(transact), out)
            frontend.stop()
    finally:
        ram.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vhost_scmi.frontend",
        description="Connect to a vhost-user SCMI back-end as a VMM would and print its "
                    "vendor, protocols, sensors and one reading of each.")
    parser.add_argument("-s", "--socket-path", required=True, metavar="PATH",
                        help="the back-end's vhost-user socket")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                        help="how long to wait for each answer (default: 5)")
    args = parser.parse_args(argv)
    try:
        query(args.socket_path, sys.stdout, args.timeout)
    except (OSError, FrontendError, ScmiProtocolError, ScmiStatusError) as error:
        sys.stderr.write(f"{parser.prog}: {args.socket_path}: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
