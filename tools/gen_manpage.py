#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Generate man/vhost-device-scmi.1 from the daemon's argparse parser.

    python3 tools/gen_manpage.py           # rewrite man/vhost-device-scmi.1
    python3 tools/gen_manpage.py --check   # exit 1 if the committed page has drifted

The page is never edited by hand: the options, description and examples come from
vhost_scmi.cli.build_parser(), the device kinds from the device registry.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from argparse_manpage.manpage import Manpage

from vhost_scmi import backend_info, cli
from vhost_scmi.devices.registry import devices_help

MAN_PAGE = Path(__file__).resolve().parent.parent / "man" / "vhost-device-scmi.1"
# A fixed date keeps the page reproducible; bump it with the version.
PAGE_DATE = "2026-11-24"

SYSTEMD = """\
contrib/systemd/vhost-device-scmi@.socket and vhost-device-scmi@.service
run one daemon per virtual machine. The socket unit listens on
/run/vhost-device-scmi/NAME.sock and passes the socket to the service
(socket activation); the service (Type=notify) reads the -d options
from DEVICES in /etc/vhost-device-scmi/NAME.conf. The daemon tells
systemd READY=1 once the socket accepts VMMs, STOPPING=1 on SIGTERM.
"""

FILES = f"""\
PREFIX/{backend_info.DESCRIPTOR_DIR}/{backend_info.DESCRIPTOR_NAME}
    The vhost-user backend descriptor of QEMU's vhost-user.json schema,
    read by management tools that look for backends: type
    "{backend_info.BACKEND_TYPE}", a description, and this program's absolute path.
    The schema's list of backend types has no SCMI entry (yet).
"""

LICENSE = "Apache-2.0 OR BSD-3-Clause, at your choice."


def _roff(text: str) -> str:
    """Escape plain text for roff, keeping lines as they are."""
    out = []
    for line in text.replace("\\", "\\e").splitlines():
        if line.startswith((".", "'")):
            line = "\\&" + line
        out.append(line)
    # No filling: the help texts are laid out already.
    return ".nf\n" + "\n".join(out) + "\n.fi"


def render() -> str:
    """Return the man page text."""
    parser = cli.build_parser()
    page = Manpage(parser, _data={
        "project_name": "vhost-device-scmi",
        "description": backend_info.SUMMARY,
        "manual_title": "vhost-device-scmi manual",
        "manual_section": 1,
        "date": PAGE_DATE,
    })
    page.add_section("DEVICE KINDS", ">", _roff(devices_help()))
    page.add_section("FILES", ">", _roff(FILES))
    page.add_section("SYSTEMD", ">", _roff(SYSTEMD))
    page.add_section("LICENSE", ">", _roff(LICENSE))
    return str(page)


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--check", action="store_true", help="compare instead of writing")
    check = args.parse_args().check
    text = render()
    if check:
        if MAN_PAGE.read_text() != text:
            sys.stderr.write(f"{MAN_PAGE} is out of date: run tools/gen_manpage.py\n")
            return 1
        return 0
    MAN_PAGE.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
