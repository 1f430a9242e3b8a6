"""Loading Minari datasets and flattening them into numpy arrays.

Remote Minari ids (``mujoco/halfcheetah/medium-v0``, ``minigrid/BabyAI-GoToLocal/optimal-v0``) and
local datasets written by ``seqagents collect`` (:func:`seqagents.data.collect_dataset`) go through
the same loader. Datasets live under ``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``).

Time-index convention: Minari stores ``T + 1`` observations per episode of ``T`` steps (the state
after the last action included). :class:`TrajectoryData` drops that last observation so that row
``t`` holds ``(s_t, a_t, r_t)``: ``r_t`` is the reward received after taking ``a_t`` in ``s_t``,
the convention of D4RL and of the original Decision Transformer code.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import minari
import numpy as np
from minari.dataset.minari_dataset import parse_dataset_id
from minari.storage.datasets_root_dir import get_dataset_path

from seqagents.data.dict_observations import (
    babyai_observations,
    check_dict_space,
    episode_dict_observations,
    n_rows,
)
from seqagents.data.frames import FrameStackedFrames
from seqagents.observations import MissionVocabulary

__all__ = ["TrajectoryData", "load_dataset", "load_trajectories", "to_trajectory_data"]

logger = logging.getLogger(__name__)

_ID_HINT = (
    "Minari ids look like 'mujoco/halfcheetah/medium-v0' or 'local/halfcheetah/medium-v0': "
    "(namespace/)name-v<version>."
)


@dataclass
class TrajectoryData:
    """All transitions of a dataset as flat arrays, episodes stored back to back.

    Episode ``i`` occupies rows ``episode_starts[i]:episode_starts[i + 1]``. Arrays are converted to
    the documented dtypes on construction and their shapes are checked.

    Dict observations (BabyAI, :mod:`seqagents.observations`) are a dict of arrays kept in their
    own dtypes, never copied to float: ``image (N, W, H, 3)`` uint8, ``direction (N,)`` int64,
    ``mission (N, L)`` int64 word ids of :attr:`mission_vocabulary` (left-padded with 0), and with
    the privileged wrapper ``agent_pos``/``goal_pos`` ``(N, 2)`` int64; other keys keep their
    dtype. ``mission`` may also be given as ``N`` strings: it is then encoded with
    ``mission_vocabulary``, or with ``MissionVocabulary.from_missions`` of them if that is None.
    :attr:`obs_shape` is the image's ``(W, H, 3)``.

    Example:
        >>> import numpy as np, gymnasium as gym
        >>> data = TrajectoryData(
        ...     observations=np.zeros((5, 3)), actions=np.zeros((5, 1)), rewards=np.ones(5),
        ...     terminals=np.array([0, 1, 0, 0, 0], bool), episode_starts=np.array([0, 2, 5]),
        ...     observation_space=gym.spaces.Box(-1, 1, (3,)),
        ...     action_space=gym.spaces.Box(-1, 1, (1,)))
        >>> data.n_episodes, data.n_transitions, data.episode_lengths.tolist()
        (2, 5, [2, 3])
        >>> data.episode_returns().tolist()
        [2.0, 3.0]
    """

    observations: np.ndarray | dict[str, np.ndarray]  # (N, *obs_shape) float32, s_t; or Dict
    actions: np.ndarray  # (N, act_dim) float32 for Box, (N,) int64 for Discrete; a_t
    rewards: np.ndarray  # (N,) float32, r_t received after a_t
    terminals: np.ndarray  # (N,) bool, episode terminated (MDP end) after step t
    episode_starts: np.ndarray  # (n_episodes + 1,) int64 offsets; [0] = 0, [-1] = N
    observation_space: gym.spaces.Space  # the dataset's observation space (Box or Dict)
    action_space: gym.spaces.Space  # Box or Discrete
    truncations: np.ndarray | None = None  # (N,) bool, episode cut (time limit); None -> zeros
    dataset_id: str | None = None  # Minari id the data came from, None for synthetic data
    ref_min_score: float | None = None  # random-policy return from the metadata (normalization)
    ref_max_score: float | None = None  # expert return from the metadata (normalization)
    # Dict (BabyAI) observations only: the word ids of observations["mission"]; built from the
    # dataset's missions (MissionVocabulary.from_missions) when missions are given as text.
    mission_vocabulary: MissionVocabulary | None = None

    def __post_init__(self) -> None:
        if isinstance(self.observations, dict):  # BabyAI Dict observations: kept in their dtypes
            self.observations, self.mission_vocabulary = babyai_observations(
                self.observations, self.mission_vocabulary, self._id_suffix()
            )
        # Atari frames stored once (FrameStackedFrames, uint8) stay a lazy view: never cast.
        elif not isinstance(self.observations, FrameStackedFrames):
            with np.errstate(over="ignore"):  # an overflow to inf is reported below
                self.observations = np.asarray(self.observations, dtype=np.float32)
        self.episode_starts = np.asarray(self.episode_starts, dtype=np.int64)
        n = n_rows(self.observations)
        if n == 0 or self.episode_starts.ndim != 1 or self.episode_starts.size < 2:
            raise ValueError(
                f"TrajectoryData{self._id_suffix()} is empty: it needs at least one episode with "
                "at least one transition."
            )
        if self.truncations is None:
            self.truncations = np.zeros(n, dtype=bool)  # (N,)
        for name in ("actions", "rewards", "terminals", "truncations"):
            length = len(np.asarray(getattr(self, name)))
            if length != n:
                raise ValueError(f"{name} has {length} rows but observations have {n}.")
        if self.is_discrete:
            self.actions = np.asarray(self.actions, dtype=np.int64).reshape(n)  # (N,)
        else:
            self.actions = np.asarray(self.actions, dtype=np.float32).reshape(n, -1)  # (N, A)
        self.rewards = np.asarray(self.rewards, dtype=np.float32).reshape(n)  # (N,)
        self.terminals = np.asarray(self.terminals, dtype=bool).reshape(n)  # (N,)
        self.truncations = np.asarray(self.truncations, dtype=bool).reshape(n)  # (N,)
        starts = self.episode_starts
        if starts[0] != 0 or starts[-1] != n or np.any(np.diff(starts) <= 0):
            raise ValueError(
                "episode_starts must be increasing offsets from 0 to the number of transitions "
                f"({n}) with no empty episode; got {starts[:5].tolist()}...{starts[-2:].tolist()}."
            )
        self._check_finite()

    def _check_finite(self) -> None:
        """NaN/inf in the observations, actions or rewards is an error naming the episode: it
        would surface only as a NaN loss after training has started (or as NaN state statistics
        blamed on the checkpoint)."""
        arrays = {"rewards": self.rewards}
        if not self.is_discrete:
            arrays["actions"] = self.actions
        if isinstance(self.observations, np.ndarray):  # float32 (Atari frames and BabyAI: ints)
            arrays["observations"] = self.observations
        for name, values in arrays.items():
            finite = np.isfinite(values.reshape(len(values), -1)).all(axis=1)  # (N,)
            if finite.all():
                continue
            row = int(np.flatnonzero(~finite)[0])
            episode = int(np.searchsorted(self.episode_starts, row, side="right") - 1)
            raise ValueError(
                f"TrajectoryData{self._id_suffix()}: {name} hold NaN or inf in "
                f"{int((~finite).sum())} rows, the first in episode {episode} (its step "
                f"{row - int(self.episode_starts[episode])}, row {row}); drop or repair those "
                "episodes before training (float32 overflow counts as inf)."
            )

    def _id_suffix(self) -> str:
        return f" for dataset '{self.dataset_id}'" if self.dataset_id else ""

    @property
    def is_discrete(self) -> bool:
        """True when actions are indices of a ``Discrete`` action space."""
        return isinstance(self.action_space, gym.spaces.Discrete)

    @property
    def n_transitions(self) -> int:
        """Total number of transitions ``N``."""
        return n_rows(self.observations)

    @property
    def n_episodes(self) -> int:
        """Number of episodes."""
        return int(self.episode_starts.size - 1)

    @property
    def episode_lengths(self) -> np.ndarray:
        """Length of each episode, ``(n_episodes,)`` int64."""
        return np.diff(self.episode_starts)  # (n_episodes,)

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Shape of one observation; for Dict observations, of the ``image`` (``(W, H, 3)``)."""
        if isinstance(self.observations, dict):
            return tuple(self.observations["image"].shape[1:])
        return tuple(self.observations.shape[1:])

    @property
    def is_dict_obs(self) -> bool:
        """True for Dict observations (BabyAI): ``observations`` is a dict of arrays."""
        return isinstance(self.observations, dict)

    @property
    def act_dim(self) -> int:
        """Action dimension (Box) or number of actions (Discrete)."""
        if self.is_discrete:
            return int(self.action_space.n)
        return int(self.actions.shape[1])

    def episode_index(self) -> np.ndarray:
        """Episode of each transition, ``(N,)`` int64."""
        return np.repeat(np.arange(self.n_episodes), self.episode_lengths)  # (N,)

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of each episode, ``(n_episodes,)`` float64."""
        return np.add.reduceat(self.rewards.astype(np.float64), self.episode_starts[:-1])


def _not_found_message(dataset_id: str, path: os.PathLike | str, reason: str) -> str:
    return (
        f"Minari dataset '{dataset_id}' is not available locally (looked in {path}); {reason}. "
        "Options: (1) when online, load it with download=True to fetch it from the Minari "
        "remote; (2) build a local dataset from a behaviour policy with `seqagents collect` "
        "(seqagents.data.collect_dataset); (3) point the MINARI_DATASETS_PATH environment "
        "variable at the directory that holds it. "
        f"Local datasets: {_local_ids()}."
    )


def _local_ids(limit: int = 10) -> str:
    ids = sorted(minari.list_local_datasets())
    if not ids:
        return "none"
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


def load_dataset(dataset_id: str, *, download: bool = False) -> minari.MinariDataset:
    """Open a Minari dataset stored locally, optionally downloading it first.

    Args:
        dataset_id: Minari id, e.g. ``"mujoco/halfcheetah/medium-v0"`` or a local id written by
            ``seqagents collect``.
        download: Fetch the dataset from the Minari remote when it is not found locally (needs
            internet access).

    Returns:
        The opened ``minari.MinariDataset``.

    Raises:
        ValueError: ``dataset_id`` is not a valid Minari id.
        FileNotFoundError: the dataset is not stored locally and could not be downloaded; the
            message says how to get it.

    Example:
        >>> load_dataset("local/not-there-v0")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: Minari dataset 'local/not-there-v0' is not available locally ...
    """
    if not isinstance(dataset_id, str) or not dataset_id:
        raise ValueError(f"dataset_id must be a non-empty string, got {dataset_id!r}. {_ID_HINT}")
    try:
        parse_dataset_id(dataset_id)
    except (ValueError, TypeError) as error:
        raise ValueError(f"'{dataset_id}' is not a valid Minari dataset id. {_ID_HINT}") from error
    path = get_dataset_path(dataset_id)
    if os.path.exists(os.path.join(path, "data")):
        try:
            return minari.load_dataset(dataset_id)
        except (OSError, ValueError, KeyError) as error:  # h5py: OSError without a filename
            raise ValueError(_corrupt_message(dataset_id, path, error)) from error
    if not download:
        raise FileNotFoundError(
            _not_found_message(dataset_id, path, "download=False, so the remote was not tried")
        )
    try:
        return minari.load_dataset(dataset_id, download=True)
    except Exception as error:  # network errors, unknown remote id, ...
        raise FileNotFoundError(
            _not_found_message(
                dataset_id,
                path,
                f"downloading it failed ({type(error).__name__}: {error}); downloads need "
                "internet access and an id that exists on the Minari remote",
            )
        ) from error


def _corrupt_message(dataset_id: str, path: object, error: BaseException) -> str:
    return (
        f"Minari dataset '{dataset_id}' at {path} cannot be read ({type(error).__name__}: "
        f"{error}); its files are corrupt or truncated: collect or download it again."
    )


def to_trajectory_data(dataset: minari.MinariDataset) -> TrajectoryData:
    """Flatten a Minari dataset into :class:`TrajectoryData` (row ``t`` = ``(s_t, a_t, r_t)``).

    ``Box`` and ``Dict`` observation spaces and ``Box``/``Discrete`` action spaces are supported.
    Dict observations (BabyAI: ``image``, ``direction``, ``mission`` stored as Minari ``Text``,
    and ``agent_pos``/``goal_pos`` from :class:`seqagents.envs.BabyAIPrivileged`) become a dict of
    arrays in their own dtypes (see :class:`TrajectoryData`), the missions word ids of a
    :class:`~seqagents.observations.MissionVocabulary` built from the dataset's missions and
    stored as ``TrajectoryData.mission_vocabulary``. Episodes with no step are skipped.

    Args:
        dataset: an opened Minari dataset (see :func:`load_dataset`).

    Returns:
        The dataset's transitions as flat arrays.

    Raises:
        ValueError: unsupported spaces, or a dataset without transitions.
    """
    dataset_id = dataset.id
    obs_space, act_space = dataset.observation_space, dataset.action_space
    dict_obs = isinstance(obs_space, gym.spaces.Dict)
    if dict_obs:
        check_dict_space(dataset_id, obs_space)
    elif not isinstance(obs_space, gym.spaces.Box):
        raise ValueError(
            f"Dataset '{dataset_id}' has {type(obs_space).__name__} observations; only Box and "
            "Dict observations are supported for training windows yet. Open it with "
            "seqagents.data.load_dataset (a minari.MinariDataset) to read it episode by episode."
        )
    if not isinstance(act_space, (gym.spaces.Box, gym.spaces.Discrete)):
        raise ValueError(
            f"Dataset '{dataset_id}' has a {type(act_space).__name__} action space; only Box and "
            "Discrete actions are supported."
        )
    observations, actions, rewards, terminals, truncations, lengths = [], [], [], [], [], []
    for episode in _episodes(dataset):
        steps = len(episode.rewards)
        if steps == 0:
            continue
        if dict_obs:
            where = f"Dataset '{dataset_id}', episode {episode.id}"
            _check_episode_finite(
                dataset_id, episode.id, actions=episode.actions, rewards=episode.rewards
            )
            observations.append(episode_dict_observations(episode.observations, steps, where))
            actions.append(np.asarray(episode.actions))  # (T, *act_shape)
            rewards.append(np.asarray(episode.rewards))  # (T,)
            terminals.append(np.asarray(episode.terminations))  # (T,)
            truncations.append(np.asarray(episode.truncations))  # (T,)
            lengths.append(steps)
            continue
        obs = np.asarray(episode.observations)  # (T + 1, *obs_shape), last = state after a_{T-1}
        _check_episode_finite(
            dataset_id,
            episode.id,
            observations=obs,
            actions=episode.actions,
            rewards=episode.rewards,
        )
        if obs.shape[0] == steps + 1:
            obs = obs[:-1]  # (T, *obs_shape): drop the final state so rows align (s_t, a_t, r_t)
        elif obs.shape[0] != steps:
            raise ValueError(
                f"Dataset '{dataset_id}', episode {episode.id}: {obs.shape[0]} observations for "
                f"{steps} steps (expected {steps + 1})."
            )
        observations.append(obs)
        actions.append(np.asarray(episode.actions))  # (T, *act_shape)
        rewards.append(np.asarray(episode.rewards))  # (T,)
        terminals.append(np.asarray(episode.terminations))  # (T,)
        truncations.append(np.asarray(episode.truncations))  # (T,)
        lengths.append(steps)
    if not lengths:
        raise ValueError(
            f"Dataset '{dataset_id}' has no transitions ({dataset.total_episodes} episodes). "
            "Collect a new one with `seqagents collect`."
        )
    metadata = dataset.storage.metadata
    ref_min, ref_max = metadata.get("ref_min_score"), metadata.get("ref_max_score")
    if dict_obs:
        flat_obs = {
            key: [m for episode in observations for m in episode[key]]  # N missions (text)
            if key == "mission"
            else np.concatenate([episode[key] for episode in observations])  # (N, ...)
            for key in observations[0]
        }
    else:
        flat_obs = np.concatenate(observations)  # (N, *obs_shape)
    data = TrajectoryData(
        observations=flat_obs,
        actions=np.concatenate(actions),  # (N, *act_shape)
        rewards=np.concatenate(rewards),  # (N,)
        terminals=np.concatenate(terminals),  # (N,)
        truncations=np.concatenate(truncations),  # (N,)
        episode_starts=np.concatenate([[0], np.cumsum(lengths)]),  # (n_episodes + 1,)
        observation_space=obs_space,
        action_space=act_space,
        dataset_id=dataset_id,
        ref_min_score=None if ref_min is None else float(ref_min),
        ref_max_score=None if ref_max is None else float(ref_max),
    )
    logger.info(
        "Loaded %s: %d episodes, %d transitions", dataset_id, data.n_episodes, data.n_transitions
    )
    return data


def _episodes(dataset: minari.MinariDataset) -> Iterator[Any]:
    """The dataset's episodes; a corrupt file is a ``ValueError`` naming the dataset (h5py
    raises ``OSError``s that name no file)."""
    episodes = dataset.iterate_episodes()
    while True:
        try:
            episode = next(episodes)
        except StopIteration:
            return
        except (OSError, KeyError) as error:
            raise ValueError(
                _corrupt_message(dataset.id, dataset.storage.data_path, error)
            ) from error
        yield episode


def _check_episode_finite(dataset_id: str, episode_id: object, **arrays: Any) -> None:
    """A ``ValueError`` naming the dataset, the episode and the array that holds NaN/inf."""
    for name, values in arrays.items():
        values = np.asarray(values)
        if values.dtype.kind not in "fc" or np.isfinite(values).all():
            continue
        step = int(np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))[0])
        raise ValueError(
            f"Dataset '{dataset_id}', episode {episode_id}: {name} hold NaN or inf (first at "
            f"step {step}); drop or repair this episode before training."
        )


def load_trajectories(dataset_id: str, *, download: bool = False) -> TrajectoryData:
    """Load a Minari dataset and flatten it: ``to_trajectory_data(load_dataset(dataset_id))``.

    Args:
        dataset_id: Minari id (see :func:`load_dataset`).
        download: Fetch the dataset from the Minari remote if missing locally.

    Returns:
        The dataset's transitions as :class:`TrajectoryData`.
    """
    return to_trajectory_data(load_dataset(dataset_id, download=download))
