# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The virtual SCMI platform: agents, what each sees and may do, host calls, arbitration.

Kept apart from the protocols (as SCP-firmware keeps agents and permissions apart from
its protocol modules): `scmi/` asks an `AgentView` what its agent sees, may control,
and how to call the host; it never decides those itself.
"""
