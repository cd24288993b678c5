# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""`python -m vhost_scmi.bench`: measure a vhost-user SCMI backend against the machine's floor."""

import sys

from vhost_scmi.bench.harness import main

sys.exit(main())
