"""Run a Decision Transformer in a plain gymnasium loop and in a batch of vector envs.

    python examples/gym_loop.py [CHECKPOINT]   # default: the bundled zoo agent

CHECKPOINT is a zoo entry name, a local folder or a Hub repo id.
"""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np

from seqagents import evaluate_policy, load_agent
from seqagents.zoo import resolve_model


def main(model: str = "halfcheetah-medium") -> None:
    model, _ = resolve_model(model)  # a zoo entry name, a folder or a Hub repo id
    agent = load_agent(model)

    # One env: pass the reward received after the previous action.
    env = agent.make_env()
    obs, _ = env.reset(seed=0)
    reward, done, total = None, False, 0.0
    while not done:
        action, _ = agent.predict(obs, reward=reward)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        done = terminated or truncated
    print(f"single env: return {total:.1f}, final return-to-go {agent.returns_to_go[0]:.1f}")

    # A batch of envs: one predict call per step for all of them.
    envs = gym.vector.SyncVectorEnv([agent.make_env for _ in range(4)])
    agent.reset()
    obs, _ = envs.reset(seed=1)
    rewards, returns = None, np.zeros(4)
    for _ in range(100):
        actions, _ = agent.predict(obs, reward=rewards)
        obs, rewards, *_ = envs.step(actions)
        returns += rewards
    print(f"4 envs, 100 steps: returns {np.round(returns, 1)}")

    # SB3-style evaluation (episodes split across the sub-envs, rewards fed back).
    mean, std = evaluate_policy(agent, envs, n_eval_episodes=4, seed=2)
    print(f"evaluate_policy: {mean:.1f} ± {std:.1f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
