"""Old-gym and SB3 habits get errors that name the fix (issue 28 item 4): ``predict(env.reset())``,
the reward passed by position (where SB3 has ``state``), a new episode without ``reset()``."""

from __future__ import annotations

import numpy as np
import pytest

from seqagents import load_agent
from tests.test_dt_agent import CountingEnv, tiny_agent


def test_reset_tuple_names_the_unpacking():
    env = CountingEnv()
    agent = tiny_agent(env)
    with pytest.raises(ValueError, match=r"obs, info = env\.reset\(\)"):
        agent.predict(env.reset(seed=0))
    obs, _ = env.reset(seed=0)
    agent.predict(obs)  # unpacked: fine


def test_reset_tuple_of_a_babyai_env_names_the_unpacking():
    agent = load_agent("leap/babyai-gotolocal-s7n5", device="cpu")
    with pytest.raises(ValueError, match=r"obs, info = env\.reset\(\)"):
        agent.predict(agent.make_env().reset(seed=0))


@pytest.mark.parametrize("reward", [1.5, np.float32(2.0), 3, np.array([1.0]), [1.0]])
def test_reward_by_position_names_the_keyword(reward):
    env = CountingEnv()
    agent = tiny_agent(env)
    obs, _ = env.reset(seed=0)
    agent.predict(obs)
    obs, r, *_ = env.step(np.zeros(1))
    with pytest.raises(ValueError, match=r"SB3's `state`.*predict\(obs, reward=r\)"):
        agent.predict(obs, reward)
    action, state = agent.predict(obs, None, reward=r)  # by keyword: fine
    assert state is None and action.shape == (1,)


def test_new_episode_without_reset_names_reset_and_episode_start():
    env = CountingEnv(length=3)
    agent = tiny_agent(env)
    obs, _ = env.reset(seed=0)
    reward, done = None, False
    while not done:
        action, _ = agent.predict(obs, reward=reward)
        obs, reward, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    obs, _ = env.reset(seed=1)  # a second episode, the agent not told
    with pytest.raises(ValueError, match=r"agent\.reset\(\).*episode_start=True"):
        agent.predict(obs)
    agent.reset()
    agent.predict(obs)  # what the message says works
    agent.predict(obs, episode_start=True)  # and so does the other way
