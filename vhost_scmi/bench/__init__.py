# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Benchmark harness: `python -m vhost_scmi.bench` (see `harness.py`)."""
