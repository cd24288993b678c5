# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""What a device kind declares: its help text, properties and constructor."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from vhost_scmi.devices.resource import Resource


@dataclass(frozen=True)
class Property:
    """A property a device spec may (or must) give."""

    name: str
    help: str
    required: bool = False


@dataclass(frozen=True)
class DeviceKind:
    """What `-d ID,...` creates: its help text, properties and constructor."""

    id: str
    summary: str
    description: str
    properties: tuple[Property, ...]
    example: str
    #: Build the resources (sensors, domains...) from validated properties. Raises
    #: DeviceSpecError saying what is wrong when the host device is unusable; the caller
    #: names the spec.
    create: Callable[[Mapping[str, str]], list[Resource]]
