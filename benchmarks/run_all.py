"""Every benchmark in one call, one summary table: for a lent GPU (``--device cuda``) or CPU.

Each benchmark runs in its own process (so one that fails or times out does not stop the
rest) with the device passed to those that take one; the others run on the CPU and the table
says so. The table gives each script's status, wall time and the last line of its report; the
full reports follow it.

    python benchmarks/run_all.py --device cuda            # the full sizes (GPU: minutes)
    python benchmarks/run_all.py --quick                  # tiny sizes, a smoke test on CPU
    python benchmarks/run_all.py --only dt_predict tt_planning
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Bench:
    name: str  # benchmarks/<name>.py
    full: tuple[str, ...]  # arguments of the reported run (benchmarks/README.md)
    quick: tuple[str, ...]  # tiny sizes: checks that the script runs, measures nothing
    device: bool  # takes --device


BENCHMARKS = (
    Bench("dt_predict", (), ("--steps", "40", "--rounds", "1", "--batch", "4"), True),
    Bench(
        "train_throughput",
        (),
        ("--transitions", "3000", "--steps", "2", "--rounds", "1", "--batch-size", "8"),
        True,
    ),
    Bench(
        "tt_planning",
        (),
        ("--settings", "halfcheetah", "--rounds", "1", "--no-reference", "--envs", "0"),
        True,
    ),
    Bench(
        "tt_train_step",
        ("--steps", "5", "--rounds", "3"),
        ("--steps", "1", "--rounds", "1", "--rows", "20000", "--batch-size", "4"),
        True,
    ),
    Bench("leap_planning", ("--rounds", "3"), ("--rounds", "1", "--only", "babyai-H5-N10"), False),
    Bench(
        "dt_atari_cache",
        ("--steps", "40", "--rounds", "2"),
        ("--steps", "4", "--rounds", "1"),
        False,
    ),
    Bench("atari_memory", ("--frames", "500000"), ("--frames", "3000", "--batches", "2"), False),
)  # fmt: skip


def run(bench: Bench, device: str, quick: bool, timeout: float) -> dict:
    """Run one benchmark script; its status, wall time, device and output."""
    command = [
        sys.executable,
        str(HERE / f"{bench.name}.py"),
        *(bench.quick if quick else bench.full),
    ]
    if bench.device:
        command += ["--device", device]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.perf_counter()
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
        status, text = ("ok" if out.returncode == 0 else f"exit {out.returncode}"), out.stdout
        if out.returncode:
            text += out.stderr[-2000:]
    except subprocess.TimeoutExpired as e:
        status, text = f"timeout {timeout:.0f} s", (e.stdout or b"").decode(errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    return {
        "name": bench.name,
        "device": device if bench.device else "cpu",
        "status": status,
        "wall_s": time.perf_counter() - start,
        "last": lines[-1].strip() if lines else "",
        "output": text,
        "command": " ".join(["python", f"benchmarks/{bench.name}.py", *command[2:]]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these benchmarks only")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per benchmark")
    parser.add_argument("--no-reports", action="store_true", help="the table only")
    args = parser.parse_args(argv)
    known = {b.name: b for b in BENCHMARKS}
    unknown = sorted(set(args.only or ()) - set(known))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {sorted(known)}")
    chosen = [known[n] for n in args.only] if args.only else list(BENCHMARKS)
    results = []
    for bench in chosen:
        print(f"running {bench.name} ...", file=sys.stderr, flush=True)
        results.append(run(bench, args.device, args.quick, args.timeout))
    print("| benchmark | device | status | wall s | result (last line of its report) |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['name']} | {r['device']} | {r['status']} | {r['wall_s']:.0f} | {r['last']} |")
    if not args.no_reports:
        for r in results:
            print(f"\n## {r['name']}: `{r['command']}`\n\n{r['output'].rstrip()}")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
