"""Recording Atari learning histories: SB3 PPO trained with rl-zoo settings, every game kept.

The local substitute for DT's "1% of DQN-replay": the whole learning history of one PPO agent.
:class:`LearningHistoryRecorder` sits below SB3's life-loss, FIRE and reward-clipping wrappers, so
the recorded games are full games with raw rewards and the FIRE presses; why there, and how its
frames compare with the evaluation env's: docs/datasets.md "Atari learning histories".

The games are written by :class:`~seqagents.data.atari_writer.AtariDatasetWriter` in the format
of :mod:`seqagents.data.atari`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from seqagents.data.atari import FRAME_SIZE, preprocess_frame
from seqagents.data.atari_writer import AtariDatasetWriter

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
