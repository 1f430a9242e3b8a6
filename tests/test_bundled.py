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


@pytest.mark.slow
@pytest.mark.parametrize("name", ["leap/babyai-gotolocal-s7n5-privileged"])
def test_bundled_leap_babyai_agent_succeeds_on_80_percent(name):
    entry = get_entry(name)
    location = entry.checkpoint_location()
    assert location is not None, f"{name} has no bundled checkpoint"
    agent = load_agent(location, device="cpu")
    returns, _ = evaluate_policy(
        agent, agent.make_env(), n_eval_episodes=50, seed=2_000_000, return_episode_rewards=True
    )
    assert sum(r > 0 for r in returns) >= 40  # >= 80% of 50 episodes
