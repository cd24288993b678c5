# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""What the host VM runs (started by tests/hostvm/init): real devices, the daemon, a frontend.

Usage (inside the VM): python -P inside.py OUTDIR. Needs the environment the kernel
command line gives init: HOSTVM_I2C_STUB (the i2c-stub.ko matching the running kernel).

Creates an IIO dummy device (configfs), an lm75 temperature sensor and an mma7660 3-axis
accelerometer on i2c-stub, a gpio-sim chip; starts the installed daemon on them, on
QEMU's PCI functions (runtime PM of a driverless one, the reset of the virtio one) and on
gpio-sim lines through the example plugin's GPIO kinds, and queries it through the
project's vhost-user frontend, as a VMM would. When
OUTDIR/plan.json names the arm64 test guest (tests/e2e), it then boots that guest, nested,
against a second daemon serving the mma7660 and the lm75. Every fact the tests check (the
kernel's own attribute texts, the SCMI descriptions and readings, statuses, the guest's
output) goes to OUTDIR/results.json; the assertions are made outside, by pytest. This
file does no checking of its own beyond recording errors.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import mmap
import os
import struct
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from vhost_scmi.daemon import ScmiFeature, ScmiQueue
from vhost_scmi.scmi.client import ScmiClient, ScmiStatusError
from vhost_scmi.scmi.power import STATE_OFF, STATE_ON, PowerMessage
from vhost_scmi.scmi.reset import COLD_RESET, ResetBits, ResetMessage
from vhost_scmi.scmi.status import ProtocolId
from vhost_scmi.vhost.frontend import GuestRam, VhostUserFrontend

OUT = Path(sys.argv[1])
SOCKET = "/run/scmi.sock"
I2C_STUB_ADDRESSES = (0x48, 0x4C)
LM75, MMA7660 = I2C_STUB_ADDRESSES
DUMMY_NAME = "scmidummy"
#: The gpio-sim lines the example plugin's GPIO kinds serve: (label, offset, device spec
#: without its chip). The reset line is active-low, as RESET_N lines are; its pulse is
#: long enough to be seen in sim_gpioN/value while it lasts.
GPIO_PULSE_US = 200_000
GPIO_LINES = (
    ("reset", 0, f"example-gpio-reset,line=0,active-low=on,control=on,"
                 f"pulse-us={GPIO_PULSE_US},name=gpio-rst"),
    ("reset_ro", 1, "example-gpio-reset,line=1,name=gpio-rst-ro"),
    ("power", 2, "example-gpio-power,line=2,control=state,name=gpio-pwr"),
    ("power_ro", 3, "example-gpio-power,line=3,name=gpio-pwr-ro"),
)

#: x86_64 system call number of finit_module(2): this machine has no kmod.
SYS_FINIT_MODULE = 313
# linux/i2c-dev.h and linux/i2c.h
I2C_SLAVE_FORCE = 0x0706
I2C_SMBUS = 0x0720
I2C_SMBUS_WRITE = 0
I2C_SMBUS_BYTE_DATA = 2
I2C_SMBUS_WORD_DATA = 3
# Virtio over PCI: the vendor capability locating the common configuration (cfg_type 1),
# whose device_status byte (offset 20) a function reset returns to 0.
PCI_CAP_VENDOR, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_DEVICE_STATUS = 0x09, 1, 20

results: dict[str, Any] = {"errors": []}


def save() -> None:
    tmp = OUT / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1))
    tmp.rename(OUT / "results.json")


def mark(step: str) -> None:
    """Record when each step started (seconds since boot), for the timing report."""
    with open("/proc/uptime") as uptime:
        results.setdefault("timeline", []).append((step, float(uptime.read().split()[0])))


def write(path: str | Path, text: str) -> None:
    with open(path, "w") as file:
        file.write(text)


def wait_for(what: str, predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        time.sleep(0.02)


def load_module(path: str, params: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.syscall(SYS_FINIT_MODULE, fd, params.encode(), 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"finit_module({path}): {os.strerror(errno)}")
    finally:
        os.close(fd)


class SmbusIoctl(ctypes.Structure):
    """struct i2c_smbus_ioctl_data."""

    _fields_ = [("read_write", ctypes.c_uint8), ("command", ctypes.c_uint8),
                ("size", ctypes.c_uint32), ("data", ctypes.c_void_p)]


def smbus_write(bus: int, address: int, register: int, value: int, size: int) -> None:
    """Write a byte or (little-endian) word register of a chip, even one a driver holds."""
    data = (ctypes.c_uint8 * 34)()
    data[0], data[1] = value & 0xFF, value >> 8 & 0xFF
    request = SmbusIoctl(I2C_SMBUS_WRITE, register, size, ctypes.addressof(data))
    fd = os.open(f"/dev/i2c-{bus}", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, I2C_SLAVE_FORCE, address)
        fcntl.ioctl(fd, I2C_SMBUS, request)
    finally:
        os.close(fd)


def lm75_set(bus: int, millidegrees: int) -> None:
    # The temperature register is big-endian on the wire, 1/256 °C per bit (the lm75
    # driver keeps 9 bits: 0.5 °C steps); SMBus words are little-endian.
    register = (millidegrees * 256 // 1000) & 0xFFFF
    smbus_write(bus, LM75, 0, (register >> 8) | (register & 0xFF) << 8, I2C_SMBUS_WORD_DATA)


def read_attributes(directory: Path, names: list[str]) -> dict[str, str]:
    return {name: (directory / name).read_text().strip() for name in names}


def iio_device(name: str, parent: Path = Path("/sys/bus/iio/devices")) -> Path:
    def find() -> Path | None:
        for device in parent.glob("iio:device*"):
            if (device / "name").read_text().strip() == name:
                return device
        return None
    return wait_for(f"IIO device {name}", find)


def make_devices() -> dict[str, Any]:
    """Create the real devices; return where they are."""
    mark("devices")
    where: dict[str, Any] = {}
    # The IIO dummy, through configfs.
    os.mkdir(f"/sys/kernel/config/iio/devices/dummy/{DUMMY_NAME}")
    where["dummy"] = str(iio_device(DUMMY_NAME))
    # i2c-stub with an lm75 and an mma7660 on it.
    load_module(os.environ["HOSTVM_I2C_STUB"],
                "chip_addr=" + ",".join(f"{a:#x}" for a in I2C_STUB_ADDRESSES))
    adapter = wait_for("i2c-stub adapter", lambda: next(
        (p for p in Path("/sys/bus/i2c/devices").glob("i2c-*")
         if (p / "name").read_text().strip() == "SMBus stub driver"), None))
    bus = int(adapter.name.split("-")[1])
    where["bus"] = bus
    wait_for(f"/dev/i2c-{bus}", lambda: Path(f"/dev/i2c-{bus}").exists())
    lm75_set(bus, 25000)
    for register, value in enumerate((5, 0x3E, 21)):  # x = 5, y = -2, z = 21 (6 bits)
        smbus_write(bus, MMA7660, register, value, I2C_SMBUS_BYTE_DATA)
    write(adapter / "new_device", f"lm75 {LM75:#x}")
    write(adapter / "new_device", f"mma7660 {MMA7660:#x}")
    lm75 = Path(f"/sys/bus/i2c/devices/{bus}-{LM75:04x}")
    where["lm75_client"] = lm75.name
    where["lm75"] = str(wait_for("lm75 hwmon", lambda: next(lm75.glob("hwmon/hwmon*"), None)))
    mma = Path(f"/sys/bus/i2c/devices/{bus}-{MMA7660:04x}")
    where["mma7660"] = str(wait_for("mma7660 IIO", lambda: next(mma.glob("iio:device*"),
                                                                None)))
    # gpio-sim: one bank of 8 lines.
    chip = Path("/sys/kernel/config/gpio-sim/scmi")
    os.mkdir(chip)
    os.mkdir(chip / "bank0")
    write(chip / "bank0" / "num_lines", "8")
    write(chip / "live", "1")
    where["gpiochip"] = (chip / "bank0" / "chip_name").read_text().strip()
    # Its lines' simulated outside world: the read-only reset line pulled up (a device
    # running), the others left pulled down.
    write(sim_line(where["gpiochip"], 1) / "pull", "pull-up")
    where["gpio_before_daemon"] = {label: sim_value(where["gpiochip"], offset)
                                   for label, offset, _ in GPIO_LINES}
    return where


def sim_line(chip: str, offset: int) -> Path:
    """gpio-sim's sysfs directory of one line: `value` (what the line is), `pull`."""
    return Path("/sys/bus/gpio/devices") / chip / f"sim_gpio{offset}"


def sim_value(chip: str, offset: int) -> str:
    return (sim_line(chip, offset) / "value").read_text().strip()


# Each case: label -> (device spec, IIO device key, kernel attributes to record).
def iio_cases(where: dict[str, Any]) -> dict[str, tuple[str, str, list[str]]]:
    dummy, mma = where["dummy"], where["mma7660"]
    return {
        "dummy_voltage0": (f"iio,path={dummy},channel=in_voltage0,name=volt0", dummy,
                           ["in_voltage0_raw", "in_voltage0_offset", "in_voltage0_scale"]),
        "dummy_diff12": (f"iio,path={dummy},channel=in_voltage1-voltage2,name=diff12", dummy,
                         ["in_voltage1-voltage2_raw", "in_voltage-voltage_scale"]),
        "dummy_diff34": (f"iio,path={dummy},channel=in_voltage3-voltage4,name=diff34", dummy,
                         ["in_voltage3-voltage4_raw", "in_voltage-voltage_scale"]),
        "dummy_accel": (f"iio,path={dummy},channel=in_accel,name=dummyaccel", dummy,
                        ["in_accel_x_raw"]),
        "dummy_steps": (f"iio,path={dummy},channel=in_steps,name=steps", dummy,
                        ["in_steps_input"]),
        "dummy_walking": (f"iio,path={dummy},channel=in_activity_walking,name=walking", dummy,
                          ["in_activity_walking_input"]),
        "dummy_running": (f"iio,path={dummy},channel=in_activity_running,name=running", dummy,
                          ["in_activity_running_input"]),
        "dummy_out0": (f"iio,path={dummy},channel=out_voltage0,name=dac0", dummy,
                       ["out_voltage0_raw"]),
        "mma7660": (f"iio,path={mma},channel=in_accel,name=mma7660", mma,
                    ["in_accel_x_raw", "in_accel_y_raw", "in_accel_z_raw", "in_accel_scale",
                     "in_accel_scale_available"]),
    }


def describe_sensors(client: ScmiClient) -> list[dict[str, Any]]:
    sensors = []
    for sensor in client.sensor_descriptions():
        entry: dict[str, Any] = {"id": sensor.id, "name": sensor.name, "unit": sensor.unit,
                                 "exponent": sensor.exponent, "axes": []}
        if sensor.axis_count:
            entry["axes"] = [{"name": a.name, "unit": a.unit, "exponent": a.exponent}
                             for a in client.axis_descriptions(sensor.id)]
        sensors.append(entry)
    return sensors


def read_status(client: ScmiClient, sensor_id: int) -> dict[str, Any]:
    try:
        return {"values": [r.value for r in client.read(sensor_id)]}
    except ScmiStatusError as error:
        return {"status": error.status}


def listening(path: str) -> bool:
    """Whether a Unix socket listens on `path` (flag __SO_ACCEPTCON in /proc/net/unix)."""
    with open("/proc/net/unix") as table:
        return any(len(fields) >= 8 and fields[7] == path and int(fields[3], 16) & 0x10000
                   for fields in (line.split() for line in table))


def connect(timeout: float = 30.0) -> VhostUserFrontend:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return VhostUserFrontend(SOCKET, timeout=10.0)
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def pci_devices() -> tuple[Path, Path]:
    """A PCI function without a driver (runtime PM) and one with a reset attribute."""
    devices = sorted(Path("/sys/bus/pci/devices").iterdir())
    driverless = next(d for d in devices if not (d / "driver").exists())
    resettable = next(d for d in devices if (d / "reset").exists())
    return driverless, resettable


def virtio_device_status(device: Path) -> int:
    """The device_status of a virtio PCI function, read through its BAR (as mapped)."""
    config = (device / "config").read_bytes()
    pointer = config[0x34]
    while pointer:
        if config[pointer] == PCI_CAP_VENDOR and config[pointer + 3] == VIRTIO_PCI_CAP_COMMON_CFG:
            bar = config[pointer + 4]
            offset = struct.unpack_from("<I", config, pointer + 8)[0]
            fd = os.open(device / f"resource{bar}", os.O_RDONLY | os.O_SYNC)
            try:
                with mmap.mmap(fd, mmap.PAGESIZE + offset // mmap.PAGESIZE * mmap.PAGESIZE,
                               mmap.MAP_SHARED, mmap.PROT_READ) as bar_map:
                    return bar_map[offset + VIRTIO_DEVICE_STATUS]
            finally:
                os.close(fd)
        pointer = config[pointer + 1]
    raise LookupError(f"{device.name}: no virtio common configuration capability")


def power_and_reset(client: ScmiClient, runtime_pm: Path, resettable: Path) -> None:
    """runtime-pm and pci-reset domains against the real PCI functions."""
    def status_of(call) -> dict[str, Any]:
        try:
            return {"status": 0, "payload": call().hex()}
        except ScmiStatusError as error:
            return {"status": error.status}

    def power_get() -> int:
        return struct.unpack("<I", client.request(ProtocolId.POWER_DOMAIN,
                                                  PowerMessage.STATE_GET,
                                                  struct.pack("<I", 0)))[0]

    power = runtime_pm / "power"
    steps = []
    for state in (STATE_OFF, STATE_ON):
        answer = status_of(lambda state=state: client.request(
            ProtocolId.POWER_DOMAIN, PowerMessage.STATE_SET, struct.pack("<3I", 0, 0, state)))
        control = (power / "control").read_text().strip()
        try:
            wait_for("runtime PM to settle", lambda state=state: (
                (power / "runtime_status").read_text().strip()
                == ("suspended" if state == STATE_OFF else "active")), timeout=5)
        except TimeoutError:
            pass
        steps.append({"set": state, **answer, "control": control,
                      "runtime_status": (power / "runtime_status").read_text().strip(),
                      "get": power_get()})
    results["runtime_pm_domain"] = {"device": runtime_pm.name, "steps": steps}
    # Reset domain 0 may reset (control=on), domain 1 (the same function) may not.
    reset = {"device": resettable.name, "before": virtio_device_status(resettable)}
    for label, domain in (("denied", 1), ("reset", 0)):
        reset[label] = status_of(lambda domain=domain: client.request(
            ProtocolId.RESET_DOMAIN, ResetMessage.RESET,
            struct.pack("<3I", domain, 1 << ResetBits.AUTONOMOUS, COLD_RESET)))
        reset[f"after_{label}"] = virtio_device_status(resettable)
    results["pci_reset"] = reset


def domain_ids(specs: list[str]) -> dict[str, int]:
    """Each GPIO line's label -> its domain id: its index among the specs of its protocol."""
    ids = {}
    for label, _, spec in GPIO_LINES:
        kinds = (("runtime-pm", "example-gpio-power") if label.startswith("power")
                 else ("pci-reset", "example-gpio-reset"))
        same = [s for s in specs if s.split(",")[0] in kinds]
        ids[label] = next(i for i, s in enumerate(same) if s.startswith(spec))
    return ids


def domain_name(client: ScmiClient, reset: bool, domain: int) -> str:
    """The short name of a reset or power domain (from its DOMAIN_ATTRIBUTES)."""
    if reset:
        answer = client.request(ProtocolId.RESET_DOMAIN, ResetMessage.DOMAIN_ATTRIBUTES,
                                struct.pack("<I", domain))[8:24]  # after attributes, latency
    else:
        answer = client.request(ProtocolId.POWER_DOMAIN, PowerMessage.DOMAIN_ATTRIBUTES,
                                struct.pack("<I", domain))[4:20]  # after attributes
    return answer.split(b"\0")[0].decode()


def gpio_plugin(client: ScmiClient, chip: str, ids: dict[str, int]) -> None:
    """The example plugin's GPIO reset and power domains on gpio-sim lines: what the
    kernel shows of each line around each SCMI request."""
    offsets = {label: offset for label, offset, _ in GPIO_LINES}

    def ask(protocol: int, message: int, *words: int) -> dict[str, Any]:
        started = time.monotonic()
        try:
            payload = client.request(protocol, message, struct.pack(f"<{len(words)}I", *words))
            answer: dict[str, Any] = {"status": 0, "payload": payload.hex()}
        except ScmiStatusError as error:
            answer = {"status": error.status}
        answer["ms"] = round((time.monotonic() - started) * 1000, 1)
        return answer

    def reset(label: str, flags: int) -> dict[str, Any]:
        answer = ask(ProtocolId.RESET_DOMAIN, ResetMessage.RESET, ids[label], flags,
                     COLD_RESET)
        return {**answer, "value": sim_value(chip, offsets[label])}

    def power_get(label: str) -> int:
        return struct.unpack("<I", client.request(ProtocolId.POWER_DOMAIN,
                                                  PowerMessage.STATE_GET,
                                                  struct.pack("<I", ids[label])))[0]

    def power_set(label: str, state: int) -> dict[str, Any]:
        answer = ask(ProtocolId.POWER_DOMAIN, PowerMessage.STATE_SET, 0, ids[label], state)
        return {**answer, "value": sim_value(chip, offsets[label]), "get": power_get(label)}

    gpio: dict[str, Any] = {"ids": ids, "offsets": offsets, "pulse_us": GPIO_PULSE_US,
                            "served": {label: sim_value(chip, offset)
                                       for label, offset in offsets.items()}}
    gpio["names"] = {label: domain_name(client, label.startswith("reset"), ids[label])
                     for label in offsets}
    # The reset line: held, released, then one autonomous reset (a pulse), watched.
    explicit, autonomous = 1 << ResetBits.EXPLICIT_ASSERT, 1 << ResetBits.AUTONOMOUS
    gpio["assert"] = reset("reset", explicit)
    gpio["deassert"] = reset("reset", 0)
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            value = sim_value(chip, offsets["reset"])
            if not seen or seen[-1] != value:
                seen.append(value)
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(0.05)
    try:
        gpio["pulse"] = reset("reset", autonomous)
        time.sleep(0.05)
    finally:
        stop.set()
        watcher.join()
    gpio["pulse"]["seen"] = seen
    # The read-only reset line: both kinds of reset refused, the line as it was.
    gpio["ro_assert"] = reset("reset_ro", explicit)
    gpio["ro_pulse"] = reset("reset_ro", autonomous)
    # The enable line: switched on and off.
    gpio["power_initial"] = power_get("power")
    gpio["power_on"] = power_set("power", STATE_ON)
    gpio["power_off"] = power_set("power", STATE_OFF)
    # The read-only input: the outside world (gpio-sim's pull) changes it under the
    # daemon; setting it is refused.
    inputs = []
    for pull in ("pull-down", "pull-up", "pull-down"):
        write(sim_line(chip, offsets["power_ro"]) / "pull", pull)
        inputs.append({"pull": pull, "value": sim_value(chip, offsets["power_ro"]),
                       "get": power_get("power_ro")})
    gpio["input"] = inputs
    gpio["ro_set"] = power_set("power_ro", STATE_ON)
    # Specs the plugin cannot serve, while the daemon holds the lines: a line in use,
    # and one the chip does not have. Both daemons start at once (two CPUs).
    daemon_path = Path(sys.executable).parent / "vhost-device-scmi"
    bad_specs = {"busy": f"example-gpio-reset,chip={chip},line=0",
                 "no_line": f"example-gpio-power,chip={chip},line=8"}
    starts = {label: subprocess.Popen(
        [str(daemon_path), "--socket-path", f"/run/bad-{label}.sock", "--device", spec],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for label, spec in bad_specs.items()}
    gpio["bad_specs"] = {}
    for label, process in starts.items():
        out, err = process.communicate(timeout=60)
        gpio["bad_specs"][label] = {"exit": process.returncode, "stdout": out, "stderr": err}
    # Who holds the lines, as the kernel tells it.
    debugfs = Path("/sys/kernel/debug/gpio").read_text()
    gpio["debugfs"] = next((block for block in debugfs.split("\n\n")
                            if block.startswith(f"{chip}:")), debugfs)
    results["gpio_plugin"] = gpio


def serve_and_probe(where: dict[str, Any]) -> None:
    cases = iio_cases(where)
    lm75_dir = Path(where["lm75"])
    specs = [spec for spec, _, _ in cases.values()]
    specs.append(f"hwmon,path={lm75_dir},channel=temp1,name=lm75")
    labels = [*cases, "lm75"]
    runtime_pm, resettable = pci_devices()
    specs += [f"runtime-pm,device={runtime_pm},control=state",
              f"pci-reset,device={resettable},control=on,name=reset",
              f"pci-reset,device={resettable},name=readonly"]
    specs += [f"{spec},chip={where['gpiochip']}" for _, _, spec in GPIO_LINES]
    daemon_path = Path(sys.executable).parent / "vhost-device-scmi"
    argv = [str(daemon_path), "--socket-path", SOCKET, "--log-level", "info"]
    for spec in specs:
        argv += ["--device", spec]
    results["daemon_argv"] = argv
    mark("daemon")
    with open(OUT / "daemon.log", "wb") as log:
        daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT)
    ram = GuestRam()
    try:
        with connect() as frontend:
            mark("connected")
            queues = frontend.setup(ram, queue_count=len(ScmiQueue),
                                    device_features=1 << ScmiFeature.P2A_CHANNELS)
            cmdq = queues[ScmiQueue.CMDQ]
            client = ScmiClient(lambda request: cmdq.transact(request, 136, timeout=10.0))
            sensors = describe_sensors(client)
            results["sensors"] = dict(zip(labels, sensors, strict=False))
            # Each IIO case: the kernel's attribute texts around one SCMI reading.
            results["iio"] = {}
            for index, (label, (spec, device, names)) in enumerate(cases.items()):
                before = read_attributes(Path(device), names)
                reading = read_status(client, index)
                after = read_attributes(Path(device), names)
                results["iio"][label] = {"spec": spec, "kernel": before,
                                         "kernel_after": after, **reading}
            mark("iio read")
            # The lm75: 25 °C as preset, then temperatures set under the running daemon.
            lm75_id = labels.index("lm75")
            steps = []
            for millidegrees in (25000, 31500, -12000):
                if millidegrees != 25000:
                    lm75_set(where["bus"], millidegrees)
                kernel = (lm75_dir / "temp1_input").read_text().strip()
                steps.append({"set": millidegrees, "kernel": kernel,
                              **read_status(client, lm75_id)})
            results["lm75"] = steps
            # The mma7660 moves: a new x register under the daemon.
            smbus_write(where["bus"], MMA7660, 0, 0x21, I2C_SMBUS_BYTE_DATA)  # -31
            mma_id = labels.index("mma7660")
            results["mma7660_moved"] = {
                "kernel": (Path(where["mma7660"]) / "in_accel_x_raw").read_text().strip(),
                **read_status(client, mma_id)}
            mark("lm75 read")
            power_and_reset(client, runtime_pm, resettable)
            mark("power and reset")
            gpio_plugin(client, where["gpiochip"], domain_ids(specs))
            mark("gpio plugin")
            # The lm75 leaves while served: unbind its driver.
            write("/sys/bus/i2c/drivers/lm75/unbind", where["lm75_client"])
            gone = {"hwmon_exists": lm75_dir.exists(), **read_status(client, lm75_id)}
            gone["again"] = read_status(client, lm75_id)
            gone["other_sensor"] = read_status(client, mma_id)
            gone["vendor"] = client.vendor()
            gone["daemon_alive"] = daemon.poll() is None
            results["unbound"] = gone
            mark("unbound")
            frontend.stop()
    finally:
        ram.close()
        alive = daemon.poll() is None
        results["daemon_alive_at_end"] = alive
        if alive:
            daemon.terminate()
        try:
            results["daemon_exit"] = daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            results["daemon_exit"] = daemon.wait(10)


NESTED_SOCKET = "/run/nested.sock"
NESTED_TIMEOUT = 480.0  # TCG in TCG: about 3 minutes of one CPU
NESTED_LM75 = 42500


def nested_guest(where: dict[str, Any]) -> None:
    """Boot the arm64 test guest against a daemon serving the mma7660 and the lm75."""
    plan_file = OUT / "plan.json"
    plan = json.loads(plan_file.read_text()) if plan_file.exists() else {}
    if "guest" not in plan:
        return
    sys.path.insert(0, plan["tests_dir"])
    from e2e.guest import LIST_HWMON, LIST_IIO, GuestImage, GuestVM  # noqa: PLC0415 - only with a plan

    guest = plan["guest"]
    image = GuestImage(qemu=guest["qemu"], qemu_version=tuple(guest["qemu_version"]),
                       kernel=Path(guest["kernel"]), dtb=Path(guest["dtb"]),
                       busybox=Path(guest["busybox"]), cache_dir=Path(guest["cache_dir"]))
    # The lm75 comes back (it was unbound above), at a temperature of its own.
    lm75 = Path(f"/sys/bus/i2c/devices/{where['lm75_client']}")
    write("/sys/bus/i2c/drivers/lm75/bind", where["lm75_client"])
    hwmon = wait_for("lm75 hwmon again", lambda: next(lm75.glob("hwmon/hwmon*"), None))
    lm75_set(where["bus"], NESTED_LM75)
    mma = Path(where["mma7660"])
    host = read_attributes(mma, ["in_accel_x_raw", "in_accel_y_raw", "in_accel_z_raw",
                                 "in_accel_scale"])
    host["temp1_input"] = (hwmon / "temp1_input").read_text().strip()
    results["nested"] = {"host": host}
    argv = [str(Path(sys.executable).parent / "vhost-device-scmi"),
            "--socket-path", NESTED_SOCKET,
            "--device", f"iio,path={mma},channel=in_accel,name=mma7660",
            "--device", f"hwmon,path={hwmon},channel=temp1,name=lm75"]
    mark("nested daemon")
    processes: list[subprocess.Popen] = []
    with open(OUT / "nested-daemon.log", "wb") as log:
        daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT)
    processes.append(daemon)
    try:
        wait_for("the nested daemon listening", lambda: listening(NESTED_SOCKET), 30)
        workdir = Path("/run/guest")
        vm = GuestVM(image, Path(NESTED_SOCKET), LIST_IIO + LIST_HWMON, workdir, name="nested")
        mark("nested guest")
        vm.start(processes.append)
        try:
            result = vm.wait_result(NESTED_TIMEOUT)
        finally:
            (OUT / "nested-console.log").write_text(vm.console())
            vm.close()
        mark("nested guest done")
        results["nested"].update(rc=result.rc, output=result.output,
                                 dmesg=result.dmesg_matching(r"(?i)scmi|iio|hwmon"),
                                 daemon_alive=daemon.poll() is None)
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.kill()
            process.wait(10)


def platform_facts(where: dict[str, Any]) -> None:
    """What the rig offers: its PCI functions (runtime PM, resets), the gpio-sim chip."""
    pci = {}
    for device in sorted(Path("/sys/bus/pci/devices").iterdir()):
        pci[device.name] = {
            "class": (device / "class").read_text().strip(),
            "power_control": (device / "power" / "control").read_text().strip(),
            "runtime_status": (device / "power" / "runtime_status").read_text().strip(),
            "reset": (device / "reset").exists(),
            "reset_method": ((device / "reset_method").read_text().strip()
                             if (device / "reset_method").exists() else None),
        }
    results["pci"] = pci
    # Runtime PM: a device without a driver suspends once its control is "auto".
    driverless = next((d for d in sorted(Path("/sys/bus/pci/devices").iterdir())
                       if not (d / "driver").exists()), None)
    if driverless is not None:
        write(driverless / "power" / "control", "auto")
        status = driverless / "power" / "runtime_status"
        try:
            wait_for("runtime suspend",
                     lambda: status.read_text().strip() == "suspended", timeout=5)
        except TimeoutError:
            pass
        results["runtime_pm"] = {"device": driverless.name,
                                 "status": status.read_text().strip()}
        write(driverless / "power" / "control", "on")
    chip = where["gpiochip"]
    results["gpio"] = {"chip": chip, "dev": Path(f"/dev/{chip}").exists()}


def main() -> int:
    mark("start")
    results["kernel"] = os.uname().release
    status = 0
    for step in (make_devices, serve_and_probe, platform_facts, nested_guest):
        try:
            if step is make_devices:
                results["where"] = make_devices()
            else:
                step(results["where"])
        except Exception:
            results["errors"].append(f"{step.__name__}: {traceback.format_exc()}")
            status = 1
            if step is make_devices:
                break
        save()
    mark("end")
    save()
    return status


if __name__ == "__main__":
    raise SystemExit(main())
