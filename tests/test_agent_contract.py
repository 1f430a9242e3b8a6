"""The agent contract, for DT, TT and LEAP alike, on tiny random-weight models (issue 27):

- save → load acts the same (``save_pretrained`` then ``load_agent``, same seed, same actions);
- a batch of envs acts as the same envs one by one (env ``i`` of a batch plans with the stream
  ``seed + i``, see ``SequenceAgent.seed``);
- ``episode_start[i]`` clears env ``i``'s context and leaves the other envs' alone.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest

from seqagents import LEAPAgent, SequenceAgent, load_agent
from tests.test_agent_safeguards import dt_agent, tt_agent

SEED = 7
STEPS = 6
RESTART = 3  # the step at which an env begins a new episode (within every env's first episode)


def leap_agent() -> LEAPAgent:
    """A tiny LEAP with history steps in its window, its states scaled up (CartPole's first states
    are within ±0.05) and its plans' energies tracked: a random LEAP picks the same actions
    for many contexts, so :func:`_run` compares the energies too (a kept context shows there)."""
    env = gym.make("CartPole-v1")
    return LEAPAgent.create(
        env.observation_space,
        env.action_space,
        env_id="CartPole-v1",
        state_mean=np.zeros(4),
        state_std=np.full(4, 0.02),
        horizon=4,
        history_len=2,
        n_layer=1,
        hidden_size=32,
        n_head=2,
        planner={"n_iterations": 3, "track_energy": True},
        device="cpu",
        seed=0,
    )


AGENTS: dict[str, tuple[Callable[[], SequenceAgent], str]] = {
    "dt": (dt_agent, "Pendulum-v1"),
    "tt": (tt_agent, "Pendulum-v1"),
    "leap": (leap_agent, "CartPole-v1"),
}


def _agent(name: str, seed: int = SEED) -> tuple[SequenceAgent, str]:
    build, env_id = AGENTS[name]
    agent = build()
    agent.seed(seed)
    return agent, env_id


def _run(
    agent: SequenceAgent,
    env_id: str,
    env_seeds: list[int],
    restart: dict[int, int] | None = None,
) -> np.ndarray:
    """Actions ``(STEPS, n_envs, act_dim)`` of ``agent`` driving one env per seed (LEAP: with each
    plan's final energy as one more column): batched input for several envs, one env's unbatched
    observation for one. ``restart`` maps env index -> the seed it is reset with at step
    ``RESTART`` (with ``episode_start`` True there)."""
    envs = [gym.make(env_id) for _ in env_seeds]
    obs = [env.reset(seed=seed)[0] for env, seed in zip(envs, env_seeds, strict=True)]
    n, rewards, actions = len(envs), None, []
    agent.reset()
    for step in range(STEPS):
        starts = np.zeros(n, dtype=bool)
        if step == RESTART:
            for i, seed in (restart or {}).items():
                obs[i], starts[i] = envs[i].reset(seed=seed)[0], True
                rewards[i] = 0.0  # ignored: env i begins a new episode
        if n == 1:
            reward = None if rewards is None else float(rewards[0])
            action, _ = agent.predict(obs[0], episode_start=bool(starts[0]), reward=reward)
            action = np.asarray(action)[None]  # (1, ...)
        else:
            action, _ = agent.predict(np.stack(obs), episode_start=starts, reward=rewards)
        row = np.asarray(action, dtype=np.float64).reshape(n, -1)  # (n, act_dim)
        if isinstance(agent, LEAPAgent):
            energy = np.full((n, 1), np.nan)
            energy[agent.last_plan_envs, 0] = np.asarray(agent.last_plan.energy)[:, -1]
            row = np.concatenate([row, energy], axis=1)  # (n, act_dim + 1)
        actions.append(row)
        rewards = np.zeros(n)
        for i, env in enumerate(envs):
            discrete = isinstance(env.action_space, gym.spaces.Discrete)
            obs[i], rewards[i], terminated, truncated, _ = env.step(
                int(action[i]) if discrete else action[i]
            )
            assert not (terminated or truncated), "the contract runs stay within one episode"
    return np.stack(actions)


@pytest.mark.parametrize("name", list(AGENTS))
def test_save_then_load_acts_the_same(name: str, tmp_path) -> None:
    agent, env_id = _agent(name)
    before = _run(agent, env_id, [0, 1])
    agent.save_pretrained(tmp_path / "ckpt")
    loaded = load_agent(tmp_path / "ckpt", device="cpu")
    assert type(loaded) is type(agent)
    loaded.seed(SEED)
    np.testing.assert_array_equal(_run(loaded, env_id, [0, 1]), before)


@pytest.mark.parametrize("name", list(AGENTS))
def test_a_batch_acts_as_its_envs_one_by_one(name: str) -> None:
    agent, env_id = _agent(name)
    batched = _run(agent, env_id, [0, 1, 2])
    for i in range(3):
        single, _ = _agent(name, seed=SEED + i)  # env i of a batch: the stream seed + i
        np.testing.assert_allclose(batched[:, i], _run(single, env_id, [i])[:, 0], atol=1e-5)


@pytest.mark.parametrize("name", list(AGENTS))
def test_an_episode_start_clears_only_that_env(name: str) -> None:
    agent, env_id = _agent(name)
    batched = _run(agent, env_id, [0, 1], restart={1: 50})
    # Env 0 goes on as if nothing happened next to it.
    alone, _ = _agent(name)
    np.testing.assert_allclose(batched[:, 0], _run(alone, env_id, [0])[:, 0], atol=1e-5)
    # Env 1's new episode forgets what came before: an agent whose first episode was another
    # env's (seed 99) acts the same from the new start on (same planning stream: seed + 1).
    other, _ = _agent(name, seed=SEED + 1)
    restarted = _run(other, env_id, [99], restart={0: 50})
    np.testing.assert_allclose(batched[RESTART:, 1], restarted[RESTART:, 0], atol=1e-5)
