# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""End-to-end tests: the installed daemon, a real QEMU and a real arm64 Linux guest."""
