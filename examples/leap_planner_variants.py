"""Evaluate a LEAP checkpoint under planner variants, among them the official code's PickupLoc
quirks, on the zoo's BabyAI protocol (200 episodes from seed 1,000,000, greedy, one env).

    python examples/leap_planner_variants.py MODEL VARIANT[,VARIANT...] [--episodes N]

MODEL is a zoo entry name (``leap/babyai-pickuploc-privileged``), a folder or a Hub repo id.
A VARIANT joins options with ``+`` (``base`` = the checkpoint's own planner):

- ``it1`` / ``it30``: 1 (no refinement) / 30 model calls per plan;
- ``re1``: execute one action per plan (replan every step) instead of ``replan_every``;
- ``rh``: the official PickupLoc planner: each plan executes a uniform random 1..H of its steps
  (``leap_sample_multi_step`` draws the horizon ``randint(1, H)``), drawn from the env's
  planning generator; the plan itself is the H-step one;
- ``rhpad``: as ``rh``, but the plan is made over those h steps only (PAD after them);
- ``toff``: the official timestep of a plan, ``t + H`` (training used ``t``).

One JSON line per variant: success rate (%), mean return and length, wall seconds.
The variants subclass :class:`~seqagents.LEAPAgent` here; none is a library option.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from seqagents.agents.leap import LEAPAgent
from seqagents.envs import make_env
from seqagents.evaluation import evaluate_policy
from seqagents.zoo import resolve_model


class VariantLEAP(LEAPAgent):
    """LEAPAgent with the official code's random horizon and timestep offset as switches."""

    random_horizon = False  # rh
    pad_tail = False  # rhpad
    time_offset = 0  # toff: H

    def _replan(self, envs: np.ndarray, deterministic: bool) -> None:
        if self.time_offset:
            self._t += self.time_offset
        try:
            if not self.random_horizon:
                return super()._replan(envs, deterministic)
            H = self.replan_every
            streams = self._planning_streams(self.n_envs)
            hs = {int(i): int(torch.randint(1, H + 1, (1,), generator=streams[i])) for i in envs}
            if self.pad_tail:  # plan h steps only, one env at a time
                for i in map(int, envs):
                    full = self._plan
                    planner = self.planner.replace(horizon=hs[i])
                    self._plan = full[:, : hs[i]].clone()
                    try:
                        super()._replan(np.array([i]), deterministic, planner)
                        row = self._plan[i]
                    finally:
                        self._plan = full
                    self._plan[i] = self.model_config.pad_id
                    self._plan[i, : hs[i]] = row
            else:
                super()._replan(envs, deterministic)
            for i in map(int, envs):  # execute plan[:h]: shift it to the slots [H - h, H)
                self._plan[i] = torch.roll(self._plan[i], H - hs[i])
                self._plan_step[i] = H - hs[i]
        finally:
            if self.time_offset:
                self._t -= self.time_offset


def evaluate_variant(model: str, variant: str, episodes: int, seed: int) -> dict:
    parts = set(variant.split("+"))
    unknown = parts - {"base", "it1", "it30", "re1", "rh", "rhpad", "toff"}
    if unknown:
        raise SystemExit(f"unknown variant option(s) {sorted(unknown)}")
    override: dict = {}
    if parts & {"it1", "it30"}:
        override["n_iterations"] = 1 if "it1" in parts else 30
    if "re1" in parts:
        override["replan_every"] = 1
    agent = VariantLEAP.from_pretrained(model, device="cpu", **override)
    agent.random_horizon = bool(parts & {"rh", "rhpad"})
    agent.pad_tail = "rhpad" in parts
    agent.time_offset = agent.model_config.horizon if "toff" in parts else 0
    env = make_env(agent.env_id, **agent.spec.env_kwargs)
    start = time.perf_counter()
    returns, lengths = evaluate_policy(
        agent, env, n_eval_episodes=episodes, deterministic=True, return_episode_rewards=True,
        seed=seed,
    )  # fmt: skip
    env.close()
    returns = np.asarray(returns)
    return {
        "model": model,
        "variant": variant,
        "success": round(100 * float((returns > 0).mean()), 1),
        "mean_return": round(float(returns.mean()), 3),
        "mean_length": round(float(np.mean(lengths)), 1),
        "episodes": len(returns),
        "seed": seed,
        "wall_s": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("variants", help="comma-separated, e.g. base,rh,it1+re1")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1_000_000)
    args = parser.parse_args()
    model, _ = resolve_model(args.model)
    for variant in args.variants.split(","):
        print(json.dumps(evaluate_variant(model, variant, args.episodes, args.seed)), flush=True)


if __name__ == "__main__":
    main()
