# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Parsing of `ID,PROPERTY=VALUE,...` device specs into resources."""

from __future__ import annotations

from collections.abc import Iterable

from vhost_scmi.devices.registry import DEVICE_KINDS
from vhost_scmi.devices.resource import DeviceSpecError, Resource


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split a spec into its kind id and properties, validated against the kind.

    Raises DeviceSpecError naming the spec and the problem.
    """
    kind_id, *pairs = spec.split(",")
    kind = DEVICE_KINDS.get(kind_id)
    if kind is None:
        known = ", ".join(sorted(DEVICE_KINDS))
        raise DeviceSpecError(f"device spec '{spec}': unknown device kind '{kind_id}' "
                              f"(known: {known})")
    allowed = {prop.name: prop for prop in kind.properties}
    props: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise DeviceSpecError(f"device spec '{spec}': '{pair}' is not PROPERTY=VALUE")
        if name not in allowed:
            raise DeviceSpecError(f"device spec '{spec}': unknown property '{name}' for "
                                  f"'{kind_id}' (known: {', '.join(allowed) or 'none'})")
        if name in props:
            raise DeviceSpecError(f"device spec '{spec}': property '{name}' given twice")
        props[name] = value
    missing = [p.name for p in kind.properties if p.required and p.name not in props]
    if missing:
        raise DeviceSpecError(f"device spec '{spec}': missing required propert"
                              f"{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}")
    return kind_id, props


def create_resources(specs: Iterable[str]) -> list[Resource]:
    """Create the resources of every spec, in command-line order.

    Raises DeviceSpecError for the first invalid spec; resources already created are closed.
    """
    resources: list[Resource] = []
    try:
        for spec in specs:
            kind_id, props = parse_spec(spec)
            try:
                resources.extend(DEVICE_KINDS[kind_id].create(props))
            except DeviceSpecError as err:
                raise DeviceSpecError(f"device spec '{spec}': {err}") from err
    except BaseException:
        for resource in resources:
            resource.close()
        raise
    return resources
