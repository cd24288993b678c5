# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The host-VM rig: the installed daemon on real kernel devices inside an x86_64 VM."""
