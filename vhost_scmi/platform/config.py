# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The platform's configuration file (`--config FILE`, TOML), read and checked strictly.

    control-socket = "/run/vhost-device-scmi/vm.ctl"   # optional

    [system-power]                    # optional: the host command SYSTEM_POWER_STATE_SET runs
    command = ["/usr/local/libexec/vm-power"]   # argv, never a shell; gets AGENT STATE MODE
    timeout = 10                      # seconds before the command is killed (default 10)

    [[device]]
    id = "accel"                      # optional; how agents refer to the device
    spec = "fake,name=accel"          # exactly the -d syntax

    [[agent]]
    name = "vm1"                      # BASE_DISCOVER_AGENT name, at most 15 bytes
    socket = "/run/vhost-device-scmi/vm1.sock"  # omitted: an inherited socket (--fd, systemd)
    devices = ["accel"]               # default: every device, in file order
    control = ["accel"]               # devices this agent may change (default: none)
    system-power = ["shutdown", "cold-reset"]   # states it may request (default: none)

Every problem is a `ConfigError` whose message names the file, the table and the key;
unknown keys are errors, so that a typo is never silently ignored.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The longest agent name BASE_DISCOVER_AGENT can carry (16 bytes with the NUL).
MAX_AGENT_NAME = 15
#: Default seconds a SYSTEM_POWER_STATE_SET host command may run.
DEFAULT_POWER_TIMEOUT = 10.0
#: Most agents a configuration may declare (SCMI agent ids are 8 bits in Base attributes).
MAX_AGENTS = 255

#: The system power states an agent may be allowed to request, by their config name.
POWER_STATE_NAMES = ("shutdown", "cold-reset", "warm-reset", "suspend")


class ConfigError(Exception):
    """The configuration file is unusable; the message names file, table and key."""


@dataclass(frozen=True)
class DeviceConfig:
    """One `[[device]]`: a device spec and the id agents refer to it by."""

    spec: str
    id: str


@dataclass(frozen=True)
class AgentConfig:
    """One `[[agent]]`: one guest on one socket."""

    name: str
    #: The socket path to create, or None for an inherited socket.
    socket: str | None
    #: Ids of the devices it sees, in its order.
    devices: tuple[str, ...]
    #: Ids of the devices it may change.
    control: frozenset[str] = frozenset()
    #: System power states (POWER_STATE_NAMES) it may request.
    system_power: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PowerCommandConfig:
    """The `[system-power]` table."""

    command: tuple[str, ...]
    timeout: float = DEFAULT_POWER_TIMEOUT


@dataclass(frozen=True)
class PlatformConfig:
    """A whole, validated configuration file."""

    path: str
    devices: tuple[DeviceConfig, ...]
    agents: tuple[AgentConfig, ...]
    control_socket: str | None = None
    power_command: PowerCommandConfig | None = None
    #: Specs by device id, for building resources.
    specs: dict[str, str] = field(default_factory=dict)


class _Table:
    """Reads the keys of one table, each checked once; `finish` rejects the rest."""

    def __init__(self, path: str, where: str, data: object) -> None:
        self.path, self.where = path, where
        if not isinstance(data, dict):
            raise self.error(None, f"must be a table, not {_type_name(data)}")
        self.data: dict[str, Any] = data
        self.seen: set[str] = set()

    def error(self, key: str | None, message: str) -> ConfigError:
        place = self.where if key is None else (f"{self.where}: key '{key}'" if self.where
                                                 else f"key '{key}'")
        return ConfigError(f"{self.path}: {place}: {message}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None,
            required: bool = False, check: Callable[[Any], str | None] | None = None) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if required:
                raise self.error(key, "missing")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            wanted = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            raise self.error(key, f"must be {wanted}, not {_type_name(value)}")
        if check is not None:
            problem = check(value)
            if problem:
                raise self.error(key, problem)
        return value

    def strings(self, key: str, default: tuple[str, ...] | None = None, *,
                required: bool = False, unique: bool = True) -> tuple[str, ...] | None:
        value = self.get(key, list, None, required)
        if value is None:
            return default
        for item in value:
            if not isinstance(item, str):
                raise self.error(key, f"must be an array of strings, not contain "
                                      f"{_type_name(item)}")
        if unique and len(set(value)) != len(value):
            duplicate = next(item for item in value if value.count(item) > 1)
            raise self.error(key, f"'{duplicate}' is listed twice")
        return tuple(value)

    def finish(self) -> None:
        unknown = [key for key in self.data if key not in self.seen]
        if unknown:
            raise self.error(unknown[0], "unknown key")


_TYPE_NAMES = {str: "a string", list: "an array", int: "an integer", float: "a number",
               bool: "a boolean", dict: "a table"}


def _type_name(value: object) -> str:
    for kind in (bool, str, int, float, list, dict):
        if isinstance(value, kind):
            return _TYPE_NAMES[kind]
    return type(value).__name__


def _not_empty(value: str) -> str | None:
    return "must not be empty" if not value else None


def _agent_name(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value.encode()) > MAX_AGENT_NAME:
        return f"'{value}' is longer than {MAX_AGENT_NAME} bytes"
    if "\0" in value:
        return "must not contain NUL"
    return None


def load_config(path: str) -> PlatformConfig:
    """Read and validate the configuration file at `path`.

    Raises ConfigError with one line naming the file, the table and the key. Device
    specs are checked for their syntax here; creating the devices may still fail.
    """
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: TOML syntax: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text: {error.reason}") from None
    return parse_config(data, path)


def parse_config(data: dict[str, Any], path: str = "<config>") -> PlatformConfig:
    """Validate an already parsed TOML document (see `load_config`)."""
    from vhost_scmi.devices.resource import DeviceSpecError
    from vhost_scmi.devices.spec import parse_spec

    top = _Table(path, "", data)
    control_socket = top.get("control-socket", str, check=_not_empty)
    power = None
    power_data = top.get("system-power", dict)
    if power_data is not None:
        table = _Table(path, "[system-power]", power_data)
        command = table.strings("command", required=True, unique=False)
        assert command is not None
        if not command or not command[0]:
            raise table.error("command", "must name a program")
        if not Path(command[0]).is_absolute():
            raise table.error("command", f"'{command[0]}' must be an absolute path "
                                         f"(no PATH search, no shell)")
        timeout = table.get("timeout", (int, float), DEFAULT_POWER_TIMEOUT,
                            check=lambda v: None if 0 < v <= 3600
                            else "must be more than 0 and at most 3600 seconds")
        table.finish()
        power = PowerCommandConfig(tuple(command), float(timeout))

    device_list = top.get("device", list, [])
    devices: list[DeviceConfig] = []
    specs: dict[str, str] = {}
    for index, entry in enumerate(device_list):
        table = _Table(path, f"[[device]] #{index + 1}", entry)
        spec = table.get("spec", str, required=True, check=_not_empty)
        device_id = table.get("id", str, f"device{index + 1}", check=_not_empty)
        table.finish()
        try:
            parse_spec(spec)
        except DeviceSpecError as error:
            raise table.error("spec", str(error)) from None
        if device_id in specs:
            raise table.error("id", f"duplicate device id '{device_id}'")
        specs[device_id] = spec
        devices.append(DeviceConfig(spec, device_id))

    agent_list = top.get("agent", list, required=True)
    if not agent_list:
        raise top.error("agent", "at least one [[agent]] is needed")
    if len(agent_list) > MAX_AGENTS:
        raise top.error("agent", f"at most {MAX_AGENTS} agents")
    agents: list[AgentConfig] = []
    names: set[str] = set()
    sockets: set[str] = set()
    for index, entry in enumerate(agent_list):
        table = _Table(path, f"[[agent]] #{index + 1}", entry)
        name = table.get("name", str, required=True, check=_agent_name)
        table.where = f"[[agent]] '{name}'"
        if name in names:
            raise table.error("name", f"duplicate agent name '{name}'")
        names.add(name)
        socket_path = table.get("socket", str, check=_not_empty)
        if socket_path is not None:
            if socket_path in sockets or socket_path == control_socket:
                raise table.error("socket", f"socket '{socket_path}' is used twice")
            sockets.add(socket_path)
        seen = table.strings("devices", tuple(specs))
        assert seen is not None
        for device_id in seen:
            if device_id not in specs:
                raise table.error("devices", f"unknown device id '{device_id}'")
        control = table.strings("control", ())
        assert control is not None
        for device_id in control:
            if device_id not in specs:
                raise table.error("control", f"unknown device id '{device_id}'")
            if device_id not in seen:
                raise table.error("control", f"device '{device_id}' is not in this "
                                             f"agent's devices")
        states = table.strings("system-power", ())
        assert states is not None
        for state in states:
            if state not in POWER_STATE_NAMES:
                raise table.error("system-power", f"unknown state '{state}' (known: "
                                                  f"{', '.join(POWER_STATE_NAMES)})")
        if states and power is None:
            raise table.error("system-power", "needs a [system-power] table with the "
                                              "host command to run")
        table.finish()
        agents.append(AgentConfig(name, socket_path, seen, frozenset(control),
                                  frozenset(states)))
    top.finish()
    return PlatformConfig(path, tuple(devices), tuple(agents), control_socket, power, specs)
