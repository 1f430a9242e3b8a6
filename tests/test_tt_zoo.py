"""The bundled Trajectory Transformer (``zoo/checkpoints/tt-halfcheetah-medium``, trained here on
``local/halfcheetah/medium-v0``): it loads offline with its discretizer inside, round-trips
save -> load -> the same plan, and plans HalfCheetah steps in a gym loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqagents import TrajectoryTransformerAgent, evaluate_policy, load_agent
from seqagents.scores import normalized_score
from seqagents.zoo import get_entry, zoo_dir

NAME = "tt/halfcheetah-medium"


@pytest.fixture(scope="module")
def agent() -> TrajectoryTransformerAgent:
    return load_agent(NAME, device="cpu")


def test_the_entry_loads_its_bundled_folder_offline(monkeypatch, agent):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry = get_entry(NAME)
    folder = zoo_dir() / entry.checkpoint.path
    assert entry.checkpoint_location() == str(folder)  # the bundle, not the Hub
    assert entry.checkpoint.alternative  # the Hub id stays as the alternative
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size <= 15 * 2**20, f"{folder} holds {size / 2**20:.1f} MB (limit 15)"
    assert isinstance(agent, TrajectoryTransformerAgent)
    # the discretizer travels inside: one column per observation, action, reward and value
    assert agent.discretizer.n_columns == 17 + 6 + 2
    assert torch.isfinite(agent.discretizer.thresholds).all()
    # the planner is the paper's (and the entry's): beam 32, horizon 5
    assert (agent.planner.beam_width, agent.planner.horizon) == (32, 5)


def _first_plan(agent: TrajectoryTransformerAgent, obs: np.ndarray):
    agent.seed(0)
    agent.reset()
    action, _ = agent.predict(obs)
    return action, agent.last_plan


def test_save_and_load_give_the_same_plan(tmp_path, agent):
    env = agent.make_env()
    obs, _ = env.reset(seed=0)
    env.close()
    action, plan = _first_plan(agent, obs)
    agent.save_pretrained(tmp_path)
    again = TrajectoryTransformerAgent.from_pretrained(str(tmp_path), device="cpu")
    action2, plan2 = _first_plan(again, obs)
    np.testing.assert_array_equal(action, action2)
    assert plan.tokens.tolist() == plan2.tokens.tolist()
    assert float(plan.value) == float(plan2.value)


def test_the_bundled_tt_plans_halfcheetah_steps(agent):
    env = agent.make_env()
    obs, _ = env.reset(seed=1)
    agent.seed(1)
    agent.reset()
    reward, total = None, 0.0
    for _ in range(3):
        action, _ = agent.predict(obs, reward=reward)
        assert env.action_space.contains(action.astype(np.float32))
        obs, reward, terminated, truncated, _ = env.step(action)
        total += reward
        assert not (terminated or truncated)
    env.close()
    summary = agent.plan_summary()
    assert summary and "reward" in summary
    assert np.isfinite(total)


@pytest.mark.slow
def test_the_bundled_tt_plays_a_full_episode_near_its_stored_score(agent):
    env = agent.make_env()
    returns, lengths = evaluate_policy(
        agent, env, n_eval_episodes=1, seed=0, return_episode_rewards=True
    )
    env.close()
    assert lengths == [1000]
    score = normalized_score(returns[0], "HalfCheetah-v5")
    assert score > 30.0, f"one episode scored {score:.1f} normalized"
