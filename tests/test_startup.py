# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""What a start imports: a daemon serving one fake sensor to a VMM imports only what its
path needs (no other protocol, no dataclasses/inspect, no shutil and its compression
modules), so start-up and memory stay near the interpreter's own. The figures themselves
are the bench's (`--only footprint`), not a test's."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from conftest import Daemon
from scmi_helpers import BASE, header

#: Runs the console script's entry point and, at exit, writes the modules imported.
PROGRAM = """\
import atexit, sys
out = sys.argv.pop()
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
from vhost_scmi.cli import main
sys.exit(main())
"""

#: Standard modules the serving path has no use for, each costing milliseconds.
NOT_NEEDED = ("dataclasses", "inspect", "ast", "dis", "shutil", "bz2", "lzma", "zipfile",
              "tempfile", "decimal", "fractions", "importlib.metadata", "pathlib", "tomllib")


def imported_by_the_interpreter() -> set[str]:
    """The modules this interpreter imports to run nothing (its site's .pth files may
    import some of NOT_NEEDED: they are not the daemon's)."""
    done = subprocess.run([sys.executable, "-P", "-c", "import sys; print(*sys.modules)"],
                          capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def imported_by_a_served_daemon(tmp: Path, *args: str) -> set[str]:
    """The modules a daemon started with `args` imported of its own (beyond what the
    interpreter imports to run nothing), having served one VMM until stopped."""
    socket_path, modules = tmp / "s.sock", tmp / "modules.txt"
    argv = [sys.executable, "-P", "-c", PROGRAM, "-s", str(socket_path), *args, str(modules)]
    daemon = Daemon(argv, socket_path, tmp / "daemon.log")
    try:
        daemon.wait_accepting()
        with daemon.session() as vm:
            reply = vm.cmdq.transact(header(BASE, 0).to_bytes(4, "little"), 64)
            assert int.from_bytes(reply[4:8], "little") == 0  # PROTOCOL_VERSION: SUCCESS
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(30) == 0, daemon.log()
    finally:
        daemon.kill()
    return set(modules.read_text().split()) - imported_by_the_interpreter()


def test_a_fake_sensor_daemon_imports_only_its_path(short_tmp: Path) -> None:
    imported = imported_by_a_served_daemon(short_tmp, "-d", "fake")
    assert {"vhost_scmi.scmi.sensor", "vhost_scmi.devices.fake",
            "vhost_scmi.vhost.connection"} <= imported
    for protocol in ("performance", "power", "clock", "reset", "voltage", "powercap",
                     "domain"):
        assert f"vhost_scmi.scmi.{protocol}" not in imported
    assert not imported & {"vhost_scmi.control", "vhost_scmi.platform.config",
                           "vhost_scmi.platform.power", "vhost_scmi.devices.iio"}
    assert not imported & set(NOT_NEEDED), sorted(imported & set(NOT_NEEDED))


def test_a_domain_imports_its_protocol(short_tmp: Path) -> None:
    imported = imported_by_a_served_daemon(short_tmp, "-d", "fake-clock,rates=100")
    assert {"vhost_scmi.scmi.clock", "vhost_scmi.scmi.domain"} <= imported
    assert "vhost_scmi.scmi.sensor" not in imported
