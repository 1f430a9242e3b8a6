"""Run any seqagents agent (DT, TT, LEAP) in a plain gymnasium loop and in a batch of vector envs.

    python examples/gym_loop.py [CHECKPOINT] [--max-steps N]   # default: the bundled zoo agent

CHECKPOINT is a zoo entry name (``dt/halfcheetah-medium``, ``leap/babyai-gotolocal-s7n5``,
``dt/breakout``, ...), a local folder or a Hub repo id; ``--max-steps`` cuts every episode after
N steps (a quick look).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

from seqagents import EpisodeStarts, evaluate_policy, load_agent
from seqagents.zoo import resolve_model


def main(model: str = "dt/halfcheetah-medium", max_steps: int | None = None) -> None:
    model, _ = resolve_model(model)  # a zoo entry name, a folder or a Hub repo id
    agent = load_agent(model)
    env_kwargs = {} if max_steps is None else {"max_episode_steps": max_steps}

    def make_env():
        return agent.make_env(**env_kwargs)

    # One env: pass the reward received after the previous action.
    env = make_env()
    obs, _ = env.reset(seed=0)
    reward, done, total = None, False, 0.0
    while not done:
        action, _ = agent.predict(obs, reward=reward)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        done = terminated or truncated
    # DT and return-conditioned LEAP (Atari) track a return-to-go; TT and BabyAI LEAP do not.
    rtg = getattr(agent, "returns_to_go", None)
    tail = "" if rtg is None else f", final return-to-go {rtg[0]:.1f}"
    print(f"single env: return {total:.1f}{tail}")

    # A batch of envs: one predict call per step for all of them, until each env has run one
    # full episode. gymnasium's vector envs autoreset on the step *after* a done (NEXT_STEP):
    # that step returns the old episode's last observation and the next one only resets.
    # EpisodeStarts gives the right episode_start for every autoreset mode (SB3's habit
    # `episode_start = dones` would feed the reset step into the new episode's context).
    envs = gym.vector.SyncVectorEnv([make_env for _ in range(4)])
    starts = EpisodeStarts(envs)
    agent.reset()
    obs, _ = envs.reset(seed=1)
    episode_start, rewards = starts.reset(), None
    returns, finished = np.zeros(4), np.zeros(4, dtype=bool)
    while not finished.all():
        actions, _ = agent.predict(obs, episode_start=episode_start, reward=rewards)
        obs, rewards, terminated, truncated, _ = envs.step(actions)
        returns += np.where(finished, 0.0, rewards)  # count each env's first episode only
        finished |= terminated | truncated
        episode_start = starts.update(terminated, truncated)
    print(f"4 envs, one full episode each: returns {np.round(returns, 1)}")

    # SB3-style evaluation (episodes split across the sub-envs, rewards fed back).
    mean, std = evaluate_policy(agent, envs, n_eval_episodes=4, seed=2)
    print(f"evaluate_policy: {mean:.1f} ± {std:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", default="dt/halfcheetah-medium")
    parser.add_argument("--max-steps", type=int, default=None, help="cut episodes after N steps")
    args = parser.parse_args()
    main(args.model, args.max_steps)
