# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""A short coverage-guided fuzz run of each target in fuzz/ (about 45 s each).

Each target runs as its own process against the installed build, starting from an
empty corpus; it must finish without a finding (exit 0) after a minimum number of
inputs. The long runs and the bounds-checked build are described in fuzz/README.md.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from prerequisites import require

FUZZ_DIR = Path(__file__).resolve().parent.parent / "fuzz"
SECONDS = 45
#: target -> fewest inputs a healthy run gets through in SECONDS (an order of magnitude
#: below what a 2-core machine reaches, so that this checks the harness ran, not speed).
TARGETS = {
    "fuzz_dispatcher.py": 20_000,
    "fuzz_queue.py": 10_000,
    "fuzz_vhost_messages.py": 3_000,
}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_short_fuzz_run(target: str, tmp_path: Path) -> None:
    require(importlib.util.find_spec("atheris"), "atheris (the fuzzing engine, the [fuzz] "
            "extra) is not installed")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    result = subprocess.run(
        [sys.executable, str(FUZZ_DIR / target), str(corpus),
         f"-max_total_time={SECONDS}", "-timeout=10", "-rss_limit_mb=1024",
         f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"],
        capture_output=True, text=True, timeout=SECONDS + 120, cwd=tmp_path)
    output = result.stderr + result.stdout
    assert result.returncode == 0, output[-4000:]
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*"))
    match = re.search(r"stat::number_of_executed_units:\s*(\d+)", output)
    assert match, output[-2000:]
    executed = int(match.group(1))
    print(f"{target}: {executed} inputs in {SECONDS} s")
    assert executed >= TARGETS[target], output[-2000:]
