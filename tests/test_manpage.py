# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The man page is generated from the parser, and installed with the package."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

from prerequisites import require

ROOT = Path(__file__).resolve().parent.parent


def test_committed_man_page_matches_the_parser() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_manpage.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_man_page_is_installed() -> None:
    installed = Path(sysconfig.get_path("data")) / "share" / "man" / "man1" / "vhost-device-scmi.1"
    require(installed.exists(), f"the package is not installed under {sys.prefix} "
            f"(no {installed})")
    assert installed.read_text() == (ROOT / "man" / "vhost-device-scmi.1").read_text()


def test_man_page_documents_options_devices_and_qemu() -> None:
    page = (ROOT / "man" / "vhost-device-scmi.1").read_text()
    for needle in ("socket\\-path", "DEVICE KINDS", "vhost\\-user\\-scmi\\-pci", "LICENSE",
                   "fake"):
        assert needle in page, needle


def test_readme_shows_the_current_help_devices_output() -> None:
    import shutil

    script = shutil.which("vhost-device-scmi")
    assert script
    output = subprocess.run([script, "--help-devices"], capture_output=True, text=True,
                            timeout=30).stdout
    assert f"```\n{output}```" in (ROOT / "README.md").read_text()
