"""Score a seqagents agent with Stable-Baselines3's own ``evaluate_policy``, unchanged.

``SB3Adapter`` wraps a VecEnv so that every step's rewards and dones reach ``agent.observe``;
SB3 then calls ``agent.predict(obs, state, episode_start, deterministic)`` as for its own models.

    python examples/sb3_evaluate.py [CHECKPOINT]
"""

from __future__ import annotations

import sys

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy as sb3_evaluate_policy

from seqagents import SB3Adapter, evaluate_policy, load_agent
from seqagents.zoo import resolve_model


def main(model: str = "halfcheetah-medium") -> None:
    model, _ = resolve_model(model)  # a zoo entry name, a folder or a Hub repo id
    agent = load_agent(model)
    venv = make_vec_env(agent.make_env, n_envs=2, seed=0)
    sb3 = sb3_evaluate_policy(
        agent, SB3Adapter(agent, venv), n_eval_episodes=2, return_episode_rewards=True
    )
    venv = make_vec_env(agent.make_env, n_envs=2, seed=0)
    ours = evaluate_policy(agent, venv, n_eval_episodes=2, return_episode_rewards=True)
    print(f"SB3 evaluate_policy: {sb3[0]}\nseqagents evaluate_policy: {ours[0]}")


if __name__ == "__main__":
    main(*sys.argv[1:])
