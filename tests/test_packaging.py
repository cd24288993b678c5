# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""What a packager meets: the tree, apt sources, and the install layouts.

- No file in the tree names a package archive or registry host (mirrors must work).
- tools/install-test-deps takes the archive URI from the machine's apt sources.
- A plain `meson install` puts the man page, the descriptor, the console script and
  (with -Dsystemd_units) the units where man(1), QEMU's tools and systemd look.
- A wheel carries no descriptor naming the build machine; `--write-descriptor` writes
  one for the installed program.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from prerequisites import require

from vhost_scmi import __version__, backend_info

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = shutil.which("vhost-device-scmi")

# Registry and archive hosts, as (domain, labels that may precede it): spelt backwards
# here so that this file does not name them either.
_REGISTRY_DOMAINS = {
    "gro.naibed": r"(?:deb|ftp|ftp\.[a-z]{2}|security|snapshot|archive|httpredir|incoming)",
    "moc.utnubu": r"(?:[a-z]{2}\.)?(?:archive|security|ports)",
    "gro.ipyp": r"(?:upload|test|www)?",
    "gro.detsohnohtyp": r"(?:files)?",
    "gro.sjmpn": r"(?:registry)",
    "oi.setarc": r"(?:static|index)?",
    "moc.ecruosedon": r"(?:deb|rpm)",
    "gro.gnalog": r"(?:proxy|sum)",
}
REGISTRY_HOST = re.compile("|".join(
    rf"\b{labels}\.?{re.escape(domain[::-1])}\b" if labels.endswith("?")
    else rf"\b{labels}\.{re.escape(domain[::-1])}\b"
    for domain, labels in _REGISTRY_DOMAINS.items()), re.IGNORECASE)


def tracked_files() -> list[Path]:
    require((ROOT / ".git").exists() and shutil.which("git"),
            f"{ROOT} is not a git checkout (git ls-files lists the tracked files)")
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True, timeout=60).stdout.split(b"\0")
    return [ROOT / os.fsdecode(name) for name in names if name]


def test_the_host_pattern_finds_registry_hosts() -> None:
    for host in ("bed.naibed.gro", "ytiruces.naibed.gro", "ipyp.gro", "selif.detsohnohtyp.gro",
                 "tohspans.naibed.gro"):
        spelt = ".".join(label[::-1] for label in host.split("."))
        assert REGISTRY_HOST.search(f"URIs: http://{spelt}/x"), spelt
    assert not REGISTRY_HOST.search("http://mirror.example/debian bookworm main")


def test_no_registry_host_in_a_tracked_file() -> None:
    found = []
    for path in tracked_files():
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if REGISTRY_HOST.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "registry hosts named in the tree:\n" + "\n".join(found)


# --- tools/install-test-deps ------------------------------------------------------------

def archive_uri(tmp_path: Path, suite: str, one_line: str = "", deb822: str = "") -> str:
    require(shutil.which("apt-get"), "apt-get is not installed (a Debian machine is needed)")
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (tmp_path / "lists" / "partial").mkdir(parents=True)
    (tmp_path / "sources.list").write_text(one_line)
    if deb822:
        (parts / "local.sources").write_text(deb822)
    config = tmp_path / "apt.conf"
    config.write_text(f'Dir::Etc::sourcelist "{tmp_path}/sources.list";\n'
                      f'Dir::Etc::sourceparts "{parts}";\n'
                      f'Dir::State::Lists "{tmp_path}/lists";\n')
    result = subprocess.run([str(ROOT / "tools" / "install-test-deps"),
                             f"--print-archive-uri={suite}"],
                            env={**os.environ, "APT_CONFIG": str(config)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_archive_uri_comes_from_a_one_line_source(tmp_path: Path) -> None:
    sources = ("deb [signed-by=/usr/share/keyrings/local.gpg] http://mirror.example/debian "
               "bookworm main\n"
               "deb http://mirror.example/debian-security bookworm-security main\n")
    assert archive_uri(tmp_path, "bookworm", one_line=sources) == "http://mirror.example/debian/"


def test_archive_uri_comes_from_a_deb822_source(tmp_path: Path) -> None:
    sources = ("Types: deb\nURIs: http://mirror.example/debian\n"
               "Suites: trixie trixie-updates\nComponents: main\n")
    assert archive_uri(tmp_path, "trixie", deb822=sources) == "http://mirror.example/debian/"


def test_no_archive_uri_for_a_suite_apt_does_not_know(tmp_path: Path) -> None:
    sources = "Types: deb\nURIs: http://mirror.example/debian\nSuites: trixie\nComponents: main\n"
    assert archive_uri(tmp_path, "bookworm-backports", deb822=sources) == ""


# --- install layouts ----------------------------------------------------------------------

def test_plain_meson_install_puts_files_where_their_readers_look(tmp_path: Path) -> None:
    meson = shutil.which("meson")
    require(meson and shutil.which("ninja"), "meson and ninja are not installed")
    build, dest = tmp_path / "build", tmp_path / "dest"
    setup = subprocess.run([meson, "setup", str(build), str(ROOT), "--prefix=/usr",
                            "-Dsystemd_units=/usr/lib/systemd/system"],
                           capture_output=True, text=True, timeout=300)
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    # Only the files checked here: the extension modules take minutes to compile.
    built = subprocess.run(["ninja", "-C", str(build), "50-vhost-device-scmi.json",
                            "vhost-device-scmi@.service", "vhost-device-scmi@.socket"],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:]
    install = subprocess.run([meson, "install", "-C", str(build), "--no-rebuild",
                              "--tags", "man,bin,descriptor,systemd", "--destdir", str(dest)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    usr = dest / "usr"
    assert (usr / "share/man/man1/vhost-device-scmi.1").read_text() == \
        (ROOT / "man/vhost-device-scmi.1").read_text()
    descriptor = json.loads((usr / "share/qemu/vhost-user/50-vhost-device-scmi.json").read_text())
    assert descriptor == backend_info.descriptor("/usr/bin/vhost-device-scmi", __version__)
    script = usr / "bin/vhost-device-scmi"
    assert os.access(script, os.X_OK)
    assert "from vhost_scmi.cli import main" in script.read_text()
    units = usr / "lib/systemd/system"
    assert sorted(path.name for path in units.iterdir()) == [
        "vhost-device-scmi@.service", "vhost-device-scmi@.socket"]
    assert "ExecStart=/usr/bin/vhost-device-scmi " in \
        (units / "vhost-device-scmi@.service").read_text()
    # Nothing lands in a doubled share/share.
    assert not (usr / "share" / "share").exists()


def test_wheel_carries_no_descriptor_naming_the_build_machine() -> None:
    """A wheel installs anywhere: its descriptor, if a packager asked for one with
    -Dvhost_user_binary, names a program that exists; by default there is none."""
    try:
        files = importlib.metadata.files("vhost-device-scmi") or []
    except importlib.metadata.PackageNotFoundError:
        require(False, "the vhost-device-scmi distribution is not installed")
    for file in files:
        if file.name == backend_info.DESCRIPTOR_NAME:
            binary = json.loads(file.locate().read_text())["binary"]
            assert os.access(binary, os.X_OK), binary


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    require(SCRIPT, "the vhost-device-scmi console script is not installed (not on PATH)")
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=30,
                          env=env, stdin=subprocess.DEVNULL)


def test_write_descriptor_names_the_installed_program(tmp_path: Path) -> None:
    result = run_script("--write-descriptor", str(tmp_path / "vhost-user"))
    assert result.returncode == 0, result.stderr
    path = tmp_path / "vhost-user" / backend_info.DESCRIPTOR_NAME
    assert result.stdout == f"{path}\n"
    document = json.loads(path.read_text())
    assert document == backend_info.descriptor(os.path.abspath(SCRIPT), __version__)
    check = subprocess.run([document["binary"], "--print-capabilities"], capture_output=True,
                           text=True, timeout=30)
    assert json.loads(check.stdout) == backend_info.capabilities()


def test_write_descriptor_defaults_to_the_users_qemu_config(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    result = run_script("--write-descriptor", env=env)
    assert result.returncode == 0, result.stderr
    written = tmp_path / "config" / "qemu" / "vhost-user" / backend_info.DESCRIPTOR_NAME
    assert json.loads(written.read_text())["type"] == "scmi"
    # Again: the file is replaced, nothing else is left behind.
    assert run_script("--write-descriptor", env=env).returncode == 0
    assert [path.name for path in written.parent.iterdir()] == [written.name]


def test_write_descriptor_failure_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_script("--write-descriptor", str(blocker / "sub"))
    assert result.returncode == 1
    assert result.stderr.startswith("vhost-device-scmi: error: cannot write the descriptor")
    assert result.stderr.count("\n") == 1
