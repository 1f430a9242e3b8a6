"""Slow tier: the bundled zoo agent, full episodes (`make test-slow`)."""

from __future__ import annotations

import gymnasium as gym
import pytest

from seqagents import evaluate_policy, load_agent, normalized_score
from seqagents.zoo import get_entry


@pytest.mark.slow
def test_bundled_halfcheetah_agent_scores_at_least_35_normalized():
    entry = get_entry("dt/halfcheetah-medium")
    agent = load_agent(entry.checkpoint_location(), device="cpu")
    envs = gym.vector.SyncVectorEnv([agent.make_env for _ in range(3)])
    for target in entry.evaluation.target_returns:
        returns, lengths = evaluate_policy(
            agent,
            envs,
            n_eval_episodes=3,
            seed=100,
            target_return=target,
            return_episode_rewards=True,
        )
        assert lengths == [1000, 1000, 1000]
        assert normalized_score(sum(returns) / 3, entry.env_id) >= 35.0
