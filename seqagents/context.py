"""Batched rolling context window kept on the agent's device.

A sequence agent conditions on the last ``K`` steps of each of its ``n_envs`` episodes. This module
keeps those steps as ``(n_envs, K, ...)`` tensors: each step shifts the window left by one slot and
writes the newest step at index ``K - 1``, so the per-step cost is constant in the episode length.
Steps not yet filled are *left* padding (zeros) and ``mask`` is False there.
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
        self._data = {
            name: torch.zeros(n_envs, context_len, *shape, dtype=dtype, device=device)
            for name, (shape, dtype) in fields.items()
        }  # each (n_envs, K, *shape)
        self.mask = torch.zeros(n_envs, context_len, dtype=torch.bool, device=device)  # (n, K)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._data[name]

    def clear(self, envs: torch.Tensor) -> None:
        """Empty the windows of the envs where the bool ``envs`` (n_envs,) is True."""
        for buf in self._data.values():
            buf.masked_fill_(envs.view(-1, *[1] * (buf.dim() - 1)), 0)
        self.mask.masked_fill_(envs[:, None], False)

    def push(self, **values: torch.Tensor) -> None:
        """Append one step for every env: each value is ``(n_envs, *shape)``."""
        for name, buf in self._data.items():
            buf = torch.roll(buf, -1, dims=1)  # (n, K, ...): oldest step wraps to K-1 ...
            buf[:, -1] = values[name]  # ... and is overwritten by the newest
            self._data[name] = buf
        self.mask = torch.roll(self.mask, -1, dims=1)
        self.mask[:, -1] = True

    def set_last(self, name: str, value: torch.Tensor) -> None:
        """Overwrite ``name`` at the newest step (e.g. the action once it is chosen)."""
        self._data[name][:, -1] = value
