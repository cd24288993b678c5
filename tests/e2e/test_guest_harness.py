# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The guest harness itself, without the daemon: when these fail, the other e2e tests'
failures say nothing about the daemon."""

from __future__ import annotations

from .initramfs import CpioWriter

SCRIPT = r"""
echo "kernel=$(uname -r)"
echo "machine=$(uname -m)"
[ -d /sys/kernel/debug/scmi ] && echo "debugfs=mounted"
grep -q 'arm,scmi-virtio' /proc/device-tree/firmware/scmi/compatible && echo "scmi_node=present"
echo "words=one two"
exit 7
"""


def test_guest_boots_runs_script_and_reports(e2e):
    # No vhost-user device at all: only the kernel, initramfs, device tree and console.
    result = e2e.run_guest(SCRIPT, None)

    values = result.values()
    assert result.rc == 7, result.report()
    assert values.get("machine") == "aarch64", result.report()
    assert values.get("kernel", "").startswith("6."), result.report()
    assert values.get("scmi_node") == "present", result.report()
    assert values.get("debugfs") == "mounted", result.report()
    assert values.get("words") == "one two", result.report()
    assert result.dmesg_matching(r"Run /init as init process"), result.report()
    # Without the device the SCMI transport never comes up.
    assert not result.dmesg_matching(r"Using scmi_virtio_transport"), result.report()


def test_cpio_writer_layout():
    cpio = CpioWriter()
    cpio.directory("bin")
    cpio.file("bin/x", b"abc", mode=0o755)
    archive = cpio.finish()
    # newc: 110-byte headers, names and data padded to 4 bytes, a TRAILER!!! entry.
    assert archive.startswith(b"070701")
    assert len(archive) % 4 == 0
    second = archive.index(b"070701", 6)
    assert archive[6 + 8:6 + 16] == b"000041ED"  # mode of "bin": directory 0755
    assert archive[second + 6 + 8:second + 6 + 16] == b"000081ED"  # regular file 0755
    assert archive[second + 6 + 48:second + 6 + 56] == b"00000003"  # file size
    assert b"bin/x\0" in archive and b"abc" in archive
    assert archive.rstrip(b"\0").endswith(b"TRAILER!!!")
