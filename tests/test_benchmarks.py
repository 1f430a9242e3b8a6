"""benchmarks/run_all.py runs the benchmarks at tiny sizes on CPU and prints one table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_run_all_quick_on_cpu_prints_one_row_per_benchmark():
    names = ["dt_predict", "tt_train_step", "leap_planning", "dt_atari_cache"]
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--quick", "--no-reports",
         "--only", *names],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[0][2:] for row in rows] == names
    assert all(" | cpu | ok | " in row for row in rows), rows


def test_run_all_rejects_an_unknown_benchmark():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--only", "nope"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "unknown benchmark(s) ['nope']" in out.stderr
