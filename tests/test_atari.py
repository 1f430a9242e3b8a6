"""Atari data: the learning-history recorder, frames stored once, the evaluation env."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("ale_py")
pytest.importorskip("cv2")

from seqagents.data import (  # noqa: E402
    AtariDatasetWriter,
    FrameStackedFrames,
    WindowSampler,
    compute_stats,
    load_atari_dataset,
    make_recorded_atari_env,
    record_ppo_history,
)
from seqagents.envs import make_env  # noqa: E402

ENV_ID = "ALE/Breakout-v5"
EVAL_KWARGS = {"atari_preprocessing": True, "repeat_action_probability": 0.0}
BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "atari_memory.py"


def _play_random(env: gym.Env, n_steps: int, seed: int, stop_after_games: int | None = None):
    """Random actions through the recorder chain, resetting at every (per-life) episode end."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    writer = env.get_wrapper_attr("writer")
    for _ in range(n_steps):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            if stop_after_games is not None and writer.n_episodes >= stop_after_games:
                return
            env.reset()


def _find_wrapper(env: gym.Env, cls: type) -> gym.Env:
    while not isinstance(env, cls):
        env = env.env
    return env


def test_eval_env_spaces_and_wrappers():
    env = make_env(ENV_ID, **EVAL_KWARGS)
    assert env.observation_space == gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    assert env.action_space == gym.spaces.Discrete(4)
    preprocessing = _find_wrapper(env, gym.wrappers.AtariPreprocessing)
    assert (preprocessing.noop_max, preprocessing.frame_skip) == (30, 4)
    assert preprocessing.grayscale_obs and not preprocessing.terminal_on_life_loss
    stack = _find_wrapper(env, gym.wrappers.FrameStackObservation)
    assert (stack.stack_size, stack.padding_type) == (4, "reset")
    ale_kwargs = env.unwrapped.spec.kwargs
    assert ale_kwargs["frameskip"] == 1 and ale_kwargs["repeat_action_probability"] == 0.0
    assert ale_kwargs["max_num_frames_per_episode"] == 108_000  # 27k agent steps
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert all(np.array_equal(obs[0], frame) for frame in obs)  # padded with the reset frame
    sticky = make_env(ENV_ID, atari_preprocessing=True, repeat_action_probability=0.25)
    assert sticky.unwrapped.spec.kwargs["repeat_action_probability"] == 0.25
    with pytest.raises(ValueError, match="ALE"):
        make_env("CartPole-v1", atari_preprocessing=True)


def test_recorder_matches_monitor_and_records_fire(tmp_path):
    writer = AtariDatasetWriter(tmp_path / "data", chunk_size=500)
    env = make_recorded_atari_env(ENV_ID, writer, monitor=True)
    _play_random(env, 3000, seed=1)
    monitor_returns = env.get_wrapper_attr("get_episode_rewards")()
    monitor_lengths = env.get_wrapper_attr("get_episode_lengths")()
    writer.close()
    data = load_atari_dataset(tmp_path / "data")
    finished = data.terminals[data.episode_starts[1:] - 1]  # (n_episodes,) game over
    assert len(monitor_returns) >= 5 and finished.sum() == len(monitor_returns)
    assert finished[:-1].all() and data.truncations[-1]  # the game in progress, cut at close
    np.testing.assert_array_equal(data.game_returns()[finished], monitor_returns)
    # Monitor counts frame-skipped steps too (it sits right below the recorder).
    np.testing.assert_array_equal(data.episode_lengths[finished], monitor_lengths)
    for start in data.episode_starts[:-1]:  # FireResetEnv presses FIRE (1) then 2 at game start
        assert data.actions[start : start + 2].tolist() == [1, 2]
    np.testing.assert_array_equal(data.clipped_rewards, np.sign(data.raw_rewards))
    np.testing.assert_array_equal(data.rewards, data.clipped_rewards)  # clipped by default
    assert data.raw_rewards.sum() > 0  # random play scores (upper bricks: 4 and 7 raw points)
    raw = load_atari_dataset(tmp_path / "data", reward="raw")
    np.testing.assert_array_equal(raw.rewards, raw.raw_rewards)
    assert data.frames.dtype == np.uint8 and data.frames.shape == (data.n_transitions, 84, 84)
    with open(tmp_path / "data" / "training_curve.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(row["return"]) for row in rows] == data.game_returns().tolist()


class _FramesEnv(gym.Env):
    """Emits given frames one per step, for gymnasium's FrameStackObservation."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames = frames
        self.observation_space = gym.spaces.Box(0, 255, frames.shape[1:], np.uint8)
        self.action_space = gym.spaces.Discrete(1)

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return self.frames[0], {}

    def step(self, action):
        self.t += 1
        return self.frames[self.t], 0.0, self.t == len(self.frames) - 1, False, {}


def test_gathered_stack_equals_frame_stack_observation(tmp_path):
    writer = AtariDatasetWriter(tmp_path / "data")
    env = make_recorded_atari_env(ENV_ID, writer)
    seed = 3
    _play_random(env, 5000, seed=seed, stop_after_games=1)
    writer.close()
    data = load_atari_dataset(tmp_path / "data")
    lo, hi = data.episode_starts[:2]  # the first game
    stacked = data.observations[lo:hi]  # (T, 4, 84, 84) gathered at once
    assert stacked.dtype == np.uint8
    # 1) exactly what FrameStackObservation stacks from the stored frames (reset padding).
    reference = gym.wrappers.FrameStackObservation(_FramesEnv(data.frames[lo:hi]), 4)
    obs, _ = reference.reset()
    np.testing.assert_array_equal(stacked[0], obs)
    for t in range(1, hi - lo):
        obs, *_ = reference.step(0)
        np.testing.assert_array_equal(stacked[t], obs)
    # 2) the evaluation env replaying the recorded actions with the same seed plays the same game.
    eval_env = make_env(ENV_ID, **EVAL_KWARGS)
    obs, _ = eval_env.reset(seed=seed)
    eval_obs, eval_rewards, ended = [obs], [], False
    for action in data.actions[lo:hi]:
        obs, reward, terminated, truncated, _ = eval_env.step(int(action))
        eval_obs.append(obs)
        eval_rewards.append(reward)
        ended = terminated or truncated
    assert ended  # the game ends at the same step
    np.testing.assert_array_equal(eval_rewards, data.raw_rewards[lo:hi])
    eval_obs = np.stack(eval_obs[:-1])  # (T, 4, 84, 84)
    # The max-pooling order differs (RGB max then gray vs gray max), which changes nothing where
    # an object meets the black background: on Breakout the stacks are identical.
    np.testing.assert_array_equal(eval_obs, stacked)


def test_short_ppo_history(tmp_path):
    result = record_ppo_history(
        "Breakout",
        512,
        tmp_path / "ppo",
        seed=0,
        n_envs=2,
        progress_bar=False,
        hyperparameters={"n_steps": 128, "batch_size": 64},
        chunk_size=200,
    )
    assert result.policy_path.exists() and result.policy_steps == 512
    assert result.n_steps > result.policy_steps  # plus the wrappers' FIRE/no-op steps
    metadata = json.loads((tmp_path / "ppo" / "metadata.json").read_text())
    assert metadata["eval_env_kwargs"] == EVAL_KWARGS and metadata["n_actions"] == 4
    data = load_atari_dataset(tmp_path / "ppo")
    assert data.n_transitions == result.n_steps and data.n_episodes == result.n_episodes
    assert data.observation_space.shape == make_env(ENV_ID, **EVAL_KWARGS).observation_space.shape
    from stable_baselines3 import PPO

    assert PPO.load(result.policy_path, device="cpu").policy is not None


def test_a_ppo_history_resumes_from_its_last_stage(tmp_path):
    """Stages keep the games finished so far, the policy and its optimizer; a resumed recording
    keeps the history up to the stage byte for byte and continues the same learning run."""
    import torch

    options = dict(
        seed=0,
        n_envs=2,
        progress_bar=False,
        hyperparameters={"n_steps": 128, "batch_size": 64},
        chunk_size=100_000,  # chunks only at stages and at the end
        stage_every=256,
        keep_policy_every=256,
    )
    whole = record_ppo_history("Breakout", 768, tmp_path / "whole", **options)
    part = record_ppo_history("Breakout", 512, tmp_path / "part", **options)  # stage at 256
    stage = json.loads((tmp_path / "part" / "stages" / "stage.json").read_text())
    assert stage["policy_steps"] == 256 and (tmp_path / "part/stages/ppo_policy_256.zip").exists()
    saved = torch.load(tmp_path / "part/stages" / stage["state_file"], weights_only=True)
    assert "optimizer" in saved and saved["optimizer"]["state"]  # Adam moments kept
    assert part.n_episodes > stage["writer"]["n_episodes"]  # games after the stage ...
    resumed = record_ppo_history("Breakout", 768, tmp_path / "part", resume=True, **options)
    assert resumed.policy_steps == 768 == whole.policy_steps
    first = [(tmp_path / run / "chunk_00000.npz").read_bytes() for run in ("whole", "part")]
    assert first[0] == first[1]  # ... are dropped; the history up to the stage is unchanged
    metadata = json.loads((tmp_path / "part" / "metadata.json").read_text())
    assert metadata["behaviour_policy"]["resumed_at_policy_steps"] == [256]
    data = load_atari_dataset(tmp_path / "part")
    assert data.n_episodes == resumed.n_episodes == metadata["n_episodes"]
    curve = (tmp_path / "part" / "training_curve.csv").read_text().splitlines()
    assert len(curve) == 1 + resumed.n_episodes  # header + one row per game, none twice
    with pytest.raises(ValueError, match="settings differ"):
        record_ppo_history(
            "Breakout", 1024, tmp_path / "part", resume=True, **{**options, "seed": 1}
        )
    with pytest.raises(FileNotFoundError, match="no stage to resume from"):
        record_ppo_history("Breakout", 1024, tmp_path / "none", resume=True, **options)


def _synthetic_data(n_frames: int = 600, lengths=(100, 250, 250)):
    from seqagents.data import AtariTrajectoryData

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (n_frames, 84, 84), dtype=np.uint8)  # (N, 84, 84)
    starts = np.concatenate([[0], np.cumsum(lengths)])  # (n_episodes + 1,)
    rewards = rng.integers(-1, 2, n_frames).astype(np.float32)
    return AtariTrajectoryData(
        observations=FrameStackedFrames(frames, starts),
        actions=rng.integers(0, 4, n_frames),
        rewards=rewards,
        terminals=np.isin(np.arange(n_frames), starts[1:] - 1),
        episode_starts=starts,
        observation_space=gym.spaces.Box(0, 255, (4, 84, 84), np.uint8),
        action_space=gym.spaces.Discrete(4),
        raw_rewards=rewards * 3,
        clipped_rewards=rewards,
    )


def test_window_sampler_gathers_uint8_stacks():
    data = _synthetic_data()
    frames = data.frames
    sampler = WindowSampler(data, context_len=30, return_scale=1.0, normalize_states=False, seed=0)
    batch = sampler.sample(8)
    assert batch["states"].shape == (8, 30, 4, 84, 84) and batch["states"].dtype.itemsize == 1
    starts = np.array([0, 98, 360])  # an episode start; 2 steps before an episode end; mid-game
    window = sampler.windows_at(starts)
    states = window["states"].numpy()  # (3, 30, 4, 84, 84)
    # start 0: no padding, step j = frames[j - 3 .. j] clamped at the episode's first frame.
    for j in range(30):
        expected = frames[np.maximum(np.arange(j - 3, j + 1), 0)]  # (4, 84, 84)
        np.testing.assert_array_equal(states[0, j], expected)
    # start 98: 2 real steps (98, 99) right-aligned, 28 padding slots are zeros.
    assert window["mask"][1].sum() == 2 and not states[1, :28].any()
    np.testing.assert_array_equal(states[1, -1], frames[96:100])
    np.testing.assert_array_equal(states[2, 0], frames[357:361])
    np.testing.assert_array_equal(states[2, -1], frames[386:390])
    with pytest.raises(ValueError, match="normalize_states=False"):
        WindowSampler(data, context_len=30, return_scale=1.0)
    with pytest.raises(TypeError, match="image"):
        compute_stats(data)
    with pytest.raises(TypeError, match="materialize"):
        np.asarray(data.observations)


def test_sampling_memory_of_a_100k_frame_dataset():
    """100k frames (673 MiB stored): loading costs the frames plus about one chunk, sampling
    (32, 30, 4, 84, 84) uint8 batches adds < 150 MiB (a float32 copy of the stacks: 10.5 GiB)."""
    out = subprocess.run(
        [sys.executable, str(BENCHMARK), "--frames", "100000", "--batches", "10"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["n_frames"] == 100_000 and report["batch_states"][1] == "torch.uint8"
    loading = report["peak_after_load_mib"] - report["rss_after_imports_mib"]
    assert loading < report["frames_mib"] + 200
    assert report["sampling_growth_mib"] < 150


def test_cli_collect_learn_ppo(tmp_path, capsys):
    from seqagents.cli import main

    out = tmp_path / "cli"
    argv = ["collect", "--learn", "ppo", "--env", ENV_ID, "--steps", "256", "--n-envs", "2"]
    assert main([*argv, "--out", str(out), "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["policy_steps"] == 256 and Path(summary["policy"]).exists()
    assert load_atari_dataset(out).n_transitions == summary["transitions"]
    assert main([*argv, "--out", str(out)]) == 2  # exists: one line, exit 2
    assert "already holds" in capsys.readouterr().err
    assert main(["collect", "--learn", "ppo", "--env", "CartPole-v1", "--steps", "9"]) == 2
    assert main(["collect", "--learn", "dqn", "--env", ENV_ID, "--out", "x", "--steps", "9"]) == 2


def test_docstring_examples():
    import doctest

    from seqagents import envs
    from seqagents.data import atari, frames

    for module in (frames, atari):
        results = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert results.failed == 0 and results.attempted > 0
    for test in doctest.DocTestFinder().find(envs.make_atari_env, globs=vars(envs)):
        assert doctest.DocTestRunner().run(test).failed == 0
