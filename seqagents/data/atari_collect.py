"""Recording Atari learning histories: SB3 PPO trained with rl-zoo settings, every game kept.


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


The format the games are written in is :mod:`seqagents.data.atari`.
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

from seqagents.data.atari import ATARI_FORMAT, FRAME_SIZE, preprocess_frame

__all__ = [
    "AtariDatasetWriter",
    "LearningHistoryRecorder",
    "PPO_ATARI_HYPERPARAMETERS",
    "RecordingResult",
    "make_recorded_atari_env",
    "record_ppo_history",
]

logger = logging.getLogger(__name__)

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
        resume: dict[str, Any] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        if resume is not None:
            self._init_counts(chunk_size, metadata)
            self._restore(resume)
            return
        if (self.out_dir / "metadata.json").exists() or any(self.out_dir.glob("chunk_*.npz")):
            if not overwrite:
                raise FileExistsError(
                    f"{self.out_dir} already holds an Atari dataset; pass overwrite=True "
                    "(--overwrite) or choose another folder."
                )
            for path in [*self.out_dir.glob("chunk_*.npz"), self.out_dir / "metadata.json"]:
                path.unlink(missing_ok=True)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._init_counts(chunk_size, metadata)
        self._curve_file = open(self.out_dir / "training_curve.csv", "w", newline="")  # noqa: SIM115
        self._curve = csv.writer(self._curve_file)
        self._curve.writerow(_CURVE_COLUMNS)

    def _init_counts(self, chunk_size: int, metadata: dict[str, Any] | None) -> None:
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
        self._elapsed_before = 0.0  # wall time of the sessions before a resume
        self._closed = False

    def stage(self) -> dict[str, Any]:
        """Write the finished games still buffered as a chunk and return the writer's counts
        (what :func:`record_ppo_history` saves in ``stage.json`` to resume from here)."""
        self._write_chunk()
        self._curve_file.flush()
        return {
            "n_steps": self.n_steps,
            "n_episodes": self.n_episodes,
            "n_chunks": self.n_chunks,
            "returns": list(self.returns),
            "wall_time_s": round(self._elapsed(), 1),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        """Continue a folder from a :meth:`stage`: later chunks and curve rows are dropped."""
        self.n_steps, self.n_episodes = int(state["n_steps"]), int(state["n_episodes"])
        self.n_chunks, self.returns = int(state["n_chunks"]), [float(r) for r in state["returns"]]
        self._elapsed_before = float(state["wall_time_s"])
        for path in self.out_dir.glob("chunk_*.npz"):
            index = int(path.name[len("chunk_") :].split(".")[0])
            if index >= self.n_chunks or ".tmp" in path.name:
                path.unlink()  # written after the stage (or half-written): recorded again
        missing = [i for i in range(self.n_chunks) if not self._chunk_path(i).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{self.out_dir}: chunks {missing[:5]} of the stage to resume from are missing; "
                "record the history again (without --resume)."
            )
        (self.out_dir / "metadata.json").unlink(missing_ok=True)  # rewritten by close()
        curve = self.out_dir / "training_curve.csv"
        rows = curve.read_text().splitlines(keepends=True)[: self.n_episodes + 1]
        curve.write_text("".join(rows))  # header + one row per game up to the stage
        self._curve_file = open(curve, "a", newline="")  # noqa: SIM115
        self._curve = csv.writer(self._curve_file)

    def _elapsed(self) -> float:
        return self._elapsed_before + time.monotonic() - self._start

    def _chunk_path(self, index: int) -> Path:
        return self.out_dir / f"chunk_{index:05d}.npz"

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
                round(self._elapsed(), 2),
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
        path = self._chunk_path(self.n_chunks)
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
            wall_time_s=round(self._elapsed(), 1),
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


_STAGE_FORMAT = "seqagents-ppo-history-stage-v1"


def _read_stage(stages: Path, settings: dict[str, Any], n_steps: int) -> dict[str, Any]:
    """The last stage of a recording to resume, checked against this call's settings."""
    path = stages / "stage.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{stages.parent} has no stage to resume from ({path} is missing); record it "
            "without --resume (stages are saved every stage_every PPO steps)."
        )
    try:
        stage = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is unreadable ({e}); record the history again.") from e
    if not isinstance(stage, dict) or stage.get("format") != _STAGE_FORMAT:
        raise ValueError(f"{path} is not a seqagents PPO-history stage.")
    changed = {k: (stage.get(k), v) for k, v in settings.items() if stage.get(k) != v}
    if changed:
        raise ValueError(
            f"cannot resume {stages.parent}: settings differ from the recording's "
            f"(saved, now): {changed}"
        )
    if stage["policy_steps"] >= n_steps:
        raise ValueError(
            f"{stages.parent} already holds {stage['policy_steps']} PPO steps; "
            f"ask for more than that to resume (got {n_steps})."
        )
    return stage


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
    resume: bool = False,
    stage_every: int = 50_000,
    keep_policy_every: int = 250_000,
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
        resume: continue the recording in ``out_dir`` from its last stage (same game, seed,
            envs and hyperparameters; ``n_steps`` may grow). The history up to the stage is kept
            as it was; the games in progress at the stage are lost and the envs restart, seeded
            ``seed + policy_steps``, so a resumed history is a valid continuation of the
            learning run (policy, optimizer and schedules restored) but not bit-identical to an
            uninterrupted one from the stage on.
        stage_every: PPO steps between stages (at the next rollout boundary): the finished
            games are flushed to a chunk and the policy, its optimizer and the writer's counts
            are saved in ``out_dir/stages/`` (plain tensors and JSON, no pickles).
        keep_policy_every: also keep the PPO policy as an SB3 zip
            (``stages/ppo_policy_<steps>.zip``) every this many PPO steps.

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
    stages = out_dir / "stages"
    settings = {"env_id": env_id, "seed": seed, "n_envs": n_envs, "hyperparameters": params}
    stage = _read_stage(stages, settings, int(n_steps)) if resume else None
    start = stage["policy_steps"] if stage else 0
    writer = AtariDatasetWriter(
        out_dir,
        chunk_size=chunk_size,
        metadata=metadata,
        overwrite=overwrite,
        resume=stage["writer"] if stage else None,
    )
    resumed_at = [*stage.get("resumed_at", []), start] if stage else []
    if resumed_at:
        metadata["behaviour_policy"]["resumed_at_policy_steps"] = resumed_at

    def thunk() -> gym.Env:
        return make_recorded_atari_env(
            env_id, writer, repeat_action_probability=repeat_action_probability
        )

    venv = DummyVecEnv([thunk] * n_envs)
    writer.metadata["action_meanings"] = venv.envs[0].unwrapped.get_action_meanings()
    writer.metadata["n_actions"] = int(venv.action_space.n)
    venv.seed(seed + start)
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
    if stage:
        saved = torch.load(stages / stage["state_file"], weights_only=True)  # tensors only
        model.policy.load_state_dict(saved["policy"])
        model.policy.optimizer.load_state_dict(saved["optimizer"])
        model.num_timesteps = writer.policy_steps = start
        model.set_random_seed(seed + start)

    def save_stage(steps: int) -> None:
        counts = writer.stage()  # finished games on disk first
        stages.mkdir(exist_ok=True)
        state_file = f"ppo_state_{steps}.pt"
        state = {
            "policy": model.policy.state_dict(),
            "optimizer": model.policy.optimizer.state_dict(),
        }
        torch.save(state, stages / f"{state_file}.tmp")
        os.replace(stages / f"{state_file}.tmp", stages / state_file)
        if keep_policy_every and steps % keep_policy_every < n_envs * params["n_steps"]:
            model.save(stages / f"ppo_policy_{steps}.zip")
        record = {
            "format": _STAGE_FORMAT,
            **settings,
            "policy_steps": steps,
            "state_file": state_file,
            "writer": counts,
            "resumed_at": resumed_at,
        }
        (stages / "stage.json.tmp").write_text(json.dumps(record))
        os.replace(stages / "stage.json.tmp", stages / "stage.json")  # the stage is complete
        for old in stages.glob("ppo_state_*.pt"):
            if old.name != state_file:
                old.unlink()

    class _Progress(BaseCallback):
        def _on_training_start(self) -> None:
            self.bar = None
            if progress_bar:
                from tqdm.auto import tqdm

                rollout = n_envs * params["n_steps"]  # SB3 learns in whole rollouts
                total = -(-int(n_steps) // rollout) * rollout  # n_steps rounded up
                self.bar = tqdm(
                    total=total, initial=start, unit="step", desc=f"PPO {env_id}", mininterval=5.0
                )
            self.next_stage = (start // stage_every + 1) * stage_every if stage_every else None

        def _on_rollout_start(self) -> None:
            if self.next_stage is not None and self.num_timesteps >= self.next_stage:
                save_stage(self.num_timesteps)
                self.next_stage = (self.num_timesteps // stage_every + 1) * stage_every

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
        model.learn(
            total_timesteps=int(n_steps) - start,
            callback=_Progress(),
            reset_num_timesteps=stage is None,
        )
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
