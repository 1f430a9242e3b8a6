"""DT training throughput (samples/s): vectorized window sampler vs the original per-sample loop.

Both variants run the same Trainer step (paper model: 3 layers, 1 head, H=128, K=20, batch 64,
AdamW + warmup + grad clip 0.25, same initial weights) on the same synthetic HalfCheetah-size
dataset, on CPU, side by side in one run (rounds alternate, the median round is reported):

  ours:      WindowSampler.windows_at on start indices drawn from the step's generator
             (RTG, timesteps and normalized states precomputed once, one gather per field);
  reference: seqagents.data.windows.sample_per_sample_reference, a port of the original
             ``get_batch`` (kzl/decision-transformer gym/experiment.py): one Python iteration
             per window, RTG recomputed per window with the original ``discount_cumsum`` loop,
             numpy output converted to tensors every step.

The dataset has 200k transitions in 1000-step episodes (D4RL halfcheetah-medium has 1M; building
and holding 1M is slower and does not change the per-window cost of either sampler: the
reference's RTG loop depends on the episode length, 1000 in both). Target (issue 4): ours >= 1.5x.

What to expect: the sampler is ~40x faster than the per-sample loop (~0.6 vs ~23 ms per batch of
64), but on CPU the paper model's training step itself takes ~0.2-0.5 s, so the end-to-end ratio
there is close to 1x; the sampler matters where the step is fast (GPU, ``--device cuda``: the
reference batch is then built on the CPU and copied over every step, as in the original).

    python benchmarks/train_throughput.py [--steps 20] [--rounds 3] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

from seqagents.data import TrajectoryData, WindowSampler
from seqagents.data.windows import sample_per_sample_reference
from seqagents.models.dt import DecisionTransformer, DTConfig
from seqagents.training import TrainConfig, Trainer, dt_loss


def make_data(
    n_transitions: int, episode_len: int = 1000, obs_dim: int = 17, act_dim: int = 6, seed: int = 0
) -> TrajectoryData:
    """Random HalfCheetah-shaped data (the samplers' cost does not depend on the values)."""
    rng = np.random.default_rng(seed)
    n = n_transitions - n_transitions % episode_len
    return TrajectoryData(
        observations=rng.normal(size=(n, obs_dim)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        terminals=np.zeros(n, bool),
        episode_starts=np.arange(0, n + 1, episode_len),
        observation_space=gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64),
        action_space=gym.spaces.Box(-1, 1, (act_dim,), np.float32),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=200_000)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (amp off either way)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    data = make_data(args.transitions)
    model_config = DTConfig(state_shape=(17,), act_dim=6)  # paper: 3L, 1 head, H=128, K=20
    sampler = WindowSampler(data, model_config.context_len, return_scale=1000.0, device=args.device)
    stats, K = sampler.stats, model_config.context_len
    print(
        f"dataset: {data.n_transitions} transitions, {data.n_episodes} episodes "
        f"(built in {time.perf_counter() - start:.1f}s)"
    )

    def ours(batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        return sampler.windows_at(rng.integers(0, sampler.n_transitions, size=batch_size))

    def reference(batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        return sample_per_sample_reference(data, K, batch_size, stats, rng=rng)

    variants = {"ours (vectorized)": ours, "reference (per-sample)": reference}
    torch.manual_seed(0)
    initial = DecisionTransformer(model_config)
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        log_every=args.steps,
        checkpoint_every=0,
        device=args.device,
        amp="off",
    )

    def run(sample_fn, steps: int) -> float:
        network = copy.deepcopy(initial)
        trainer = Trainer(
            network,
            dt_loss,
            sample_fn,
            TrainConfig(**{**config.to_dict(), "steps": steps}),
            progress_bar=False,
        )
        begin = time.perf_counter()
        trainer.train()  # ends with a host sync (the loss is read at the last step)
        return steps * args.batch_size / (time.perf_counter() - begin)

    for sample_fn in variants.values():
        run(sample_fn, 3)  # warm-up: imports, allocator, first-call overheads
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, sample_fn in variants.items():
            rates[name].append(run(sample_fn, args.steps))

    sampling_ms = {}
    for name, sample_fn in variants.items():
        rng = np.random.default_rng(0)
        begin = time.perf_counter()
        for _ in range(20):
            batch = sample_fn(args.batch_size, rng)
            batch = {key: value.to(args.device) for key, value in batch.items()}
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        sampling_ms[name] = (time.perf_counter() - begin) / 20 * 1e3

    print(
        f"\nDT training throughput, {args.device} ({args.threads} CPU thread(s)), paper model "
        f"3L/128/K{K}, batch {args.batch_size}, {args.rounds} rounds x {args.steps} steps; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"{'variant':<26}{'samples/s (median)':>20}{'min':>10}{'max':>10}"
        f"{'ms/step':>10}{'sampling ms/batch':>20}"
    )
    for name in variants:
        median = statistics.median(rates[name])
        print(
            f"{name:<26}{median:>20.0f}{min(rates[name]):>10.0f}{max(rates[name]):>10.0f}"
            f"{args.batch_size / median * 1e3:>10.1f}{sampling_ms[name]:>20.2f}"
        )
    ratio = statistics.median(rates["ours (vectorized)"]) / statistics.median(
        rates["reference (per-sample)"]
    )
    print(
        f"\nratio ours / reference: {ratio:.2f}x (target >= 1.5x); sampling alone: "
        f"{sampling_ms['reference (per-sample)'] / sampling_ms['ours (vectorized)']:.0f}x"
    )
    print(
        "Caveat: shared machine; other jobs change absolute numbers, rounds alternate so both "
        "variants see the same load."
    )


if __name__ == "__main__":
    main()
