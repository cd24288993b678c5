# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""vhost-user backend daemon providing a VirtIO SCMI device backed by host sensors."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vhost-device-scmi")
except PackageNotFoundError:  # running from a source tree without metadata
    __version__ = "0.0.0"

__all__ = ["__version__"]
