"""The scale benchmark's parts: a step's time and peak memory, its report, the served shoppers."""

from __future__ import annotations

import csv
import gzip
import os
import subprocess
import sys
from pathlib import Path

from tools.bench.steps import peak_rss_mb, run_step
from tools.cli.bench_scale import _markdown, _schema_url, _shoppers

ALLOCATE = (
    "import sys; block = bytearray(int(sys.argv[1]) * 2**20); block[::4096] = b'x' * len(block[::4096])"
)


def test_a_step_reports_the_peak_memory_of_its_own_process_and_its_exit_code() -> None:
    """This (test) process is large; a step's peak is its command's alone, not that of the process
    it was started from."""
    small = run_step("small", [sys.executable, "-c", ALLOCATE, "1"], os.environ)
    large = run_step("large", [sys.executable, "-c", ALLOCATE, "300"], os.environ)
    failed = run_step("failed", [sys.executable, "-c", "raise SystemExit(3)"], os.environ)
    assert small.ok and large.ok and small.seconds > 0
    assert large.peak_mb >= 300 > 100 > small.peak_mb  # the 300 MB block was resident at its peak
    assert not failed.ok and failed.returncode == 3
    assert large.summary()["name"] == "large"


def test_the_peak_memory_of_a_running_process_is_read_and_a_gone_one_reads_zero() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(5)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "started\n"
        assert peak_rss_mb(process.pid) > 1
    finally:
        process.kill()
        process.wait()
    assert peak_rss_mb(process.pid) == 0.0


def test_the_served_shoppers_are_the_first_distinct_ones_of_the_events(tmp_path: Path) -> None:
    events = tmp_path / "events.csv.gz"
    with gzip.open(events, "wt", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["event_id", "user_id", "item_id"])
        for n, user in enumerate(["U2", "U2", "U1", "U3", "U1", "U4"]):
            out.writerow([f"e{n}", user, "I1"])
    assert _shoppers(events, 3) == ["U2", "U1", "U3"]
    assert _shoppers(events, 10) == ["U2", "U1", "U3", "U4"]


def test_every_connection_of_the_run_works_in_its_own_schema() -> None:
    assert _schema_url("postgresql+psycopg://h/test", "s1").endswith("/test?options=-csearch_path%3Ds1")
    assert _schema_url("postgresql+psycopg://h/test?sslmode=disable", "s1").endswith(
        "?sslmode=disable&options=-csearch_path%3Ds1"
    )


def test_the_report_names_each_step_its_time_memory_and_failures() -> None:
    report = {
        "command": "recsys bench-scale --shoppers 10",
        "commit": "abc",
        "date": "today",
        "cpus": 2,
        "shoppers": 10,
        "items": 5,
        "days": 30,
        "seed": 7,
        "events": 400,
        "train_minutes": 60,
        "duration_s": 60.0,
        "served_shoppers": 10,
        "steps": [
            {"name": "import", "seconds": 30.0, "peak_mb": 2048.0, "returncode": 0},
            {"name": "train all", "seconds": 600.0, "peak_mb": 512.0, "returncode": 1},
        ],
        "serving": None,
        "demo_p99_ms": None,
        "services_peak_mb": {"gateway": 140.0},
    }
    text = _markdown(report)
    assert "| import | 30 s | 2.00 GB |" in text
    assert "| train all (exit code 1) | 10.0 min | 0.50 GB |" in text
    assert "| gateway | 140 MB |" in text and "Serving" not in text
