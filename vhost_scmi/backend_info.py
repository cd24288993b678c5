# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""What management tools learn about this backend without running it as a daemon.

QEMU's vhost-user specification ("Backend program conventions", and the schema in
docs/interop/vhost-user.json) defines two JSON documents a backend provides:

- the capabilities object that `--print-capabilities` writes: the backend type,
  plus a `features` list for the few types whose schema defines one;
- a discovery descriptor, one file per backend installed in `share/qemu/vhost-user/`,
  naming the type, a description and the absolute path of the binary.

The schema's list of backend types has no SCMI entry (it predates QEMU's
vhost-user-scmi device); we report "scmi", the name QEMU's device and the virtio
specification use, and no features, as the schema defines none for this type.

This module is the single source of both documents. It imports only the standard
library, because the build runs it as a plain script to generate the descriptor:

    python3 vhost_scmi/backend_info.py --output 50-vhost-device-scmi.json [--binary PATH]
"""

from __future__ import annotations

import os
from typing import Any

# argparse, json and sysconfig are imported where they are used: the daemon imports
# this module at start-up, and needs none of them to serve.

#: The program's name (the console script).
PROG = "vhost-device-scmi"
#: The backend type management tools match on.
BACKEND_TYPE = "scmi"
#: One line saying what the program is (the descriptor's description, the man page's NAME).
SUMMARY = "vhost-user backend for a VirtIO SCMI device exposing host sensors"
#: File name of the descriptor: the two-digit prefix orders it among other backends.
DESCRIPTOR_NAME = f"50-{PROG}.json"
#: Where, under the installation prefix, management tools look for descriptors.
DESCRIPTOR_DIR = os.path.join("share", "qemu", "vhost-user")


def capabilities() -> dict[str, Any]:
    """The capabilities object `--print-capabilities` prints."""
    return {"type": BACKEND_TYPE}


def descriptor(binary: str, version: str | None = None) -> dict[str, Any]:
    """The discovery descriptor for the program installed at `binary` (absolute)."""
    if not os.path.isabs(binary):
        raise ValueError(f"the descriptor needs an absolute binary path, not {binary!r}")
    document: dict[str, Any] = {
        "description": SUMMARY,
        "type": BACKEND_TYPE,
        "binary": binary,
    }
    if version:
        # Tags are for people debugging an installation; management tools ignore them.
        document["tags"] = [f"version={version}"]
    return document


def to_json(document: dict[str, Any]) -> str:
    """`document` as the indented JSON text we print and install."""
    import json

    return json.dumps(document, indent=2) + "\n"


def default_binary() -> str:
    """Where pip installs the console script for the running interpreter."""
    import sysconfig

    return os.path.join(sysconfig.get_path("scripts"), PROG)


def user_descriptor_dir() -> str:
    """The per-user directory QEMU's management tools search for descriptors:
    $XDG_CONFIG_HOME/qemu/vhost-user, by default ~/.config/qemu/vhost-user."""
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(config, "qemu", "vhost-user")


def write_descriptor(directory: str, binary: str, version: str | None = None) -> str:
    """Write the descriptor for the program at `binary` into `directory` (created if
    missing), replacing any older one atomically; return the file's path."""
    import contextlib

    text = to_json(descriptor(binary, version))
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, DESCRIPTOR_NAME)
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as output:
            output.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def main(argv: list[str] | None = None) -> int:
    """Write the descriptor (the build calls this); return the exit status."""
    import argparse

    parser = argparse.ArgumentParser(description="Write the vhost-user backend descriptor.")
    parser.add_argument("--output", required=True, help="file to write")
    parser.add_argument("--binary", default="",
                        help="absolute path of the installed program "
                             "(default: the scripts directory of this Python)")
    parser.add_argument("--version", default="", help="package version, recorded as a tag")
    args = parser.parse_args(argv)
    try:
        text = to_json(descriptor(args.binary or default_binary(), args.version or None))
    except ValueError as error:
        parser.error(str(error))
    with open(args.output, "w", encoding="utf-8") as output:
        output.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
