# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""What a device kind declares: its help text, properties and constructor."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping

from vhost_scmi.devices.resource import DeviceSpecError

#: Longest domain name a user may give: SCMI extended names carry 63 bytes.
MAX_DOMAIN_NAME = 63


# Records as named tuples rather than dataclasses: every start-up imports this module,
# and dataclasses would bring in inspect (and ast, dis) for nothing.
class Property(namedtuple("Property", ["name", "help", "required"], defaults=(False,))):
    """A property a device spec may (or must) give: its `name` (str), `help` (str), and
    whether it is `required` (bool, default False)."""

    __slots__ = ()


class DeviceKind(namedtuple("DeviceKind", ["id", "summary", "description", "properties",
                                           "example", "create"])):
    """What `-d ID,...` creates: its `id`, help text (`summary`, `description`,
    `example`), `properties` (a tuple of Property) and constructor.

    `create` (Callable[[Mapping[str, str]], list[Resource]]) builds the resources
    (sensors, domains...) from validated properties. It raises DeviceSpecError saying
    what is wrong when the host device is unusable; the caller names the spec.
    """

    __slots__ = ()


def domain_name(props: Mapping[str, str], default: str) -> str:
    """The `name` property (or `default`): 1 to 63 bytes, as the guest reads it."""
    name = props.get("name", default)
    if not name or len(name.encode()) > MAX_DOMAIN_NAME:
        raise DeviceSpecError(f"name '{name}' must be 1 to {MAX_DOMAIN_NAME} bytes")
    return name


def int_list(props: Mapping[str, str], key: str) -> tuple[int, ...] | None:
    """The `key` property as integers separated by ':' (None when absent)."""
    text = props.get(key)
    if text is None:
        return None
    try:
        return tuple(int(part, 10) for part in text.split(":"))
    except ValueError:
        raise DeviceSpecError(f"{key}='{text}' is not integers separated by ':'") from None


def switch(props: Mapping[str, str], key: str) -> bool:
    """The `key` property as on/off (absent: off)."""
    text = props.get(key, "off")
    if text not in ("on", "off"):
        raise DeviceSpecError(f"{key}='{text}' must be on or off")
    return text == "on"


#: The property that makes a sensor offer asynchronous reads (see Sensor.asynchronous).
ASYNC_PROPERTY = Property(
    "async", "on: offer asynchronous reads (for a slow device: the guest gets each "
    "reading in a delayed response instead of waiting in a command) (default: off)")
