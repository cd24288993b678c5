# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Registry of device kinds, by the id used in `-d ID,...`: the built-in kinds, and
those of installed plugins.

A built-in kind's module is imported when it is first looked up: the daemon's start-up
pays only for the kinds its -d options name (`--help-devices` imports them all).

A plugin is a distribution with an entry point in the group `vhost_scmi.device_kinds`
whose object is a `DeviceKind` (entry point name = the kind's id). Plugins are looked
up only when a spec names a kind that is not built in, or when every kind is listed
(`--help-devices`, or the error for an unknown kind): importing importlib.metadata and
scanning the installed distributions costs start-up time the built-in kinds need not
pay. A spec loads only the entry points of the id it names, so another plugin's imports
(and its breakage) cost a daemon that does not use it nothing. A plugin that fails to
import or is malformed is one warning naming it, and is left out.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vhost_scmi.devices.kind import DeviceKind

log = logging.getLogger(__name__)

#: Entry-point group of plugin device kinds.
PLUGIN_GROUP = "vhost_scmi.device_kinds"

# A new device kind: one module exporting KIND, and one entry here (id -> module).
KIND_MODULES: dict[str, str] = {
    "fake": "vhost_scmi.devices.fake",
    "iio": "vhost_scmi.devices.iio",
    "hwmon": "vhost_scmi.devices.hwmon",
    "cpufreq": "vhost_scmi.devices.cpufreq",
    "runtime-pm": "vhost_scmi.devices.runtime_pm",
    "fake-perf": "vhost_scmi.devices.fake_perf",
    "fake-power": "vhost_scmi.devices.fake_power",
    "fake-clock": "vhost_scmi.devices.fake_clock",
    "fake-reset": "vhost_scmi.devices.fake_reset",
    "fake-voltage": "vhost_scmi.devices.fake_voltage",
    "fake-powercap": "vhost_scmi.devices.fake_powercap",
    "pci-reset": "vhost_scmi.devices.pci_reset",
    "regulator": "vhost_scmi.devices.regulator",
    "powercap": "vhost_scmi.devices.powercap_zone",
}


class _Kinds(Mapping[str, "DeviceKind"]):
    """Device kind id -> DeviceKind, each module imported on first look-up."""

    def __getitem__(self, kind_id: str) -> DeviceKind:
        kind = importlib.import_module(KIND_MODULES[kind_id]).KIND
        assert kind.id == kind_id, (kind.id, kind_id)
        return kind

    def __iter__(self) -> Iterator[str]:
        return iter(KIND_MODULES)

    def __len__(self) -> int:
        return len(KIND_MODULES)


#: The built-in device kinds.
DEVICE_KINDS: Mapping[str, DeviceKind] = _Kinds()

#: Every plugin's kind, by id, once `plugin_kinds()` has loaded them all.
_plugins: dict[str, DeviceKind] | None = None
#: Kinds looked up by id before that (None: no plugin provides the id).
_named: dict[str, DeviceKind | None] = {}
#: Warnings already given: a plugin loaded by id, then again with all, is named once.
_warned: set[str] = set()


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message)


def _load(name: str | None = None) -> dict[str, DeviceKind]:
    """Load the plugins' entry points named `name` (every one when None), by kind id."""
    from importlib.metadata import entry_points

    selected = {} if name is None else {"name": name}
    found: dict[str, DeviceKind] = {}
    for point in entry_points(group=PLUGIN_GROUP, **selected):
        dist = point.dist.name if point.dist is not None else "?"
        where = f"device kind plugin '{point.name}' ({point.value}, from {dist})"
        try:
            kind = point.load()
        except Exception as err:  # a broken plugin must not stop the daemon
            _warn_once(f"{where} cannot be loaded: {_one_line(err)}; ignored")
            continue
        problem = _malformed(point.name, kind, found)
        if problem:
            _warn_once(f"{where} is malformed: {problem}; ignored")
            continue
        found[kind.id] = kind
    return found


def plugin_kinds() -> dict[str, DeviceKind]:
    """The device kinds of every installed plugin, by id (loaded once, on first call)."""
    global _plugins
    if _plugins is None:
        _plugins = _load()
    return _plugins


def plugin_kind(kind_id: str) -> DeviceKind | None:
    """The plugin device kind `kind_id` (None if no plugin provides it), loading only
    the entry points of that name."""
    if _plugins is not None:
        return _plugins.get(kind_id)
    if kind_id not in _named:
        _named[kind_id] = _load(kind_id).get(kind_id)
    return _named[kind_id]


def _malformed(name: str, kind: object, found: dict[str, DeviceKind]) -> str | None:
    from vhost_scmi.devices.kind import DeviceKind

    if not isinstance(kind, DeviceKind):
        return f"it is a {type(kind).__name__}, not a DeviceKind"
    if kind.id != name:
        return f"its id '{kind.id}' differs from the entry point's name"
    if not kind.id or "," in kind.id or "=" in kind.id:
        return f"'{kind.id}' cannot be a device kind id"
    if kind.id in KIND_MODULES:
        return f"'{kind.id}' is a built-in device kind"
    if kind.id in found:
        return f"another plugin already provides '{kind.id}'"
    if not callable(kind.create):
        return "its create is not callable"
    return None


def find_kind(kind_id: str) -> DeviceKind | None:
    """The device kind `kind_id`: a built-in one, else a plugin's (None if unknown)."""
    if kind_id in KIND_MODULES:
        return DEVICE_KINDS[kind_id]
    return plugin_kind(kind_id)


def all_kinds(plugins: bool = True) -> dict[str, DeviceKind]:
    """Every device kind: the built-in ones, then the plugins' (unless `plugins` is False)."""
    kinds = dict(DEVICE_KINDS)
    if plugins:
        kinds.update(plugin_kinds())
    return kinds


def devices_help(plugins: bool = True) -> str:
    """Return the `--help-devices` text: every kind, its properties and an example.

    The man page lists the built-in kinds only (`plugins=False`).
    """
    lines = ["Available devices:"]
    for kind in all_kinds(plugins).values():
        lines.append("")
        origin = " (plugin)" if kind.id not in KIND_MODULES else ""
        lines.append(f"- {kind.id}: {kind.summary}{origin}")
        lines.extend(f"  {line}" for line in kind.description.splitlines())
        if kind.properties:
            lines.append("  Parameters:")
            for prop in kind.properties:
                need = "required" if prop.required else "optional"
                lines.append(f"  - {prop.name} ({need}): {prop.help}")
        lines.append(f"  Example: -d {kind.example}")
    lines.append("")
    lines.append("Device specification example:")
    lines.append("--device iio,path=/sys/bus/iio/devices/iio:device0,channel=in_accel")
    lines.append("")
    lines.append(f"Installed packages add device kinds through the entry-point group "
                 f"{PLUGIN_GROUP}.")
    return "\n".join(lines) + "\n"
