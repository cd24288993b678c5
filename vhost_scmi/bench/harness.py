# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`python -m vhost_scmi.bench`: how fast a vhost-user SCMI backend answers, next to the floor.

The harness starts a backend from a command template, drives it with the in-tree
vhost-user frontend over a real socket, real eventfds and memfd guest memory, and
measures, in one run:

floor       an eventfd kick -> epoll -> eventfd call ping-pong between two processes,
            in compiled code without the GIL (`floor.pyx`): no backend can beat it;
roundtrip   one SENSOR_READING_GET at a time, kick to call (p50, p99), with both
            processes on one CPU, on two CPUs, and unpinned;
batched     N requests posted, one kick, until all are used: µs per request and
            requests per second, for SENSOR_READING_GET and SENSOR_DESCRIPTION_GET;
iio         batched SENSOR_READING_GET of an `iio` sensor whose sysfs-shaped files
            live on tmpfs;
domains     batched PERF_LEVEL_SET of a `cpufreq` domain (control=level; each request
            changes the level: a host write) and POWER_STATE_GET of a `runtime-pm`
            domain, over sysfs-shaped files on tmpfs;
idle        the backend's CPU time over a few idle seconds with a VMM connected;
footprint   RSS after many requests; RSS with N VMMs connected at once (N = 1, 10, 50: one
            backend serving N sockets with --backend-multi-cmd, else N backends, their
            RSS summed); the time from exec to the socket accepting, beside what the
            backend's interpreter takes to run nothing (a script backend's `#!` line,
            with and without its site: a site's .pth files can cost more than the
            backend's own start), and to import, without its site, the standard modules
            the backend's start imports (what a start costs before any of the backend's own
            code runs).

Every figure is repeated and reported as its median and spread, and as a ratio to
the floor measured in the same run (same repeat where both are repeated): the
machines are noisy, the ratios are the numbers that count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vhost_scmi.bench import floor, slowread
from vhost_scmi.scmi.client import ScmiClient, ScmiProtocolError, ScmiStatusError
from vhost_scmi.scmi.codec import pack_header
from vhost_scmi.scmi.performance import PerfMessage
from vhost_scmi.scmi.power import PowerMessage
from vhost_scmi.scmi.sensor import SensorMessage
from vhost_scmi.scmi.status import MessageType, ProtocolId, Status
from vhost_scmi.vhost import protocol as vu
from vhost_scmi.vhost.frontend import DriverQueue, FrontendError, GuestRam, VhostUserFrontend
from vhost_scmi.vhost.protocol import VirtioFeature, bit


def _own_daemon() -> str:
    """Our daemon's console script as installed with this interpreter (not a shim on
    PATH, such as pyenv's, whose own start-up would be counted as the daemon's)."""
    beside = Path(sys.executable).parent / "vhost-device-scmi"
    return shlex.quote(str(beside)) if beside.exists() else "vhost-device-scmi"


DEFAULT_BACKEND_CMD = f"{_own_daemon()} -s {{socket}} -d {{device}}"
#: One backend serving {count} sockets, {socket}0 ... {socket}<count-1>.
DEFAULT_MULTI_CMD = f"{_own_daemon()} -s {{socket}} -c {{count}} -d {{device}}"
SECTIONS = ("floor", "roundtrip", "batched", "iio", "domains", "idle", "footprint",
            "neighbour", "stream")

# How long a backend may take to start before the harness gives up.
START_TIMEOUT = 30.0
#: The largest queue both implementations of the device accept: a full queue of
#: 1024 requests, one indirect descriptor each.
QUEUE_SIZE = 1024


@dataclass
class Settings:
    """What to measure and how often."""

    backend_cmd: str = DEFAULT_BACKEND_CMD
    sections: tuple[str, ...] = SECTIONS
    repeats: int = 5
    rounds: int = 5000
    batches: int = 50
    batch_sizes: tuple[int, ...] = (256, 1024)
    footprint_requests: int = 1_000_000
    idle_seconds: float = 5.0
    #: Seconds each stream (SENSOR_UPDATE at 1 kHz) is measured.
    stream_seconds: float = 5.0
    #: Per-read delay of the neighbour's slow device, in milliseconds.
    slow_ms: int = 200
    work_dir: str = "/dev/shm"
    #: Command serving several sockets from one backend; "" starts one backend per VMM.
    multi_cmd: str = DEFAULT_MULTI_CMD
    vmm_counts: tuple[int, ...] = (1, 10, 50)

    @classmethod
    def quick(cls) -> Settings:
        """Small counts: a run of seconds, for smoke tests and a first look."""
        return cls(repeats=3, rounds=300, batches=5, footprint_requests=20_000,
                   idle_seconds=1.0, stream_seconds=1.0)


# --- figures --------------------------------------------------------------------------

@dataclass(frozen=True)
class Floor:
    """Which floor a figure is compared with, and which statistic of it."""

    placement: str  # "same CPU", "across CPUs", "unpinned"
    stat: str = "p50"  # "p50" or "p99"

    @property
    def key(self) -> str:
        return f"{self.placement}/{self.stat}"


SAME_CPU = Floor("same CPU")


@dataclass
class Figure:
    """One measured quantity: its samples (one per repeat) and how to read them."""

    section: str
    name: str
    unit: str
    samples: list[float] = field(default_factory=list)
    #: Multiply a sample by this to get microseconds (for the ratio to the floor);
    #: None when the quantity is not a time (RSS). Requests/s are inverted first.
    to_us: float | None = 1.0
    per_second: bool = False
    floor: Floor | None = None
    #: The floor sample of the same repeat, per sample (same length as samples).
    floor_samples: list[float] = field(default_factory=list)
    #: (limit, kind): kind "ratio" (≤ limit × floor) or "value" (≤ limit in `unit`).
    target: tuple[float, str] | None = None

    def add(self, value: float, floor_us: float | None = None) -> None:
        self.samples.append(value)
        if floor_us is not None:
            self.floor_samples.append(floor_us)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """Half the range of the samples, relative to their median (0.05 = ±5 %)."""
        if len(self.samples) < 2 or self.median == 0:
            return 0.0
        return (max(self.samples) - min(self.samples)) / 2 / abs(self.median)

    def ratios(self) -> list[float]:
        """Each sample over the floor of its own repeat, in microseconds."""
        if self.to_us is None or not self.floor_samples:
            return []
        out = []
        for value, floor_us in zip(self.samples, self.floor_samples, strict=False):
            micros = (1e6 / value if value else float("inf")) if self.per_second \
                else value * self.to_us
            out.append(micros / floor_us)
        return out

    @property
    def ratio(self) -> float | None:
        ratios = self.ratios()
        return statistics.median(ratios) if ratios else None

    def target_met(self) -> bool | None:
        if self.target is None:
            return None
        limit, kind = self.target
        value = self.ratio if kind == "ratio" else self.median
        return None if value is None else value <= limit

    def target_text(self) -> str:
        if self.target is None:
            return ""
        limit, kind = self.target
        text = f"≤ {limit:g}× floor" if kind == "ratio" else f"≤ {limit:g} {self.unit}"
        met = self.target_met()
        return f"{text} {'met' if met else 'MISSED'}" if met is not None else text

    def as_json(self) -> dict:
        return {
            "section": self.section, "name": self.name, "unit": self.unit,
            "median": self.median, "min": min(self.samples), "max": max(self.samples),
            "spread": self.spread, "samples": self.samples,
            "floor": self.floor.key if self.floor else None,
            "ratio_to_floor": self.ratio, "ratios": self.ratios(),
            "target": self.target_text() or None, "target_met": self.target_met(),
        }


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of the (sorted) values lie (nearest rank)."""
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


# --- processes, CPUs and /proc ----------------------------------------------------------

def cpu_pair() -> tuple[int, int | None]:
    """Two CPUs this process may run on (the second None on a one-CPU machine)."""
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[0], (cpus[1] if len(cpus) > 1 else None)


def set_process_affinity(pid: int, cpus: set[int]) -> None:
    """Pin every thread of process `pid` to `cpus`."""
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(task), cpus)
        except ProcessLookupError:
            pass  # a thread that has just exited


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (all threads), from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # fields[0] is field 3, `state`
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_ns_and_wakeups(pid: int) -> tuple[int, int]:
    """Nanoseconds on CPU (schedstat) and context switches, summed over the threads."""
    run_ns = switches = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            run_ns += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
            for line in Path(f"/proc/{pid}/task/{task}/status").read_text().splitlines():
                if "ctxt_switches:" in line:  # voluntary and nonvoluntary
                    switches += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return run_ns, switches


def script_interpreter(program: str) -> list[str] | None:
    """The interpreter command line of a script's `#!` line (for the backend's own
    start-up floor), or None when `program` is not a script (a compiled backend)."""
    path = shutil.which(program)
    if path is None:
        return None
    try:
        with open(path, "rb") as script:
            first = script.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    return words or None


def start_stdlib_imports(interpreter: Sequence[str], template: str,
                         work_dir: Path) -> list[str]:
    """The standard-library modules a start of the script backend of command `template`
    imports, without its interpreter's site (so that no .pth file's imports count): the
    backend is run once under `-S -X importtime`, with the site's sys.path, until it
    accepts.

    Raises RuntimeError (saying why) when that start fails, as it does for an editable
    install, whose import hook the site installs."""
    paths = subprocess.run(
        [*interpreter, "-c", "import sys; print('\\n'.join(sys.path)); "
         "print(','.join(sys.stdlib_module_names))"],
        check=True, capture_output=True, text=True).stdout.splitlines()
    stdlib = set(paths.pop().split(","))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in paths if path))
    program, *args = shlex.split(template)
    script = shutil.which(program) or program
    backend = Backend(shlex.join([*interpreter, "-S", "-X", "importtime", script, *args]),
                      "fake", work_dir, "start-imports", env=env)
    backend.start()
    try:
        backend.wait_accepting()
    except (RuntimeError, TimeoutError) as error:
        raise RuntimeError(str(error).splitlines()[0]) from None
    finally:
        backend.stop()
    # "import time: SELF | CUMULATIVE | <2 spaces a level>NAME", each import after those
    # it made: read backwards, every module comes after the one that imported it.
    lines = [line.rsplit("|", 1)[1] for line in
             backend.log_path.read_text(errors="replace").splitlines()
             if line.startswith("import time:") and line.count("|") == 2]
    modules = []
    importers: list[tuple[int, bool]] = []  # (depth, is stdlib) of the enclosing imports
    for text in reversed(lines[1:]):  # lines[0] is the column heading
        name = text.strip()
        depth = len(text) - len(text.lstrip())
        while importers and importers[-1][0] >= depth:
            importers.pop()
        is_stdlib = name.partition(".")[0] in stdlib
        # Only what the backend (or the interpreter's start) imports itself: a module the
        # standard library imports comes with its importer, in the order that works.
        if is_stdlib and not (importers and importers[-1][1]):
            modules.append(name)
        importers.append((depth, is_stdlib))
    return modules


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of process `pid`, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


class Backend:
    """A backend process started from a command template.

    `{socket}` in the template becomes the socket path, `{device}` the device spec.
    The command runs without a shell, so the process started is the backend itself
    (its pid is the one measured and pinned).
    """

    def __init__(self, template: str, device: str, work_dir: Path, tag: str,
                 count: int | None = None, env: dict[str, str] | None = None) -> None:
        self.env = env
        base = str(work_dir / f"{tag}.sock")
        #: The sockets served: {socket}, or {socket}0 ... with {count} sockets.
        self.socket_paths = [base] if count is None else [f"{base}{i}" for i in range(count)]
        self.socket_path = self.socket_paths[0]
        self.log_path = work_dir / f"{tag}.log"
        # Plain replacement, not str.format: other braces in the command stay as they are.
        self.argv = [arg.replace("{socket}", base).replace("{device}", device)
                     .replace("{count}", str(count)) for arg in shlex.split(template)]
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        """Exec the backend (timing starts just before the exec)."""
        with open(self.log_path, "wb") as log:
            self.started_at = time.perf_counter()
            # stdout is a pipe, not /dev/null: some backends register fd 1 in epoll,
            # which fails on /dev/null and regular files.
            self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.PIPE, stderr=log, env=self.env)

    def wait_accepting(self) -> tuple[float, float]:
        """Wait until the socket accepts a connection and answers GET_FEATURES on it.

        Returns the seconds from exec to the connection being accepted, and to the
        reply. The probe connection is then closed; the backend serves the next one.
        """
        deadline = self.started_at + START_TIMEOUT
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            while True:
                try:
                    conn.connect(self.socket_path)
                    accepting = time.perf_counter() - self.started_at
                    break
                except (FileNotFoundError, ConnectionRefusedError):
                    pass
                self.check_alive()
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"backend not accepting on {self.socket_path} "
                                       f"after {START_TIMEOUT:g} s")
                time.sleep(0.0002)
            conn.settimeout(START_TIMEOUT)
            conn.sendall(vu.HEADER.pack(vu.Request.GET_FEATURES, vu.VERSION, 0))
            want = vu.HEADER.size + vu.U64.size
            got = b""
            while len(got) < want:
                chunk = conn.recv(want - len(got))
                if not chunk:
                    raise ConnectionError("backend closed the connection on GET_FEATURES")
                got += chunk
            return accepting, time.perf_counter() - self.started_at

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"backend {shlex.join(self.argv)} exited with status "
                               f"{self.process.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """SIGTERM the backend (SIGKILL if it lingers) and reap it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextmanager
def running(template: str, device: str, work_dir: Path, tag: str) -> Iterator[Backend]:
    """A started backend, accepting connections; stopped on exit."""
    backend = Backend(template, device, work_dir, tag)
    backend.start()
    try:
        backend.wait_accepting()
        yield backend
    finally:
        backend.stop()


def make_iio_tree(root: Path) -> Path:
    """A directory shaped like an IIO accelerometer's sysfs directory; return it."""
    device = root / "bench-iio"
    device.mkdir()
    files = {"name": "benchaccel\n", "in_accel_x_raw": "12\n", "in_accel_y_raw": "-34\n",
             "in_accel_z_raw": "981\n", "in_accel_scale": "0.009806650\n"}
    for name, text in files.items():
        (device / name).write_text(text)
    return device


#: The levels of the bench's cpufreq policy, kHz.
BENCH_LEVELS = (600000, 1200000, 1800000)


def make_cpufreq_tree(root: Path) -> Path:
    """A directory shaped like a cpufreq policy's sysfs directory; return it."""
    policy = root / "bench-policy0"
    policy.mkdir()
    files = {"scaling_available_frequencies": " ".join(map(str, BENCH_LEVELS)),
             "scaling_cur_freq": str(BENCH_LEVELS[0]),
             "scaling_min_freq": str(BENCH_LEVELS[0]),
             "scaling_max_freq": str(BENCH_LEVELS[-1]),
             "scaling_setspeed": str(BENCH_LEVELS[0]),
             "cpuinfo_transition_latency": "100000"}
    for name, text in files.items():
        (policy / name).write_text(text + "\n")
    return policy


def make_device_tree(root: Path) -> Path:
    """A directory shaped like a device's sysfs directory with runtime PM; return it."""
    device = root / "bench-device"
    (device / "power").mkdir(parents=True)
    (device / "power" / "control").write_text("on\n")
    (device / "power" / "runtime_status").write_text("active\n")
    return device


@contextmanager
def pinned(self_cpus: set[int] | None, backend: Backend, backend_cpus: set[int] | None):
    """Run the block with this process and the backend pinned (None: all CPUs)."""
    everything = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, self_cpus or everything)
        set_process_affinity(backend.pid, backend_cpus or everything)
        yield
    finally:
        os.sched_setaffinity(0, everything)
        set_process_affinity(backend.pid, everything)


# --- SCMI requests and the command queue ----------------------------------------------

#: Linux posts 136-byte response buffers: header + status + 128 payload bytes.
RESPONSE_ROOM = 136
HEADER_STATUS = struct.Struct("<Ii")
#: READING_GET parameters: u32 sensor id, u32 flags (bit 0: asynchronous).
READING_GET_PARAMS = struct.Struct("<III")
#: DESCRIPTION_GET parameters: u32 first descriptor index.
DESCRIPTION_GET_PARAMS = struct.Struct("<II")


def command_header(message_id: int, token: int) -> int:
    """A Sensor protocol command header."""
    return pack_header(message_id, MessageType.COMMAND, ProtocolId.SENSOR, token & 0x3FF)


def reading_get(token: int, sensor: int = 0) -> bytes:
    """SENSOR_READING_GET of `sensor`, synchronous."""
    return READING_GET_PARAMS.pack(command_header(SensorMessage.READING_GET, token), sensor, 0)


def description_get(token: int, first: int = 0) -> bytes:
    """SENSOR_DESCRIPTION_GET of the page starting at descriptor `first`."""
    return DESCRIPTION_GET_PARAMS.pack(command_header(SensorMessage.DESCRIPTION_GET, token),
                                       first)


#: PERF_LEVEL_SET parameters: u32 domain, u32 level.
LEVEL_SET_PARAMS = struct.Struct("<III")
#: POWER_STATE_GET parameters: u32 domain.
STATE_GET_PARAMS = struct.Struct("<II")


def perf_level_set(token: int) -> bytes:
    """PERF_LEVEL_SET of domain 0, alternating the lowest and highest bench level."""
    header = pack_header(PerfMessage.LEVEL_SET, MessageType.COMMAND, ProtocolId.PERFORMANCE,
                         token & 0x3FF)
    return LEVEL_SET_PARAMS.pack(header, 0, BENCH_LEVELS[0 if token % 2 else -1])


def power_state_get(token: int) -> bytes:
    """POWER_STATE_GET of domain 0."""
    header = pack_header(PowerMessage.STATE_GET, MessageType.COMMAND, ProtocolId.POWER_DOMAIN,
                         token & 0x3FF)
    return STATE_GET_PARAMS.pack(header, 0)


def check_response(request: bytes, response: bytes) -> None:
    """Raise BenchError unless `response` answers `request` with SUCCESS."""
    if len(response) < HEADER_STATUS.size:
        raise BenchError(f"short response ({len(response)} bytes) to {request.hex()}")
    header, status = HEADER_STATUS.unpack_from(response)
    if header != int.from_bytes(request[:4], "little") or status != Status.SUCCESS:
        raise BenchError(f"response {response[:8].hex()} to request {request.hex()}: "
                         f"header or status wrong (status {status})")


#: used_event, a u16 (EVENT_IDX).
USED_EVENT = struct.Struct("<H")


def used_event_gpa(queue: DriverQueue) -> int:
    """Where `queue`'s used_event lives: after the avail ring's u16 flags, u16 idx and
    `size` u16 entries (split ring layout)."""
    return queue.avail_gpa + 4 + 2 * queue.size


class CommandQueue:
    """The frontend's command queue, driven as a benchmark wants it.

    Requests are written into guest memory once (`load`), each in its own chain
    behind an indirect descriptor as Linux posts them, and the same chains are
    re-posted for every batch (`post`): per batch the harness writes only the
    avail ring, outside the timed window. The interrupt is asked for at the
    batch's last completion (EVENT_IDX used_event), so a backend that signals per
    request and one that signals per batch both wake the harness once.
    """

    def __init__(self, queue: DriverQueue, indirect: bool) -> None:
        self.queue = queue
        self.indirect = indirect
        #: Most chains in flight at once.
        self.size = queue.size if indirect else queue.size // 2
        self.doorbell = floor.Doorbell(queue.kick_fd, queue.call_fd)
        self.heads: list[int] = []
        self._base = 0

    def load(self, requests: Sequence[bytes]) -> None:
        """Write `requests` into guest memory, replacing the previous ones."""
        if len(requests) > self.size:
            raise ValueError(f"{len(requests)} requests, the queue holds {self.size}")
        self.release()
        self.heads = [self.queue.add(request, RESPONSE_ROOM, indirect=self.indirect)
                      for request in requests]

    def post(self) -> None:
        """Make every loaded request available, without a kick."""
        queue = self.queue
        if queue.last_used != queue.used_idx:
            queue.collect(free=False, read_data=False)
        self._base = queue.last_used
        last = (self._base + len(self.heads) - 1) & 0xFFFF
        queue.ram.write(used_event_gpa(queue), USED_EVENT.pack(last))
        queue.publish(self.heads)

    def completed(self) -> int:
        """How many of the posted requests the backend has used."""
        return (self.queue.used_idx - self._base) & 0xFFFF

    def responses(self) -> list[bytes]:
        """The responses to the last batch, in request order (call once it completed)."""
        written = {c.head: c.data for c in self.queue.collect(free=False)}
        return [written.get(head, b"") for head in self.heads]

    def release(self) -> None:
        """Free the loaded chains, so that other requests can be sent on the queue."""
        # Chains are only freed by collecting them: run them once more.
        if not self.heads:
            return
        self.post()
        self.doorbell.kick()
        while self.completed() < len(self.heads):
            self.doorbell.wait()
        self.queue.collect(free=True, read_data=False)
        self.heads = []


@contextmanager
def connect(socket_path: str, probe: bytes | None = None) -> Iterator[CommandQueue]:
    """Connect the in-tree frontend as a VMM would and check the device answers SCMI:
    sensor 0 can be read, or `probe` (a request) is answered SUCCESS.

    Without `probe`, sensor 0, the one measured, is enabled for the session if it is not
    (as Linux's scmi_iio does before reading; some backends refuse to read a disabled
    sensor), and its configuration is restored at the end."""
    # A backend serves one VMM at a time and may refuse a connection that races the
    # close of the previous one (the start-up probe), or, like the Rust daemon, remove
    # and re-create its socket file between two VMMs: try again, as a VMM would.
    deadline = time.monotonic() + 2.0
    while True:
        ram = GuestRam()
        frontend = None
        try:
            frontend = VhostUserFrontend(socket_path)
            cmdq, _eventq = frontend.setup(ram, queue_count=2, queue_size=QUEUE_SIZE)
            break
        except (FrontendError, ConnectionError, FileNotFoundError) as error:
            if frontend is not None:
                frontend.close()
            ram.close()
            if time.monotonic() > deadline:
                raise BenchError(f"frontend: {error}") from error
            time.sleep(0.01)
    try:
        client = ScmiClient(lambda request: cmdq.transact(request, RESPONSE_ROOM))
        indirect = bool(frontend.features & bit(VirtioFeature.RING_INDIRECT_DESC))
        if probe is not None:
            check_response(probe, cmdq.transact(probe, RESPONSE_ROOM))
            yield CommandQueue(cmdq, indirect)
            return
        if client.sensor_count() < 1:
            raise BenchError("the backend has no sensor to read")
        with client.sensor_enabled(0):
            if not client.read(0):
                raise BenchError("the backend has no sensor to read")
            commands = CommandQueue(cmdq, indirect)
            yield commands
            commands.release()  # room on the queue for the request restoring the sensor
    except (FrontendError, ScmiProtocolError, ScmiStatusError) as error:
        raise BenchError(f"frontend: {error}") from error
    finally:
        frontend.close()
        ram.close()


class BenchError(RuntimeError):
    """The backend answered wrongly or not at all; the run cannot go on."""


@contextmanager
def connect_vm(socket_path: str) -> Iterator[tuple[DriverQueue, DriverQueue]]:
    """Connect the in-tree frontend; yield its command and event queues."""
    ram = GuestRam()
    try:
        frontend = VhostUserFrontend(socket_path)
    except (FrontendError, OSError) as error:
        ram.close()
        raise BenchError(f"frontend: {error}") from error
    try:
        cmdq, eventq = frontend.setup(ram, queue_count=2, queue_size=QUEUE_SIZE)
        yield cmdq, eventq
    except (FrontendError, ScmiProtocolError, ScmiStatusError) as error:
        raise BenchError(f"frontend: {error}") from error
    finally:
        frontend.close()
        ram.close()


#: CONFIG_SET of a sensor: enabled, update interval 1 x 10^-3 s (31:16 seconds, 15:11
#: exponent -3 as 5-bit two's complement), rounding auto (10:9).
ENABLED_1_MS = 1 << 16 | 29 << 11 | 2 << 9 | 1


class Hammer:
    """A VM reading a slow sensor back to back, on a thread of the harness."""

    def __init__(self, cmdq: DriverQueue, sensor: int) -> None:
        self.cmdq = cmdq
        self.sensor = sensor
        self.reads = 0
        self.failures = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Hammer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop = True
        self._thread.join(30)

    def _run(self) -> None:
        token = 0
        while not self._stop:
            token += 1
            response = self.cmdq.transact(reading_get(token, self.sensor), RESPONSE_ROOM,
                                          timeout=30)
            if len(response) >= 8 and struct.unpack_from("<i", response, 4)[0] == 0:
                self.reads += 1
            else:
                self.failures += 1


def stream(cmdq: DriverQueue, eventq: DriverQueue, sensors: Sequence[int], seconds: float,
           pid: int) -> tuple[float, float]:
    """Subscribe `sensors` to SENSOR_UPDATE at 1 kHz for `seconds`, keeping the event queue
    supplied (its buffers posted once, by the caller, and given back as they come);
    return (daemon CPU seconds per second, notifications per second)."""
    client = ScmiClient(lambda request: cmdq.transact(request, RESPONSE_ROOM))

    def recycle() -> int:
        # Buffers go back as Linux gives them: a kick only when the device asks for one
        # (EVENT_IDX avail_event).
        done = eventq.collect(free=False, read_data=False)
        if done:
            old = eventq.avail_idx
            eventq.publish([completion.head for completion in done])
            if eventq.kick_needed(old):
                eventq.kick()
        return len(done)

    for sensor in sensors:
        client.config_set(sensor, ENABLED_1_MS)
        client.continuous_update_notify(sensor, True)
    settled = time.monotonic() + 0.2
    while time.monotonic() < settled:
        eventq.wait(0.05)
        recycle()
    cpu_before, started = cpu_seconds(pid), time.monotonic()
    received = 0
    while (elapsed := time.monotonic() - started) < seconds:
        eventq.wait(0.05)
        received += recycle()
    cpu = cpu_seconds(pid) - cpu_before
    for sensor in sensors:
        client.continuous_update_notify(sensor, False)
        client.config_set(sensor, 0)
    time.sleep(0.05)
    recycle()
    return cpu / elapsed, received / elapsed


# --- measurements ---------------------------------------------------------------------

WARMUP_ROUNDS = 100


def floor_times(rounds: int, frontend_cpu: int, backend_cpu: int) -> list[float]:
    """Sorted floor round trips in µs (negative cpu: unpinned)."""
    return sorted(ns / 1000 for ns in floor.ping_pong(rounds, WARMUP_ROUNDS,
                                                      frontend_cpu, backend_cpu))


def round_trips(queue: CommandQueue, rounds: int) -> list[float]:
    """Sorted kick-to-call times in µs of `rounds` single SENSOR_READING_GETs."""
    request = reading_get(1)
    queue.load([request])
    times = []
    for i in range(WARMUP_ROUNDS + rounds):
        queue.post()
        elapsed = queue.doorbell.ring()
        while queue.completed() < 1:
            elapsed += queue.doorbell.wait()
        if i >= WARMUP_ROUNDS:
            times.append(elapsed / 1000)
        if i == 0:
            check_response(request, queue.responses()[0])
    check_response(request, queue.responses()[0])
    return sorted(times)


def batch_seconds(queue: CommandQueue, requests: Sequence[bytes], batches: int) -> float:
    """Seconds per request: `requests` posted at once, one kick, until all are used.

    Averaged over `batches` batches after one untimed batch; every response of the
    first and the last batch is checked.
    """
    queue.load(requests)
    total_ns = 0
    for batch in range(batches + 1):
        queue.post()
        elapsed = queue.doorbell.ring()
        while queue.completed() < len(requests):
            elapsed += queue.doorbell.wait()
        if batch:
            total_ns += elapsed
        if batch in (0, batches):
            for request, response in zip(requests, queue.responses(), strict=True):
                check_response(request, response)
    return total_ns / 1e9 / (batches * len(requests))


def serve_requests(queue: CommandQueue, count: int) -> None:
    """Have the backend answer `count` SENSOR_READING_GETs, in full-queue batches."""
    size = queue.size
    queue.load([reading_get(i) for i in range(size)])
    done = 0
    while done < count:
        queue.post()
        queue.doorbell.kick()
        while queue.completed() < size:
            queue.doorbell.wait()
        done += size


# --- the run --------------------------------------------------------------------------

class Run:
    """One benchmark run: the figures, filled in section by section."""

    def __init__(self, settings: Settings, out: Callable[[str], None]) -> None:
        self.settings = settings
        self.figures: dict[str, Figure] = {}
        self.floors: dict[str, list[float]] = {}  # Floor.key -> one value per repeat
        self.notes: list[str] = []
        #: The standard modules a start of the backend imports (measured once).
        self._start_stdlib: list[str] = []
        self.log = out
        self.load_before = os.getloadavg()
        if settings.backend_cmd == DEFAULT_BACKEND_CMD \
                and "_vhost_device_scmi_editable_loader" in sys.modules:
            self.notes.append("the daemon runs from an editable install: its start-up includes "
                              "meson-python's rebuild check; measure a `pip install .` for "
                              "the start-up figure")

    def ordered(self) -> list[Figure]:
        """The figures, section by section, each section in measuring order."""
        return sorted(self.figures.values(), key=lambda fig: SECTIONS.index(fig.section))

    def figure(self, section: str, name: str, unit: str, **kwargs) -> Figure:
        key = f"{section}: {name}"
        if key not in self.figures:
            self.figures[key] = Figure(section, name, unit, **kwargs)
        return self.figures[key]

    def record(self, section: str, name: str, unit: str, value: float,
               ref: Floor | None = SAME_CPU, repeat: int | None = None,
               **kwargs) -> None:
        """Add a sample, with the floor of its repeat (or the median floor)."""
        fig = self.figure(section, name, unit, floor=ref, **kwargs)
        floor_us = None
        if ref is not None and ref.key in self.floors:
            values = self.floors[ref.key]
            floor_us = values[repeat] if repeat is not None and repeat < len(values) \
                else statistics.median(values)
        fig.add(value, floor_us)

    # Each section below measures one thing; `run()` calls them in order.

    def measure_floor(self) -> None:
        first, second = cpu_pair()
        placements = {"same CPU": (first, first), "unpinned": (-1, -1)}
        if second is not None:
            placements["across CPUs"] = (first, second)
        for placement, (a, b) in placements.items():
            times = floor_times(self.settings.rounds, a, b)
            for stat, value in (("p50", percentile(times, 0.5)),
                                ("p99", percentile(times, 0.99))):
                ref = Floor(placement, stat)
                self.floors.setdefault(ref.key, []).append(value)
                self.record("floor", f"eventfd round trip {stat}, {placement}", "µs", value,
                            ref=ref, repeat=len(self.floors[ref.key]) - 1)

    def measure_round_trips(self, queue: CommandQueue, backend: Backend, repeat: int) -> None:
        first, second = cpu_pair()
        placements: dict[str, tuple[set[int] | None, set[int] | None]] = {
            "same CPU": ({first}, {first}), "unpinned": (None, None)}
        if second is not None:
            placements["across CPUs"] = ({first}, {second})
        for placement, (mine, theirs) in placements.items():
            with pinned(mine, backend, theirs):
                times = round_trips(queue, self.settings.rounds)
            for stat, value in (("p50", percentile(times, 0.5)),
                                ("p99", percentile(times, 0.99))):
                target = (1.5, "ratio") if placement == "same CPU" and stat == "p50" else None
                self.record("roundtrip", f"READING_GET {stat}, {placement}", "µs", value,
                            ref=Floor(placement, stat), repeat=repeat, target=target)

    def measure_batches(self, queue: CommandQueue, section: str, repeat: int,
                        messages: Sequence[tuple[str, Callable[[int], bytes]]]) -> None:
        for size in self.settings.batch_sizes:
            if size > queue.size:
                self.notes.append(f"batch of {size} skipped: the queue holds {queue.size}")
                continue
            for label, make in messages:
                seconds = batch_seconds(queue, [make(i) for i in range(size)],
                                        self.settings.batches)
                target = (1.5, "value") if (section, label) == ("batched", "READING_GET") \
                    else None
                self.record(section, f"{label} ×{size}, per request", "µs", seconds * 1e6,
                            repeat=repeat, target=target)
                self.record(section, f"{label} ×{size}, throughput", "req/s", 1 / seconds,
                            repeat=repeat, per_second=True)

    def measure_idle(self, backend: Backend) -> None:
        seconds = self.settings.idle_seconds
        cpu_before = cpu_seconds(backend.pid)
        run_before, switches_before = run_ns_and_wakeups(backend.pid)
        time.sleep(seconds)
        cpu_after = cpu_seconds(backend.pid)
        run_after, switches_after = run_ns_and_wakeups(backend.pid)
        self.record("idle", f"CPU time over {seconds:g} s, VMM connected", "s",
                    cpu_after - cpu_before, to_us=1e6, target=(0.0, "value"))
        self.record("idle", f"on-CPU time over {seconds:g} s (schedstat)", "µs",
                    (run_after - run_before) / 1000)
        self.record("idle", f"wakeups over {seconds:g} s", "", switches_after - switches_before,
                    ref=None, to_us=None)

    def measure_footprint(self, queue: CommandQueue, backend: Backend) -> None:
        count = self.settings.footprint_requests
        before = memory_kib(backend.pid)["VmRSS"]
        serve_requests(queue, count)
        after = memory_kib(backend.pid)
        self.record("footprint", "RSS connected, before the requests", "MiB", before / 1024,
                    ref=None, to_us=None)
        self.record("footprint", f"RSS after {count:,} requests", "MiB",
                    after["VmRSS"] / 1024, ref=None, to_us=None, target=(25.0, "value"))
        self.record("footprint", f"peak RSS after {count:,} requests", "MiB",
                    after["VmHWM"] / 1024, ref=None, to_us=None)

    def measure_vmms(self, work_dir: Path) -> None:
        """RSS of the backend(s) with N VMMs connected at once, each having read a sensor."""
        for count in self.settings.vmm_counts:
            self.log(f"footprint: {count} VMMs connected")
            with ExitStack() as stack:
                if self.settings.multi_cmd:
                    backends = [Backend(self.settings.multi_cmd, "fake", work_dir,
                                        f"vmms{count}", count)]
                else:
                    backends = [Backend(self.settings.backend_cmd, "fake", work_dir,
                                        f"vmms{count}-{i}") for i in range(count)]
                for backend in backends:
                    stack.callback(backend.stop)
                    backend.start()
                for backend in backends:
                    backend.wait_accepting()
                for backend in backends:
                    for path in backend.socket_paths:
                        stack.enter_context(connect(path))
                rss = sum(memory_kib(backend.pid)["VmRSS"] for backend in backends)
                for backend in backends:
                    backend.check_alive()
            vmms = "VMM" if count == 1 else "VMMs"
            self.record("footprint", f"RSS with {count} {vmms} connected", "MiB", rss / 1024,
                        ref=None, to_us=None,
                        target=(12.0, "value") if count == 1 else None)

    def measure_start(self, work_dir: Path, repeat: int) -> None:
        backend = Backend(self.settings.backend_cmd, "fake", work_dir, f"start{repeat}")
        backend.start()
        try:
            accepting, replied = backend.wait_accepting()
        finally:
            backend.stop()
        self.record("footprint", "exec to socket accepting", "ms", accepting * 1e3,
                    to_us=1e3, repeat=repeat, target=(25.0, "value"))
        self.record("footprint", "exec to first vhost-user reply", "ms", replied * 1e3,
                    to_us=1e3, repeat=repeat)
        interpreter = script_interpreter(backend.argv[0])
        if interpreter is None:
            return
        if repeat == 0:
            try:
                self._start_stdlib = start_stdlib_imports(interpreter, self.settings.backend_cmd,
                                                          work_dir)
                self.notes.append("the standard modules a start imports itself (without its "
                                  "site; each brings its own): "
                                  + ", ".join(self._start_stdlib))
            except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
                self.notes.append(f"the standard modules of a start not measured: {error}")
        # What the backend's interpreter costs before running any of the backend: with its
        # site (.pth files included) and without; and, without, importing the standard
        # modules the backend's start imports (what a start costs before any of its code).
        runs = [([], "pass", "python -c pass"), (["-S"], "pass", "python -S -c pass")]
        if self._start_stdlib:
            runs.append((["-S"], "import " + ", ".join(self._start_stdlib),
                         "python -S importing a start's standard modules"))
        for flags, code, what in runs:
            started = time.perf_counter()
            subprocess.run([*interpreter, *flags, "-c", code], check=True)
            seconds = time.perf_counter() - started
            self.record("footprint", f"interpreter start-up ({what})", "ms", seconds * 1e3,
                        ref=None, to_us=None, repeat=repeat)
            # Its RSS as it reports it (a fork's ru_maxrss would count the bench's own
            # pages from before the exec); reading a file imports nothing.
            status = subprocess.run(
                [*interpreter, *flags, "-c",
                 f"{code}\nimport sys; sys.stdout.write(open('/proc/self/status').read())"],
                check=True, capture_output=True, text=True).stdout
            rss_kib = int(status.split("VmRSS:")[1].split()[0])
            self.record("footprint", f"interpreter RSS ({what})", "MiB", rss_kib / 1024,
                        ref=None, to_us=None, repeat=repeat)

    def measure_neighbour(self, work_dir: Path) -> None:
        """A fast sensor's round trips on one VM, quiet, then while another VM of the same
        daemon reads a device that takes `slow_ms` per read (an LD_PRELOAD library makes
        the daemon's pread of that file sleep)."""
        settings = self.settings
        try:
            library = slowread.build(work_dir)
        except (slowread.NoCompiler, subprocess.CalledProcessError, OSError) as error:
            self.notes.append(f"neighbour not measured: {error}")
            return
        value_file = slowread.make_hwmon(work_dir / "slow-hwmon")
        env = dict(os.environ, LD_PRELOAD=str(library), SLOWREAD_PATH=str(value_file),
                   SLOWREAD_MS=str(settings.slow_ms), SLOWREAD_SKIP="1")
        command = (f"{_own_daemon()} -s {{socket}} -c 2 -d fake "
                   f"-d hwmon,path={value_file.parent},name=slow")
        backend = Backend(command, "", work_dir, "neighbour", env=env)
        sockets = [f"{backend.socket_path}{index}" for index in range(2)]
        backend.start()
        try:
            backend.socket_path = sockets[0]
            backend.wait_accepting()
            with connect(sockets[0]) as queue, connect_vm(sockets[1]) as (other, _eventq):
                for repeat in range(settings.repeats):
                    self.log(f"neighbour repeat {repeat + 1}/{settings.repeats}")
                    quiet = round_trips(queue, settings.rounds)
                    with Hammer(other, 1) as hammer:
                        loaded = round_trips(queue, settings.rounds)
                    if hammer.failures or not hammer.reads:
                        raise BenchError(f"neighbour: {hammer.failures} failed reads of the "
                                         f"slow device, {hammer.reads} good")
                    for stat, fraction in (("p50", 0.5), ("p99", 0.99)):
                        q, busy = percentile(quiet, fraction), percentile(loaded, fraction)
                        ref = Floor("unpinned", stat)
                        self.record("neighbour", f"fast sensor {stat}, neighbour quiet", "µs",
                                    q, ref=ref, repeat=repeat)
                        self.record("neighbour", f"fast sensor {stat}, neighbour on a "
                                    f"{settings.slow_ms} ms device", "µs", busy, ref=ref,
                                    repeat=repeat)
                        self.record("neighbour", f"{stat} loaded / quiet", "×", busy / q,
                                    ref=None, to_us=None, target=(2.0, "value"))
            backend.check_alive()
        finally:
            backend.stop()

    def measure_stream(self, work_dir: Path) -> None:
        """Daemon CPU and delivered rate of SENSOR_UPDATE at 1 kHz, on 1 and 10 sensors."""
        settings = self.settings
        command = f"{_own_daemon()} -s {{socket}} " + " ".join(
            f"-d fake,name=f{index}" for index in range(10))
        with running(command, "", work_dir, "stream") as backend, \
                connect_vm(backend.socket_path) as (cmdq, eventq):
            eventq.post_buffers(eventq.size // 2, 136)
            for repeat in range(settings.repeats):
                self.log(f"stream repeat {repeat + 1}/{settings.repeats}")
                for sensors, target in (([0], 5.0), (list(range(10)), 50.0)):
                    what = "1 sensor" if len(sensors) == 1 else f"{len(sensors)} sensors"
                    cpu, rate = stream(cmdq, eventq, sensors, settings.stream_seconds,
                                       backend.pid)
                    self.record("stream", f"{what} at 1 kHz: daemon CPU", "%", cpu * 100,
                                ref=None, to_us=None, target=(target, "value"))
                    self.record("stream", f"{what} at 1 kHz: delivered", "Hz", rate,
                                ref=None, to_us=None)
            backend.check_alive()

    def run(self) -> None:
        settings = self.settings
        wanted = set(settings.sections)
        work_dir = Path(tempfile.mkdtemp(prefix="vhost-scmi-bench-", dir=settings.work_dir))
        try:
            self._run(wanted, work_dir)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)

    def _run(self, wanted: set[str], work_dir: Path) -> None:
        settings = self.settings
        template = settings.backend_cmd
        if not wanted & {"roundtrip", "batched", "idle", "footprint"}:
            for repeat in range(settings.repeats):
                self.log(f"floor repeat {repeat + 1}/{settings.repeats}")
                self.measure_floor()
        else:
            with running(template, "fake", work_dir, "fake") as backend, \
                    connect(backend.socket_path) as queue:
                for repeat in range(settings.repeats):
                    self.log(f"repeat {repeat + 1}/{settings.repeats}")
                    self.measure_floor()
                    if "roundtrip" in wanted:
                        self.measure_round_trips(queue, backend, repeat)
                    if "batched" in wanted:
                        self.measure_batches(queue, "batched", repeat, (
                            ("READING_GET", reading_get), ("DESCRIPTION_GET", description_get)))
                    if "footprint" in wanted:
                        self.measure_start(work_dir, repeat)
                if "idle" in wanted:
                    self.log(f"idle {settings.idle_seconds:g} s")
                    self.measure_idle(backend)
                if "footprint" in wanted:
                    self.log(f"footprint: {settings.footprint_requests:,} requests")
                    self.measure_footprint(queue, backend)
                backend.check_alive()
            if "footprint" in wanted:
                self.measure_vmms(work_dir)
        own = template == DEFAULT_BACKEND_CMD
        for section, measure in (("neighbour", self.measure_neighbour),
                                 ("stream", self.measure_stream)):
            if section not in wanted:
                continue
            if not own:
                self.notes.append(f"{section} skipped: it measures this daemon (several VMs "
                                  f"on one process), not --backend-cmd")
                continue
            measure(work_dir)
        device_sections = wanted & {"iio", "domains"}
        if device_sections and "{device}" not in template:
            self.notes.append(f"{', '.join(sorted(device_sections))} skipped: the backend "
                              f"command has no {{device}}")
            return
        if "domains" in wanted:
            self._run_domains(work_dir)
        if "iio" in wanted:
            device = f"iio,path={make_iio_tree(work_dir)},channel=in_accel"
            try:
                with running(template, device, work_dir, "iio") as backend, \
                        connect(backend.socket_path) as queue:
                    for repeat in range(settings.repeats):
                        self.log(f"iio repeat {repeat + 1}/{settings.repeats}")
                        self.measure_batches(queue, "iio", repeat,
                                             (("READING_GET", reading_get),))
                    backend.check_alive()
            except (RuntimeError, OSError) as error:
                # A backend without the iio device kind still gets the rest measured.
                self.notes.append(f"iio not measured: {str(error).strip().splitlines()[-1]}")

    def _run_domains(self, work_dir: Path) -> None:
        settings = self.settings
        backends = (
            (f"cpufreq,policy={make_cpufreq_tree(work_dir)},control=level", "cpufreq",
             "PERF_LEVEL_SET", perf_level_set),
            (f"runtime-pm,device={make_device_tree(work_dir)}", "runtime-pm",
             "POWER_STATE_GET", power_state_get),
        )
        for device, tag, label, make in backends:
            try:
                with running(settings.backend_cmd, device, work_dir, tag) as backend, \
                        connect(backend.socket_path, make(0)) as queue:
                    for repeat in range(settings.repeats):
                        self.log(f"domains ({tag}) repeat {repeat + 1}/{settings.repeats}")
                        self.measure_batches(queue, "domains", repeat, ((label, make),))
                    backend.check_alive()
            except (RuntimeError, OSError) as error:
                # A backend without these device kinds still gets the rest measured.
                self.notes.append(f"{label} not measured: "
                                  f"{str(error).strip().splitlines()[-1]}")

# --- output ---------------------------------------------------------------------------

def machine() -> dict[str, object]:
    """What the run ran on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {"cpu": model or platform.machine(), "cpus": len(os.sched_getaffinity(0)),
            "kernel": platform.release(), "python": platform.python_version(),
            "arch": platform.machine(), "load_average": os.getloadavg()}


def format_value(value: float, unit: str) -> str:
    if unit == "req/s":
        return f"{value:,.0f}"
    if unit in ("", "wakeups"):
        return f"{value:.0f}"
    if unit == "s":
        return f"{value:.2f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def format_ratio(ratio: float | None) -> str:
    if ratio is None:
        return ""
    return f"{ratio:.2f}" if ratio < 100 else f"{ratio:,.0f}"


def table(run: Run, command: str) -> str:
    """The human-readable report."""
    info = machine()
    settings = run.settings
    lines = [
        f"backend: {settings.backend_cmd}",
        f"machine: {info['cpu']}, {info['cpus']} CPUs, Linux {info['kernel']}, "
        f"Python {info['python']}; load average {run.load_before[0]:.2f} before, "
        f"{info['load_average'][0]:.2f} after (other work skews the figures)",
        f"command: {command}",
        f"repeats: {settings.repeats} (median, ± half the range); rounds {settings.rounds}, "
        f"batches {settings.batches}",
        "× floor: the figure in µs (per request for throughput) over the eventfd round "
        "trip of the same placement",
        "",
    ]
    rows = [("section", "figure", "median", "unit", "spread", "× floor", "target")]
    for fig in run.ordered():
        ratio = fig.ratio
        rows.append((fig.section, fig.name, format_value(fig.median, fig.unit), fig.unit,
                     f"±{fig.spread * 100:.0f}%" if len(fig.samples) > 1 else "",
                     format_ratio(ratio), fig.target_text()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {2, 4, 5}
    for index, row in enumerate(rows):
        cells = [cell.rjust(width) if i in right else cell.ljust(width)
                 for i, (cell, width) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    lines.extend(f"note: {note}" for note in run.notes)
    return "\n".join(lines) + "\n"


def report_json(run: Run, command: str) -> str:
    return json.dumps({
        "machine": machine(), "load_average_before": run.load_before, "command": command,
        "settings": asdict(run.settings),
        "figures": [fig.as_json() for fig in run.ordered()], "notes": run.notes,
    }, indent=2) + "\n"


# --- command line ---------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The `python -m vhost_scmi.bench` command line."""
    defaults, quick = Settings(), Settings.quick()
    parser = argparse.ArgumentParser(
        prog="python -m vhost_scmi.bench",
        description="Benchmark a vhost-user SCMI backend against the machine's floor "
                    "(an eventfd round trip between two processes, measured in the same run).",
    )
    parser.add_argument(
        "--backend-cmd", metavar="TEMPLATE", default=DEFAULT_BACKEND_CMD,
        help="command starting the backend; {socket} is replaced by the socket path and "
             "{device} by the device spec (fake, or iio,path=...) "
             f"(default: {DEFAULT_BACKEND_CMD!r})")
    parser.add_argument(
        "--backend-multi-cmd", metavar="TEMPLATE",
        help="command starting one backend that serves {count} sockets, named {socket}0 "
             "to {socket}<count-1>, for the RSS with N VMMs figures; '' starts one "
             "--backend-cmd per VMM (default: "
             f"{DEFAULT_MULTI_CMD!r} with the default --backend-cmd, else '')")
    parser.add_argument("--vmm-counts", metavar="N,N",
                        help="VMMs connected at once for the RSS figures (default "
                             f"{','.join(map(str, defaults.vmm_counts))})")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--quick", action="store_true",
                        help=f"small counts (repeats {quick.repeats}, rounds {quick.rounds}, "
                             f"batches {quick.batches}, footprint requests "
                             f"{quick.footprint_requests:,}, idle {quick.idle_seconds:g} s)")
    parser.add_argument("--only", metavar="SECTIONS",
                        help=f"comma-separated sections to run, of {','.join(SECTIONS)} "
                             "(the floor is always measured)")
    parser.add_argument("--repeats", type=int, help=f"repeats (default {defaults.repeats})")
    parser.add_argument("--rounds", type=int,
                        help=f"round trips per repeat (default {defaults.rounds})")
    parser.add_argument("--batches", type=int,
                        help=f"batches per size and repeat (default {defaults.batches})")
    parser.add_argument("--batch-sizes", metavar="N,N",
                        help="requests per batch (default "
                             f"{','.join(map(str, defaults.batch_sizes))})")
    parser.add_argument("--footprint-requests", type=int, metavar="N",
                        help=f"requests before RSS is read (default "
                             f"{defaults.footprint_requests:,})")
    parser.add_argument("--idle-seconds", type=float,
                        help=f"idle time measured (default {defaults.idle_seconds:g})")
    parser.add_argument("--stream-seconds", type=float,
                        help=f"seconds each stream is measured (default "
                             f"{defaults.stream_seconds:g})")
    parser.add_argument("--work-dir", metavar="DIR",
                        help=f"where sockets and the iio tree go (default {defaults.work_dir}, "
                             "a tmpfs)")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    settings = Settings.quick() if args.quick else Settings()
    settings.backend_cmd = args.backend_cmd
    if args.backend_multi_cmd is not None:
        settings.multi_cmd = args.backend_multi_cmd
    elif args.backend_cmd != DEFAULT_BACKEND_CMD:
        settings.multi_cmd = ""  # another backend: one process per VMM
    if args.vmm_counts:
        settings.vmm_counts = tuple(int(count) for count in args.vmm_counts.split(","))
    for name in ("repeats", "rounds", "batches", "footprint_requests", "idle_seconds",
                 "stream_seconds", "work_dir"):
        value = getattr(args, name)
        if value is not None:
            setattr(settings, name, value)
    if args.batch_sizes:
        settings.batch_sizes = tuple(int(size) for size in args.batch_sizes.split(","))
    if args.only:
        sections = tuple(name.strip() for name in args.only.split(",") if name.strip())
        unknown = set(sections) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown sections: {', '.join(sorted(unknown))}")
        settings.sections = sections
    if settings.repeats < 1 or settings.rounds < 1 or settings.batches < 1 \
            or settings.footprint_requests < 0 or settings.idle_seconds < 0 \
            or any(size < 1 for size in settings.batch_sizes) \
            or any(count < 1 for count in settings.vmm_counts):
        raise ValueError("counts must be positive")
    return settings


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table (or JSON) on stdout, progress on stderr."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from(args)
    except ValueError as error:
        parser.error(str(error))
    command = shlex.join(["python", "-m", "vhost_scmi.bench",
                          *(sys.argv[1:] if argv is None else argv)])
    run = Run(settings, lambda text: print(text, file=sys.stderr, flush=True))
    try:
        run.run()
    except (BenchError, RuntimeError, TimeoutError, OSError) as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(report_json(run, command) if args.json else table(run, command))
    return 0
