# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Reading and writing sysfs attributes for the host device kinds.

An `Attribute` keeps its file open and re-reads it with os.pread, so a read costs
one system call and no path lookup. A `Conversion` turns the text of a reading into
an integer in the sensor's SCMI unit and exponent, exactly.

Reads run on the executor's worker threads (Resource.blocking), never on the event
loop; still, files are opened with O_NONBLOCK (a FIFO put in a device's place would
otherwise block open() until a writer comes, at start-up) and only regular files are
accepted, as sysfs attributes are. An open attribute keeps
its inode, so a file replaced later (by a FIFO or anything else) reads as removed.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path

from vhost_scmi.devices.sensor import MAX_EXPONENT, MIN_EXPONENT, DeviceError, DeviceSpecError

log = logging.getLogger(__name__)

#: Longest attribute text read: numbers are short, and a small buffer reads faster.
MAX_ATTRIBUTE = 256
#: Seconds between checks that an open attribute file still exists.
HEALTH_PERIOD = 1.0


def open_regular(path: Path) -> int:
    """Open `path` for reading without blocking; OSError unless it is a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


class Attribute:
    """An open sysfs attribute file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.fd = open_regular(path)
        except OSError as err:
            raise DeviceSpecError(f"cannot open {path}: {err.strerror or err}") from err

    def read(self) -> bytes:
        """Return the attribute's current text; DeviceError when the device is gone."""
        try:
            return os.pread(self.fd, MAX_ATTRIBUTE, 0)
        except OSError as err:
            raise DeviceError(f"{self.path}: {err.strerror}", err.errno) from err

    def check(self) -> None:
        """Raise DeviceError if the file has been removed.

        A removed device's attribute fails to read (ENODEV) in sysfs; an unlinked file
        elsewhere still reads, so sensors also call this now and then (HEALTH_PERIOD).
        """
        try:
            removed = os.fstat(self.fd).st_nlink == 0
        except OSError as err:
            raise DeviceError(f"{self.path}: {err.strerror}", err.errno) from err
        if removed:
            raise DeviceError(f"{self.path}: removed", errno.ENOENT)

    def text(self) -> str:
        """Return the attribute's current stripped text, checking first that the file
        is still there; DeviceError (with errno) when it is gone."""
        self.check()
        return self.read().decode(errors="replace").strip()

    def integer(self) -> int:
        """Return the integer the attribute holds now; DeviceError if it holds none."""
        text = self.text()
        try:
            return int(text)
        except ValueError:
            raise DeviceError(f"{self.path}: not an integer: {text!r}") from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def read_text(path: Path) -> str | None:
    """Return the stripped text of a small file, or None if it does not exist.

    DeviceSpecError when it exists but is not a regular file or cannot be read.
    """
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise DeviceSpecError(f"cannot read {path}: {err.strerror or err}") from err
    try:
        return os.pread(fd, MAX_ATTRIBUTE, 0).decode(errors="replace").strip()
    except OSError as err:
        raise DeviceSpecError(f"cannot read {path}: {err.strerror}") from err
    finally:
        os.close(fd)


def parse_decimal(text: bytes | str, where: object) -> Decimal:
    """Return the finite decimal number in `text`; DeviceError if there is none."""
    try:
        if isinstance(text, bytes):
            text = text.decode("ascii")
        value = Decimal(text.strip())
    except (InvalidOperation, UnicodeDecodeError, ValueError) as err:
        raise DeviceError(f"{where}: not a number: {text!r}") from err
    if not value.is_finite():
        raise DeviceError(f"{where}: not a finite number: {text!r}")
    return value


def decimal_exponent(value: Decimal) -> int:
    """Return the power of ten of `value`'s last significant digit (0 for zero)."""
    if not value:
        return 0
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return exponent


class Conversion:
    """reading -> round((reading + offset) x scale x 10**(unit_exponent - exponent)).

    `exponent` is chosen so that integer readings convert exactly when it can be
    (within the 5-bit SCMI range); `decimals` is how many decimal places readings
    may have. Pass `exponent` to keep an exponent already reported to the guest.
    """

    def __init__(self, scale: Decimal, offset: Decimal, unit_exponent: int,
                 decimals: int = 0, exponent: int | None = None) -> None:
        self.scale, self.offset, self.unit_exponent = scale, offset, unit_exponent
        a = min(0, decimal_exponent(offset), -decimals)
        b = decimal_exponent(scale)
        natural = a + b + unit_exponent
        if exponent is None:
            exponent = max(MIN_EXPONENT, min(MAX_EXPONENT, natural))
        self.exponent = exponent
        # (reading x 10**-a + offset x 10**-a) x (scale x 10**-b) is an integer when
        # the reading is one; it is the value at exponent `natural`. Folded into
        # reading x factor + term, then divided when the exponent had to go up.
        self._scale = int(scale.scaleb(-b))
        shift = exponent - natural
        multiplier = 10 ** -shift if shift < 0 else 1
        self._factor = 10 ** -a * self._scale * multiplier
        self._term = int(offset.scaleb(-a)) * self._scale * multiplier
        self._divisor = 10 ** shift if shift > 0 else 1

    def __call__(self, text: bytes, where: object = "reading") -> int:
        """Return the value of a reading's text; DeviceError if it is not a number."""
        try:
            reading = int(text)
        except ValueError:
            return self._decimal(text, where)
        if self._divisor == 1:
            return reading * self._factor + self._term
        return _round_div(reading * self._factor + self._term, self._divisor)

    def _decimal(self, text: bytes, where: object) -> int:
        value = (parse_decimal(text, where) + self.offset) * self.scale
        scaled = value.scaleb(self.unit_exponent - self.exponent)
        return int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN))

    def resolution(self) -> tuple[int, int] | None:
        """Return (mantissa, exponent) of one step of an integer reading, if it fits SCMI."""
        b = decimal_exponent(self.scale)
        mantissa, exponent = abs(self._scale), b + self.unit_exponent
        if 0 < mantissa < 1 << 27 and MIN_EXPONENT <= exponent <= MAX_EXPONENT:
            return mantissa, exponent
        return None


def _round_div(value: int, divisor: int) -> int:
    """value / divisor rounded to nearest, ties to even."""
    quotient, remainder = divmod(value, divisor)
    twice = 2 * remainder
    if twice > divisor or (twice == divisor and quotient % 2):
        quotient += 1
    return quotient


def read_attribute(path: Path | str) -> str:
    """Return the stripped text of sysfs attribute `path` now.

    DeviceError (with the host's errno) when it cannot be opened or read: the
    device may have gone.
    """
    try:
        fd = open_regular(path)
    except OSError as err:
        raise DeviceError(f"{path}: {err.strerror or err}", err.errno) from err
    try:
        return os.pread(fd, MAX_ATTRIBUTE, 0).decode(errors="replace").strip()
    except OSError as err:
        raise DeviceError(f"{path}: {err.strerror}", err.errno) from err
    finally:
        os.close(fd)


def read_int(path: Path | str) -> int:
    """Return the integer in sysfs attribute `path`; DeviceError if there is none."""
    text = read_attribute(path)
    try:
        return int(text)
    except ValueError:
        raise DeviceError(f"{path}: not an integer: {text!r}") from None


def write_attribute(path: Path | str, text: str) -> None:
    """Write `text` to sysfs attribute `path` in one write (logged at debug level: the
    platform logs every host change it makes, by resource and setting).

    DeviceError carries the host's errno: EACCES (no permission), EBUSY, EINVAL (the
    driver refused the value), ENOENT (the file vanished)...
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC | os.O_NONBLOCK
                     | os.O_NOCTTY)
    except OSError as err:
        raise DeviceError(f"{path}: {err.strerror or err}", err.errno) from err
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DeviceError(f"{path} is not a regular file")
        os.write(fd, text.encode())
    except OSError as err:
        raise DeviceError(f"{path}: {err.strerror}", err.errno) from err
    finally:
        os.close(fd)
    log.debug("host: wrote %r to %s", text, path)
