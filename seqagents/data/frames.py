"""Image observations stored once per step and stacked at gather time (Atari).

A dataset of ``N`` Atari steps keeps one ``84×84`` uint8 frame per step, ``(N, 84, 84)`` (3.3 GiB
for 500k steps), instead of the ``(N, 4, 84, 84)`` frame stacks the agent sees (13.1 GiB; 52.6 GiB
as float32). :class:`FrameStackedFrames` is a read-only view that looks like that stacked array:
indexing it with step indices gathers ``frames[i - stack + 1 : i + 1]`` per index by one fancy
index, padded at an episode's start exactly as gymnasium's ``FrameStackObservation`` pads with its
default ``padding_type="reset"`` (gymnasium 1.x): the slots before the first step repeat the
episode's first (reset) frame, e.g. step 1 of an episode is ``[f0, f0, f0, f1]``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FrameStackedFrames"]


class FrameStackedFrames:
    """A lazily stacking ``(N, stack, H, W)`` uint8 view over frames stored once, ``(N, H, W)``.

    Row ``i`` is the frame stack the agent saw at step ``i``: the frames of steps
    ``i - stack + 1 .. i`` (oldest first, as ``FrameStackObservation``), with steps before the
    start of ``i``'s episode replaced by that episode's first frame. Nothing is stacked or cast
    until it is indexed; the result of an index is a new uint8 array of only the requested rows.

    Args:
        frames: ``(N, H, W)`` uint8, one frame per step, episodes back to back.
        episode_starts: ``(n_episodes + 1,)`` offsets, ``[0] = 0`` and ``[-1] = N``.
        stack: frames per observation (4 for Atari).

    Example:
        >>> import numpy as np
        >>> frames = np.arange(5, dtype=np.uint8)[:, None, None] * np.ones((1, 2, 2), np.uint8)
        >>> view = FrameStackedFrames(frames, np.array([0, 3, 5]), stack=4)
        >>> view.shape, view.dtype
        ((5, 4, 2, 2), dtype('uint8'))
        >>> view[np.array([1, 4])][:, :, 0, 0].tolist()  # step 1 of episode 0, step 1 of episode 1
        [[0, 0, 0, 1], [3, 3, 3, 4]]
    """

    def __init__(self, frames: np.ndarray, episode_starts: np.ndarray, stack: int = 4) -> None:
        if not isinstance(frames, np.ndarray) or frames.ndim != 3 or frames.dtype != np.uint8:
            raise TypeError(
                "frames must be a (N, H, W) uint8 numpy array, got "
                f"{getattr(frames, 'shape', None)} {getattr(frames, 'dtype', type(frames))}."
            )
        if isinstance(stack, bool) or not isinstance(stack, (int, np.integer)) or stack < 1:
            raise ValueError(f"stack must be a positive int, got {stack!r}.")
        starts = np.asarray(episode_starts, dtype=np.int64)
        n = frames.shape[0]
        if starts.ndim != 1 or starts.size < 2 or starts[0] != 0 or starts[-1] != n:
            raise ValueError(
                f"episode_starts must run from 0 to the number of frames ({n}); got "
                f"{starts[:3].tolist()}...{starts[-2:].tolist()}."
            )
        if np.any(np.diff(starts) <= 0):
            raise ValueError("episode_starts must be strictly increasing (no empty episode).")
        self.frames = frames  # (N, H, W) uint8, shared, never copied
        self.episode_starts = starts  # (n_episodes + 1,)
        self.stack = int(stack)
        lengths = np.diff(starts)  # (n_episodes,)
        self._first = np.repeat(starts[:-1], lengths)  # (N,) first step of each step's episode
        self._offsets = np.arange(1 - self.stack, 1)  # (stack,): -3, -2, -1, 0 for stack 4

    @property
    def shape(self) -> tuple[int, ...]:
        """``(N, stack, H, W)``: the shape of the stacked array this view stands for."""
        return (self.frames.shape[0], self.stack, *self.frames.shape[1:])

    @property
    def ndim(self) -> int:
        """Number of dimensions of :attr:`shape` (4)."""
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        """Always uint8."""
        return self.frames.dtype

    @property
    def nbytes(self) -> int:
        """Bytes actually held: the single frames plus the per-step episode index."""
        return int(self.frames.nbytes + self._first.nbytes)

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def __repr__(self) -> str:
        return (
            f"FrameStackedFrames(shape={self.shape}, dtype=uint8, "
            f"episodes={self.episode_starts.size - 1}, stored={self.frames.nbytes / 2**20:.1f} MiB)"
        )

    def __array__(self, dtype=None, copy=None):  # noqa: ANN001, ANN204 (numpy protocol)
        raise TypeError(
            f"refusing to materialize {self.shape} stacked frames "
            f"({np.prod(self.shape) / 2**30:.2f} GiB as uint8); index the view with the step "
            "indices you need (view[indices]) or call .materialize() explicitly."
        )

    def gather(self, index: np.ndarray) -> np.ndarray:
        """Frame stacks of the steps in ``index`` (any integer array shape ``S``).

        Args:
            index: step indices in ``[0, N)``, e.g. ``(B, K)`` for a batch of windows.

        Returns:
            ``(*S, stack, H, W)`` uint8.
        """
        index = np.asarray(index, dtype=np.int64)
        n = self.frames.shape[0]
        if index.size and (index.min() < 0 or index.max() >= n):
            raise IndexError(f"frame indices must lie in [0, {n}).")
        rows = index[..., None] + self._offsets  # (*S, stack): steps i-stack+1 .. i
        # Before the episode's first step, repeat that step (FrameStackObservation "reset" padding).
        rows = np.maximum(rows, self._first[index][..., None])  # (*S, stack)
        return self.frames[rows]  # (*S, stack, H, W) uint8

    def __getitem__(self, key: int | slice | np.ndarray) -> np.ndarray:
        """``view[i]`` ``(stack, H, W)``, ``view[a:b]`` ``(b - a, stack, H, W)``, ``view[idx]``."""
        if isinstance(key, slice):
            key = np.arange(*key.indices(len(self)))  # (b - a,)
        elif isinstance(key, (int, np.integer)):
            key = int(key) + len(self) if key < 0 else int(key)
        return self.gather(np.asarray(key))

    def materialize(self) -> np.ndarray:
        """The whole ``(N, stack, H, W)`` uint8 array (``stack`` times the stored memory)."""
        return self.gather(np.arange(len(self)))  # (N, stack, H, W)
