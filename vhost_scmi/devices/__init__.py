# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Host sensor backends. Know nothing of SCMI or vhost-user."""
