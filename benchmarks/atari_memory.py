"""Peak memory of loading an Atari dataset (frames stored once) and sampling DT training windows.

Writes a synthetic dataset of ``--frames`` 84×84 uint8 frames (Atari-like: a dark background with a
few moving bright blocks, games of 200–3,000 steps) in the on-disk format of
``seqagents.data.atari`` unless ``--dataset`` names an existing one, then measures in a FRESH child
process (so writing does not count): RSS after the imports, after ``load_atari_dataset``, after
building a ``WindowSampler`` and the peak while sampling ``--batches`` batches of
``(B, K, 4, 84, 84)`` uint8 windows. Prints one JSON object.

For comparison: 500k frames are 3.3 GiB stored once as uint8, 13.1 GiB stacked ×4 as
uint8, 52.6 GiB stacked as float32.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/atari_memory.py --frames 500000
    .venv/bin/python benchmarks/atari_memory.py --dataset runs/ppo-breakout   # a real recording
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MIB = 2**20


def _rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB (``/proc``; ``resource`` as fallback)."""
    try:
        fields = dict(
            line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines()
        )
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        return peak, peak


def write_synthetic(out_dir: Path, n_frames: int, seed: int = 0, chunk_size: int = 10_000) -> None:
    """Write ``n_frames`` synthetic Atari-like frames as a dataset folder, one game at a time."""
    from seqagents.data.atari_collect import AtariDatasetWriter

    rng = np.random.default_rng(seed)
    writer = AtariDatasetWriter(
        out_dir, chunk_size=chunk_size, metadata={"synthetic": True, "n_actions": 4}, overwrite=True
    )
    written = 0
    background = np.zeros((84, 84), dtype=np.uint8)  # (84, 84)
    background[:10] = 142  # a score bar
    background[20:30] = 100  # a row of "bricks"
    while written < n_frames:
        length = int(min(rng.integers(200, 3000), n_frames - written))
        frames = np.repeat(background[None], length, axis=0)  # (T, 84, 84)
        t = np.arange(length)  # (T,)
        ball_y, ball_x = 30 + (t % 50), 2 + (t * 3) % 78  # (T,) each: a moving 2×2 "ball"
        paddle_x = 2 + (t * 2) % 70  # (T,)
        for dy in range(2):
            for dx in range(2):
                frames[t, ball_y + dy, ball_x + dx] = 236
        for dx in range(12):
            frames[t, 80, paddle_x + dx] = 200
        rewards = (rng.random(length) < 0.02).astype(np.float32) * 4  # (T,)
        writer.add_episode(
            frames,
            rng.integers(0, 4, length),
            rewards,
            np.sign(rewards),
            terminated=True,
            truncated=False,
        )
        written += length
    writer.close()


def measure(dataset: Path, batch_size: int, context_len: int, n_batches: int) -> dict:
    """Load ``dataset``, build a sampler, sample; RSS at each stage (MiB)."""
    import torch

    torch.set_num_threads(1)
    from seqagents.data import WindowSampler, load_atari_dataset

    report: dict = {"rss_after_imports_mib": _rss_mib()[0]}
    start = time.perf_counter()
    data = load_atari_dataset(dataset)
    report["load_s"] = round(time.perf_counter() - start, 2)
    report["n_frames"] = data.n_transitions
    report["n_episodes"] = data.n_episodes
    report["frames_mib"] = data.frames.nbytes / MIB
    report["rss_after_load_mib"], report["peak_after_load_mib"] = _rss_mib()
    sampler = WindowSampler(data, context_len, 1.0, normalize_states=False, seed=0)
    report["rss_after_sampler_mib"] = _rss_mib()[0]
    start = time.perf_counter()
    for _ in range(n_batches):
        batch = sampler.sample(batch_size)
    report["sample_ms"] = round((time.perf_counter() - start) / n_batches * 1e3, 2)
    report["batch_states"] = [list(batch["states"].shape), str(batch["states"].dtype)]
    report["batch_mib"] = batch["states"].numel() / MIB
    report["rss_after_sampling_mib"], report["peak_mib"] = _rss_mib()
    # What sampling and the sampler add on top of the loaded dataset (the bound tests check).
    report["sampling_growth_mib"] = report["peak_mib"] - report["rss_after_load_mib"]
    return {
        key: round(value, 1) if isinstance(value, float) else value for key, value in report.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500_000, help="synthetic dataset size")
    parser.add_argument("--dataset", type=Path, help="measure this dataset folder instead")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--context-len", type=int, default=30)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_only:
        print(json.dumps(measure(args.dataset, args.batch_size, args.context_len, args.batches)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        dataset = args.dataset
        write_s = None
        if dataset is None:
            dataset = Path(tmp) / "synthetic"
            start = time.perf_counter()
            write_synthetic(dataset, args.frames)
            write_s = round(time.perf_counter() - start, 1)
        disk = sum(path.stat().st_size for path in Path(dataset).glob("chunk_*.npz"))
        child = subprocess.run(
            [sys.executable, __file__, "--measure-only", "--dataset", str(dataset)]
            + ["--batch-size", str(args.batch_size), "--context-len", str(args.context_len)]
            + ["--batches", str(args.batches)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        report = json.loads(child.stdout.strip().splitlines()[-1])
        report.update(disk_mib=round(disk / MIB, 1), write_s=write_s)
        print(json.dumps(report))


if __name__ == "__main__":
    main()
