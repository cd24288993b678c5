# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`python -m vhost_scmi` runs the daemon, like the `vhost-device-scmi` script."""

from vhost_scmi.cli import main

raise SystemExit(main())
