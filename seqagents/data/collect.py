"""Collecting local Minari datasets from a behaviour policy (the ``seqagents collect`` command).

Datasets are written with Minari's jax-free path, ``minari.create_dataset_from_buffers`` with one
``minari.data_collector.EpisodeBuffer`` per finished episode (``minari.DataCollector`` would need
``minari[create]``, i.e. jax). Each buffer holds ``T + 1`` observations, ``T`` actions, rewards,
terminations and truncations, the layout of Minari's remote datasets, so
:func:`seqagents.data.load_dataset` reads both the same way.

Behaviour policies (the ``policy`` argument of :func:`collect_dataset`: ``"random"``,
``"babyai-bot[:options]"``, ``"<algo>:<path.zip>"``, an object with ``predict``) are made in
:mod:`seqagents.data.policies`.

How BabyAI demos are kept, seeded and perturbed (LEAP's protocol): docs/datasets.md.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import minari
import numpy as np
import torch
from minari.data_collector import EpisodeBuffer
from minari.dataset.minari_dataset import parse_dataset_id
from minari.storage.datasets_root_dir import get_dataset_path
from tqdm.auto import tqdm

from seqagents.data.policies import (
    SB3_ALGOS,
    BabyAIBotOptions,
    BehaviourPolicy,
    SupportsPredict,
    make_policy,
    stack_observations,
)
from seqagents.envs import make_env, storable_space

__all__ = ["SB3_ALGOS", "BabyAIBotOptions", "SupportsPredict", "collect_dataset"]

logger = logging.getLogger(__name__)


@dataclass
class _Episode:
    """The running episode of one env: T + 1 observations, T of everything else."""

    seed: int
    observations: list[Any]
    actions: list[Any] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terminations: list[bool] = field(default_factory=list)
    truncations: list[bool] = field(default_factory=list)
    executed: list[int] | None = None  # actions executed, kept only when they may differ

    def to_buffer(self, action_space: gym.spaces.Space) -> EpisodeBuffer:
        if isinstance(action_space, gym.spaces.Discrete):
            actions = np.asarray(self.actions, dtype=np.int64)  # (T,)
        else:
            actions = np.stack(self.actions).astype(action_space.dtype)  # (T, *act_shape)
        return EpisodeBuffer(
            seed=self.seed,
            observations=stack_observations(self.observations),  # (T + 1, *obs_shape)
            actions=actions,
            rewards=np.asarray(self.rewards, dtype=np.float64),  # (T,)
            terminations=np.asarray(self.terminations, dtype=bool),  # (T,)
            truncations=np.asarray(self.truncations, dtype=bool),  # (T,)
            # Minari's info layout: entry 0 from the reset, entry t + 1 from step t.
            infos=None
            if self.executed is None
            else {"executed_action": np.asarray([-1, *self.executed], dtype=np.int64)},  # (T+1,)
        )


def collect_dataset(
    dataset_id: str,
    env_id: str,
    policy: str | SupportsPredict = "random",
    *,
    n_steps: int | None = None,
    n_episodes: int | None = None,
    n_envs: int = 1,
    seed: int = 0,
    deterministic: bool = False,
    env_kwargs: dict[str, Any] | None = None,
    max_episode_steps: int | None = None,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    algorithm_name: str | None = None,
    author: str = "seqagents",
    description: str | None = None,
    overwrite: bool = False,
    progress_bar: bool = True,
    trust_policy_file: bool = False,
) -> minari.MinariDataset:
    """Run a behaviour policy in ``n_envs`` envs and save the episodes as a local Minari dataset.

    The envs are stepped in lock-step (like ``gymnasium.vector.SyncVectorEnv``, the policy called
    once per step on the stacked observations of the running envs) but reset explicitly, so every
    saved episode is complete: it ends with ``terminated`` (MDP end) or ``truncated`` (time limit),
    both kept as the env reported them. Episode ``k`` (in start order) is reset with seed
    ``seed + k``, which Minari records per episode, so a collection is reproducible.

    Stopping: no new episode starts once ``n_episodes`` episodes have started or ``n_steps``
    transitions have been taken; the envs finish their running episodes. With ``n_episodes``
    exactly that many episodes are saved; with ``n_steps`` the dataset holds at least ``n_steps``
    transitions (at most ``n_envs - 1`` episodes more than needed). At least one of the two is
    required; with both, whichever is reached first stops new episodes.

    Args:
        dataset_id: Minari id of the new dataset with a version, e.g.
            ``"local/halfcheetah/medium-v0"``; written under ``$MINARI_DATASETS_PATH``.
        env_id: gymnasium env id, e.g. ``"HalfCheetah-v5"``.
        policy: ``"random"``, ``"babyai-bot[:options]"``, ``"<algo>:<path.zip>"``
            (stable-baselines3, e.g. ``"sac:zoo/sac-halfcheetah.zip"``), a bare SB3 ``.zip``
            path, or an object with an SB3-style ``predict``. See the module docstring.
        n_steps: minimum number of transitions to collect.
        n_episodes: number of episodes to collect.
        n_envs: number of envs run side by side (``env_kwargs`` apply to all).
        seed: base seed of episode resets (``seed + k``), action-space sampling
            (``seed + env_index``) and torch's RNG for stochastic SB3 policies (restored after).
        deterministic: passed to ``predict`` of SB3 policies. D4RL-style "medium" data comes from
            the stochastic policy (False).
        env_kwargs: keyword arguments for ``gymnasium.make``.
        max_episode_steps: time limit for ``gymnasium.make`` (None keeps the env's own).
        ref_min_score: random-policy return stored in the metadata for normalized scores (D4RL
            HalfCheetah: -280.178953). Give both reference scores or neither.
        ref_max_score: expert return stored in the metadata (D4RL HalfCheetah: 12135.0).
        algorithm_name: metadata ``algorithm_name``; default: a description of ``policy``.
        author: metadata ``author``.
        description: metadata ``description``; default: generated from the arguments.
        overwrite: replace an existing local dataset with the same id (deleted only after the
            collection succeeded).
        progress_bar: show a tqdm progress bar on stderr.
        trust_policy_file: load a stable-baselines3 ``.zip`` policy. Such a file holds pickled
            Python objects and loading it runs any code they hold, so it is refused unless you
            made or trust it (the zoo's bundled behaviour policies are always loaded).

    Returns:
        The new dataset, opened.

    Raises:
        ValueError: bad id, limits, policy spec or reference scores.
        PermissionError: an SB3 policy file without ``trust_policy_file=True``.
        FileExistsError: the dataset exists and ``overwrite`` is False.

    Example:
        >>> dataset = collect_dataset("local/pendulum/random-v0", "Pendulum-v1", "random",
        ...                           n_episodes=2, n_envs=2, progress_bar=False)
        >>> dataset.total_episodes, dataset.total_steps
        (2, 400)
    """
    try:
        _, _, version = parse_dataset_id(dataset_id)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"'{dataset_id}' is not a valid Minari dataset id: use (namespace/)name-v<version>, "
            "e.g. 'local/halfcheetah/medium-v0'."
        ) from error
    if n_steps is None and n_episodes is None:
        raise ValueError("Give n_steps or n_episodes (or both) to say when collection stops.")
    for name, value in (("n_steps", n_steps), ("n_episodes", n_episodes), ("n_envs", n_envs)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if (ref_min_score is None) != (ref_max_score is None):
        # Minari would drop a lone ref_min_score, and estimate a missing one with 100 random
        # episodes; we want neither silently.
        raise ValueError("Give both ref_min_score and ref_max_score, or neither.")
    dataset_path = get_dataset_path(dataset_id)
    if os.path.exists(dataset_path) and not overwrite:
        raise FileExistsError(
            f"Minari dataset '{dataset_id}' already exists at {dataset_path}; pick another "
            "name or version, or pass overwrite=True (seqagents collect --overwrite)."
        )

    make_kwargs = dict(env_kwargs or {})
    if max_episode_steps is not None:
        make_kwargs["max_episode_steps"] = max_episode_steps
    envs = [make_env(env_id, **make_kwargs) for _ in range(n_envs)]
    try:
        action_source, policy_name = make_policy(
            policy, envs, seed, deterministic, trust_policy_file
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            buffers, dropped = _run_episodes(
                envs, action_source, n_steps, n_episodes, seed, progress_bar, dataset_id
            )
        total_steps = sum(len(buffer) for buffer in buffers)
        if description is None:
            description = (
                f"Collected by seqagents: {len(buffers)} episodes, {total_steps} steps of "
                f"{env_id} with policy {policy_name} (deterministic={deterministic}, seed={seed})."
            )
            if dropped:
                description += f" {dropped} failed or rejected episodes were dropped."
        if overwrite and os.path.exists(dataset_path):
            shutil.rmtree(dataset_path)
        with warnings.catch_warnings():
            # Minari warns about every metadata field left None; these are deliberate.
            warnings.filterwarnings("ignore", message=r"`\w+` is set to None", module="minari")
            dataset = minari.create_dataset_from_buffers(
                dataset_id=dataset_id,
                buffer=buffers,
                env=envs[0],
                algorithm_name=algorithm_name or policy_name,
                author=author,
                description=description,
                observation_space=storable_space(envs[0].observation_space),
                action_space=envs[0].action_space,
                ref_min_score=ref_min_score,
                ref_max_score=ref_max_score,
                # Lossless storage: JPEG would alter image observations (Atari frames).
                jpeg_encoding=False,
            )
    finally:
        for env in envs:
            env.close()
    logger.info(
        "Wrote %s (version %d): %d episodes, %d steps, at %s",
        dataset_id, version, len(buffers), total_steps, dataset_path,
    )  # fmt: skip
    return dataset


def _run_episodes(
    envs: Sequence[gym.Env],
    policy: BehaviourPolicy,
    n_steps: int | None,
    n_episodes: int | None,
    seed: int,
    progress_bar: bool,
    dataset_id: str,
) -> tuple[list[EpisodeBuffer], int]:
    """Step the envs in lock-step until the limits are reached.

    Returns:
        The finished (kept) episodes, and how many episodes were dropped (``policy.keep`` said
        no, ``policy.act`` gave None, or ``policy.reset`` rejected the start).
    """
    finished: list[EpisodeBuffer] = []
    running: list[_Episode | None] = [None] * len(envs)
    started = steps = dropped = 0  # steps: of kept and running episodes only
    record_executed = getattr(getattr(policy, "options", None), "noise", 0) > 0

    def drop(episode: _Episode) -> None:
        nonlocal steps, dropped
        steps -= len(episode.actions)
        dropped += 1
        if dropped > 100 + 10 * (started - dropped):
            raise RuntimeError(
                f"the behaviour policy failed {dropped} of {started} episodes of "
                f"{envs[0].spec.id if envs[0].spec else 'the env'}; is it the right policy "
                "for this env (the BabyAI bot cannot solve every level, e.g. KeyInBox)?"
            )

    def start_episode(i: int) -> None:
        nonlocal started
        while True:
            if (n_episodes is not None and started - dropped >= n_episodes) or (
                n_steps is not None and steps >= n_steps
            ):
                running[i] = None  # budget reached: this env stays idle
                return
            observation, _ = envs[i].reset(seed=seed + started)
            episode = _Episode(seed=seed + started, observations=[observation])
            episode.executed = [] if record_executed else None
            started += 1
            if policy.reset(i, envs[i]):
                running[i] = episode
                return
            drop(episode)  # rejected start: reset with the next seed

    by_steps = n_steps is not None
    bar = tqdm(
        total=n_steps if by_steps else n_episodes,
        unit="step" if by_steps else "episode",
        desc=f"collect {dataset_id}",
        file=sys.stderr,
        disable=not progress_bar,
        dynamic_ncols=True,
    )
    with bar:
        for i in range(len(envs)):
            start_episode(i)
        while active := [i for i, episode in enumerate(running) if episode is not None]:
            actions = policy.act([running[i].observations[-1] for i in active], active)
            for i, action in zip(active, actions, strict=True):
                episode = running[i]
                if action is None:  # the policy gave up on this episode
                    drop(episode)
                    start_episode(i)
                    continue
                executed = policy.execute(i, action)
                observation, reward, terminated, truncated, _ = envs[i].step(executed)
                episode.observations.append(observation)
                episode.actions.append(action)
                if episode.executed is not None:
                    episode.executed.append(int(executed))
                episode.rewards.append(float(reward))
                episode.terminations.append(bool(terminated))
                episode.truncations.append(bool(truncated))
                steps += 1
                if by_steps and min(steps, n_steps) > bar.n:
                    bar.update(min(steps, n_steps) - bar.n)
                if terminated or truncated:
                    if policy.keep(episode):
                        finished.append(episode.to_buffer(envs[i].action_space))
                        if not by_steps:
                            bar.update(1)
                    else:
                        drop(episode)
                    bar.set_postfix(episodes=len(finished), ret=f"{sum(episode.rewards):.1f}")
                    start_episode(i)
    return finished, dropped
