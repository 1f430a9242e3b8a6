"""Where one Trajectory Transformer training step spends its time (issue 24, item 2).

The zoo's TT run (``zoo/tt.yml`` ``tt/halfcheetah-medium``: the paper model, 4 layers x 4 heads x
128, N = 100 bins, 25 tokens per transition, batch 64, 5-transition windows = 124 tokens) on
HalfCheetah-size random tokens (1M transitions, as the collected data), CPU. Each step is split
into the parts the trainer runs, each timed on its own (median over the steps of a round):

  sample:    ``seqagents.training.tt.window_sampler``, the trainer's own (uniform starts over
             1M windows, one gather of (B, L * D) tokens);
  forward:   forward pass + weighted cross-entropy (``TrajectoryTransformer.loss``);
  backward:  ``loss.backward()``;
  optimizer: grad-norm clipping + AdamW step.

fp32 and bf16 autocast (``TrainConfig.amp``) run in alternating rounds, so both see the same load.
``--profile`` adds the torch profiler's top operators of one fp32 step.

    OMP_NUM_THREADS=1 python benchmarks/tt_train_step.py [--steps 10] [--rounds 2] [--device cpu]
        [--profile]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from seqagents.models.tt import TrajectoryTransformer, TTConfig
from seqagents.training.tt import window_sampler

PARTS = ("sample", "forward", "backward", "optimizer")


def build(batch_size: int, transitions: int, n_rows: int, device: torch.device, seed: int = 0):
    """The zoo run's model, optimizer, token table and sampler on random tokens."""
    torch.manual_seed(seed)
    config = TTConfig(block_size=transitions * 25 - 1, attn_dropout=0.0)  # zoo/tt.yml
    model = TrajectoryTransformer(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1)
    rng = np.random.default_rng(seed)
    tokens = torch.as_tensor(rng.integers(0, 100, size=(n_rows, 25)), device=device)  # (N, D)
    windows = window_sampler(tokens, np.arange(0, n_rows + 1, 1000), transitions)

    def sample(generator: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        batch = windows(batch_size, generator)
        return batch["tokens"], batch["targets"]  # (B, L * D - 1) each

    return model, optimizer, sample


def timed_step(model, optimizer, sample, generator, amp: bool) -> dict[str, float]:
    device = next(model.parameters()).device

    def now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    times = {}
    t0 = now()
    tokens, targets = sample(generator)
    t1 = now()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        loss = model.loss(tokens, targets)  # ()
    t2 = now()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    t3 = now()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    t4 = now()
    times.update(sample=t1 - t0, forward=t2 - t1, backward=t3 - t2, optimizer=t4 - t3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--transitions", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model, optimizer, sample = build(args.batch_size, args.transitions, args.rows, device)
    generator = np.random.default_rng(1)
    model.train()
    for amp in (False, True):  # warm-up
        timed_step(model, optimizer, sample, generator, amp)
    results: dict[str, list[dict[str, float]]] = {"fp32": [], "bf16": []}
    for _ in range(args.rounds):
        for name, amp in (("fp32", False), ("bf16", True)):
            results[name] += [timed_step(model, optimizer, sample, generator, amp)
                              for _ in range(args.steps)]  # fmt: skip
    tokens = args.transitions * 25 - 1
    print(
        f"TT training step, batch {args.batch_size} x {tokens} tokens, {args.device}, "
        f"{args.threads} thread(s); median ms over {args.rounds} x {args.steps} steps"
    )
    for name, steps in results.items():
        medians = {part: 1000 * statistics.median(s[part] for s in steps) for part in PARTS}
        total = sum(medians.values())
        shares = ", ".join(f"{p} {medians[p]:.1f} ({100 * medians[p] / total:.0f}%)" for p in PARTS)
        print(f"{name}: step {total:.1f} ms = {shares}")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            timed_step(model, optimizer, sample, generator, False)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
