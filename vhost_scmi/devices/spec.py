# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Parsing of `ID,PROPERTY=VALUE,...` device specs into resources."""

from __future__ import annotations

from collections.abc import Iterable

from vhost_scmi.devices.registry import DEVICE_KINDS, all_kinds, find_kind
from vhost_scmi.devices.resource import DeviceSpecError, Resource


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split a spec into its kind id and properties, validated against the kind.

    Raises DeviceSpecError naming the spec and the problem.
    """
    kind_id, *pairs = spec.split(",")
    kind = find_kind(kind_id)
    if kind is None:
        known = ", ".join(sorted(all_kinds()))
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
            kind = find_kind(kind_id)
            assert kind is not None
            try:
                created = kind.create(props)
            except DeviceSpecError as err:
                raise DeviceSpecError(f"device spec '{spec}': {err}") from err
            except Exception as err:
                if kind_id in DEVICE_KINDS:
                    raise
                # A plugin's bug is a bad spec for the user, not a traceback.
                raise DeviceSpecError(f"device spec '{spec}': plugin device kind "
                                      f"'{kind_id}' failed: {type(err).__name__}: "
                                      f"{' '.join(str(err).split())}") from err
            if not isinstance(created, list) or not all(
                    isinstance(resource, Resource) for resource in created):
                for resource in created if isinstance(created, list) else ():
                    if isinstance(resource, Resource):
                        resource.close()
                raise DeviceSpecError(f"device spec '{spec}': device kind '{kind_id}' did "
                                      f"not return a list of resources")
            resources.extend(created)
    except BaseException:
        for resource in resources:
            resource.close()
        raise
    return resources
