"""Per-dimension discretization of TT transitions, and the transitions themselves.

A transition is the row ``(observation, action, reward, value-to-go)``; every column gets ``N`` bins
described by ``N + 1`` increasing thresholds. A value ``x`` falls in bin ``i`` when
``thresholds[i] <= x`` for the largest such ``i`` (values below the first threshold go to bin 0,
values at or above the last to bin ``N - 1``); bin ``i`` reconstructs to its midpoint
``(thresholds[i] + thresholds[i + 1]) / 2``. Same rules as the original ``QuantileDiscretizer``
(jannerm/trajectory-transformer ``trajectory/utils/discretization.py``).

Thresholds are one float32 tensor ``(N + 1, n_columns)`` so that a checkpoint can store them in
``model.safetensors`` next to the weights.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

__all__ = ["Discretizer", "trajectory_transitions"]

ArrayLike = np.ndarray | torch.Tensor


class Discretizer:
    """Maps continuous transition columns to bin indices and back.

    Build one with :meth:`from_data` (quantile or uniform bins), or restore one with
    :meth:`from_state_dict`.

    Example:
        >>> data = np.random.default_rng(0).normal(size=(1000, 3))
        >>> disc = Discretizer.from_data(data, n_bins=10)
        >>> idx = disc.discretize(data[:4])
        >>> idx.shape, idx.dtype
        (torch.Size([4, 3]), torch.int64)
        >>> disc.reconstruct(idx).shape
        torch.Size([4, 3])
    """

    def __init__(self, thresholds: torch.Tensor) -> None:
        """Wrap ``thresholds`` of shape ``(N + 1, n_columns)``, non-decreasing down each column."""
        if thresholds.ndim != 2 or thresholds.shape[0] < 2:
            raise ValueError(
                f"thresholds must have shape (n_bins + 1, n_columns), got {tuple(thresholds.shape)}"
            )
        if not torch.is_floating_point(thresholds):
            raise ValueError(f"thresholds must be floating point, got {thresholds.dtype}")
        if bool((thresholds[1:] < thresholds[:-1]).any()):
            raise ValueError("thresholds must be non-decreasing along each column")
        self.thresholds = thresholds
        # (n_columns, N + 1) contiguous copy for torch.searchsorted (sorted along the last dim).
        self._sorted = thresholds.T.contiguous()
        self._midpoints = (thresholds[1:] + thresholds[:-1]) / 2  # (N, n_columns)

    @property
    def n_bins(self) -> int:
        """N, the number of bins per column."""
        return self.thresholds.shape[0] - 1

    @property
    def n_columns(self) -> int:
        return self.thresholds.shape[1]

    @property
    def device(self) -> torch.device:
        return self.thresholds.device

    @property
    def midpoints(self) -> torch.Tensor:
        """``(N, n_columns)`` reconstruction value of every bin."""
        return self._midpoints

    @classmethod
    def from_data(
        cls,
        data: ArrayLike,
        n_bins: int = 100,
        kind: Literal["quantile", "uniform"] = "quantile",
    ) -> Discretizer:
        """Bins from a ``(n_rows, n_columns)`` array of transitions.

        Args:
            data: rows of transitions, e.g. from :func:`trajectory_transitions`.
            n_bins: N, bins per column (TT paper: 100).
            kind: ``"quantile"`` (paper default): the column's sorted values taken every
                ``ceil(n_rows / N)`` rows, plus the column maximum, as in the original code;
                ``"uniform"``: ``N`` equal-width bins from the column minimum to its maximum.

        Returns:
            The discretizer, thresholds on the CPU in float32.
        """
        data = np.asarray(data.cpu() if isinstance(data, torch.Tensor) else data)
        if data.ndim != 2 or len(data) == 0:
            raise ValueError(
                f"data must be a non-empty (n_rows, n_columns) array, got {data.shape}"
            )
        if not np.isfinite(data).all():
            raise ValueError("data contains NaN or infinite values")
        if n_bins < 1:
            raise ValueError(f"n_bins={n_bins} must be >= 1")
        if kind == "quantile":
            stride = math.ceil(len(data) / n_bins)
            columns_sorted = np.sort(data, axis=0)  # (n_rows, n_columns)
            thresholds = np.concatenate(
                [columns_sorted[::stride], data.max(axis=0, keepdims=True)], axis=0
            )  # (ceil(n_rows / stride) + 1, n_columns)
            if len(thresholds) != n_bins + 1:
                raise ValueError(
                    f"quantile bins: {len(data)} rows give only {len(thresholds) - 1} of the "
                    f"{n_bins} bins (every {stride}th sorted value); use more rows "
                    f"({n_bins * (n_bins - 1)} always suffice), fewer bins, or kind='uniform'"
                )
        elif kind == "uniform":
            thresholds = np.linspace(data.min(axis=0), data.max(axis=0), n_bins + 1, axis=0)
        else:
            raise ValueError(f"unknown discretizer kind {kind!r}; expected 'quantile' or 'uniform'")
        return cls(torch.as_tensor(thresholds, dtype=torch.float32))

    def to(self, device: torch.device | str) -> Discretizer:
        """A copy with the thresholds on ``device``."""
        return Discretizer(self.thresholds.to(device))

    def to_state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors to store (e.g. under a ``discretizer.`` prefix in ``model.safetensors``)."""
        return {"thresholds": self.thresholds}

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> Discretizer:
        if set(state_dict) != {"thresholds"}:
            raise ValueError(
                f"discretizer state dict must hold exactly 'thresholds', got {sorted(state_dict)}"
            )
        return cls(state_dict["thresholds"])

    def _columns(self, width: int, offset: int) -> slice:
        if offset < 0 or offset + width > self.n_columns:
            raise ValueError(
                f"columns {offset}..{offset + width - 1} are out of range for a discretizer of "
                f"{self.n_columns} columns"
            )
        return slice(offset, offset + width)

    def discretize(self, x: ArrayLike, offset: int = 0) -> torch.Tensor:
        """Bin indices of ``x``.

        Args:
            x: ``(..., k)`` values of columns ``offset .. offset + k - 1`` (e.g. an observation
                with ``offset=0``).
            offset: first column ``x`` holds.

        Returns:
            ``(..., k)`` long tensor in ``[0, N)`` on the discretizer's device.
        """
        x = torch.as_tensor(x, device=self.device)
        columns = self._columns(x.shape[-1], offset)
        # Compare in the wider float type so float64 observations are binned exactly.
        dtype = torch.promote_types(x.dtype, self.thresholds.dtype)
        sorted_thresholds = self._sorted[columns].to(dtype)  # (k, N + 1)
        flat = x.to(dtype).reshape(-1, x.shape[-1]).T.contiguous()  # (k, M)
        # Number of thresholds <= x, minus one = largest i with thresholds[i] <= x.
        idx = torch.searchsorted(sorted_thresholds, flat, right=True) - 1  # (k, M)
        idx = idx.clamp_(0, self.n_bins - 1)
        return idx.T.reshape(x.shape)  # (..., k)

    def reconstruct(self, idx: ArrayLike, offset: int = 0) -> torch.Tensor:
        """Bin midpoints of ``idx``.

        Args:
            idx: ``(..., k)`` bin indices of columns ``offset .. offset + k - 1``; indices outside
                ``[0, N)`` (e.g. the stop token ``N``) are clipped, as in the original.
            offset: first column ``idx`` holds.

        Returns:
            ``(..., k)`` float32 tensor on the discretizer's device.
        """
        idx = torch.as_tensor(idx, device=self.device).long().clamp(0, self.n_bins - 1)
        columns = self._columns(idx.shape[-1], offset)
        midpoints = self._midpoints[:, columns]  # (N, k)
        flat = idx.reshape(-1, idx.shape[-1])  # (M, k)
        return torch.gather(midpoints, 0, flat).reshape(idx.shape)  # (..., k)

    def __repr__(self) -> str:
        return f"Discretizer(n_bins={self.n_bins}, n_columns={self.n_columns})"


def trajectory_transitions(
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    terminals: np.ndarray,
    episode_offsets: np.ndarray,
    *,
    discount: float = 0.99,
    termination_penalty: float | None = -100.0,
) -> np.ndarray:
    """Rows ``(observation, action, reward, value-to-go)`` of a dataset, for TT training.

    Follows the original ``SequenceDataset`` (jannerm/trajectory-transformer
    ``trajectory/datasets/sequence.py``):

    - at every step where an episode *terminated* (not truncated) the reward is **replaced** by
      ``termination_penalty`` (``rewards[terminal] = penalty`` in the original);
    - the value-to-go of step ``t`` is the discounted sum of the rewards *after* ``t`` within the
      episode, ``V_t = sum_{k >= 1} discount^(k - 1) r_{t + k}`` (penalized rewards included);
      ``V`` of an episode's last step is 0.

    Args:
        observations: ``(n, O)`` observation at each step (without the final observation).
        actions: ``(n, A)``.
        rewards: ``(n,)`` reward received after each action.
        terminals: ``(n,)`` bool, True where the episode terminated at that step.
        episode_offsets: ``(n_episodes + 1,)`` start index of every episode followed by ``n``
            (episode ``e`` is rows ``offsets[e]:offsets[e + 1]``).
        discount: value-to-go discount (TT paper: 0.99).
        termination_penalty: reward of terminal steps (original: -100); None keeps the rewards.

    Returns:
        ``(n, O + A + 2)`` float64 array.

    Example:
        >>> rows = trajectory_transitions(
        ...     np.zeros((3, 1)), np.zeros((3, 1)), np.array([1.0, 2.0, 3.0]),
        ...     np.array([False, False, True]), np.array([0, 3]), discount=0.5,
        ... )
        >>> rows[:, -2:].tolist()  # reward (terminal one replaced by -100), value-to-go
        [[1.0, -48.0], [2.0, -100.0], [-100.0, 0.0]]
    """
    observations = np.asarray(observations)
    actions = np.asarray(actions)
    rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)  # (n,)
    terminals = np.asarray(terminals, dtype=bool).reshape(-1)  # (n,)
    offsets = np.asarray(episode_offsets, dtype=np.int64).reshape(-1)  # (n_episodes + 1,)
    n = len(rewards)
    if observations.ndim != 2 or actions.ndim != 2:
        raise ValueError(
            f"observations {observations.shape} and actions {actions.shape} must be 2-D (n, dim)"
        )
    if not len(observations) == len(actions) == len(terminals) == n:
        raise ValueError(
            f"observations ({len(observations)}), actions ({len(actions)}), rewards ({n}) and "
            f"terminals ({len(terminals)}) must have the same length"
        )
    if len(offsets) < 2 or offsets[0] != 0 or offsets[-1] != n or (np.diff(offsets) <= 0).any():
        raise ValueError(
            "episode_offsets must start at 0, end at the number of steps "
            f"({n}) and be strictly increasing, got {offsets.tolist()[:5]}..."
        )
    if termination_penalty is not None:
        rewards = np.where(terminals, termination_penalty, rewards)
    values = np.zeros(n)
    # Backward recursion V_t = r_{t+1} + discount * V_{t+1}, vectorized over episodes: at each
    # distance from the episode end, update every episode long enough to have such a step.
    ends = offsets[1:]  # (n_episodes,) one past each episode's last step
    lengths = np.diff(offsets)
    order = np.argsort(-lengths, kind="stable")
    ends, lengths = ends[order], lengths[order]  # longest episodes first
    for back in range(2, int(lengths[0]) + 1):  # step t = end - back has a successor t + 1
        n_long = np.searchsorted(-lengths, -back, side="right")  # episodes with length >= back
        t = ends[:n_long] - back  # (n_long,)
        values[t] = rewards[t + 1] + discount * values[t + 1]
    return np.concatenate(
        [observations, actions, rewards[:, None], values[:, None]], axis=1, dtype=np.float64
    )
