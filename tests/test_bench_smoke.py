# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Smoke test of the benchmark harness: it runs end to end and its numbers are sane.

A benchmark, not a test of speed: nothing here asserts how fast anything is.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from vhost_scmi.bench import floor

# Tiny counts: every section runs, in seconds.
TINY = ["--repeats", "2", "--rounds", "40", "--batches", "2", "--batch-sizes", "8,32",
        "--footprint-requests", "3000", "--idle-seconds", "0.3", "--vmm-counts", "1,3",
        "--stream-seconds", "0.3"]


def run_bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-P", "-m", "vhost_scmi.bench", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def report() -> dict:
    result = run_bench("--json", *TINY)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def figures(report: dict, section: str) -> dict[str, dict]:
    return {fig["name"]: fig for fig in report["figures"] if fig["section"] == section}


def test_floor_ping_pong_returns_one_time_per_round() -> None:
    times = floor.ping_pong(50, 10, -1, -1)
    assert len(times) == 50
    assert all(isinstance(t, int) and t > 0 for t in times)


def test_floor_rejects_bad_counts() -> None:
    with pytest.raises(ValueError):
        floor.ping_pong(0)


def test_every_section_reports_finite_numbers(report: dict) -> None:
    sections = {fig["section"] for fig in report["figures"]}
    assert sections == {"floor", "roundtrip", "batched", "iio", "domains", "idle", "footprint",
                        "neighbour", "stream"}
    for fig in report["figures"]:
        assert len(fig["samples"]) >= 1, fig
        assert all(math.isfinite(v) and v >= 0 for v in fig["samples"]), fig
        assert fig["min"] <= fig["median"] <= fig["max"], fig


def test_repeated_figures_carry_one_sample_per_repeat(report: dict) -> None:
    for section in ("floor", "roundtrip", "batched", "iio", "domains"):
        for fig in figures(report, section).values():
            assert len(fig["samples"]) == 2, fig


def test_floor_and_round_trip_percentiles_are_ordered(report: dict) -> None:
    for section in ("floor", "roundtrip"):
        figs = figures(report, section)
        p50s = {name: fig for name, fig in figs.items() if " p50, " in name}
        assert p50s, figs
        for name, fig in p50s.items():
            p99 = figs[name.replace(" p50, ", " p99, ")]
            assert all(a <= b for a, b in zip(fig["samples"], p99["samples"], strict=True))
            assert fig["median"] > 0


def test_neighbour_and_stream_report_what_they_measured(report: dict) -> None:
    neighbour = figures(report, "neighbour")
    assert {name for name in neighbour if "loaded / quiet" in name} == {
        "p50 loaded / quiet", "p99 loaded / quiet"}
    assert all(len(fig["samples"]) == 2 for fig in neighbour.values())
    stream = figures(report, "stream")
    assert set(stream) == {f"{what} at 1 kHz: {figure}" for what in ("1 sensor", "10 sensors")
                           for figure in ("daemon CPU", "delivered")}
    assert all(fig["median"] > 0 for fig in stream.values())


def test_time_figures_have_positive_ratios_to_the_floor(report: dict) -> None:
    for section in ("roundtrip", "batched", "iio", "domains"):
        for fig in figures(report, section).values():
            assert fig["ratio_to_floor"] is not None and fig["ratio_to_floor"] > 0, fig
    for fig in figures(report, "floor").values():
        # The floor over itself, repeat by repeat.
        assert fig["ratio_to_floor"] == pytest.approx(1.0)


def test_batched_throughput_matches_time_per_request(report: dict) -> None:
    for section, sizes in (("batched", (8, 32)), ("iio", (8, 32))):
        figs = figures(report, section)
        for size in sizes:
            per_request = figs[f"READING_GET ×{size}, per request"]
            throughput = figs[f"READING_GET ×{size}, throughput"]
            for micros, rate in zip(per_request["samples"], throughput["samples"], strict=True):
                assert rate == pytest.approx(1e6 / micros)
    assert "DESCRIPTION_GET ×32, per request" in figures(report, "batched")
    domains = figures(report, "domains")
    for label in ("PERF_LEVEL_SET", "POWER_STATE_GET"):
        for size in (8, 32):
            per_request = domains[f"{label} ×{size}, per request"]
            throughput = domains[f"{label} ×{size}, throughput"]
            for micros, rate in zip(per_request["samples"], throughput["samples"], strict=True):
                assert rate == pytest.approx(1e6 / micros)


def test_footprint_is_plausible(report: dict) -> None:
    figs = figures(report, "footprint")
    rss = figs["RSS after 3,000 requests"]
    assert 1 < rss["median"] < 1024  # MiB: a live process, not a runaway
    accepting = figs["exec to socket accepting"]
    replied = figs["exec to first vhost-user reply"]
    assert 0 < accepting["median"] < 30_000  # ms
    assert all(a <= r for a, r in zip(accepting["samples"], replied["samples"], strict=True))


def test_start_up_floor_of_the_standard_modules(report: dict) -> None:
    """Beside the bare interpreter, the same interpreter importing the standard modules
    that a start of our daemon imports (found by running it under -X importtime): the
    command line's and the log's modules among them, and more memory than nothing."""
    figs = figures(report, "footprint")
    bare = figs["interpreter RSS (python -S -c pass)"]
    stdlib = figs["interpreter RSS (python -S importing a start's standard modules)"]
    assert stdlib["median"] > bare["median"] > 1
    assert figs["interpreter start-up (python -S importing a start's standard modules)"][
        "median"] > 0
    listed = [note for note in report["notes"] if note.startswith("the standard modules")]
    assert len(listed) == 1, report["notes"]
    modules = listed[0].rpartition(": ")[2].split(", ")
    assert {"argparse", "logging"} <= set(modules), modules
    assert not any(module.startswith("vhost_scmi") for module in modules)


def test_rss_with_several_vmms_of_one_backend(report: dict) -> None:
    figs = figures(report, "footprint")
    one, three = figs["RSS with 1 VMM connected"], figs["RSS with 3 VMMs connected"]
    assert 1 < one["median"] < 1024 and 1 < three["median"] < 1024
    assert one["target"].startswith("≤ 12 MiB"), one["target"]


def test_rss_with_several_vmms_sums_one_backend_per_vmm() -> None:
    """Another backend (here ours through another command) gets one process per VMM:
    two processes hold more than one."""
    result = run_bench("--json", "--only", "footprint", "--repeats", "1",
                       "--footprint-requests", "100", "--vmm-counts", "1,2", "--backend-cmd",
                       f"{sys.executable} -P -m vhost_scmi -s {{socket}} -d {{device}}")
    assert result.returncode == 0, result.stderr
    figs = figures(json.loads(result.stdout), "footprint")
    one, two = figs["RSS with 1 VMM connected"], figs["RSS with 2 VMMs connected"]
    assert two["median"] > 1.5 * one["median"], (one, two)


def test_idle_counts_cpu_time_of_a_live_backend(report: dict) -> None:
    figs = figures(report, "idle")
    cpu = figs["CPU time over 0.3 s, VMM connected"]
    assert 0 <= cpu["median"] <= 0.3 * 2  # at most every CPU for the whole interval


def test_table_lists_every_section_with_ratios() -> None:
    result = run_bench("--only", "batched", "--repeats", "1", "--batches", "1",
                       "--batch-sizes", "4", "--backend-cmd",
                       f"{sys.executable} -P -m vhost_scmi -s {{socket}} -d {{device}}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("batched") and "READING_GET ×4, per request" in line
               for line in lines), result.stdout
    assert any(line.startswith("floor") for line in lines), result.stdout
    assert "machine:" in result.stdout and "command:" in result.stdout


def test_a_backend_that_exits_is_an_error_not_a_hang() -> None:
    result = run_bench("--only", "roundtrip", "--repeats", "1", "--backend-cmd",
                       f"{sys.executable} -c 'import sys; sys.exit(3)' {{socket}}",
                       timeout=60)
    assert result.returncode == 1
    assert "exited with status 3" in result.stderr


# A backend that, like rust-vmm's daemons, removes its socket file while a VMM is connected
# and creates it again once the VMM has left: here a listener that hands each connection
# to our daemon (--fd) and waits for it to end.
RECREATING_BACKEND = """
import os, signal, socket, subprocess, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
path, daemon = sys.argv[1], sys.argv[2:]
while True:
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)
    conn, _ = listener.accept()
    listener.close()
    os.unlink(path)
    subprocess.run([*daemon, "--fd", str(conn.fileno())], pass_fds=(conn.fileno(),))
    conn.close()
"""


def test_backend_recreating_its_socket_between_vmms(tmp_path) -> None:
    """The harness's start-up probe is one VMM, its measuring connection the next: a
    connect that finds no socket file (ENOENT) is retried, as one refused is."""
    script = tmp_path / "recreating.py"
    script.write_text(RECREATING_BACKEND)
    result = run_bench("--only", "batched", "--repeats", "1", "--batches", "1",
                       "--batch-sizes", "4", "--backend-cmd",
                       f"{sys.executable} {script} {{socket}} {sys.executable} -P -m vhost_scmi "
                       "-d {device}")
    assert result.returncode == 0, result.stderr
    assert "READING_GET ×4, per request" in result.stdout
