"""The DQN Replay Dataset reader on replay logs written here in dopamine's exact on-disk format.

Each buffer is what dopamine's ``OutOfGraphReplayBuffer`` holds and batch_rl logs: one gzip file
per array holding one ``np.save`` array, named ``$store$_<name>_ckpt.<N>.gz``, with three all-zero
rows after every terminal and a stale last row. Frames carry their game and step numbers so that a
test can see which rows were kept.
"""

from __future__ import annotations

import doctest
import gzip
import json
import logging

import numpy as np
import pytest

from seqagents.data import WindowSampler, compute_returns_to_go, compute_timesteps, dqn_replay
from seqagents.data.dqn_replay import DQNReplayOptions, load_dqn_replay, parse_dqn_replay_spec

PAD = 3  # dopamine's zero rows after a terminal (stack 4)


def _frame(game: int, step: int) -> np.ndarray:
    frame = np.full((84, 84), 1 + game % 200, np.uint8)  # never all zero: not padding
    frame[0, 0] = 1 + step % 255
    return frame


def write_buffer(folder, index: int, layout: list[tuple[str, int, list[float]]]) -> int:
    """Write buffer ``index`` from a layout of (kind, game, rewards) blocks; returns its rows.

    ``kind`` is ``"fragment"`` (a game's end: rows then a terminal, no padding before),
    ``"game"`` (padding, then a whole game ending in a terminal) or ``"tail"`` (padding, then an
    unfinished game). A stale last row (from an older cycle, terminal) closes the buffer.
    """
    frames, actions, rewards, terminals = [], [], [], []
    for kind, game, game_rewards in layout:
        if kind != "fragment":
            frames += [np.zeros((84, 84), np.uint8)] * PAD
            actions += [0] * PAD
            rewards += [0.0] * PAD
            terminals += [0] * PAD
        for step, reward in enumerate(game_rewards):
            frames.append(_frame(game, step))
            actions.append((game + step) % 4)
            rewards.append(reward)
            terminals.append(int(kind != "tail" and step == len(game_rewards) - 1))
    frames.append(_frame(255, 0))  # stale row: batch_rl logs before rewriting it
    actions.append(3)
    rewards.append(9.0)
    terminals.append(1)
    arrays = {
        "observation": np.stack(frames),  # (n, 84, 84) uint8
        "action": np.asarray(actions, np.int32),
        "reward": np.asarray(rewards, np.float32),
        "terminal": np.asarray(terminals, np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        with gzip.open(folder / f"$store$_{name}_ckpt.{index}.gz", "wb") as file:
            np.save(file, array, allow_pickle=False)
    for name, array in (("add_count", np.array(len(frames))), ("invalid_range", np.arange(4))):
        with gzip.open(folder / f"{name}_ckpt.{index}.gz", "wb") as file:  # not read
            np.save(file, array, allow_pickle=False)
    return len(frames)


def games(first: int, lengths: list[int]) -> list[tuple[str, int, list[float]]]:
    return [("game", first + i, [1.0] * length) for i, length in enumerate(lengths)]


def check_whole_games(data) -> list[int]:
    """Every trajectory is one game's consecutive steps from its first; returns the game ids."""
    ids = []
    for start, end in zip(data.episode_starts[:-1], data.episode_starts[1:]):
        frames = data.frames[start:end]  # (T, 84, 84)
        assert frames[:, 0, 0].tolist() == list(range(1, end - start + 1))
        assert np.all(frames[:, 1:, :] == frames[0, 1, 0])
        ids.append(int(frames[0, 1, 0]) - 1)
    return ids


@pytest.fixture
def logs(tmp_path):
    folder = tmp_path / "Breakout" / "1" / "replay_logs"
    write_buffer(
        folder, 0,
        [("fragment", 90, [0.0, 4.0])]
        + [("game", 1, [0.0, 4.0, 0.0, 7.0, -2.0, 1.0]), ("game", 2, [1.0] * 9)]
        + [("game", 3, [0.0, 0.0, 30.0, 0.0]), ("tail", 91, [5.0] * 7)],
    )  # fmt: skip
    return folder


def test_trajectory_boundaries(logs):
    data = load_dqn_replay(logs.parent, DQNReplayOptions(trajectories_per_buffer=1))
    # the fragment (game 90), the unfinished tail (91), the padding and the stale row are dropped
    assert data.episode_lengths.tolist() == [6, 9, 4]
    assert check_whole_games(data) == [1, 2, 3]
    assert np.flatnonzero(data.terminals).tolist() == [5, 14, 18]
    assert not data.truncations.any() and data.frames.min() > 0
    assert compute_timesteps(data.episode_starts)[[0, 5, 6, 15]].tolist() == [0, 5, 0, 0]
    # frame stacks repeat an episode's first frame before it (the eval env's FrameStack padding)
    assert data.observations[7][:, 0, 0].tolist() == [1, 1, 1, 2]
    assert data.actions.tolist()[:3] == [1, 2, 3] and data.actions.dtype == np.int64
    assert data.metadata["env_id"] == "ALE/Breakout-v5" and data.metadata["run"] == 1
    assert data.dataset_id.startswith(f"dqn-replay:{logs}?num_buffers=50&")


def test_rtgs_come_from_clipped_rewards_and_raw_rewards_are_kept(logs):
    data = load_dqn_replay(logs, DQNReplayOptions(trajectories_per_buffer=1))
    assert data.raw_rewards[:6].tolist() == [0.0, 4.0, 0.0, 7.0, -2.0, 1.0]
    assert data.rewards[:6].tolist() == [0.0, 1.0, 0.0, 1.0, -1.0, 1.0]
    assert data.game_returns().tolist() == [10.0, 9.0, 30.0]  # raw game points
    rtg = compute_returns_to_go(data.rewards, data.episode_starts)
    assert rtg[[0, 3, 5, 6, 15, 18]].tolist() == [2.0, 1.0, 1.0, 9.0, 1.0, 0.0]
    sampler = WindowSampler(data, context_len=3, return_scale=1.0, normalize_states=False)
    batch = sampler.windows_at(np.array([0, 15]))
    assert batch["returns_to_go"][..., 0].tolist() == [[2.0, 2.0, 1.0], [1.0, 1.0, 1.0]]
    assert tuple(batch["states"].shape) == (2, 3, 4, 84, 84)
    raw = load_dqn_replay(logs, DQNReplayOptions(trajectories_per_buffer=1, reward="raw"))
    assert raw.rewards[:6].tolist() == [0.0, 4.0, 0.0, 7.0, -2.0, 1.0]


def test_the_papers_sampling_rule_at_tiny_scale(tmp_path, caplog):
    folder = tmp_path / "logs"
    for index in range(4):  # buffer b holds games 10b .. 10b + 5, of 10 steps each
        write_buffer(folder, index, [("fragment", 99, [1.0])] + games(10 * index, [10] * 6))

    def sample(seed: int, **options):
        options = {"num_buffers": 2, "num_steps": 45, "trajectories_per_buffer": 2, **options}
        return load_dqn_replay(folder, DQNReplayOptions(seed=seed, **options))

    data = sample(0)
    assert 45 <= data.n_transitions < 45 + 2 * 10  # at least num_steps; the last visit kept whole
    ids = check_whole_games(data)
    used = data.metadata["trajectories_per_buffer_used"]
    assert set(used) <= {2, 3} and all(n % 2 == 0 for n in used.values())  # last 2, whole visits
    assert ids == [g for b in sorted(used) for g in range(10 * b, 10 * b + used[b])]  # in order
    assert check_whole_games(sample(0)) == ids  # seeded
    assert {tuple(check_whole_games(sample(seed))) for seed in range(8)} != {tuple(ids)}
    # rows past buffer_steps are never read; a visit that runs past them is discarded whole:
    # games sit at rows 4..13, 17..26, 30..39, ...: 35 rows hold 2 of them, one visit's worth
    with caplog.at_level(logging.WARNING, logger="seqagents.data.dqn_replay"):
        small = sample(0, num_buffers=4, num_steps=10_000, buffer_steps=35)
    assert small.metadata["trajectories_per_buffer_used"] == {0: 2, 1: 2, 2: 2, 3: 2}
    assert "only 80 transitions (num_steps=10000)" in caplog.text
    whole = sample(0, num_buffers=4, num_steps=10_000, buffer_steps=None)
    assert whole.n_transitions == 4 * 6 * 10  # the whole buffers: every game, 3 visits each
    with pytest.raises(ValueError, match="no buffer holds 8 complete trajectories"):
        sample(0, trajectories_per_buffer=8)


def test_dataset_strings_carry_the_options(logs):
    path, options = parse_dqn_replay_spec(f"dqn-replay:{logs}?num_steps=10&buffer_steps=all")
    assert path == logs and options.num_steps == 10 and options.buffer_steps is None
    assert options.num_buffers == 50 and options.trajectories_per_buffer == 10  # the paper's
    data = load_dqn_replay(f"dqn-replay:{logs}?trajectories_per_buffer=1&n_actions=6")
    assert data.action_space.n == 6 and data.n_episodes == 3
    again = load_dqn_replay(data.dataset_id)  # the recorded id reproduces the data
    assert np.array_equal(again.frames, data.frames)
    with pytest.raises(ValueError, match="unknown option 'steps'.*known: num_buffers"):
        parse_dqn_replay_spec(f"dqn-replay:{logs}?steps=10")
    with pytest.raises(ValueError, match="must be an integer"):
        parse_dqn_replay_spec(f"dqn-replay:{logs}?num_steps=many")
    with pytest.raises(ValueError, match="reward must be 'clipped' or 'raw'"):
        parse_dqn_replay_spec(f"dqn-replay:{logs}?reward=sign")


def test_a_truncated_buffer_names_the_file_and_what_to_do(logs):
    for name in ("observation", "terminal"):
        path = logs / f"$store$_{name}_ckpt.0.gz"
        content = path.read_bytes()
        path.write_bytes(content[: len(content) // 2])
        with pytest.raises(ValueError) as error:
            load_dqn_replay(logs, DQNReplayOptions(trajectories_per_buffer=1))
        message = str(error.value)
        assert str(path) in message and "truncated or corrupt" in message
        assert "download it again with gsutil" in message
        path.write_bytes(content)
    path.write_bytes(b"not a gzip file")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_dqn_replay(logs, DQNReplayOptions(trajectories_per_buffer=1))


def test_missing_files_name_the_file_and_what_to_do(logs, tmp_path):
    write_buffer(logs, 1, games(20, [5, 5]))  # its first game is dropped: no terminal before it
    missing = logs / "$store$_action_ckpt.0.gz"
    missing.unlink()
    with pytest.raises(FileNotFoundError) as error:
        load_dqn_replay(logs)
    assert f"{missing} is missing" in str(error.value)
    assert "download it again with gsutil" in str(error.value)
    assert "smaller num_buffers" in str(error.value)
    # a broken buffer outside the last num_buffers is never opened
    last = load_dqn_replay(logs, DQNReplayOptions(num_buffers=1, trajectories_per_buffer=1))
    assert check_whole_games(last) == [21]
    with pytest.raises(FileNotFoundError, match="no DQN replay logs in .*gsutil"):
        load_dqn_replay(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_dqn_replay(tmp_path / "absent")


@pytest.mark.parametrize(
    ("name", "make", "match"),
    [
        (
            "observation",
            lambda n: np.zeros((n, 84, 84), np.float32),
            r"expected \(n, 84, 84\) uint8",
        ),
        ("observation", lambda n: np.zeros((n, 84, 84, 3), np.uint8), r"got \(41, 84, 84, 3\)"),
        ("action", lambda n: np.zeros((n, 2), np.int32), r"expected \(n,\) int32"),
        ("terminal", lambda n: np.zeros(n - 1, np.uint8), "has 40 rows but the buffer's obs"),
        ("terminal", lambda n: np.full(n, 2, np.uint8), "terminal flags must be 0 or 1"),
        ("reward", lambda n: np.ones(n, np.float32), "not dopamine's zero padding"),
    ],
)
def test_wrong_dtype_shape_or_lengths_are_clear_errors(logs, name, make, match):
    path = logs / f"$store$_{name}_ckpt.0.gz"
    n = len(np.load(gzip.open(path)))  # 41 rows
    with gzip.open(path, "wb") as file:
        np.save(file, make(n))
    with pytest.raises(ValueError, match=match):
        load_dqn_replay(logs, DQNReplayOptions(trajectories_per_buffer=1))


def test_nonzero_padding_frames_are_refused(logs):
    path = logs / "$store$_observation_ckpt.0.gz"
    frames = np.load(gzip.open(path))  # (41, 84, 84)
    frames[2:5] = 1  # the padding after the fragment's terminal (row 1)
    with gzip.open(path, "wb") as file:
        np.save(file, frames)
    with pytest.raises(ValueError, match="frames after a terminal are not dopamine's"):
        load_dqn_replay(logs, DQNReplayOptions(trajectories_per_buffer=1))


def test_doctests():
    assert doctest.testmod(dqn_replay, optionflags=doctest.ELLIPSIS).failed == 0


# ---------------------------------------------------------------------------- training
TINY_DT = {"hidden_size": 32, "n_layer": 1, "n_head": 2, "context_len": 4}
TINY_LEAP = {"hidden_size": 32, "n_layer": 1, "n_head": 2, "horizon": 3, "history_len": 2}


@pytest.fixture
def breakout_logs(tmp_path):
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    folder = tmp_path / "Breakout" / "1" / "replay_logs"
    for index in range(2):
        write_buffer(folder, index, [("fragment", 99, [1.0])] + games(10 * index, [12, 9, 15]))
    return folder


@pytest.mark.parametrize(
    ("entry", "model"), [("dt/breakout", TINY_DT), ("leap/breakout", TINY_LEAP)]
)
def test_train_breakout_on_dqn_replay_through_the_cli(breakout_logs, tmp_path, entry, model):
    from seqagents import load_agent
    from seqagents.cli import main

    run = tmp_path / "run"
    dataset = f"dqn-replay:{breakout_logs}?num_steps=40&trajectories_per_buffer=1"
    status = main(
        ["train", entry, "--dataset", dataset, "--steps", "2", "--batch-size", "4",
         "--warmup-steps", "1", "--eval-every", "0", "--device", "cpu",
         "--model", json.dumps(model), "--out", str(run), "--no-progress"]
    )  # fmt: skip
    assert status == 0
    agent = load_agent(run / "checkpoint", device="cpu")
    assert agent.env_id == "ALE/Breakout-v5" and agent.spec.training["steps"] == 2
    assert agent.spec.training["dataset_id"].startswith(f"dqn-replay:{breakout_logs}?")
    assert agent.spec.training["n_transitions"] >= 40
    obs = np.zeros((4, 84, 84), np.uint8)
    action, _ = agent.predict(obs, reward=None, deterministic=False)
    assert 0 <= int(action) < 4


def test_train_dt_takes_the_game_and_eval_env_from_the_folder_layout(breakout_logs, tmp_path):
    from seqagents.training import train_dt

    agent = train_dt(
        f"dqn-replay:{breakout_logs.parent}?num_steps=1000&trajectories_per_buffer=1",
        model_config={**TINY_DT, "position_scheme": "global", "embedding_tanh": True},
        train_config={"steps": 2, "batch_size": 2, "warmup_steps": 1, "device": "cpu",
                      "eval_every": 0, "out_dir": str(tmp_path)},
        return_scale=1.0,
        progress_bar=False,
    )  # fmt: skip
    assert agent.env_id == "ALE/Breakout-v5"
    assert agent.spec.env_kwargs == {"atari_preprocessing": True, "repeat_action_probability": 0.0}
    assert agent.target_return == 15.0  # the best clipped game return (all games drawn)
