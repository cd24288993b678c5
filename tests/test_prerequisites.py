# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""A missing prerequisite skips a test with its reason, except under tools/run-tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SAMPLE = """
from prerequisites import require


def test_needs_something():
    require(False, "frobnicator 9 is not installed")
"""


@pytest.mark.parametrize(("require_all", "outcome"), [("", "1 skipped"), ("1", "1 failed")])
def test_missing_prerequisite(tmp_path: Path, require_all: str, outcome: str) -> None:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {**os.environ, "VHOST_SCMI_REQUIRE_ALL": require_all,
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-P", "-m", "pytest", "-rs", "-p", "no:cacheprovider",
                             "-c", os.devnull, str(tmp_path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert outcome in result.stdout, result.stdout
    assert "frobnicator 9 is not installed" in result.stdout, result.stdout
    if require_all:
        assert "VHOST_SCMI_REQUIRE_ALL=1" in result.stdout, result.stdout


def test_run_tests_requires_every_prerequisite() -> None:
    script = (TESTS.parent / "tools" / "run-tests").read_text()
    assert "export VHOST_SCMI_REQUIRE_ALL=1" in script
    assert script.index("export VHOST_SCMI_REQUIRE_ALL=1") < script.index("-m pytest")
