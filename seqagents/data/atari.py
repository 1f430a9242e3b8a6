"""Atari offline data: the recorded learning history of an SB3 PPO agent, frames stored once.

No Atari dataset or policy (DQN-replay, Minari ``atari/*``) can be downloaded here, so the local
substitute for the Decision Transformer's "1% of DQN-replay" (transitions from the whole learning
history of one agent, mixed quality) is the learning history of an SB3 PPO agent trained with the
rl-baselines3-zoo Atari hyperparameters, recorded while it learns.

Where the recorder sits (why not at the VecEnv level): SB3's Atari preprocessing ends an episode at
each life loss, presses FIRE inside ``reset`` and clips rewards, so a recording of what PPO sees
would hold per-life episodes, clipped rewards and no FIRE presses, and a DT trained on that never
learns to FIRE in a full game. :class:`LearningHistoryRecorder` is placed between
``MaxAndSkipEnv`` and ``EpisodicLifeEnv``::

    ALE/<Game>-v5(frameskip=1) → NoopReset(30) → MaxAndSkip(4) → Recorder → EpisodicLife
        → FireReset → WarpFrame(84) → ClipReward      (then VecFrameStack(4) for PPO)

It sees every agent-level step (the wrappers' own FIRE and no-op steps included), the raw reward
and the real game over, and stores per step one 84×84 grayscale frame
(``cv2.resize(cv2.cvtColor(frame, RGB2GRAY), (84, 84), INTER_AREA)``, the frame PPO's
``WarpFrame`` computes), the action, the raw and the sign-clipped reward.

Difference to the evaluation env (:func:`seqagents.envs.make_atari_env`, gymnasium's
``AtariPreprocessing``): ALE's grayscale screen equals ``cv2.COLOR_RGB2GRAY`` of its RGB screen, and
the reset frame is the same; but ``MaxAndSkipEnv`` max-pools the last two RGB frames *before* the
grayscale conversion while ``AtariPreprocessing`` max-pools two grayscale frames. The two agree
wherever one of the two pooled pixels is black (``gray(max(c, 0)) = max(gray(c), 0)``): on
Breakout, whose background is black, a replayed game's frame stacks are identical (measured on 3
random games, 649 steps; ``tests/test_atari.py`` checks one). Games where two non-black colours
alternate at a pixel may differ there by a few gray levels.

Time-index convention (as :class:`~seqagents.data.TrajectoryData`): row ``t`` holds the frame of
``s_t`` (the observation before ``a_t``), ``a_t`` and ``r_t`` received after it; the final frame of
an episode (after its last action) is not stored.

On-disk format (a folder): ``chunk_00000.npz``, ... written with ``np.savez_compressed`` as
completed games accumulate (nothing is held in RAM beyond the games in progress and one chunk);
each chunk holds whole games: ``frames (n, 84, 84) uint8``, ``actions (n,) int16``,
``rewards (n,) float32`` (raw points), ``clipped_rewards (n,) float32`` (sign), ``terminals (n,)``
and ``truncations (n,)`` bool (real game over / the 108k-frame cap or the end of the run),
``episode_lengths (e,) int64``; plus ``metadata.json`` (env, spaces, settings, counts),
``training_curve.csv`` (one row per finished game) and, from :func:`record_ppo_history`,
``ppo_policy.zip`` (the final SB3 policy).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from seqagents.data.frames import FrameStackedFrames
from seqagents.data.minari_io import TrajectoryData
from seqagents.errors import require

__all__ = [
    "ATARI_FORMAT",
    "AtariDatasetWriter",
    "AtariTrajectoryData",
    "LearningHistoryRecorder",
    "PPO_ATARI_HYPERPARAMETERS",
    "RecordingResult",
    "load_atari_dataset",
    "make_recorded_atari_env",
    "preprocess_frame",
    "record_ppo_history",
]

logger = logging.getLogger(__name__)

ATARI_FORMAT = "seqagents-atari-frames-v1"
"""``metadata.json["format"]`` of a dataset folder written by :class:`AtariDatasetWriter`."""

FRAME_SIZE = 84  # frame height and width (Nature DQN, SB3 WarpFrame, AtariPreprocessing)

PPO_ATARI_HYPERPARAMETERS: dict[str, Any] = {
    # rl-baselines3-zoo hyperparams/ppo.yml, "atari" entry (n_envs 8 and frame_stack 4 are set by
    # record_ppo_history); learning_rate and clip_range decay linearly to 0 ("lin_2.5e-4").
    "n_steps": 128,
    "n_epochs": 4,
    "batch_size": 256,
    "learning_rate": 2.5e-4,
    "clip_range": 0.1,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
}

_CURVE_COLUMNS = (
    "episode",
    "env_index",
    "policy_steps",
    "recorded_steps",
    "length",
    "return",
    "clipped_return",
    "terminated",
    "truncated",
    "wall_time_s",
)


def preprocess_frame(frame: np.ndarray) -> np.ndarray:
    """One RGB Atari frame ``(210, 160, 3)`` uint8 → ``(84, 84)`` uint8 grayscale (SB3 WarpFrame).

    Example:
        >>> preprocess_frame(np.zeros((210, 160, 3), np.uint8)).shape
        (84, 84)
    """
    cv2 = require("cv2", "atari")
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)  # (210, 160)
    return cv2.resize(gray, (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_AREA)  # (84, 84)


# ---------------------------------------------------------------------------- writing
class AtariDatasetWriter:
    """Streams finished games to compressed ``.npz`` chunks in a dataset folder.

    Games are buffered until at least ``chunk_size`` steps are waiting, then written as one chunk
    (a chunk holds whole games, so it may exceed ``chunk_size`` by one game). :meth:`close` asks
    the attached recorders to hand over the games still in progress (stored as truncated), writes
    the last chunk and ``metadata.json``.

    Args:
        out_dir: the dataset folder (created).
        chunk_size: steps per chunk (10,000 steps ≈ 70 MB of frames in RAM before compression).
        metadata: extra JSON-safe entries for ``metadata.json`` (env id, settings).
        overwrite: replace an existing dataset folder instead of failing.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        *,
        chunk_size: int = 10_000,
        metadata: dict[str, Any] | None = None,
        overwrite: bool = False,
    ) -> None:
        self.out_dir = Path(out_dir)
        if (self.out_dir / "metadata.json").exists() or any(self.out_dir.glob("chunk_*.npz")):
            if not overwrite:
                raise FileExistsError(
                    f"{self.out_dir} already holds an Atari dataset; pass overwrite=True "
                    "(--overwrite) or choose another folder."
                )
            for path in [*self.out_dir.glob("chunk_*.npz"), self.out_dir / "metadata.json"]:
                path.unlink(missing_ok=True)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}.")
        self.chunk_size = int(chunk_size)
        self.metadata = dict(metadata or {})
        self.policy_steps = 0  # set by the training loop: policy steps taken so far
        self.n_steps = 0  # steps handed over so far (written or buffered)
        self.n_episodes = 0
        self.n_chunks = 0
        self.returns: list[float] = []  # raw return of every finished game, in order
        self._pending: list[dict[str, np.ndarray]] = []
        self._pending_steps = 0
        self._recorders: list[LearningHistoryRecorder] = []
        self._start = time.monotonic()
        self._curve_file = open(self.out_dir / "training_curve.csv", "w", newline="")  # noqa: SIM115
        self._curve = csv.writer(self._curve_file)
        self._curve.writerow(_CURVE_COLUMNS)
        self._closed = False

    def attach(self, recorder: LearningHistoryRecorder) -> int:
        """Register a recorder (its unfinished game is flushed on close); returns its env index."""
        self._recorders.append(recorder)
        return len(self._recorders) - 1

    def add_episode(
        self,
        frames: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        clipped_rewards: np.ndarray,
        *,
        terminated: bool,
        truncated: bool,
        env_index: int = 0,
    ) -> None:
        """Hand over one game: ``frames (T, 84, 84)`` uint8 and ``(T,)`` actions and rewards."""
        if self._closed:
            raise RuntimeError("the writer is closed.")
        steps = len(actions)
        if steps == 0:
            return
        terminals = np.zeros(steps, dtype=bool)  # (T,)
        truncations = np.zeros(steps, dtype=bool)  # (T,)
        terminals[-1], truncations[-1] = terminated, truncated and not terminated
        self._pending.append(
            {
                "frames": np.asarray(frames, dtype=np.uint8),
                "actions": np.asarray(actions, dtype=np.int16),
                "rewards": np.asarray(rewards, dtype=np.float32),
                "clipped_rewards": np.asarray(clipped_rewards, dtype=np.float32),
                "terminals": terminals,
                "truncations": truncations,
            }
        )
        self._pending_steps += steps
        self.n_steps += steps
        self.n_episodes += 1
        game_return = float(np.sum(rewards, dtype=np.float64))
        self.returns.append(game_return)
        self._curve.writerow(
            (
                self.n_episodes - 1,
                env_index,
                self.policy_steps,
                self.n_steps,
                steps,
                game_return,
                float(np.sum(clipped_rewards, dtype=np.float64)),
                int(terminated),
                int(truncated),
                round(time.monotonic() - self._start, 2),
            )
        )
        self._curve_file.flush()
        if self._pending_steps >= self.chunk_size:
            self._write_chunk()

    def _write_chunk(self) -> None:
        if not self._pending:
            return
        arrays = {
            key: np.concatenate([episode[key] for episode in self._pending])  # (n, ...)
            for key in self._pending[0]
        }
        arrays["episode_lengths"] = np.array(
            [len(episode["actions"]) for episode in self._pending], dtype=np.int64
        )  # (e,)
        path = self.out_dir / f"chunk_{self.n_chunks:05d}.npz"
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)  # a chunk appears only when complete
        self.n_chunks += 1
        self._pending, self._pending_steps = [], 0

    def close(self) -> dict[str, Any]:
        """Flush unfinished games (as truncated) and the last chunk; write ``metadata.json``.

        Returns:
            The metadata written.
        """
        if self._closed:
            return self.metadata
        for recorder in self._recorders:
            recorder.finish_episode(truncated=True)
        self._write_chunk()
        self._closed = True
        self._curve_file.close()
        returns = np.asarray(self.returns, dtype=np.float64)
        self.metadata.update(
            format=ATARI_FORMAT,
            n_steps=self.n_steps,
            n_episodes=self.n_episodes,
            n_chunks=self.n_chunks,
            policy_steps=self.policy_steps,
            frame_shape=[FRAME_SIZE, FRAME_SIZE],
            frame_preprocessing=(
                "MaxAndSkip(4) max-pooled RGB → cv2 RGB2GRAY → cv2.resize 84×84 INTER_AREA, uint8"
            ),
            return_mean=float(returns.mean()) if returns.size else None,
            return_max=float(returns.max()) if returns.size else None,
            wall_time_s=round(time.monotonic() - self._start, 1),
        )
        with open(self.out_dir / "metadata.json", "w") as f:
            json.dump(self.metadata, f, indent=2)
        return self.metadata


class LearningHistoryRecorder(gym.Wrapper):
    """Records every agent-level step of full games (see the module docstring for its placement).

    Wrap the env right above SB3's ``MaxAndSkipEnv`` (its observations are max-pooled RGB frames).
    A game starts at ``reset`` and ends when the env below reports ``terminated`` or ``truncated``
    (a real game over or ALE's frame cap; lives lost are not boundaries here). Each finished game
    goes to ``writer``.

    Args:
        env: the frame-skipping RGB Atari env.
        writer: where finished games go.
    """

    def __init__(self, env: gym.Env, writer: AtariDatasetWriter) -> None:
        super().__init__(env)
        self.writer = writer
        self.env_index = writer.attach(self)
        self._frame: np.ndarray | None = None  # (84, 84) frame of the current state s_t
        self._clear()

    def _clear(self) -> None:
        self._frames: list[np.ndarray] = []
        self._actions: list[int] = []
        self._rewards: list[float] = []

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the game; a game still in progress (none under SB3's wrappers) is truncated."""
        self.finish_episode(truncated=True)
        obs, info = self.env.reset(**kwargs)
        self._frame = preprocess_frame(obs)  # (84, 84): s_0
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Step the game and record ``(frame of s_t, a_t, r_t)``."""
        if self._frame is None:
            raise RuntimeError("LearningHistoryRecorder.step called before reset.")
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._frames.append(self._frame)
        self._actions.append(int(action))
        self._rewards.append(float(reward))
        self._frame = preprocess_frame(obs)  # (84, 84): s_{t+1}
        if terminated or truncated:
            self.finish_episode(terminated=bool(terminated), truncated=bool(truncated))
        return obs, reward, terminated, truncated, info

    def finish_episode(self, *, terminated: bool = False, truncated: bool = False) -> None:
        """Hand the recorded steps of the current game to the writer (no-op if there are none)."""
        if self._actions:
            rewards = np.asarray(self._rewards, dtype=np.float32)  # (T,)
            self.writer.add_episode(
                np.stack(self._frames),  # (T, 84, 84)
                np.asarray(self._actions),  # (T,)
                rewards,
                np.sign(rewards),  # (T,) DQN reward clipping, as SB3's ClipRewardEnv
                terminated=terminated,
                truncated=truncated,
                env_index=self.env_index,
            )
        self._clear()
        if terminated or truncated:
            self._frame = None


def make_recorded_atari_env(
    env_id: str,
    writer: AtariDatasetWriter | None,
    *,
    repeat_action_probability: float = 0.0,
    noop_max: int = 30,
    frame_skip: int = 4,
    monitor: bool = False,
) -> gym.Env:
    """The SB3 Atari training chain with the recorder between frame skipping and life episodes.

    ``ALE/<Game>-v5(frameskip=1)`` → ``NoopResetEnv`` → ``MaxAndSkipEnv`` → [``Monitor``] →
    :class:`LearningHistoryRecorder` → ``EpisodicLifeEnv`` → ``FireResetEnv`` (games with FIRE) →
    ``WarpFrame(84)`` → ``ClipRewardEnv``; the same as SB3's ``AtariWrapper`` with
    ``terminal_on_life_loss=True``, built explicitly to put the recorder inside it.

    Args:
        env_id: an ``ALE/<Game>-v5`` id.
        writer: where the recorder sends finished games; None builds the chain without recorder.
        repeat_action_probability: ALE sticky actions (0: as the evaluation env's default).
        noop_max: maximum random no-ops at reset (raw frames, as SB3 and AtariPreprocessing).
        frame_skip: agent steps last this many frames (max-pooled over the last two).
        monitor: add SB3's ``Monitor`` at the game level (full games, raw rewards) for checks.

    Returns:
        The env; observations ``(84, 84, 1)`` uint8, clipped rewards, an episode per life.
    """
    from stable_baselines3.common.atari_wrappers import (
        ClipRewardEnv,
        EpisodicLifeEnv,
        FireResetEnv,
        MaxAndSkipEnv,
        NoopResetEnv,
        WarpFrame,
    )
    from stable_baselines3.common.monitor import Monitor

    from seqagents.envs import make_env

    env = make_env(
        env_id,
        frameskip=1,
        repeat_action_probability=repeat_action_probability,
        max_num_frames_per_episode=108_000,
    )
    env = NoopResetEnv(env, noop_max=noop_max)
    env = MaxAndSkipEnv(env, skip=frame_skip)
    if monitor:
        env = Monitor(env)
    if writer is not None:
        env = LearningHistoryRecorder(env, writer)
    env = EpisodicLifeEnv(env)
    if "FIRE" in env.unwrapped.get_action_meanings():
        env = FireResetEnv(env)
    env = WarpFrame(env, width=FRAME_SIZE, height=FRAME_SIZE)
    return ClipRewardEnv(env)


# ---------------------------------------------------------------------------- PPO recording
@dataclass
class RecordingResult:
    """What :func:`record_ppo_history` wrote."""

    out_dir: Path  # the dataset folder
    policy_path: Path  # the final PPO policy (SB3 zip)
    n_steps: int  # recorded transitions (policy steps + the wrappers' FIRE/no-op steps)
    n_episodes: int  # full games recorded
    policy_steps: int  # PPO timesteps (summed over envs)
    return_mean: float | None  # mean raw game return over the whole history
    return_max: float | None  # best raw game return


def _linear(initial: float) -> Callable[[float], float]:
    """rl-zoo's ``lin_<value>`` schedule: ``initial * progress_remaining`` (1 → 0)."""

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial

    return schedule


def record_ppo_history(
    game: str,
    n_steps: int,
    out_dir: str | os.PathLike,
    seed: int = 0,
    n_envs: int = 8,
    *,
    repeat_action_probability: float = 0.0,
    chunk_size: int = 10_000,
    n_threads: int | None = 1,
    device: str = "cpu",
    progress_bar: bool = True,
    overwrite: bool = False,
    hyperparameters: dict[str, Any] | None = None,
) -> RecordingResult:
    """Train SB3 PPO (CnnPolicy, rl-zoo Atari settings) and record its whole learning history.

    Args:
        game: ``"Breakout"`` or an env id ``"ALE/Breakout-v5"``.
        n_steps: PPO timesteps summed over the envs (SB3 ``total_timesteps``; rounded up to a
            multiple of ``n_envs * n_steps``). The dataset has a few percent more transitions: the
            wrappers' FIRE and no-op steps (e.g. 467k PPO steps ≈ 500k transitions on Breakout).
        out_dir: dataset folder (chunks, ``metadata.json``, ``training_curve.csv``,
            ``ppo_policy.zip``).
        seed: PPO and env seed (env ``i`` is seeded ``seed + i``).
        n_envs: parallel envs (rl-zoo: 8), stepped in one process (``DummyVecEnv``).
        repeat_action_probability: ALE sticky actions during recording (rl-zoo: 0).
        chunk_size: steps per compressed chunk.
        n_threads: torch threads (1 is fastest on a shared CPU: 150–180 vs 80 steps/s with 2);
            None leaves torch's setting alone.
        device: torch device for PPO.
        progress_bar: show a tqdm bar on stderr (steps, steps/s, recent mean game return).
        overwrite: replace an existing dataset in ``out_dir``.
        hyperparameters: overrides of :data:`PPO_ATARI_HYPERPARAMETERS`.

    Returns:
        A :class:`RecordingResult`.
    """
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

    env_id = game if game.startswith("ALE/") else f"ALE/{game}-v5"
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, got {n_steps!r}.")
    if n_envs < 1:
        raise ValueError(f"n_envs must be at least 1, got {n_envs}.")
    params = {**PPO_ATARI_HYPERPARAMETERS, **(hyperparameters or {})}
    unknown = set(params) - set(PPO_ATARI_HYPERPARAMETERS)
    if unknown:
        raise ValueError(f"unknown PPO hyperparameters {sorted(unknown)}.")
    if n_threads is not None:
        torch.set_num_threads(n_threads)
    metadata = {
        "env_id": env_id,
        # rebuilds the evaluation env: seqagents.envs.make_env(env_id, **eval_env_kwargs)
        "eval_env_kwargs": {
            "atari_preprocessing": True,
            "repeat_action_probability": repeat_action_probability,
        },
        "recording_env": {
            "chain": "ALE v5(frameskip=1) → NoopReset(30) → MaxAndSkip(4) → Recorder → "
            "EpisodicLife → FireReset → WarpFrame(84) → ClipReward → VecFrameStack(4)",
            "repeat_action_probability": repeat_action_probability,
            "max_num_frames_per_episode": 108_000,
        },
        "behaviour_policy": {
            "algo": "ppo",
            "policy": "CnnPolicy",
            "n_envs": n_envs,
            "total_timesteps": int(n_steps),
            "seed": seed,
            "hyperparameters": params,
            "source": "rl-baselines3-zoo hyperparams/ppo.yml atari (lin_ schedules)",
        },
    }
    out_dir = Path(out_dir)
    writer = AtariDatasetWriter(
        out_dir, chunk_size=chunk_size, metadata=metadata, overwrite=overwrite
    )

    def thunk() -> gym.Env:
        return make_recorded_atari_env(
            env_id, writer, repeat_action_probability=repeat_action_probability
        )

    venv = DummyVecEnv([thunk] * n_envs)
    writer.metadata["action_meanings"] = venv.envs[0].unwrapped.get_action_meanings()
    writer.metadata["n_actions"] = int(venv.action_space.n)
    venv.seed(seed)
    venv = VecFrameStack(venv, n_stack=4)
    model = PPO(
        "CnnPolicy",
        venv,
        n_steps=params["n_steps"],
        n_epochs=params["n_epochs"],
        batch_size=params["batch_size"],
        learning_rate=_linear(params["learning_rate"]),
        clip_range=_linear(params["clip_range"]),
        ent_coef=params["ent_coef"],
        vf_coef=params["vf_coef"],
        seed=seed,
        device=device,
        verbose=0,
    )

    class _Progress(BaseCallback):
        def _on_training_start(self) -> None:
            self.bar = None
            if progress_bar:
                from tqdm.auto import tqdm

                rollout = n_envs * params["n_steps"]  # SB3 learns in whole rollouts
                total = -(-int(n_steps) // rollout) * rollout  # n_steps rounded up
                self.bar = tqdm(total=total, unit="step", desc=f"PPO {env_id}", mininterval=5.0)

        def _on_step(self) -> bool:
            writer.policy_steps = self.num_timesteps
            if self.bar is not None:
                self.bar.update(self.num_timesteps - self.bar.n)
                if writer.returns:
                    recent = writer.returns[-20:]
                    self.bar.set_postfix(
                        games=writer.n_episodes,
                        ret20=f"{np.mean(recent):.1f}",
                        recorded=writer.n_steps,
                        refresh=False,
                    )
            return True

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.close()

    try:
        model.learn(total_timesteps=int(n_steps), callback=_Progress())
    finally:
        policy_path = out_dir / "ppo_policy.zip"
        model.save(policy_path)
        writer.metadata["policy"] = policy_path.name
        written = writer.close()
        venv.close()
    return RecordingResult(
        out_dir=out_dir,
        policy_path=policy_path,
        n_steps=written["n_steps"],
        n_episodes=written["n_episodes"],
        policy_steps=written["policy_steps"],
        return_mean=written["return_mean"],
        return_max=written["return_max"],
    )


# ---------------------------------------------------------------------------- loading
@dataclass
class AtariTrajectoryData(TrajectoryData):
    """:class:`~seqagents.data.TrajectoryData` of an Atari dataset: frames stored once.

    ``observations`` is a :class:`~seqagents.data.frames.FrameStackedFrames` view ``(N, 4, 84, 84)``
    uint8 (stacked at gather time, never as float); ``rewards`` is the array chosen at load time
    (clipped by default: DT's Atari RTGs come from clipped rewards); both arrays stay available.
    """

    raw_rewards: np.ndarray | None = None  # (N,) float32, game points
    clipped_rewards: np.ndarray | None = None  # (N,) float32, sign of the raw reward
    metadata: dict[str, Any] | None = None  # the dataset's metadata.json

    def __post_init__(self) -> None:
        if not isinstance(self.observations, FrameStackedFrames):
            raise TypeError("AtariTrajectoryData.observations must be a FrameStackedFrames view.")
        super().__post_init__()
        if not np.array_equal(self.observations.episode_starts, self.episode_starts):
            raise ValueError("the frame view's episode boundaries differ from episode_starts.")

    @property
    def frames(self) -> np.ndarray:
        """The stored single frames, ``(N, 84, 84)`` uint8."""
        return self.observations.frames

    def game_returns(self) -> np.ndarray:
        """Raw (unclipped) return of each game, ``(n_episodes,)`` float64."""
        rewards = self.raw_rewards if self.raw_rewards is not None else self.rewards
        return np.add.reduceat(rewards.astype(np.float64), self.episode_starts[:-1])


def load_atari_dataset(
    path: str | os.PathLike,
    *,
    reward: str = "clipped",
    frame_stack: int = 4,
) -> AtariTrajectoryData:
    """Load a dataset folder written by :func:`record_ppo_history` / :class:`AtariDatasetWriter`.

    Frames are decompressed chunk by chunk into one preallocated ``(N, 84, 84)`` uint8 array
    (peak memory ≈ the frames plus one chunk).

    Args:
        path: the dataset folder.
        reward: ``"clipped"`` (sign, DT/DQN-replay RTGs) or ``"raw"`` (game points) as
            ``data.rewards``; both stay in ``raw_rewards`` / ``clipped_rewards``.
        frame_stack: frames per observation.

    Returns:
        An :class:`AtariTrajectoryData` with ``(N, frame_stack, 84, 84)`` uint8 observations.

    Raises:
        FileNotFoundError: no dataset in ``path``.
        ValueError: an unknown ``reward`` or a corrupt dataset.
    """
    if reward not in ("clipped", "raw"):
        raise ValueError(f"reward must be 'clipped' or 'raw', got {reward!r}.")
    path = Path(path)
    chunks = sorted(path.glob("chunk_[0-9]*.npz"))
    chunks = [chunk for chunk in chunks if not chunk.name.endswith(".tmp.npz")]
    if not chunks:
        raise FileNotFoundError(
            f"no Atari dataset in {path} (no chunk_*.npz); record one with "
            "`seqagents collect --learn ppo --env ALE/Breakout-v5 --steps N --out DIR`."
        )
    metadata: dict[str, Any] = {}
    if (path / "metadata.json").exists():
        metadata = json.loads((path / "metadata.json").read_text())
        if metadata.get("format", ATARI_FORMAT) != ATARI_FORMAT:
            raise ValueError(f"{path}: unknown dataset format {metadata.get('format')!r}.")
    lengths = []
    for chunk in chunks:
        with np.load(chunk) as archive:  # reads only the members that are accessed
            lengths.append(archive["episode_lengths"])
    episode_lengths = np.concatenate(lengths)  # (n_episodes,)
    n = int(episode_lengths.sum())
    frames = np.empty((n, FRAME_SIZE, FRAME_SIZE), dtype=np.uint8)  # (N, 84, 84)
    fields = ("actions", "rewards", "clipped_rewards", "terminals", "truncations")
    columns: dict[str, list[np.ndarray]] = {key: [] for key in fields}
    offset = 0
    for chunk in chunks:
        with np.load(chunk) as archive:
            chunk_frames = archive["frames"]  # (n_chunk, 84, 84) uint8
            frames[offset : offset + len(chunk_frames)] = chunk_frames
            offset += len(chunk_frames)
            del chunk_frames
            for key in fields:
                columns[key].append(archive[key])
    if offset != n:
        raise ValueError(f"{path}: {offset} frames but episode lengths sum to {n}.")
    episode_starts = np.concatenate([[0], np.cumsum(episode_lengths)])  # (n_episodes + 1,)
    arrays = {key: np.concatenate(parts) for key, parts in columns.items()}  # (N,) each
    n_actions = metadata.get("n_actions") or int(arrays["actions"].max()) + 1
    observation_space = gym.spaces.Box(0, 255, (frame_stack, FRAME_SIZE, FRAME_SIZE), np.uint8)
    return AtariTrajectoryData(
        observations=FrameStackedFrames(frames, episode_starts, stack=frame_stack),
        actions=arrays["actions"].astype(np.int64),
        rewards=arrays["clipped_rewards" if reward == "clipped" else "rewards"],
        terminals=arrays["terminals"],
        truncations=arrays["truncations"],
        episode_starts=episode_starts,
        observation_space=observation_space,
        action_space=gym.spaces.Discrete(int(n_actions)),
        dataset_id=str(path),
        raw_rewards=arrays["rewards"],
        clipped_rewards=arrays["clipped_rewards"],
        metadata=metadata,
    )
