#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Generate the man pages, man/NAME.1, one per console script, from their argparse parsers.

    python3 tools/gen_manpage.py           # rewrite every man/NAME.1
    python3 tools/gen_manpage.py --check   # exit 1 if a committed page has drifted

The pages are never edited by hand. Each console script of pyproject.toml's
[project.scripts] ("NAME = MODULE:main") gets a page: the synopsis, description and
options come from MODULE.build_parser(); the sections a distribution's pages have
(EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES, SEE ALSO) from argparse-manpage's include
file man/NAME.include (roff, "[SECTION]" headings); SEE ALSO also names the other
pages. A few sections are generated (DEVICE KINDS, from the device registry).

A new console script needs its man/NAME.include and a line in meson.build's
console_scripts; the drift test then covers its page.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

from argparse_manpage.manpage import Manpage

ROOT = Path(__file__).resolve().parent.parent
MAN_DIR = ROOT / "man"
SECTION = 1
# A fixed date keeps the pages reproducible; bump it with the version. (Not ISO 8601:
# argparse-manpage escapes its hyphens, which mandoc cannot parse as a date.)
PAGE_DATE = "November 29, 2026"
MANUAL = "vhost-device-scmi manual"
LICENSE = "Apache\\-2.0 OR BSD\\-3\\-Clause, at your choice."


def console_scripts() -> dict[str, str]:
    """NAME -> MODULE of every console script pyproject.toml declares."""
    with open(ROOT / "pyproject.toml", "rb") as file:
        scripts = tomllib.load(file)["project"]["scripts"]
    return {name: target.partition(":")[0] for name, target in scripts.items()}


def _roff(text: str) -> str:
    """Plain text as roff, lines kept as they are (no filling)."""
    out = []
    for line in text.replace("\\", "\\e").replace("-", "\\-").splitlines():
        if line.startswith((".", "'")):
            line = "\\&" + line
        out.append(line)
    return ".nf\n" + "\n".join(out) + "\n.fi"


def _device_kinds() -> list[tuple[str, str]]:
    from vhost_scmi.devices.registry import devices_help

    return [("DEVICE KINDS", _roff(devices_help(plugins=False)))]


#: Generated sections of a page, placed after OPTIONS.
GENERATED: dict[str, Callable[[], list[tuple[str, str]]]] = {
    "vhost-device-scmi": _device_kinds,
}


def page_path(name: str) -> Path:
    return MAN_DIR / f"{name}.{SECTION}"


def render(name: str, module_name: str, others: list[str]) -> str:
    """The man page of console script `name`, whose parser is `module_name`.build_parser()."""
    include = MAN_DIR / f"{name}.include"
    if not include.is_file():
        raise SystemExit(f"gen_manpage: {include.relative_to(ROOT)} is missing: write the "
                         "EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES and SEE ALSO sections of "
                         f"{name}({SECTION}) there")
    module = importlib.import_module(module_name)
    parser = module.build_parser()
    # The epilog is --help's summary of what the include file's sections say in full.
    parser.epilog = None
    from vhost_scmi import backend_info

    page = Manpage(parser, _data={
        "project_name": "vhost-device-scmi",
        "description": (module.__doc__ or "").strip().splitlines()[0].rstrip(".")
        if name != backend_info.PROG else backend_info.SUMMARY,
        "manual_title": MANUAL,
        "manual_section": SECTION,
        "date": PAGE_DATE,
    })
    for heading, content in GENERATED.get(name, list)():
        page.add_section(heading, ">", content)
    page.parse_include(str(include))
    if others:
        refs = ",\n".join(f".BR {other.replace('-', chr(92) + '-')} ({SECTION})"
                          for other in others)
        page.add_section("SEE ALSO", "<", refs + ",\n")
    page.add_section("LICENSE", ">", LICENSE)
    return str(page)


def render_all() -> dict[Path, str]:
    """Every page's path and text."""
    scripts = console_scripts()
    return {page_path(name): render(name, module, [n for n in scripts if n != name])
            for name, module in scripts.items()}


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--check", action="store_true", help="compare instead of writing")
    check = args.parse_args().check
    status = 0
    for path, text in render_all().items():
        if not check:
            path.write_text(text)
        elif not path.is_file() or path.read_text() != text:
            sys.stderr.write(f"{path} is out of date: run tools/gen_manpage.py\n")
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
