"""Datasets: collection with seqagents collect's function, loading, conversion, errors (offline)."""

from __future__ import annotations

import doctest

import gymnasium as gym
import minari
import numpy as np
import pytest

import seqagents.data.collect as collect_module
import seqagents.data.minari_io as minari_io
from seqagents.data import (
    TrajectoryData,
    collect_dataset,
    load_dataset,
    load_trajectories,
    to_trajectory_data,
)

HALFCHEETAH_REF = (-280.178953, 12135.0)  # D4RL constants (docs/references.md section 4)


@pytest.fixture(autouse=True)
def minari_dir(tmp_path, monkeypatch):
    """Every test gets its own empty Minari storage; nothing is downloaded."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def _pendulum_reward(obs: np.ndarray, action: np.ndarray) -> np.ndarray:
    """Pendulum-v1's reward for taking ``action`` in ``obs`` = (cos th, sin th, th_dot)."""
    theta = np.arctan2(obs[:, 1], obs[:, 0])  # already in [-pi, pi]
    torque = np.clip(action[:, 0], -2.0, 2.0)
    return -(theta**2 + 0.1 * obs[:, 2] ** 2 + 0.001 * torque**2)


def test_random_round_trip_aligns_s_a_r():
    dataset = collect_dataset(
        "local/pendulum/random-v0", "Pendulum-v1", "random",
        n_steps=250, n_envs=2, seed=3, progress_bar=False,
        ref_min_score=HALFCHEETAH_REF[0], ref_max_score=HALFCHEETAH_REF[1],
    )  # fmt: skip
    # 250 steps with 2 envs: both 200-step episodes finish, none is cut.
    assert (dataset.total_episodes, dataset.total_steps) == (2, 400)
    metadata = dataset.storage.metadata
    assert metadata["ref_min_score"] == HALFCHEETAH_REF[0]
    assert metadata["algorithm_name"] == "random"

    data = load_trajectories("local/pendulum/random-v0")
    assert data.observations.shape == (400, 3) and data.observations.dtype == np.float32
    assert data.actions.shape == (400, 1) and data.actions.dtype == np.float32
    assert data.rewards.shape == (400,) and data.rewards.dtype == np.float32
    assert data.episode_starts.tolist() == [0, 200, 400]
    assert not data.terminals.any()
    assert np.flatnonzero(data.truncations).tolist() == [199, 399]  # time limit, kept
    assert (data.ref_min_score, data.ref_max_score) == HALFCHEETAH_REF
    assert data.dataset_id == "local/pendulum/random-v0"
    # Row t is (s_t, a_t, r_t): the reward recomputed from (s_t, a_t) matches.
    np.testing.assert_allclose(
        data.rewards, _pendulum_reward(data.observations, data.actions), rtol=1e-4, atol=1e-4
    )
    # The dropped final observation: each stored episode has T + 1, we keep the first T.
    episode = next(iter(dataset.iterate_episodes()))
    np.testing.assert_array_equal(data.observations[:200], episode.observations[:-1])


def test_episode_seeds_make_collection_reproducible():
    first = collect_dataset(
        "local/a-v0", "Pendulum-v1", n_episodes=3, n_envs=2, seed=7, progress_bar=False
    )
    second = collect_dataset(
        "local/b-v0", "Pendulum-v1", n_episodes=3, n_envs=2, seed=7, progress_bar=False
    )
    assert first.total_episodes == 3  # exactly n_episodes, though 2 envs ran
    a, b = to_trajectory_data(first), to_trajectory_data(second)
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_array_equal(a.actions, b.actions)
    # Pendulum's first observation comes from the reset seed: the episodes differ from each other.
    first_obs = a.observations[a.episode_starts[:-1]]
    assert len({tuple(row) for row in first_obs.tolist()}) == 3


def test_sb3_policy_is_replayed_exactly(tmp_path):
    from stable_baselines3 import PPO, SAC

    model = SAC("MlpPolicy", gym.make("Pendulum-v1"), policy_kwargs={"net_arch": [8]}, seed=0)
    model.save(tmp_path / "sac.zip")
    dataset = collect_dataset(
        "local/pendulum/sac-v0", "Pendulum-v1", f"sac:{tmp_path / 'sac.zip'}",
        n_episodes=1, deterministic=True, max_episode_steps=30, progress_bar=False,
        trust_policy_file=True,
    )  # fmt: skip
    assert dataset.storage.metadata["algorithm_name"].startswith("stable-baselines3 SAC")
    data = to_trajectory_data(dataset)
    assert data.n_transitions == 30 and data.truncations[-1]
    expected, _ = model.predict(data.observations, deterministic=True)
    np.testing.assert_allclose(data.actions, expected, atol=1e-6)

    # Discrete actions; PPO needs its algorithm named (PPO and A2C share a policy class).
    ppo = PPO("MlpPolicy", gym.make("CartPole-v1"), n_steps=8, batch_size=8, seed=0,
              policy_kwargs={"net_arch": [8]})  # fmt: skip
    ppo.save(tmp_path / "ppo.zip")
    with pytest.raises(ValueError, match="ppo:"):
        collect_dataset("local/cp-v0", "CartPole-v1", str(tmp_path / "ppo.zip"), n_steps=5)
    dataset = collect_dataset(
        "local/cartpole/ppo-v0", "CartPole-v1", f"PPO:{tmp_path / 'ppo.zip'}",
        n_steps=5, progress_bar=False, trust_policy_file=True,
    )  # fmt: skip
    data = to_trajectory_data(dataset)
    assert data.is_discrete and data.actions.dtype == np.int64 and data.actions.ndim == 1
    assert data.act_dim == 2 and data.n_transitions >= 5
    assert data.terminals[-1] or data.truncations[-1]

    # A bare zip path: the algorithm is read from the zip; a loaded model works too.
    bare = collect_dataset("local/c-v0", "Pendulum-v1", str(tmp_path / "sac.zip"),
                           n_episodes=1, max_episode_steps=3, progress_bar=False,
                           trust_policy_file=True)  # fmt: skip
    assert bare.total_steps == 3
    direct = collect_dataset("local/d-v0", "Pendulum-v1", model, n_episodes=1,
                             max_episode_steps=3, progress_bar=False)  # fmt: skip
    assert direct.total_steps == 3

    with pytest.raises(ValueError, match="expects observations of shape"):
        collect_dataset("local/e-v0", "CartPole-v1", f"sac:{tmp_path / 'sac.zip'}", n_steps=5,
                        trust_policy_file=True)  # fmt: skip


def test_babyai_bot_dict_observations():
    pytest.importorskip("minigrid")
    dataset = collect_dataset(
        "local/babyai/gotolocal-v0", "BabyAI-GoToLocal-v0", "babyai-bot",
        n_episodes=2, n_envs=2, progress_bar=False,
    )  # fmt: skip
    assert dataset.total_episodes == 2
    for episode in dataset.iterate_episodes():
        steps = len(episode.rewards)
        assert episode.terminations[-1] and episode.rewards[-1] > 0  # the bot solves the level
        assert episode.observations["image"].shape == (steps + 1, 7, 7, 3)
        assert episode.observations["image"].dtype == np.uint8  # stored losslessly
        assert len(set(episode.observations["mission"])) == 1
        assert episode.actions.shape == (steps,)
    data = load_trajectories("local/babyai/gotolocal-v0")  # Dict observations: see test_babyai
    assert data.observations["image"].dtype == np.uint8 and data.mission_vocabulary is not None


def test_missing_dataset_offline_is_fast_and_actionable(monkeypatch):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("mujoco/halfcheetah/medium-v0")
    message = str(info.value)
    for hint in ("mujoco/halfcheetah/medium-v0", "download=True", "seqagents collect",
                 "MINARI_DATASETS_PATH"):  # fmt: skip
        assert hint in message

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr(minari.storage.hosting, "download_dataset", offline)
    with pytest.raises(FileNotFoundError, match="downloading it failed"):
        load_trajectories("mujoco/halfcheetah/medium-v0", download=True)


@pytest.mark.parametrize("bad_id", ["not a dataset id!", "", "mujoco//x-v0"])
def test_malformed_ids(bad_id):
    with pytest.raises(ValueError, match="valid Minari dataset id|non-empty"):
        load_dataset(bad_id)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_empty_dataset_and_unsupported_spaces():
    space = gym.spaces.Box(-1.0, 1.0, (2,))
    empty = minari.create_dataset_from_buffers(
        "local/empty-v0", [], observation_space=space, action_space=space,
        algorithm_name="none", author="test", code_permalink="none", author_email="none",
        description="empty",
    )  # fmt: skip
    with pytest.raises(ValueError, match="no transitions"):
        to_trajectory_data(empty)
    with pytest.raises(ValueError, match="empty"):
        TrajectoryData(
            np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0), np.zeros(0, bool), np.array([0]),
            space, space,
        )  # fmt: skip
    with pytest.raises(ValueError, match="episode_starts"):
        TrajectoryData(
            np.zeros((3, 2)), np.zeros((3, 2)), np.zeros(3), np.zeros(3, bool),
            np.array([0, 0, 3]), space, space,
        )  # fmt: skip


def test_collect_argument_errors(minari_dir):
    with pytest.raises(ValueError, match="n_steps or n_episodes"):
        collect_dataset("local/x-v0", "Pendulum-v1")
    with pytest.raises(ValueError, match="n_envs"):
        collect_dataset("local/x-v0", "Pendulum-v1", n_steps=10, n_envs=0)
    with pytest.raises(ValueError, match="both ref_min_score and ref_max_score"):
        collect_dataset("local/x-v0", "Pendulum-v1", n_steps=10, ref_max_score=1.0)
    with pytest.raises(ValueError, match="valid Minari dataset id"):
        collect_dataset("bad id", "Pendulum-v1", n_steps=10)
    with pytest.raises(ValueError, match="Unknown policy"):
        collect_dataset("local/x-v0", "Pendulum-v1", "expert", n_steps=10)
    with pytest.raises(FileNotFoundError, match="model file not found"):
        collect_dataset("local/x-v0", "Pendulum-v1", "sac:missing.zip", n_steps=10)
    collect_dataset("local/x-v0", "Pendulum-v1", n_episodes=1, max_episode_steps=2,
                    progress_bar=False)  # fmt: skip
    with pytest.raises(FileExistsError, match="overwrite"):
        collect_dataset("local/x-v0", "Pendulum-v1", n_episodes=1, max_episode_steps=2)
    replaced = collect_dataset("local/x-v0", "Pendulum-v1", n_episodes=1, max_episode_steps=4,
                               overwrite=True, progress_bar=False)  # fmt: skip
    assert replaced.total_steps == 4


@pytest.mark.parametrize("module", [minari_io, collect_module])
def test_docstring_examples(module):
    results = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert results.failed == 0 and results.attempted > 0
