# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""vhost-user backend daemon providing a VirtIO SCMI device backed by host sensors."""

from vhost_scmi._version import __version__

__all__ = ["__version__"]
