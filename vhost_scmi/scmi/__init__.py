# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""SCMI message codec, dispatcher and protocols. Knows nothing of vhost-user."""
