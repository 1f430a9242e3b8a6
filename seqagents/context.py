"""Batched rolling context window kept on the agent's device.

A sequence agent conditions on the last ``K`` steps of each of its ``n_envs`` episodes. This module
keeps those steps in ``(n_envs, 2K, ...)`` buffers and exposes the newest ``K`` as a view: a push
writes one slot, and every ``K`` pushes the last ``K - 1`` steps move back to the front (amortised
O(1) copies), so the per-step cost is constant in the episode length. Steps not yet filled are
*left* padding (zeros) and ``mask`` is False there.
"""

from __future__ import annotations

import torch

__all__ = ["RollingContext"]


class RollingContext:
    """Fixed-size windows of per-step tensors for a batch of environments.

    Args:
        n_envs: number of independent episodes (batch size).
        context_len: K, steps kept per episode.
        fields: name -> (per-step shape, dtype) of every stored quantity.
        device: where the tensors live.

    Example:
        >>> ctx = RollingContext(2, 3, {"x": ((), torch.float32)}, "cpu")
        >>> ctx.push(x=torch.tensor([1.0, 2.0]))
        >>> ctx["x"]
        tensor([[0., 0., 1.],
                [0., 0., 2.]])
        >>> ctx.mask
        tensor([[False, False,  True],
                [False, False,  True]])
    """

    def __init__(
        self,
        n_envs: int,
        context_len: int,
        fields: dict[str, tuple[tuple[int, ...], torch.dtype]],
        device: torch.device | str,
    ) -> None:
        self.n_envs, self.context_len = n_envs, context_len
        K = context_len
        self._buf = {
            name: torch.zeros(n_envs, 2 * K, *shape, dtype=dtype, device=device)
            for name, (shape, dtype) in fields.items()
        }  # each (n_envs, 2K, *shape)
        self._buf["mask"] = torch.zeros(n_envs, 2 * K, dtype=torch.bool, device=device)
        self._end = K  # the window is slots [end - K, end)
        self._end_before_push = K

    def __getitem__(self, name: str) -> torch.Tensor:
        """The newest ``K`` steps of ``name``: ``(n_envs, K, *shape)`` (a view)."""
        return self._buf[name][:, self._end - self.context_len : self._end]

    @property
    def mask(self) -> torch.Tensor:
        """``(n_envs, K)`` bool, False on left padding."""
        return self["mask"]

    def clear(self, envs: torch.Tensor) -> None:
        """Empty the windows of the envs where the bool ``envs`` (n_envs,) is True."""
        for buf in self._buf.values():
            buf.masked_fill_(envs.view(-1, *[1] * (buf.dim() - 1)), 0)

    def push(self, **values: torch.Tensor) -> None:
        """Append one step for every env: each value is ``(n_envs, *shape)``."""
        K = self.context_len
        self._end_before_push = self._end
        if self._end == 2 * K:  # move the newest K - 1 steps to the front
            for buf in self._buf.values():
                buf[:, : K - 1] = buf[:, K + 1 :].clone()
            self._end = K - 1
        for name, value in values.items():
            self._buf[name][:, self._end] = value
        self._buf["mask"][:, self._end] = True
        self._end += 1

    def pop(self) -> None:
        """Undo the latest ``push`` (once): the window is what it was before it. A shift by
        that push only copied the newest steps to the front, so the old window is intact."""
        self._end = self._end_before_push

    def set_last(self, name: str, value: torch.Tensor) -> None:
        """Overwrite ``name`` at the newest step (e.g. the action once it is chosen)."""
        self._buf[name][:, self._end - 1] = value
