# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The man page is generated from the parser, and installed with the package."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
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
    script = shutil.which("vhost-device-scmi")
    assert script
    output = subprocess.run([script, "--help-devices"], capture_output=True, text=True,
                            timeout=30).stdout
    # The README shows the built-in kinds: leave out those of installed plugins (the
    # test suite installs contrib/example-plugin).
    blocks = output.split("\n\n")
    built_in = "\n\n".join(block for block in blocks
                            if not block.splitlines()[0].endswith(" (plugin)"))
    assert f"```\n{built_in}```" in (ROOT / "README.md").read_text()


def console_scripts() -> dict[str, str]:
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]["scripts"]


def test_every_console_script_has_a_page_that_meson_installs() -> None:
    meson = (ROOT / "meson.build").read_text()
    installed = dict(re.findall(r"^\s*'([\w-]+)': '([\w.]+)',$",
                                meson.split("console_scripts = {", 1)[1].split("}", 1)[0],
                                re.MULTILINE))
    assert installed == {name: target.partition(":")[0]
                         for name, target in console_scripts().items()}
    for name in console_scripts():
        assert (ROOT / "man" / f"{name}.1").is_file(), name
        assert (ROOT / "man" / f"{name}.include").is_file(), name


def sections(page: str) -> dict[str, str]:
    """Section heading -> its roff text."""
    parts = re.split(r"^\.SH (.+)$", page, flags=re.MULTILINE)
    return {heading.strip('"'): body for heading, body in zip(parts[1::2], parts[2::2],
                                                              strict=True)}


@pytest.mark.parametrize("name", sorted(console_scripts()))
def test_page_has_the_sections_a_distribution_ships(name: str) -> None:
    found = sections((ROOT / "man" / f"{name}.1").read_text())
    assert list(found)[:4] == ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS"]
    for heading in ("EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"):
        assert heading in found, heading
    assert "COMMENTS" not in found
    for status in ("0", "1", "2"):
        assert f".B {status}\n" in found["EXIT STATUS"]
    for other in console_scripts():
        if other != name:
            assert f".BR {other.replace('-', chr(92) + '-')} (1)" in found["SEE ALSO"]


def test_daemon_page_documents_environment_files_and_references() -> None:
    found = sections((ROOT / "man" / "vhost-device-scmi.1").read_text())
    for variable in ("RUST_LOG", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET",
                     "JOURNAL_STREAM"):
        assert variable in found["ENVIRONMENT"], variable
    for path in ("50\\-vhost\\-device\\-scmi.json", "vhost\\-device\\-scmi@.service",
                 "vhost\\-device\\-scmi@.socket", "/etc/vhost\\-device\\-scmi/NAME.conf"):
        assert path in found["FILES"], path
    for reference in (".BR qemu\\-system\\-aarch64 (1)", ".BR systemd.socket (5)"):
        assert reference in found["SEE ALSO"], reference


def test_help_epilog_and_page_name_the_same_environment() -> None:
    from vhost_scmi import cli

    epilog = cli.build_parser().epilog or ""
    named = set(re.findall(r"\b[A-Z][A-Z_]{4,}\b", epilog.split("environment:")[1]
                           .split("exit status:")[0]))
    page = sections((ROOT / "man" / "vhost-device-scmi.1").read_text())["ENVIRONMENT"]
    assert named and all(variable in page for variable in named), named


@pytest.mark.parametrize("name", sorted(console_scripts()))
def test_page_is_mandoc_lint_clean(name: str) -> None:
    mandoc = shutil.which("mandoc")
    require(mandoc, "mandoc is not installed (the man page linter)")
    result = subprocess.run([mandoc, "-T", "lint", "-W", "warning",
                             str(ROOT / "man" / f"{name}.1")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout and not result.stderr, \
        result.stdout + result.stderr


def test_ctl_page_documents_its_commands_and_the_daemon_page_the_config_file() -> None:
    ctl_page = sections((ROOT / "man" / "vhost-device-scmi-ctl.1").read_text())
    text = "".join(ctl_page.values())
    for needle in ("control\\-socket", "status", "shutdown", "reboot", "\\-\\-forceful",
                   "\\-\\-timeout", "\\-\\-agent", "\\-\\-json"):
        assert needle in text, needle
    daemon = sections((ROOT / "man" / "vhost-device-scmi.1").read_text())
    assert "[[agent]]" in daemon["CONFIGURATION FILE"]
    assert "vhost\\-device\\-scmi\\-config@.service" in daemon["FILES"]
