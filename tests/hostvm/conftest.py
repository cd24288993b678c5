# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The host-VM rig: real kernel devices under the installed daemon.

One x86_64 Linux VM (QEMU, TCG) boots with this machine's own `/` as its read-only root
over 9p, so the daemon it runs is the one installed here. Its init (tests/hostvm/init)
runs tests/hostvm/inside.py, which creates real devices (IIO dummy, lm75 and mma7660 on
i2c-stub, gpio-sim; PCI devices come from QEMU), serves them with the daemon, queries it
through the project's vhost-user frontend and writes what it saw to a writable 9p share.
With VHOST_SCMI_HOSTVM_NESTED=1 it then boots the arm64 guest of tests/e2e inside (TCG in
TCG) against a daemon serving the mma7660 and the lm75 (test_nested_guest.py). That guest
costs one to three minutes of one CPU, so it is collected only then; tools/run-tests (the
README's test command, which CI runs) sets it. A boot costs 10 s of TCG before any of
this, so the whole session shares one (`hostvm` fixture) and the tests assert on its
results.

Kernel and module: $VHOST_SCMI_HOSTVM_DIR, else ../shared/hostvm beside the clone, else
built by kernel/hostvm/build-kernel into the e2e cache (about 6 minutes).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e.guest import GuestSetupError, prepare_guest
from prerequisites import require

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
#: Seconds from QEMU's start to the VM's power-off: about 20 s on an idle machine, 3 more
#: minutes with the nested guest; CI machines under load can be several times slower.
VM_TIMEOUT = 720.0
#: Whether to boot the nested arm64 guest as well (and collect its tests).
NESTED = os.environ.get("VHOST_SCMI_HOSTVM_NESTED") == "1"
collect_ignore = [] if NESTED else ["test_nested_guest.py"]
INSTALL_HINT = "run tools/install-test-deps"


@dataclass
class HostVmRun:
    """What one boot of the host VM left behind."""

    results: dict[str, Any]
    exit_status: str
    seconds: float
    outdir: Path
    console: Path

    def report(self) -> str:
        parts = [f"VM run in {self.outdir} ({self.seconds:.1f} s), inside.py exit "
                 f"{self.exit_status or 'missing'}"]
        for name in ("inside.log", "daemon.log", "nested-daemon.log"):
            path = self.outdir / name
            if path.exists():
                parts.append(f"--- {name} ---\n{path.read_text(errors='replace')[-4000:]}")
        if self.console.exists():
            parts.append(f"--- console ---\n{self.console.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)


def find_qemu() -> str:
    qemu = shutil.which("qemu-system-x86_64")
    # Skipped in a packager's chroot, a failure under tools/run-tests (which installs it).
    require(qemu, f"qemu-system-x86_64 is not installed ({INSTALL_HINT}, which installs "
                  f"Debian's qemu-system-x86)")
    assert qemu is not None
    return qemu


def config_options(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines()
            if line.startswith("CONFIG_")}


def check_prebuilt_config(fragment: Path) -> None:
    """A prebuilt kernel's fragment (kept beside it) must be kernel/hostvm/hostvm.config's."""
    ours = REPO / "kernel" / "hostvm" / "hostvm.config"
    if fragment.is_file() and config_options(fragment) != config_options(ours):
        pytest.fail(f"the prebuilt kernel's {fragment} differs from {ours}: rebuild it with "
                    f"kernel/hostvm/build-kernel, or bring the two in step", pytrace=False)


def find_kernel() -> tuple[Path, Path]:
    """Return (bzImage, i2c-stub.ko) of kernel/hostvm/hostvm.config."""
    env = os.environ.get("VHOST_SCMI_HOSTVM_DIR")
    candidates = [Path(env)] if env else [REPO.parent / "shared" / "hostvm"]
    for directory in candidates:
        kernel, module = directory / "bzImage", directory / "i2c-stub.ko"
        if kernel.is_file() and module.is_file():
            check_prebuilt_config(directory / "hostvm.config")
            return kernel, module
        if env:
            pytest.fail(f"VHOST_SCMI_HOSTVM_DIR={env} has no bzImage and i2c-stub.ko",
                        pytrace=False)
    fragment = (REPO / "kernel" / "hostvm" / "hostvm.config").read_bytes()
    cache = Path(os.environ.get("VHOST_SCMI_E2E_CACHE") or REPO / "tests" / "e2e" / ".cache")
    build = cache / f"hostvm-kernel-{hashlib.sha256(fragment).hexdigest()[:12]}"
    kernel, module = build / "bzImage", build / "i2c-stub.ko"
    if not (kernel.is_file() and module.is_file()):
        done = subprocess.run([str(REPO / "kernel" / "hostvm" / "build-kernel"), str(build)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"building the host-VM kernel failed:\n{done.stdout[-3000:]}"
                        f"{done.stderr[-3000:]}", pytrace=False)
    return kernel, module


def qemu_command(qemu: str, kernel: Path, module: Path, outdir: Path,
                 console: Path) -> list[str]:
    """The VM: q35 under TCG (the CI machines' own paravirtual KVM cannot run a normal
    kernel), 9p root and results share, a PCIe root port with a device behind it (so that
    it has a PCI reset), the serial console to a file."""
    for path in (sys.executable, HERE / "init", HERE / "inside.py", module):
        if any(c.isspace() for c in str(path)):
            pytest.fail(f"{path}: the kernel command line cannot carry a path with spaces",
                        pytrace=False)
    append = " ".join([
        "console=ttyS0", "panic=-1", "quiet",
        "root=hostroot", "rootfstype=9p", "ro",
        "rootflags=trans=virtio,version=9p2000.L,msize=512000,cache=loose",
        f"init={HERE / 'init'}",
        # Words the kernel does not know become init's environment.
        f"HOSTVM_PYTHON={sys.executable}", f"HOSTVM_SCRIPT={HERE / 'inside.py'}",
        f"HOSTVM_I2C_STUB={module}",
    ])
    return [
        qemu, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        # qemu64 rather than max: without AVX, glibc and the nested QEMU's code generator
        # use instructions TCG emulates faster (the whole run took a fifth less).
        "-accel", "tcg,thread=multi", "-cpu", "qemu64", "-M", "q35", "-smp", "2", "-m", "2G",
        "-kernel", str(kernel), "-append", append,
        "-serial", f"file:{console}",
        "-fsdev", "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=root,mount_tag=hostroot",
        "-fsdev", f"local,id=out,path={outdir},security_model=none",
        "-device", "virtio-9p-pci,fsdev=out,mount_tag=out",
        "-device", "pcie-root-port,id=rp1,chassis=1,slot=1",
        "-device", "virtio-rng-pci,bus=rp1",
    ]


def boot(outdir: Path) -> HostVmRun:
    if platform.machine() != "x86_64":
        pytest.skip("the host VM runs this machine's own userland, which must be x86_64")
    qemu = find_qemu()
    kernel, module = find_kernel()
    console = outdir / "console.log"
    share = outdir / "share"
    share.mkdir()
    plan: dict[str, Any] = {"tests_dir": str(REPO / "tests")}
    if NESTED:
        # What inside.py needs to boot the nested guest: pieces prepared (and cached) here.
        try:
            guest = prepare_guest()
        except GuestSetupError as error:
            pytest.fail(f"the nested arm64 guest is unavailable: {error}", pytrace=False)
        plan["guest"] = {"qemu": guest.qemu, "qemu_version": list(guest.qemu_version),
                         "kernel": str(guest.kernel), "dtb": str(guest.dtb),
                         "busybox": str(guest.busybox), "cache_dir": str(guest.cache_dir)}
    (share / "plan.json").write_text(json.dumps(plan))
    argv = qemu_command(qemu, kernel, module, share, console)
    started = time.monotonic()
    with open(outdir / "qemu.log", "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            proc.wait(VM_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    seconds = time.monotonic() - started
    results_file = share / "results.json"
    status_file = share / "exit-status"
    run = HostVmRun(json.loads(results_file.read_text()) if results_file.exists() else {},
                    status_file.read_text().strip() if status_file.exists() else "",
                    seconds, share, console)
    if not run.results:
        pytest.fail(f"the host VM wrote no results (QEMU exit {proc.returncode}; "
                    f"{(outdir / 'qemu.log').read_text(errors='replace')[-2000:]})\n"
                    f"{run.report()}", pytrace=False)
    return run


@pytest.fixture(scope="session")
def hostvm(tmp_path_factory: pytest.TempPathFactory) -> HostVmRun:
    """One boot of the host VM for the whole session; its results."""
    return boot(tmp_path_factory.mktemp("hostvm"))
