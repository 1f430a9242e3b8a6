"""Training windows of sequence models, sampled vectorized: DT's windows
(:meth:`WindowSampler.sample`) and LEAP's history-plus-plan windows
(:meth:`WindowSampler.windows_around`).

Sampling semantics, kept from the original DT code (kzl/decision-transformer,
``gym/experiment.py``, ``get_batch``): pick an episode with probability proportional to its
length, then a start ``t0`` uniformly within it; the window is ``s[t0 : t0 + K]`` cut at the
episode end and then LEFT-padded to ``K`` steps. Windows never cross episodes. Picking the episode
by length and then a uniform start is the same as picking ``t0`` uniformly among all ``N``
transitions (``P(t0) = len_e / N * 1 / len_e = 1 / N``), which is how :class:`WindowSampler` draws
starts for a whole batch at once.

Per step ``t`` of a window (row ``t`` of :class:`~seqagents.data.TrajectoryData` is
``(s_t, a_t, r_t)``):

- ``returns_to_go[t] = (r_t + r_{t+1} + ... + r_{T-1}) / return_scale``, undiscounted, to the end
  of the episode (DT: scale 1000 for MuJoCo);
- ``timesteps[t]`` = the step's index within its episode (0 at the episode's first step). The
  original clamps them at ``max_ep_len - 1`` here; the DT model clamps its own input instead.

Padding (``mask`` False): states 0 (after normalization), actions 0, rewards 0, returns-to-go 0,
timesteps 0. Deviations from the original, both only on masked slots: it pads states with 0
*before* normalizing (so ``-mean / std``) and continuous actions with -10; masked slots are
neither attended to nor in the loss, so the value does not matter, and 0 is also a valid index
for discrete actions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from seqagents._device import resolve_device
from seqagents.data.frames import FrameStackedFrames
from seqagents.data.minari_io import TrajectoryData
from seqagents.errors import reject_unknown_keys

__all__ = [
    "STD_FLOOR",
    "DatasetStats",
    "WindowSampler",
    "compute_returns_to_go",
    "compute_stats",
    "compute_timesteps",
    "image_stats",
]

STD_FLOOR = 1e-6
"""Lower bound of the state std (the original adds 1e-6 instead; same purpose: constant dims)."""


@dataclass
class DatasetStats:
    """State normalization statistics and return scale of a dataset, computed once.

    Example:
        >>> import numpy as np
        >>> stats = DatasetStats(np.array([1.0, 0.0]), np.array([2.0, 1.0]), return_scale=1000.0)
        >>> stats.normalize_states(np.array([[3.0, 5.0]])).tolist()
        [[1.0, 5.0]]
        >>> DatasetStats.from_dict(stats.to_dict()).return_scale
        1000.0
    """

    state_mean: np.ndarray  # (*obs_shape,) float32, mean of every state in the dataset
    state_std: np.ndarray  # (*obs_shape,) float32, population std, floored at STD_FLOOR
    return_scale: float = 1.0  # returns-to-go are divided by this (DT paper: 1000 for MuJoCo)

    def __post_init__(self) -> None:
        self.state_mean = np.asarray(self.state_mean, dtype=np.float32)
        self.state_std = np.maximum(np.asarray(self.state_std, dtype=np.float32), STD_FLOOR)
        self.return_scale = float(self.return_scale)
        if self.state_mean.shape != self.state_std.shape:
            raise ValueError(
                f"state_mean {self.state_mean.shape} and state_std {self.state_std.shape} differ."
            )
        if not (np.isfinite(self.return_scale) and self.return_scale > 0):
            raise ValueError(f"return_scale must be positive and finite, got {self.return_scale}.")

    def normalize_states(self, states: np.ndarray) -> np.ndarray:
        """``(states - mean) / std`` as float32; ``states`` is ``(..., *obs_shape)``."""
        return ((np.asarray(states, dtype=np.float32) - self.state_mean) / self.state_std).astype(
            np.float32
        )

    def to_dict(self) -> dict:
        """Plain-Python (JSON-safe) form, for checkpoints."""
        return {
            "state_mean": self.state_mean.tolist(),
            "state_std": self.state_std.tolist(),
            "return_scale": self.return_scale,
        }

    @classmethod
    def from_dict(cls, data: dict) -> DatasetStats:
        """Inverse of :meth:`to_dict`; unknown keys are rejected."""
        reject_unknown_keys(cls, data, "Unknown DatasetStats keys")
        return cls(**data)


def compute_stats(data: TrajectoryData, return_scale: float = 1.0) -> DatasetStats:
    """State mean and std over all transitions of ``data`` (std floored at :data:`STD_FLOOR`).

    Args:
        data: the dataset.
        return_scale: stored in the stats; returns-to-go are divided by it.

    Returns:
        The statistics.

    Raises:
        TypeError: ``data`` has Dict (BabyAI) observations, categorical codes and word ids that
            are never standardized, or image frames
            (:class:`~seqagents.data.frames.FrameStackedFrames`): state statistics are skipped for
            images (a float64 copy of 500k Atari frames would take 105 GiB).
    """
    if data.is_dict_obs:  # BabyAI: categorical codes and word ids, never standardized
        raise TypeError(
            f"compute_stats is not defined for Dict observations ({', '.join(data.observations)} "
            f"of {data.dataset_id or 'an in-memory dataset'}): use normalize_states=False."
        )
    if isinstance(data.observations, FrameStackedFrames):
        raise TypeError(
            "compute_stats is not defined for image frames (FrameStackedFrames): images are not "
            "standardized; use image_stats(return_scale) and normalize_states=False."
        )
    states = data.observations.astype(np.float64)  # (N, *obs_shape); float64 for the sums
    return DatasetStats(states.mean(axis=0), states.std(axis=0), return_scale)


def image_stats(return_scale: float = 1.0) -> DatasetStats:
    """Identity statistics for image observations (mean 0, std 1, scalars): nothing to normalize.

    Image models scale pixels themselves (the Nature CNN divides uint8 frames by 255), so no
    per-pixel statistics are computed or stored.

    Example:
        >>> image_stats(1.0).to_dict()
        {'state_mean': 0.0, 'state_std': 1.0, 'return_scale': 1.0}
    """
    return DatasetStats(np.zeros(()), np.ones(()), return_scale)


def compute_returns_to_go(rewards: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
    """Undiscounted return from each step to the end of its episode, ``(N,)`` float64.

    Args:
        rewards: ``(N,)`` rewards, episodes back to back.
        episode_starts: ``(n_episodes + 1,)`` offsets.

    Returns:
        ``rtg[t] = sum(rewards[t:end_of_episode(t)])``.

    Example:
        >>> compute_returns_to_go(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 2, 4])).tolist()
        [3.0, 2.0, 7.0, 4.0]
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    lengths = np.diff(episode_starts)  # (n_episodes,)
    suffix = np.zeros(rewards.size + 1)  # (N + 1,): suffix[t] = sum(rewards[t:]), suffix[N] = 0
    suffix[:-1] = np.cumsum(rewards[::-1])[::-1]
    episode_end = np.repeat(episode_starts[1:], lengths)  # (N,) one past the episode's last step
    return suffix[:-1] - suffix[episode_end]  # (N,)


def compute_timesteps(episode_starts: np.ndarray) -> np.ndarray:
    """Index of each step within its episode, ``(N,)`` int64.

    Example:
        >>> compute_timesteps(np.array([0, 2, 5])).tolist()
        [0, 1, 0, 1, 2]
    """
    episode_starts = np.asarray(episode_starts, dtype=np.int64)
    lengths = np.diff(episode_starts)  # (n_episodes,)
    return np.arange(episode_starts[-1]) - np.repeat(episode_starts[:-1], lengths)  # (N,)


class WindowSampler:
    """Sample fixed-length training windows, vectorized over the batch.

    Returns-to-go, timesteps and normalized states are computed once at construction and kept as
    tensors on ``device``; :meth:`sample` draws the batch's start indices with one numpy call and
    gathers every field with one ``(B, K)`` index array. See the module docstring for the sampling
    semantics and padding values.

    Args:
        data: the dataset.
        context_len: ``K``, steps per window (DT paper: 20 for MuJoCo, 30 or 50 for Atari).
        return_scale: returns-to-go are divided by this (DT paper: 1000 for MuJoCo).
        normalize_states: standardize states with the dataset mean/std (DT MuJoCo: yes; images:
            no). Must be False for image frames (:class:`~seqagents.data.frames.FrameStackedFrames`
            observations): those are gathered as ``(B, K, stack, H, W)`` uint8 at sample time,
            with identity :func:`image_stats`, and never copied as float.
        stats: precomputed statistics (e.g. from a checkpoint) instead of ``compute_stats(data)``;
            its ``return_scale`` must equal ``return_scale``.
        seed: seed of the sampler's own numpy generator (None: fresh entropy).
        device: where the tensors live; ``"auto"`` = CUDA if available.

    Example:
        >>> import numpy as np, gymnasium as gym
        >>> data = TrajectoryData(
        ...     observations=np.arange(10.0).reshape(5, 2), actions=np.zeros((5, 1)),
        ...     rewards=np.ones(5), terminals=np.zeros(5, bool), episode_starts=np.array([0, 2, 5]),
        ...     observation_space=gym.spaces.Box(-9, 9, (2,)),
        ...     action_space=gym.spaces.Box(-1, 1, (1,)))
        >>> sampler = WindowSampler(data, context_len=3, return_scale=10.0, seed=0)
        >>> batch = sampler.sample(4)
        >>> {key: tuple(value.shape) for key, value in batch.items()}
        ... # doctest: +NORMALIZE_WHITESPACE
        {'states': (4, 3, 2), 'actions': (4, 3, 1), 'rewards': (4, 3, 1),
         'returns_to_go': (4, 3, 1), 'timesteps': (4, 3), 'mask': (4, 3)}
        >>> window = sampler.windows_at(np.array([1]))  # start at step 1 of episode 0 (length 2)
        >>> window["mask"].tolist(), window["timesteps"].tolist()
        ([[False, False, True]], [[0, 0, 1]])
        >>> window["returns_to_go"][0, :, 0].tolist()
        [0.0, 0.0, 0.10000000149011612]
    """

    def __init__(
        self,
        data: TrajectoryData,
        context_len: int,
        return_scale: float,
        *,
        normalize_states: bool = True,
        stats: DatasetStats | None = None,
        seed: int | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if isinstance(context_len, bool) or not isinstance(context_len, (int, np.integer)):
            raise TypeError(f"context_len must be an int, got {type(context_len).__name__}.")
        if context_len < 1:
            raise ValueError(f"context_len (K) must be at least 1, got {context_len}.")
        # Image frames stored once (Atari): stacked per batch at gather time, uint8, no stats.
        self._frames = (
            data.observations if isinstance(data.observations, FrameStackedFrames) else None
        )
        if self._frames is not None:
            if normalize_states:
                raise ValueError(
                    "image frames are not standardized: pass normalize_states=False (models scale "
                    "uint8 pixels themselves, e.g. /255 in the Nature CNN)."
                )
            stats = image_stats(return_scale) if stats is None else stats
        if data.is_dict_obs:  # BabyAI Dict observations (see _dict_states): never standardized
            if normalize_states:
                raise ValueError(
                    "Dict (BabyAI) observations are categorical codes and word ids, not "
                    "standardized: pass normalize_states=False."
                )
            stats = image_stats(return_scale) if stats is None else stats  # nothing computed
        if stats is None:
            stats = compute_stats(data, return_scale)  # validates return_scale
        elif stats.return_scale != float(return_scale):
            raise ValueError(
                f"stats.return_scale ({stats.return_scale}) differs from return_scale "
                f"({return_scale}); use one value."
            )
        per_dim = self._frames is None and not data.is_dict_obs  # stats per state dimension
        if per_dim and stats.state_mean.shape != data.obs_shape:
            raise ValueError(
                f"stats are for states of shape {stats.state_mean.shape}, "
                f"data has {data.obs_shape}."
            )
        self.data = data
        self.context_len = int(context_len)
        self.return_scale = stats.return_scale
        self.stats = stats
        self.normalize_states = normalize_states
        self.device = resolve_device(device)
        self._rng = np.random.default_rng(seed)

        self._states = None  # (N, *obs_shape) float32 tensor; None for image frames
        if self._frames is None:
            states = data.observations  # (N, *obs_shape)
            if normalize_states:
                states = stats.normalize_states(states)  # (N, *obs_shape)
            if data.is_dict_obs:  # each key in its stored dtype (uint8 image, int64), no copy
                self._states = _dict_states(states, self.device)
            else:
                self._states = torch.as_tensor(states, dtype=torch.float32, device=self.device)
        rtg = compute_returns_to_go(data.rewards, data.episode_starts) / self.return_scale  # (N,)
        lengths = data.episode_lengths  # (n_episodes,)
        # One past the last step of each transition's episode: windows are cut there.
        self._episode_end = np.repeat(data.episode_starts[1:], lengths)  # (N,)
        self._episode_start = np.repeat(data.episode_starts[:-1], lengths)  # (N,)
        action_dtype = torch.long if data.is_discrete else torch.float32
        self._actions = torch.as_tensor(data.actions, dtype=action_dtype, device=self.device)
        self._rewards = torch.as_tensor(data.rewards, dtype=torch.float32, device=self.device)
        self._returns_to_go = torch.as_tensor(rtg, dtype=torch.float32, device=self.device)
        self._timesteps = torch.as_tensor(
            compute_timesteps(data.episode_starts), dtype=torch.long, device=self.device
        )

    @property
    def n_transitions(self) -> int:
        """Number of possible window starts (= transitions in the dataset)."""
        return self.data.n_transitions

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """Draw ``batch_size`` windows (episode by length, start uniform in it).

        Args:
            batch_size: ``B``.

        Returns:
            ``states (B, K, *obs_shape)`` float32 (image frames: ``(B, K, stack, H, W)`` uint8,
            0 on padding; Dict (BabyAI) observations: a dict of ``(B, K, ...)`` tensors in their
            stored dtypes, uint8 ``image``, long ``direction``/``mission``/``agent_pos``/
            ``goal_pos``, 0 on padding); ``actions (B, K, act_dim)`` float32 or
            ``(B, K)`` long; ``rewards (B, K, 1)``; ``returns_to_go (B, K, 1)`` scaled;
            ``timesteps (B, K)`` long; ``mask (B, K)`` bool, False on left padding.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        # Uniform over transitions == episode with p ∝ length, then a uniform start within it.
        starts = self._rng.integers(0, self.n_transitions, size=batch_size)  # (B,)
        return self.windows_at(starts)

    def windows_at(self, starts: np.ndarray) -> dict[str, torch.Tensor]:
        """The windows starting at the given global transition indices (same output as sample).

        Args:
            starts: ``(B,)`` integer indices into the flat dataset, in ``[0, N)``.

        Returns:
            The batch dict documented in :meth:`sample`.
        """
        starts = np.asarray(starts, dtype=np.int64).reshape(-1)  # (B,)
        if starts.size and (starts.min() < 0 or starts.max() >= self.n_transitions):
            raise IndexError(f"window starts must lie in [0, {self.n_transitions}).")
        K = self.context_len
        valid = np.minimum(K, self._episode_end[starts] - starts)  # (B,) steps before episode end
        pad = K - valid  # (B,) left padding
        offsets = np.arange(K)  # (K,)
        mask = offsets[None, :] >= pad[:, None]  # (B, K): True on real steps
        # Slot j holds step start + j - pad (the real steps are pushed to the right).
        index = starts[:, None] + offsets[None, :] - pad[:, None]  # (B, K)
        return self.gather(index, mask)

    def windows_around(
        self, current: np.ndarray, before: int, after: int
    ) -> dict[str, torch.Tensor]:
        """Windows of ``before`` steps, the step ``current`` and ``after`` steps, in place.

        Unlike :meth:`windows_at` nothing is shifted: slot ``before`` always holds the step
        ``current``; slots before its episode's start or after its end are padding (``mask``
        False). LEAP trains on these (history, current state, plan steps).

        Args:
            current: ``(B,)`` global transition indices in ``[0, N)``.
            before: ``P`` history steps.
            after: plan steps after the current one (``H - 1``).

        Returns:
            :meth:`sample`'s dict with ``K = before + 1 + after`` slots.
        """
        current = np.asarray(current, dtype=np.int64).reshape(-1)  # (B,)
        if current.size and (current.min() < 0 or current.max() >= self.n_transitions):
            raise IndexError(f"window steps must lie in [0, {self.n_transitions}).")
        index = current[:, None] + np.arange(-before, after + 1)[None, :]  # (B, K)
        first = self._episode_start[current]  # (B,)
        mask = (index >= first[:, None]) & (index < self._episode_end[current][:, None])  # (B, K)
        return self.gather(index, mask)

    def gather(self, index: np.ndarray, mask: np.ndarray) -> dict[str, torch.Tensor]:
        """The batch dict of :meth:`sample` for global step indices ``index (B, K)``; slots where
        ``mask (B, K)`` is False are padding (zeros, whatever their index)."""
        B, K = index.shape
        index = np.where(mask, index, 0)  # (B, K): any in-range index on padding
        index_t = torch.from_numpy(index).to(self.device)  # (B, K)
        mask_t = torch.from_numpy(mask).to(self.device)  # (B, K)

        if isinstance(self._states, dict):  # Dict (BabyAI) observations: {key: (B, K, ...)}
            states = {key: _gather(value, index_t, mask_t) for key, value in self._states.items()}
        elif self._frames is None:
            states = self._states[index_t]  # (B, K, *obs_shape)
        else:  # stack the stored frames now: frames[index + arange(-stack + 1, 1)], uint8
            states = torch.from_numpy(self._frames.gather(index)).to(self.device)  # (B, K, 4, H, W)
        if not isinstance(states, dict):  # (dict entries are masked by _gather)
            states.masked_fill_(~mask_t.view(B, K, *([1] * (states.dim() - 2))), 0)
        actions = self._actions[index_t]  # (B, K, act_dim) or (B, K)
        actions.masked_fill_(~mask_t.view(B, K, *([1] * (actions.dim() - 2))), 0)
        rewards = self._rewards[index_t].masked_fill_(~mask_t, 0.0)  # (B, K)
        returns_to_go = self._returns_to_go[index_t].masked_fill_(~mask_t, 0.0)  # (B, K)
        timesteps = self._timesteps[index_t].masked_fill_(~mask_t, 0)  # (B, K)
        return {
            "states": states,
            "actions": actions,
            "rewards": rewards.unsqueeze(-1),  # (B, K, 1)
            "returns_to_go": returns_to_go.unsqueeze(-1),  # (B, K, 1)
            "timesteps": timesteps,
            "mask": mask_t,
        }


# ---------------------------------------------------------------- Dict (BabyAI) observations
def _dict_states(observations: dict[str, np.ndarray], device: torch.device) -> dict:
    """Dict observations as tensors in their own dtypes (views of the arrays on CPU)."""
    return {
        key: torch.as_tensor(np.ascontiguousarray(value), device=device)  # (N, ...)
        for key, value in observations.items()
    }


def _gather(values: torch.Tensor, index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``values[index]`` ``(B, K, ...)``, zero where ``mask`` ``(B, K)`` is False."""
    out = values[index]  # (B, K, ...)
    return out.masked_fill_(~mask.view(*mask.shape, *([1] * (out.dim() - 2))), 0)


def _discount_cumsum(x: np.ndarray, gamma: float) -> np.ndarray:
    """Port of the original ``discount_cumsum`` (gym/experiment.py), Python loop included."""
    out = np.zeros_like(x)
    out[-1] = x[-1]
    for t in reversed(range(x.shape[0] - 1)):
        out[t] = x[t] + gamma * out[t + 1]
    return out


def sample_per_sample_reference(
    data: TrajectoryData,
    context_len: int,
    batch_size: int,
    stats: DatasetStats,
    *,
    normalize_states: bool = True,
    rng: np.random.Generator | None = None,
    starts: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """SLOW REFERENCE: the original per-sample Python loop, for tests and benchmarks only.

    A port of ``get_batch`` in kzl/decision-transformer ``gym/experiment.py``: episode chosen with
    ``p = length / N``, start uniform within it, one Python iteration per window, RTG recomputed
    per sample with the original ``discount_cumsum`` loop. Padding values follow this module (see
    its docstring), so given the same ``starts`` the output equals
    :meth:`WindowSampler.windows_at`. Not exported; use :class:`WindowSampler`.

    Args:
        data: the dataset.
        context_len: ``K``.
        batch_size: ``B`` (ignored when ``starts`` is given).
        stats: state statistics and return scale.
        normalize_states: standardize states as :class:`WindowSampler` does.
        rng: numpy generator for the episode and start draws.
        starts: ``(B,)`` global start indices to use instead of random draws.

    Returns:
        The same dict as :meth:`WindowSampler.sample`, on CPU.
    """
    K = context_len
    lengths = data.episode_lengths  # (n_episodes,)
    if starts is None:
        rng = rng if rng is not None else np.random.default_rng()
        p_sample = lengths / lengths.sum()  # (n_episodes,): original p_sample, pct_traj = 1
        episodes = rng.choice(data.n_episodes, size=batch_size, replace=True, p=p_sample)
        in_episode = [int(rng.integers(0, lengths[e])) for e in episodes]
    else:
        starts = np.asarray(starts, dtype=np.int64)
        episodes = np.searchsorted(data.episode_starts, starts, side="right") - 1  # (B,)
        in_episode = (starts - data.episode_starts[episodes]).tolist()
    batch: dict[str, list[np.ndarray]] = {key: [] for key in ("s", "a", "r", "rtg", "t", "m")}
    for episode, si in zip(episodes, in_episode, strict=True):
        lo, hi = data.episode_starts[episode], data.episode_starts[episode + 1]
        observations, actions = data.observations[lo:hi], data.actions[lo:hi]
        rewards = data.rewards[lo:hi].astype(np.float64)
        s = observations[si : si + K]  # (tlen, *obs_shape)
        tlen = s.shape[0]
        if normalize_states:
            s = stats.normalize_states(s)
        a = actions[si : si + K]  # (tlen, act_dim) or (tlen,)
        rtg = _discount_cumsum(rewards[si:], gamma=1.0)[:tlen] / stats.return_scale  # (tlen,)
        pad = K - tlen
        batch["s"].append(np.concatenate([np.zeros((pad, *s.shape[1:]), s.dtype), s]))  # (K, ...)
        batch["a"].append(np.concatenate([np.zeros((pad, *a.shape[1:]), a.dtype), a]))  # (K, ...)
        batch["r"].append(np.concatenate([np.zeros(pad), rewards[si : si + K]]))  # (K,)
        batch["rtg"].append(np.concatenate([np.zeros(pad), rtg]))  # (K,)
        batch["t"].append(np.concatenate([np.zeros(pad, np.int64), np.arange(si, si + tlen)]))
        batch["m"].append(np.concatenate([np.zeros(pad, bool), np.ones(tlen, bool)]))  # (K,)
    return {
        "states": torch.as_tensor(np.stack(batch["s"]), dtype=torch.float32),  # (B, K, *obs)
        "actions": torch.as_tensor(np.stack(batch["a"])),  # (B, K, act_dim) or (B, K)
        "rewards": torch.as_tensor(np.stack(batch["r"]), dtype=torch.float32)[..., None],
        "returns_to_go": torch.as_tensor(np.stack(batch["rtg"]), dtype=torch.float32)[..., None],
        "timesteps": torch.as_tensor(np.stack(batch["t"]), dtype=torch.long),  # (B, K)
        "mask": torch.as_tensor(np.stack(batch["m"])),  # (B, K)
    }
