# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Tests that need something outside the package: skip, or fail under tools/run-tests.

A distribution builds the package and runs the suite in a chroot: offline, before the
package is installed, without the Debian packages the QEMU guest tests need, without
atheris. There, a test whose prerequisite is missing is skipped with a reason naming
it. `tools/run-tests` (the README's command, which CI runs) installs everything and
sets VHOST_SCMI_REQUIRE_ALL=1: a missing prerequisite is then a failure, so that CI
shows every test passing, none skipped.
"""

from __future__ import annotations

import os

import pytest

#: Set by tools/run-tests: every prerequisite must be there.
REQUIRE_ALL = os.environ.get("VHOST_SCMI_REQUIRE_ALL") == "1"


def require(present: object, missing: str) -> None:
    """Skip the running test, saying `missing`, unless `present` is true; under
    tools/run-tests (VHOST_SCMI_REQUIRE_ALL=1) fail instead of skipping."""
    if present:
        return
    if REQUIRE_ALL:
        pytest.fail(f"{missing} (VHOST_SCMI_REQUIRE_ALL=1: tools/run-tests runs every test)",
                    pytrace=False)
    pytest.skip(missing)
