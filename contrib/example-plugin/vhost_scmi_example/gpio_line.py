# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`example-gpio-reset` and `example-gpio-power`: one host GPIO line as an SCMI reset
domain or power domain, through the Linux GPIO character device (uAPI v2).

Which SCMI resource fits a GPIO line: a line carries one bit that a consumer drives or
reads, and boards use it for two jobs the SCMI protocols already name.

- A **reset domain** for a reset line (a device tree's `reset-gpios`, the commonest use of
  a GPIO on an SoC): RESET with explicit assert drives the line active and holds it,
  a RESET without flags deasserts it (inactive), an autonomous RESET is a pulse: active
  for `pulse-us` microseconds, then back to the level it had. SCMI has no way to read
  a reset state back, so this is the kind for lines the guest only drives.
- A **power domain** for an enable line (a regulator's or a PHY's `enable-gpios`, a
  "power good" input): POWER_STATE_GET reads the line (on = active), so a line the
  daemon does not drive (an input) is read back each time an agent asks; POWER_STATE_SET
  drives it when the spec allows it.

A sensor would serve an input too, but an SCMI sensor reports a number with a unit, and
a GPIO bit has none; a clock's enable is also one bit, but a clock must offer a rate.

`active-low=on` makes active mean a low level (the usual `RESET_N`, `PWDN_N` lines); the
kernel applies it, so the values here are logical and `sim_gpioN/value` of gpio-sim shows
the physical level.

Host writes: read-only by default. The line is then requested "as-is" (reading it
changes nothing electrically) and every RESET or POWER_STATE_SET is DENIED. With
`control=on` (reset) or `control=state` (power, as the other power-domain kinds spell
it) the daemon takes the line as an output: a reset line starts deasserted (the reset
protocol starts from "not held in reset"), an enable line at the level it has. Every
level the daemon drives is logged. Either way the daemon holds the line while it runs,
under the consumer label `scmi:NAME` (what `gpioinfo` and /sys/kernel/debug/gpio show),
so that nothing else drives it meanwhile; on exit the kernel releases it.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import time
from collections.abc import Mapping
from enum import IntEnum, IntFlag
from pathlib import Path

from vhost_scmi.devices.kind import DeviceKind, Property, domain_name, switch
from vhost_scmi.devices.power_domain import PowerDomain, parse_power_control
from vhost_scmi.devices.reset import ResetDomain
from vhost_scmi.devices.resource import DeviceError, DeviceSpecError, Resource

log = logging.getLogger(__name__)

# --- linux/gpio.h, uAPI v2 -------------------------------------------------------------

#: The ioctl type of every GPIO character device request.
GPIO_IOC_MAGIC = 0xB4
#: Bytes of the kernel's name fields (a consumer label carries one less, then NUL).
GPIO_MAX_NAME_SIZE = 32
#: Entries of gpio_v2_line_config's attribute array.
GPIO_V2_LINE_NUM_ATTRS_MAX = 10


class LineFlag(IntFlag):
    """enum gpio_v2_line_flag (the ones used here)."""

    USED = 1 << 0
    ACTIVE_LOW = 1 << 1
    INPUT = 1 << 2
    OUTPUT = 1 << 3


class LineAttrId(IntEnum):
    """enum gpio_v2_line_attr_id."""

    FLAGS = 1
    OUTPUT_VALUES = 2


# The structures, packed with standard sizes ("=") and the kernel's padding spelled out.
# struct gpiochip_info: name[32], label[32], __u32 lines.
CHIP_INFO = struct.Struct("=32s32sI")
# struct gpio_v2_line_config_attribute: {__u32 id, __u32 padding, __u64 flags|values},
# __u64 mask.
CONFIG_ATTRIBUTE = struct.Struct("=I4xQQ")
# struct gpio_v2_line_config: __u64 flags, __u32 num_attrs, __u32 padding[5], then
# GPIO_V2_LINE_NUM_ATTRS_MAX config attributes.
LINE_CONFIG = struct.Struct(f"=QI20x{GPIO_V2_LINE_NUM_ATTRS_MAX * CONFIG_ATTRIBUTE.size}s")
# struct gpio_v2_line_request: __u32 offsets[64] (one used here), char consumer[32], the
# config, __u32 num_lines, __u32 event_buffer_size, __u32 padding[5], __s32 fd.
LINE_REQUEST = struct.Struct(f"=I252x{GPIO_MAX_NAME_SIZE}s{LINE_CONFIG.size}sII20xi")
# struct gpio_v2_line_values: __u64 bits, __u64 mask (bit i: the request's i-th line).
LINE_VALUES = struct.Struct("=QQ")
# struct gpio_v2_line_info: name[32], consumer[32], __u32 offset, __u32 num_attrs,
# __u64 flags, 10 line attributes of 16 bytes, __u32 padding[4].
LINE_INFO = struct.Struct(f"=32s32sIIQ{GPIO_V2_LINE_NUM_ATTRS_MAX * 16}s16x")
assert (CHIP_INFO.size, LINE_CONFIG.size, LINE_REQUEST.size, LINE_INFO.size) == (
    68, 272, 592, 256)


def _ioc(direction: int, number: int, size: int) -> int:
    """_IOC() of asm-generic/ioctl.h: direction 2 bits, size 14, type 8, number 8."""
    return direction << 30 | size << 16 | GPIO_IOC_MAGIC << 8 | number


_IOC_READ_WRITE, _IOC_READ = 3, 2
GPIO_GET_CHIPINFO_IOCTL = _ioc(_IOC_READ, 0x01, CHIP_INFO.size)
GPIO_V2_GET_LINEINFO_IOCTL = _ioc(_IOC_READ_WRITE, 0x05, LINE_INFO.size)
GPIO_V2_GET_LINE_IOCTL = _ioc(_IOC_READ_WRITE, 0x07, LINE_REQUEST.size)
GPIO_V2_LINE_SET_CONFIG_IOCTL = _ioc(_IOC_READ_WRITE, 0x0D, LINE_CONFIG.size)
GPIO_V2_LINE_GET_VALUES_IOCTL = _ioc(_IOC_READ_WRITE, 0x0E, LINE_VALUES.size)
GPIO_V2_LINE_SET_VALUES_IOCTL = _ioc(_IOC_READ_WRITE, 0x0F, LINE_VALUES.size)


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode(errors="replace")


def _line_config(flags: LineFlag, active: bool | None = None) -> bytes:
    """A gpio_v2_line_config for one line: `flags`, and its output value if given."""
    attributes = b""
    if active is not None:
        attributes = CONFIG_ATTRIBUTE.pack(LineAttrId.OUTPUT_VALUES, int(active), 1)
    return LINE_CONFIG.pack(flags, 1 if attributes else 0, attributes)


def consumer_label(name: str) -> str:
    """`scmi:NAME`, cut to the 31 bytes the kernel keeps (at a character boundary)."""
    label = f"scmi:{name}".encode()[:GPIO_MAX_NAME_SIZE - 1]
    return label.decode(errors="ignore")


class GpioLine:
    """One line of a GPIO chip, requested by this process (values are logical: with
    `active_low` the kernel inverts them)."""

    def __init__(self, chip: Path, offset: int, consumer: str, active_low: bool) -> None:
        """Request line `offset` of `chip` as-is (its electrical setup unchanged).

        Raises DeviceSpecError saying why when the chip is missing, is no GPIO chip, has
        no such line, or the line is in use.
        """
        self.chip = chip
        self.offset = offset
        self.consumer = consumer
        self._flags = LineFlag.ACTIVE_LOW if active_low else LineFlag(0)
        try:
            chip_fd = os.open(chip, os.O_RDWR | os.O_CLOEXEC)
        except OSError as err:
            raise DeviceSpecError(f"GPIO chip {chip}: {err.strerror}") from None
        try:
            info = bytearray(CHIP_INFO.size)
            try:
                fcntl.ioctl(chip_fd, GPIO_GET_CHIPINFO_IOCTL, info)
            except OSError as err:
                raise DeviceSpecError(f"{chip} is not a GPIO chip ({err.strerror})") from None
            chip_name, _, lines = CHIP_INFO.unpack(info)
            self.chip_name = _text(chip_name)
            if not 0 <= offset < lines:
                raise DeviceSpecError(f"{chip} has lines 0 to {lines - 1}, not {offset}")
            request = bytearray(LINE_REQUEST.pack(offset, consumer.encode(),
                                                  _line_config(self._flags), 1, 0, -1))
            try:
                fcntl.ioctl(chip_fd, GPIO_V2_GET_LINE_IOCTL, request)
            except OSError as err:
                if err.errno == errno.EBUSY:
                    raise DeviceSpecError(f"line {offset} of {chip} is busy (used by "
                                          f"'{self._user(chip_fd)}')") from None
                raise DeviceSpecError(f"line {offset} of {chip}: {err.strerror}") from None
            self._fd: int = LINE_REQUEST.unpack(request)[-1]
        finally:
            os.close(chip_fd)

    def _user(self, chip_fd: int) -> str:
        """The consumer label of the line (who holds it), or '?'."""
        info = bytearray(LINE_INFO.pack(b"", b"", self.offset, 0, 0, b""))
        try:
            fcntl.ioctl(chip_fd, GPIO_V2_GET_LINEINFO_IOCTL, info)
        except OSError:
            return "?"
        return _text(LINE_INFO.unpack(info)[1]) or "the kernel"

    def __str__(self) -> str:
        return f"{self.chip_name} line {self.offset}"

    def get(self) -> bool:
        """Whether the line is active now (an output: what is driven; an input: what
        the outside drives). DeviceError on failure."""
        values = bytearray(LINE_VALUES.pack(0, 1))
        try:
            fcntl.ioctl(self._fd, GPIO_V2_LINE_GET_VALUES_IOCTL, values)
        except OSError as err:
            raise DeviceError(f"{self}: reading: {err.strerror}", err.errno) from err
        return bool(LINE_VALUES.unpack(values)[0] & 1)

    def set(self, active: bool) -> None:
        """Drive the output active or inactive; DeviceError on failure."""
        try:
            fcntl.ioctl(self._fd, GPIO_V2_LINE_SET_VALUES_IOCTL,
                        LINE_VALUES.pack(int(active), 1))
        except OSError as err:
            raise DeviceError(f"{self}: driving: {err.strerror}", err.errno) from err

    def make_output(self, active: bool) -> None:
        """Turn the line into an output driven `active`; DeviceError on failure."""
        try:
            fcntl.ioctl(self._fd, GPIO_V2_LINE_SET_CONFIG_IOCTL,
                        _line_config(self._flags | LineFlag.OUTPUT, active))
        except OSError as err:
            raise DeviceError(f"{self}: making it an output: {err.strerror}",
                              err.errno) from err

    def level(self, active: bool) -> str:
        """The physical level of a logical value, for log lines."""
        return "low" if active == bool(self._flags & LineFlag.ACTIVE_LOW) else "high"

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# --- the resources ---------------------------------------------------------------------


#: Longest reset pulse: one second.
MAX_PULSE_US = 1_000_000
DEFAULT_PULSE_US = 1000
#: Pulses longer than this are given their own call deadline (see GpioReset).
LONG_PULSE_US = 100_000


class GpioReset(ResetDomain):
    """A reset line: asserted = active."""

    def __init__(self, name: str, line: GpioLine, control: bool, pulse_us: int) -> None:
        self.name = name
        self.line = line
        self.read_only = not control
        self.pulse_us = pulse_us
        self.latency_us = pulse_us
        # A long pulse gets a deadline of its own: it is no stuck device, even past the
        # daemon's --host-timeout.
        if pulse_us > LONG_PULSE_US:
            self.call_timeout = pulse_us / 1e6 + 1.0

    def _drive(self, asserted: bool, why: str) -> None:
        log.info("host: %s (%s): %s, line %s", self.line, self.name, why,
                 self.line.level(asserted))
        self.line.set(asserted)

    def reset(self) -> None:
        held = self.line.get()
        if held:  # already in reset: the pulse would change nothing
            log.info("host: %s (%s): reset while held asserted, line stays %s",
                     self.line, self.name, self.line.level(True))
            return
        self._drive(True, f"reset pulse of {self.pulse_us} us")
        try:
            time.sleep(self.pulse_us / 1e6)
        finally:
            self._drive(False, "reset pulse ends")

    def set_asserted(self, asserted: bool) -> None:
        self._drive(asserted, "reset asserted" if asserted else "reset deasserted")

    def close(self) -> None:
        self.line.close()


class GpioPower(PowerDomain):
    """An enable line: on = active."""

    def __init__(self, name: str, line: GpioLine, controllable: bool) -> None:
        self.name = name
        self.line = line
        self.controllable = controllable

    def is_on(self) -> bool:
        return self.line.get()

    def set_on(self, on: bool) -> None:
        log.info("host: %s (%s): power %s, line %s", self.line, self.name,
                 "on" if on else "off", self.line.level(on))
        self.line.set(on)

    def close(self) -> None:
        self.line.close()


# --- the device kinds ------------------------------------------------------------------



def _open_line(props: Mapping[str, str], name: str) -> GpioLine:
    chip = props["chip"]
    path = Path(chip if "/" in chip else f"/dev/{chip}")
    try:
        offset = int(props["line"], 10)
    except ValueError:
        raise DeviceSpecError(f"line='{props['line']}' is not a line number") from None
    return GpioLine(path, offset, consumer_label(name), switch(props, "active-low"))


def _create_reset(props: Mapping[str, str]) -> list[Resource]:
    control = switch(props, "control")
    text = props.get("pulse-us", str(DEFAULT_PULSE_US))
    if not text.isdigit() or not 1 <= int(text) <= MAX_PULSE_US:
        raise DeviceSpecError(f"pulse-us='{text}' must be 1 to {MAX_PULSE_US}")
    name = domain_name(props, f"gpio{props['line']}-reset")
    line = _open_line(props, name)
    domain = GpioReset(name, line, control, int(text))
    if control:
        log.info("host: %s (%s): taken as output, reset deasserted, line %s", line, name,
                 line.level(False))
        try:
            line.make_output(False)
        except DeviceError as err:
            line.close()
            raise DeviceSpecError(str(err)) from None
    return [domain]


def _create_power(props: Mapping[str, str]) -> list[Resource]:
    controllable = parse_power_control(props.get("control"))
    name = domain_name(props, f"gpio{props['line']}-power")
    line = _open_line(props, name)
    try:
        active = line.get()
        if controllable:
            log.info("host: %s (%s): taken as output, kept %s, line %s", line, name,
                     "on" if active else "off", line.level(active))
            line.make_output(active)
    except DeviceError as err:
        line.close()
        raise DeviceSpecError(str(err)) from None
    return [GpioPower(name, line, controllable)]


_LINE_PROPERTIES = (
    Property("chip", "the GPIO chip: gpiochipN or a path (/dev/gpiochipN)", required=True),
    Property("line", "the line's offset on the chip", required=True),
    Property("active-low", "on: active (asserted, powered) is a low level (default off)"),
)

RESET_KIND = DeviceKind(
    id="example-gpio-reset",
    summary="reset domain driving a host GPIO line",
    description="A host GPIO line as a reset domain (a reset-gpios line): assert drives\n"
                "it active, deassert inactive, an autonomous reset pulses it. Read-only\n"
                "(resets DENIED) unless control=on; the line is then an output, deasserted\n"
                "at start-up.",
    properties=(
        *_LINE_PROPERTIES,
        Property("control", "on: let agents drive the line (default off)"),
        Property("pulse-us", f"length of an autonomous reset in microseconds, 1 to "
                 f"{MAX_PULSE_US} (default {DEFAULT_PULSE_US})"),
        Property("name", "domain name, 1 to 63 bytes (default: gpioLINE-reset)"),
    ),
    example="example-gpio-reset,chip=gpiochip0,line=5,active-low=on,control=on",
    create=_create_reset,
)

POWER_KIND = DeviceKind(
    id="example-gpio-power",
    summary="power domain over a host GPIO line",
    description="A host GPIO line as a power domain (an enable line, or a power-good\n"
                "input): on while the line is active. Read-only unless control=state:\n"
                "the line is then an output, kept at its level at start-up.",
    properties=(
        *_LINE_PROPERTIES,
        Property("control", "what agents may set: none (default, read-only) or state"),
        Property("name", "domain name, 1 to 63 bytes (default: gpioLINE-power)"),
    ),
    example="example-gpio-power,chip=gpiochip0,line=6,control=state",
    create=_create_power,
)
