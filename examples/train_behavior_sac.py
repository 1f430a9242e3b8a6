"""Train the SAC behaviour policy that generates the local ``halfcheetah/medium`` dataset.

D4RL's "medium" data came from a SAC policy stopped at about one third of expert performance
(Fu et al. 2020, section 5). We train SAC on ``HalfCheetah-v5`` with stable-baselines3's defaults
(rl-baselines3-zoo ``hyperparams/sac.yml``: ``learning_starts=10000``), save a checkpoint every
``--save-every`` steps, score each one on a few episodes with sampled (stochastic) actions — the
actions the dataset will contain — and log the scores to ``scores.csv``. Pick the checkpoint whose
stochastic return is closest to D4RL's medium level (about 4,800) and ship it in ``zoo/``.

Usage::

    python examples/train_behavior_sac.py --steps 200000 --out runs/sac-halfcheetah
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback


def _score(model: SAC, env_id: str, episodes: int, deterministic: bool, seed: int) -> float:
    env = gym.make(env_id)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=deterministic)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


class _SaveAndScore(BaseCallback):
    def __init__(self, out: Path, every: int, env_id: str, episodes: int) -> None:
        super().__init__()
        self.out, self.every, self.env_id, self.episodes = out, every, env_id, episodes
        self.start = time.time()

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every:
            return True
        path = self.out / f"sac_{self.num_timesteps}.zip"
        self.model.save(path)
        stochastic = _score(self.model, self.env_id, self.episodes, False, 10_000)
        deterministic = _score(self.model, self.env_id, self.episodes, True, 10_000)
        with open(self.out / "scores.csv", "a", newline="") as f:
            csv.writer(f).writerow(
                [
                    self.num_timesteps,
                    f"{stochastic:.1f}",
                    f"{deterministic:.1f}",
                    f"{time.time() - self.start:.0f}",
                ]
            )
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--save-every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/sac-halfcheetah"))
    args = parser.parse_args()

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "scores.csv", "w", newline="") as f:
        csv.writer(f).writerow(["step", "stochastic_return", "deterministic_return", "seconds"])
    model = SAC(
        "MlpPolicy",
        gym.make(args.env),
        learning_starts=10_000,
        seed=args.seed,
        device="cpu",
        verbose=0,
    )
    model.learn(
        args.steps, callback=_SaveAndScore(args.out, args.save_every, args.env, args.eval_episodes)
    )


if __name__ == "__main__":
    main()
