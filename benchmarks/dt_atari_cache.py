"""DT-Atari ``predict``: the per-frame embedding cache against re-encoding the window (CPU).

The paper's Atari DT (6 layers, 8 heads, H=128, K=30, Nature CNN on 4x84x84 uint8 frames,
DT-Atari position scheme). Ours: ``DecisionTransformerAgent.predict``, which encodes each new
frame once and keeps its embedding in the rolling context. Re-encoding: what an agent without the
cache does every step -- push the raw frame into a K-step window and run ``network.act`` on the
whole window (K CNN passes per step). Both produce the same actions (tests/test_observations.py);
rounds alternate so background load hits both alike. Target (issue 11): >= 1.8x at batch 1 on one
CPU thread.

    python benchmarks/dt_atari_cache.py [--steps 60] [--rounds 3] [--threads 1] [--bf16]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

from seqagents import DecisionTransformerAgent
from seqagents.context import RollingContext


def make_agent() -> DecisionTransformerAgent:
    return DecisionTransformerAgent.create(
        gym.spaces.Box(0, 255, (4, 84, 84), np.uint8),
        gym.spaces.Discrete(4),
        hidden_size=128,
        n_layer=6,
        n_head=8,
        context_len=30,
        max_ep_len=10_000,
        position_scheme="global",
        embedding_tanh=True,
        embed_layernorm=False,
        return_scale=1.0,
        target_return=90.0,
        device="cpu",
        seed=0,
    )


def time_cached(agent: DecisionTransformerAgent, frames: np.ndarray) -> float:
    agent.reset()
    start = time.perf_counter()
    for t, frame in enumerate(frames):
        agent.predict(frame, reward=None if t == 0 else 0.0)
    return (time.perf_counter() - start) / len(frames)


@torch.inference_mode()
def time_reencode(agent: DecisionTransformerAgent, frames: np.ndarray) -> float:
    net, K = agent.network, agent.model_config.context_len
    ctx = RollingContext(
        1,
        K,
        {
            "states": ((4, 84, 84), torch.uint8),
            "actions": ((), torch.long),
            "returns_to_go": ((1,), torch.float32),
            "timesteps": ((), torch.long),
        },
        "cpu",
    )
    start = time.perf_counter()
    for t, frame in enumerate(frames):
        ctx.push(
            states=torch.as_tensor(frame)[None],
            actions=0,
            returns_to_go=torch.full((1, 1), 90.0),
            timesteps=torch.tensor([t]),
        )
        logits = net.act(ctx["states"], ctx["actions"], ctx["returns_to_go"], ctx["timesteps"],
                         None if t >= K - 1 else ctx.mask)  # fmt: skip
        ctx.set_last("actions", logits.argmax(-1))
    return (time.perf_counter() - start) / len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for both")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    agent = make_agent()
    frames = np.random.default_rng(0).integers(0, 255, (args.steps, 4, 84, 84), dtype=np.uint8)
    cached = reencode = float("inf")
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
        time_cached(agent, frames[:5])  # warm-up
        for _ in range(args.rounds):  # alternate rounds
            cached = min(cached, time_cached(agent, frames))
            reencode = min(reencode, time_reencode(agent, frames))
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {args.steps} steps, best of "
        f"{args.rounds} alternating rounds{', bf16' if args.bf16 else ''}"
    )
    print("| DT-Atari predict, batch 1 | ms/step |")
    print("|---|---|")
    print(f"| per-frame cache (ours) | {1e3 * cached:.1f} |")
    print(f"| re-encoding the window | {1e3 * reencode:.1f} |")
    print(f"| speed-up | {reencode / cached:.2f}x |")


if __name__ == "__main__":
    main()
