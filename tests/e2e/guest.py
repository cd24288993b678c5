# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The arm64 test guest: its kernel, device tree and initramfs, and a running QEMU.

`prepare_guest()` finds or makes every piece once and caches it; `GuestVM` boots it
against a vhost-user socket with a test's shell script as the guest's job. The guest's
`/init` runs the script and prints, on the serial console,

    @@E2E-BEGIN@@        the script's output follows
    @@E2E-END rc=N@@     its exit status
    @@E2E-DMESG-BEGIN@@  the kernel log follows
    @@E2E-DMESG-END@@

then powers the machine off.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .initramfs import CpioWriter
from .qmp import QmpClient, QmpError

REPO = Path(__file__).resolve().parents[2]
INSTALL_HINT = "run tools/install-test-deps (as root) to install QEMU and the guest's pieces"
BUILD_KERNEL = REPO / "kernel" / "guest" / "build-kernel"

#: The machine every test boots: the device tree is dumped from exactly this.
MACHINE = ["-M", "virt", "-cpu", "cortex-a57", "-smp", "1", "-m", "512"]
MEMORY_BACKEND = "memory-backend-memfd,id=mem,size=512M,share=on"

#: The child node of every SCMI protocol the daemon offers besides Base, one entry per
#: protocol: the guest's SCMI core binds a protocol's drivers only when it has a node.
SCMI_PROTOCOL_NODES = [
    # System Power (0x12): scmi_power_control (host-requested shutdown and reboot).
    "protocol@12 { reg = <0x12>; };",
    # Sensor Management (0x15): scmi_iio and scmi-hwmon.
    "protocol@15 { reg = <0x15>; #thermal-sensor-cells = <1>; };",
]

#: The SCMI firmware node QEMU's `virt` machine lacks.
SCMI_NODE = """
/ {
    firmware {
        scmi {
            compatible = "arm,scmi-virtio";
            #address-cells = <1>;
            #size-cells = <0>;
""" + "".join(f"            {node}\n" for node in SCMI_PROTOCOL_NODES) + """        };
    };
};
"""

#: Performance (0x13) and Power domain (0x11) nodes, merged in by the tests of those
#: protocols only (`dtb_with`): scmi-cpufreq finds cpu@0's domain through its clock.
PERF_POWER_NODES = """
/ {
    firmware {
        scmi {
            scmi_devpd: protocol@11 {
                reg = <0x11>;
                #power-domain-cells = <1>;
            };
            scmi_dvfs: protocol@13 {
                reg = <0x13>;
                #clock-cells = <1>;
            };
        };
    };
};

&{/cpus/cpu@0} {
    clocks = <&scmi_dvfs 0>;
};
"""

#: Clock (0x14), Reset domain (0x16), Voltage domain (0x17) and Powercap (0x18) nodes,
#: merged in by the tests of those protocols only (`dtb_with`).
SCMI_DOMAIN_NODES = """
/ {
    firmware {
        scmi {
            protocol@14 { reg = <0x14>; #clock-cells = <1>; };
            protocol@16 { reg = <0x16>; #reset-cells = <1>; };
            protocol@17 {
                reg = <0x17>;
                regulators {
                    #address-cells = <1>;
                    #size-cells = <0>;
                    regulator@0 { reg = <0>; regulator-name = "scmi-vdd0"; };
                };
            };
            protocol@18 { reg = <0x18>; };
        };
    };
};
"""

#: A guest script (tests/e2e, and the host-VM rig's nested guest): for every IIO device,
#: a device=NAME line, then NAME.CHANNEL.raw and NAME.CHANNEL.scale of every axis.
LIST_IIO = r"""
cd /sys/bus/iio/devices
for d in iio:device*; do
    [ -e "$d/name" ] || continue
    n=$(cat $d/name)
    echo "device=$n"
    for f in $d/in_*_raw; do
        c=$(basename $f _raw)
        echo "$n.$c.raw=$(cat $f)"
        echo "$n.$c.scale=$(cat $d/${c}_scale)"
    done
done
"""

#: A guest script: for every hwmon device, a hwmon=NAME line, then CHANNEL=VALUE (and
#: CHANNEL.label=LABEL) of every temperature, voltage, current and power input.
LIST_HWMON = r"""
for h in /sys/class/hwmon/hwmon*; do
    echo "hwmon=$(cat $h/name)"
    for f in $h/temp*_input $h/in*_input $h/curr*_input $h/power*_input; do
        [ -e "$f" ] || continue
        c=$(basename $f _input)
        echo "$c=$(cat $f)"
        [ -e $h/${c}_label ] && echo "$c.label=$(cat $h/${c}_label)"
    done
done
"""

BEGIN = "@@E2E-BEGIN@@"
END_RE = re.compile(r"@@E2E-END rc=(\d+)@@")
DMESG_BEGIN = "@@E2E-DMESG-BEGIN@@"
DMESG_END = "@@E2E-DMESG-END@@"

INIT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
# Kernel messages would interleave with the script's output: the test reads them
# from the dmesg dump at the end instead.
echo 1 > /proc/sys/kernel/printk
echo "{BEGIN}"
sh /test.sh
echo "@@E2E-END rc=$?@@"
echo "{DMESG_BEGIN}"
dmesg
echo "{DMESG_END}"
poweroff -f
"""


class GuestSetupError(Exception):
    """A piece of the guest (QEMU, kernel, busybox, dtc) is missing or cannot be made."""


@dataclass(frozen=True)
class GuestImage:
    """Everything needed to boot the test guest, prepared once and cached."""

    qemu: str
    qemu_version: tuple[int, ...]
    kernel: Path
    dtb: Path
    busybox: Path
    cache_dir: Path

    def reconnect_option(self, seconds: int = 1) -> str:
        """The chardev option that makes QEMU reconnect to a restarted backend."""
        # QEMU 9.2 added reconnect-ms and deprecated reconnect (seconds).
        if self.qemu_version >= (9, 2):
            return f"reconnect-ms={seconds * 1000}"
        return f"reconnect={seconds}"


def cache_dir() -> Path:
    """Where prepared guest pieces are kept between runs."""
    env = os.environ.get("VHOST_SCMI_E2E_CACHE")
    return Path(env) if env else REPO / "tests" / "e2e" / ".cache"


def _run(cmd: Sequence[str | os.PathLike], what: str, **kwargs) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [str(c) for c in cmd], check=True, capture_output=True, text=True, **kwargs
        )
    except FileNotFoundError as error:
        raise GuestSetupError(f"{what}: {error.filename} not found; {INSTALL_HINT}") from error
    except subprocess.CalledProcessError as error:
        raise GuestSetupError(
            f"{what} failed (exit {error.returncode}): {' '.join(map(str, cmd))}\n"
            f"{error.stdout}{error.stderr}"
        ) from error


def _find_qemu() -> tuple[str, tuple[int, ...]]:
    qemu = shutil.which("qemu-system-aarch64")
    if qemu is None:
        raise GuestSetupError(f"qemu-system-aarch64 not found; {INSTALL_HINT}")
    version_text = _run([qemu, "--version"], "qemu-system-aarch64 --version").stdout
    match = re.search(r"version (\d+)\.(\d+)\.(\d+)", version_text)
    if match is None:
        raise GuestSetupError(f"cannot parse the QEMU version from: {version_text!r}")
    devices = _run([qemu, "-device", "help"], "qemu-system-aarch64 -device help").stdout
    if '"vhost-user-scmi-pci"' not in devices:
        raise GuestSetupError(
            f"{qemu} ({match.group(0)}) has no vhost-user-scmi-pci device (QEMU >= 8 has it); "
            f"{INSTALL_HINT}"
        )
    return qemu, tuple(int(part) for part in match.groups())


def _default_prebuilt_kernel() -> Path | None:
    # CI and developers keep a prebuilt kernel of kernel/guest/guest.config beside the clone.
    candidate = REPO.parent / "shared" / "guest" / "Image.gz"
    return candidate if candidate.is_file() else None


def _find_kernel(cache: Path) -> Path:
    env = os.environ.get("VHOST_SCMI_GUEST_KERNEL")
    if env:
        kernel = Path(env)
        if not kernel.is_file():
            raise GuestSetupError(f"VHOST_SCMI_GUEST_KERNEL={env}: no such file")
        return kernel
    prebuilt = _default_prebuilt_kernel()
    if prebuilt is not None:
        return prebuilt
    # Build one from Debian's linux-source-6.12 with our config fragment; keyed by the
    # fragment so that a changed fragment gives a new build.
    fragment = (REPO / "kernel" / "guest" / "guest.config").read_bytes()
    build_dir = cache / f"kernel-{hashlib.sha256(fragment).hexdigest()[:12]}"
    image = build_dir / "Image"
    if not image.is_file():
        _run([BUILD_KERNEL, build_dir], "building the guest kernel (kernel/guest/build-kernel)")
    return image


def _find_busybox(cache: Path) -> Path:
    busybox = cache / "busybox-arm64" / "bin" / "busybox"
    if not busybox.is_file():
        raise GuestSetupError(f"arm64 busybox not found at {busybox}; {INSTALL_HINT}")
    return busybox


def _make_dtb(qemu: str, qemu_version: tuple[int, ...], cache: Path) -> Path:
    key = hashlib.sha256(
        repr((qemu, qemu_version, MACHINE, SCMI_NODE)).encode()
    ).hexdigest()[:12]
    dtb = cache / f"virt-scmi-{key}.dtb"
    if dtb.is_file():
        return dtb
    cache.mkdir(parents=True, exist_ok=True)
    # Per-process scratch names: parallel test runs may prepare the same cache at once.
    raw = cache / f"virt-{key}.{os.getpid()}.dtb"
    # PCI devices are not in the tree, so the dump needs no vhost-user device.
    _run([qemu, *MACHINE, "-machine", f"dumpdtb={raw}", "-display", "none", "-nodefaults"],
         "dumping QEMU's virt device tree")
    dts = _run(["dtc", "-q", "-I", "dtb", "-O", "dts", raw], "decompiling the device tree").stdout
    # dtc merges a second root node into the first.
    patched = cache / f"virt-scmi-{key}.{os.getpid()}.dts"
    patched.write_text(dts + SCMI_NODE)
    tmp = dtb.with_suffix(f".{os.getpid()}.tmp")
    _run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", tmp, patched], "compiling the device tree")
    tmp.rename(dtb)
    raw.unlink()
    patched.unlink()
    return dtb


def dtb_with(image: GuestImage, nodes: str) -> Path:
    """Return the guest's device tree with `nodes` (dts source) merged in; cached."""
    key = hashlib.sha256(repr((image.dtb.name, nodes)).encode()).hexdigest()[:12]
    dtb = image.cache_dir / f"virt-scmi-extra-{key}.dtb"
    if dtb.is_file():
        return dtb
    dts = _run(["dtc", "-q", "-I", "dtb", "-O", "dts", image.dtb],
               "decompiling the device tree").stdout
    source = image.cache_dir / f"virt-scmi-extra-{key}.{os.getpid()}.dts"
    source.write_text(dts + nodes)
    tmp = dtb.with_suffix(f".{os.getpid()}.tmp")
    _run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", tmp, source],
         "compiling the device tree")
    tmp.rename(dtb)
    source.unlink()
    return dtb


def prepare_guest() -> GuestImage:
    """Find QEMU, the kernel and busybox, and make the device tree; cached on disk.

    Installs nothing (tools/run-tests runs tools/install-test-deps first). Raises
    GuestSetupError naming what is missing and how to install it.
    """
    return _prepare_guest()


def _prepare_guest() -> GuestImage:
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    qemu, version = _find_qemu()
    if shutil.which("dtc") is None:
        raise GuestSetupError(f"dtc (device-tree-compiler) not found; {INSTALL_HINT}")
    return GuestImage(
        qemu=qemu,
        qemu_version=version,
        kernel=_find_kernel(cache),
        dtb=_make_dtb(qemu, version, cache),
        busybox=_find_busybox(cache),
        cache_dir=cache,
    )


def make_initramfs(image: GuestImage, script: str, path: Path) -> Path:
    """Write an uncompressed initramfs to `path` whose /init runs `script` with busybox sh."""
    cpio = CpioWriter()
    for directory in ("bin", "sbin", "dev", "proc", "sys", "tmp", "root"):
        cpio.directory(directory)
    # The kernel's orderly power-off and reboot (a host request through SCMI System
    # Power) run these; busybox's own poweroff would only signal PID 1, which a shell
    # running as init ignores.
    for name, command in (("poweroff", "poweroff -f"), ("reboot", "reboot -f")):
        cpio.file(f"sbin/{name}", f"#!/bin/busybox sh\nexec /bin/busybox {command}\n".encode(),
                  mode=0o755)
    cpio.char_device("dev/console", major=5, minor=1, mode=0o600)
    cpio.file("bin/busybox", image.busybox.read_bytes(), mode=0o755)
    cpio.file("init", INIT.encode(), mode=0o755)
    cpio.file("test.sh", script.encode(), mode=0o755)
    path.write_bytes(cpio.finish())
    return path


@dataclass
class GuestResult:
    """What the guest printed: its script's output, exit status and kernel log."""

    console: str
    output: list[str]
    rc: int
    dmesg: list[str]

    def values(self) -> dict[str, str]:
        """The script's `KEY=VALUE` output lines as a dict (the last of each key wins)."""
        result = {}
        for line in self.output:
            key, sep, value = line.partition("=")
            if sep and key and " " not in key:
                result[key] = value
        return result

    def dmesg_matching(self, pattern: str) -> list[str]:
        """Kernel log lines matching the regular expression `pattern`."""
        regex = re.compile(pattern)
        return [line for line in self.dmesg if regex.search(line)]

    def report(self) -> str:
        """For failure messages: the script's output and the SCMI-related kernel log."""
        dmesg = self.dmesg_matching(r"(?i)scmi|iio|hwmon|virtio|error|warn|fail")
        return ("guest output:\n  " + "\n  ".join(self.output) +
                f"\nscript exit status {self.rc}\nguest dmesg (SCMI-related lines):\n  " +
                "\n  ".join(dmesg))


def parse_console(console: str) -> GuestResult:
    """Split a finished guest's console text into script output, status and dmesg.

    Raises ValueError when the markers are missing (the guest died or hung).
    """
    lines = [line.rstrip("\r") for line in console.replace("\r\n", "\n").split("\n")]
    try:
        begin = lines.index(BEGIN)
    except ValueError:
        raise ValueError("the guest never started its test script") from None
    for end in range(begin + 1, len(lines)):
        match = END_RE.fullmatch(lines[end])
        if match:
            break
    else:
        raise ValueError("the guest's test script never finished")
    try:
        dmesg_begin = lines.index(DMESG_BEGIN, end)
        dmesg_end = lines.index(DMESG_END, dmesg_begin)
    except ValueError:
        raise ValueError("the guest's dmesg dump is missing or incomplete") from None
    return GuestResult(
        console=console,
        output=lines[begin + 1:end],
        rc=int(match.group(1)),
        dmesg=lines[dmesg_begin + 1:dmesg_end],
    )


@dataclass
class GuestVM:
    """One QEMU process booting the test guest; its console is collected as it runs."""

    image: GuestImage
    socket_path: Path | None
    script: str
    workdir: Path
    reconnect: bool = False
    name: str = "guest"
    #: A device tree other than the image's (see `dtb_with`).
    dtb: Path | None = None
    proc: subprocess.Popen | None = None
    _console: bytearray = field(default_factory=bytearray)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _reader: threading.Thread | None = None
    _qmp: QmpClient | None = None

    @property
    def console_log(self) -> Path:
        return self.workdir / f"{self.name}-console.log"

    @property
    def qemu_log(self) -> Path:
        return self.workdir / f"{self.name}-qemu-stderr.log"

    @property
    def qmp_socket(self) -> Path:
        # Beside the vhost-user socket: a short directory (Unix socket paths are short).
        assert self.socket_path is not None
        return self.socket_path.parent / f"{self.name}-qmp.sock"

    def command(self) -> list[str]:
        """QEMU's command line for this guest."""
        initrd = make_initramfs(self.image, self.script, self.workdir / f"{self.name}-initrd.cpio")
        cmd = [
            self.image.qemu, *MACHINE,
            "-machine", "memory-backend=mem",
            "-object", MEMORY_BACKEND,
            "-nodefaults", "-display", "none", "-serial", "stdio",
            "-kernel", str(self.image.kernel),
            "-initrd", str(initrd),
            "-dtb", str(self.dtb or self.image.dtb),
            "-append", "console=ttyAMA0 quiet panic=-1",
        ]
        if self.socket_path is None:
            return cmd + ["-no-reboot"]
        chardev = f"socket,id=vscmi,path={self.socket_path}"
        if not self.reconnect:
            return cmd + ["-no-reboot", "-chardev", chardev,
                          "-device", "vhost-user-scmi-pci,chardev=vscmi"]
        # With a reconnect option QEMU connects the chardev in the background, but
        # vhost-user-scmi-pci (QEMU 10) talks to its back-end as soon as it is created
        # and aborts on a socket that is not connected yet. So QEMU starts paused (-S)
        # with an empty PCIe root port, and start() plugs the device in once the chardev
        # is connected; a reset then powers the port's slot for the guest to find.
        # -no-reboot would turn that reset into an exit: start() sets it afterwards.
        return cmd + [
            "-chardev", f"{chardev},{self.image.reconnect_option()}",
            "-device", "pcie-root-port,id=scmi-port,chassis=1",
            "-qmp", f"unix:{self.qmp_socket},server=on,wait=off",
            "-S",
        ]

    def start(self, register: Callable[[subprocess.Popen], None]) -> None:
        """Start QEMU; `register` receives the process so that teardown can end it."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.qemu_log, "wb") as stderr:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
            )
        register(self.proc)
        self._reader = threading.Thread(target=self._read_console, daemon=True)
        self._reader.start()
        if self.reconnect:
            self._plug_scmi_device()

    def _plug_scmi_device(self, timeout: float = 60.0) -> None:
        try:
            self._qmp = QmpClient(self.qmp_socket, timeout)
            deadline = time.monotonic() + timeout
            while True:
                chardevs = {c["label"]: c for c in self._qmp.execute("query-chardev")}
                # A socket chardev's filename starts with "disconnected:" until connected.
                if not chardevs["vscmi"]["filename"].startswith("disconnected"):
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"QEMU's chardev never connected to "
                                         f"{self.socket_path}\n{self.diagnostics()}")
                time.sleep(0.1)
            self._qmp.execute("device_add", driver="vhost-user-scmi-pci", chardev="vscmi",
                              bus="scmi-port", id="scmi")
            self._qmp.execute("system_reset")
            self._qmp.wait_event("RESET")
            self._qmp.execute("set-action", reboot="shutdown")
            self._qmp.execute("cont")
        except QmpError as error:
            raise AssertionError(f"QMP: {error}\n{self.diagnostics()}") from None

    def main_loop_barrier(self) -> None:
        """Return once QEMU's main loop has handled what was queued before this call.

        QEMU (re)starts a vhost-user device from its main loop, as it handles the
        chardev's connection: a QMP round trip after a connection was accepted returns
        after that. Only for guests booted with `reconnect`.
        """
        assert self._qmp is not None
        try:
            self._qmp.execute("query-status")
        except QmpError as error:
            raise AssertionError(
                f"QEMU's main loop did not answer QMP ({error}): it is blocked, typically "
                f"waiting for a vhost-user reply the back-end never sends\n{self.diagnostics()}"
            ) from None

    def close(self) -> None:
        """Release the QMP connection and wait for the console reader (QEMU has ended)."""
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        self.join_console()

    def _read_console(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with open(self.console_log, "wb") as log:
            while True:
                chunk = self.proc.stdout.read1(65536)
                if not chunk:
                    break
                log.write(chunk)
                log.flush()
                with self._cond:
                    self._console += chunk
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def join_console(self, timeout: float = 10) -> None:
        """Wait for the console reader to see QEMU's end of output."""
        if self._reader is not None:
            self._reader.join(timeout)

    def console(self) -> str:
        """The console text so far."""
        with self._cond:
            return self._console.decode(errors="replace")

    def diagnostics(self) -> str:
        """Console tail and QEMU's stderr, for failure messages."""
        stderr = self.qemu_log.read_text(errors="replace") if self.qemu_log.exists() else ""
        tail = "\n".join(self.console().splitlines()[-60:])
        return (f"--- {self.name} console (last 60 lines; full log {self.console_log}) ---\n"
                f"{tail}\n--- {self.name} QEMU stderr ---\n{stderr[-4000:]}")

    def wait_for(self, text: str, timeout: float) -> None:
        """Block until the console shows `text`; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while text.encode() not in self._console:
                remaining = deadline - time.monotonic()
                exited = self.proc is not None and self.proc.poll() is not None
                if remaining <= 0 or (exited and not self._reader.is_alive()):
                    break
                self._cond.wait(min(remaining, 0.5))
            else:
                return
        raise AssertionError(f"the guest never printed {text!r}\n{self.diagnostics()}")

    def send_line(self, line: str) -> None:
        """Type a line on the guest's serial console."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def wait_result(self, timeout: float) -> GuestResult:
        """Wait for the guest to power off and return what it printed.

        AssertionError when QEMU does not exit in time, fails, or the output is incomplete.
        """
        assert self.proc is not None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the guest did not power off within {timeout} s\n{self.diagnostics()}"
            ) from None
        self.join_console()
        if self.proc.returncode != 0:
            raise AssertionError(
                f"QEMU exited with status {self.proc.returncode}\n{self.diagnostics()}"
            )
        try:
            return parse_console(self.console())
        except ValueError as error:
            raise AssertionError(f"{error}\n{self.diagnostics()}") from None

