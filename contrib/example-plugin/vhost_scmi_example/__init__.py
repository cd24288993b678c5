# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Example vhost-device-scmi plugin (see the README beside pyproject.toml)."""
