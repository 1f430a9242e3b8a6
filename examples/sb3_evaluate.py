"""Score any seqagents agent (DT, TT, LEAP) with Stable-Baselines3's own ``evaluate_policy``.

``SB3Adapter`` wraps a VecEnv so that every step's rewards and dones reach ``agent.observe``;
SB3 then calls ``agent.predict(obs, state, episode_start, deterministic)`` as for its own models.
SB3's VecEnvs hold numpy arrays only: BabyAI's mission text becomes word ids of the agent's
vocabulary (``MissionTokens``), which the agents read as they read the text.

    python examples/sb3_evaluate.py [CHECKPOINT] [--max-steps N]
"""

from __future__ import annotations

import argparse

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy as sb3_evaluate_policy

from seqagents import MissionTokens, SB3Adapter, evaluate_policy, load_agent
from seqagents.zoo import resolve_model


def main(model: str = "dt/halfcheetah-medium", max_steps: int | None = None) -> None:
    model, _ = resolve_model(model)  # a zoo entry name, a folder or a Hub repo id
    agent = load_agent(model)
    env_kwargs = {} if max_steps is None else {"max_episode_steps": max_steps}

    def make_env():
        env = agent.make_env(**env_kwargs)
        if agent.mission_vocabulary is not None:  # BabyAI: mission text -> word ids
            env = MissionTokens(env, agent.mission_vocabulary)
        return env

    venv = make_vec_env(make_env, n_envs=2, seed=0)
    agent.seed(0)  # the agent's sampling/planning streams too: both loops see the same episodes
    sb3 = sb3_evaluate_policy(
        agent, SB3Adapter(agent, venv), n_eval_episodes=2, return_episode_rewards=True
    )
    venv = make_vec_env(make_env, n_envs=2, seed=0)
    ours = evaluate_policy(agent, venv, n_eval_episodes=2, return_episode_rewards=True, seed=0)
    print(f"SB3 evaluate_policy: {sb3[0]}\nseqagents evaluate_policy: {ours[0]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", default="dt/halfcheetah-medium")
    parser.add_argument("--max-steps", type=int, default=None, help="cut episodes after N steps")
    args = parser.parse_args()
    main(args.model, args.max_steps)
