"""Training windows: properties on random synthetic datasets, parity with the per-sample loop."""

from __future__ import annotations

import doctest

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import seqagents.data.windows as windows_module
from seqagents.data import (
    DatasetStats,
    TrajectoryData,
    WindowSampler,
    compute_returns_to_go,
    compute_stats,
)
from seqagents.data.windows import sample_per_sample_reference


def make_data(lengths: list[int], obs_dim: int = 2, discrete: bool = False, seed: int = 0):
    """Synthetic dataset; observation column 0 holds the global row index (to trace slots)."""
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    observations = rng.normal(size=(n, obs_dim)).astype(np.float32)
    observations[:, 0] = np.arange(n)
    if discrete:
        actions, action_space = rng.integers(1, 4, size=n), gym.spaces.Discrete(4)
    else:
        actions, action_space = rng.uniform(0.5, 1, (n, 3)), gym.spaces.Box(-1, 1, (3,))
    return TrajectoryData(
        observations=observations,
        actions=actions,
        rewards=rng.integers(-5, 6, size=n).astype(np.float32),  # integers: exact sums
        terminals=np.zeros(n, bool),
        episode_starts=np.concatenate([[0], np.cumsum(lengths)]),
        observation_space=gym.spaces.Box(-np.inf, np.inf, (obs_dim,)),
        action_space=action_space,
    )


datasets = st.builds(
    make_data,
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    obs_dim=st.integers(1, 3),
    discrete=st.booleans(),
    seed=st.integers(0, 1000),
)


@settings(max_examples=40, deadline=None)
@given(data=datasets, context_len=st.integers(1, 8), scale=st.sampled_from([1.0, 10.0, 1000.0]))
def test_window_properties(data, context_len, scale):
    sampler = WindowSampler(data, context_len, scale, normalize_states=False, seed=0)
    batch = sampler.sample(16)
    K, n = context_len, data.n_transitions
    mask = batch["mask"].numpy()  # (B, K)
    source = batch["states"][..., 0].numpy().astype(np.int64)  # (B, K) global row of each slot
    episode_of = data.episode_index()  # (N,)
    starts, ends = data.episode_starts[:-1], data.episode_starts[1:]
    rtg_expected = compute_returns_to_go(data.rewards, data.episode_starts) / scale  # (N,)
    for b in range(16):
        valid = mask[b]
        pad = K - valid.sum()
        assert valid.sum() >= 1 and not valid[:pad].any() and valid[pad:].all()  # LEFT padding
        rows = source[b, pad:]
        # Consecutive rows of one episode, ending at K steps or at the episode end.
        assert np.all(np.diff(rows) == 1) and rows.min() >= 0 and rows.max() < n
        episode = episode_of[rows[0]]
        assert np.all(episode_of[rows] == episode)
        assert rows.size == K or rows[-1] == ends[episode] - 1
        np.testing.assert_array_equal(batch["timesteps"][b, pad:], rows - starts[episode])
        np.testing.assert_allclose(batch["returns_to_go"][b, pad:, 0], rtg_expected[rows])
        suffix = [data.rewards[r : ends[episode]].sum() / scale for r in rows]
        np.testing.assert_allclose(batch["returns_to_go"][b, pad:, 0], suffix, rtol=1e-6)
        np.testing.assert_array_equal(batch["rewards"][b, pad:, 0], data.rewards[rows])
        np.testing.assert_array_equal(batch["actions"][b, pad:], data.actions[rows])
        # Padding values as documented: all zeros.
        for key in ("states", "actions", "rewards", "returns_to_go", "timesteps"):
            assert not batch[key][b, :pad].any(), key


@settings(max_examples=25, deadline=None)
@given(data=datasets, context_len=st.integers(1, 8), normalize=st.booleans())
def test_vectorized_equals_per_sample_reference(data, context_len, normalize):
    sampler = WindowSampler(data, context_len, 1000.0, normalize_states=normalize)
    starts = np.arange(data.n_transitions)  # every possible window
    fast = sampler.windows_at(starts)
    slow = sample_per_sample_reference(
        data, context_len, 0, sampler.stats, normalize_states=normalize, starts=starts
    )
    assert fast.keys() == slow.keys()
    for key in fast:
        assert fast[key].shape == slow[key].shape and fast[key].dtype == slow[key].dtype, key
        torch.testing.assert_close(fast[key], slow[key], rtol=1e-6, atol=1e-6)


def test_shapes_dtypes_and_normalization():
    data = make_data([5, 30, 2], obs_dim=4)
    sampler = WindowSampler(data, context_len=20, return_scale=1000.0, seed=1)
    batch = sampler.sample(8)
    assert batch["states"].shape == (8, 20, 4) and batch["states"].dtype == torch.float32
    assert batch["actions"].shape == (8, 20, 3) and batch["actions"].dtype == torch.float32
    assert batch["rewards"].shape == batch["returns_to_go"].shape == (8, 20, 1)
    assert batch["timesteps"].dtype == torch.long and batch["mask"].dtype == torch.bool
    stats = compute_stats(data, 1000.0)
    np.testing.assert_allclose(stats.state_mean, data.observations.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.state_std, data.observations.std(0), rtol=1e-5)
    window = sampler.windows_at(np.array([5]))  # first step of the 30-step episode: no padding
    expected = (data.observations[5:25] - stats.state_mean) / stats.state_std
    np.testing.assert_allclose(window["states"][0], expected, rtol=1e-5, atol=1e-6)

    discrete = WindowSampler(make_data([4, 4], discrete=True), 3, 1.0, seed=0).sample(5)
    assert discrete["actions"].shape == (5, 3) and discrete["actions"].dtype == torch.long


def test_constant_state_dimension_std_is_floored():
    data = make_data([10])
    data.observations[:, 1] = 3.0
    stats = compute_stats(data)
    assert stats.state_std[1] == pytest.approx(1e-6)
    sampler = WindowSampler(data, 4, 1.0, stats=stats)
    assert torch.isfinite(sampler.sample(4)["states"]).all()
    assert DatasetStats.from_dict(stats.to_dict()).state_std.tolist() == stats.state_std.tolist()


def test_episodes_are_drawn_by_length_and_seed_reproduces():
    data = make_data([1, 9])
    sampler = WindowSampler(data, 2, 1.0, normalize_states=False, seed=0)
    rows = sampler.sample(20_000)["states"][:, -1, 0]  # a window's last slot is always real
    assert (rows == 0).float().mean().item() == pytest.approx(0.1, abs=0.01)  # 1 of 10 steps
    again = WindowSampler(data, 2, 1.0, seed=0).sample(64)
    first = WindowSampler(data, 2, 1.0, seed=0).sample(64)
    other = WindowSampler(data, 2, 1.0, seed=1).sample(64)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not torch.equal(first["timesteps"], other["timesteps"])
    # The reference draws episodes by length too.
    reference = sample_per_sample_reference(
        data, 2, 5000, compute_stats(data), normalize_states=False, rng=np.random.default_rng(0)
    )
    first_episode_share = (reference["states"][:, -1, 0] == 0).float().mean().item()
    assert first_episode_share == pytest.approx(0.1, abs=0.02)


def test_bad_arguments():
    data = make_data([3])
    with pytest.raises(ValueError, match="at least 1"):
        WindowSampler(data, 0, 1.0)
    with pytest.raises(TypeError, match="context_len"):
        WindowSampler(data, 2.5, 1.0)
    with pytest.raises(ValueError, match="return_scale"):
        WindowSampler(data, 2, 0.0)
    with pytest.raises(ValueError, match="return_scale"):
        WindowSampler(data, 2, 10.0, stats=compute_stats(data, 1.0))
    with pytest.raises(ValueError, match="shape"):
        WindowSampler(data, 2, 1.0, stats=DatasetStats(np.zeros(5), np.ones(5)))
    sampler = WindowSampler(data, 2, 1.0)
    with pytest.raises(ValueError, match="batch_size"):
        sampler.sample(0)
    with pytest.raises(IndexError):
        sampler.windows_at(np.array([3]))
    with pytest.raises(ValueError, match="Unknown DatasetStats keys"):
        DatasetStats.from_dict({"state_mean": [0.0], "state_std": [1.0], "scale": 1.0})


def test_docstring_examples():
    results = doctest.testmod(windows_module)
    assert results.failed == 0 and results.attempted > 0
