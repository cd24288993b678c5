# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""vhost-user backend protocol, guest memory and virtqueues. Knows nothing of SCMI."""
