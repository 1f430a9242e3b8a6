"""The key/value cache interface (:class:`KVCache`) and the caches whose rows each attend over
their own keys: :class:`ConcatKV` (a fresh forward's) and :class:`KVBuffer` (preallocated)."""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["KVCache", "ConcatKV", "KVBuffer"]


class KVCache(Protocol):
    """One layer's cached keys/values of ``R`` rows: all that attention and planners ask of it.

    ``attend(q, k, v, mask, **sdpa)``: append the new tokens' ``(R, nh, T, hd)`` keys ``k`` and
    values ``v``; return the ``(R, nh, T, hd)`` attention of their (unscaled) queries ``q`` over
    every held key. ``mask``: boolean ``(R or 1, 1, T, length + T)`` over the keys in sequence
    order (held, then new), True where a query may attend, None = all. ``sdpa``: this call's
    ``is_causal`` and ``dropout_p`` for ``scaled_dot_product_attention`` (a causal mask only
    without held keys; the caches made for inference ignore both).
    """

    @property
    def length(self) -> int:
        """Tokens each row holds; the next token's position continues from it."""
        ...

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, **sdpa: Any) -> Tensor:
        """Append ``k``, ``v``; the attention of ``q`` over every held key (class docstring)."""
        ...

    def select(self, index: Tensor) -> KVCache:
        """A cache of the rows ``index`` ``(R',)`` (e.g. the beams a search keeps)."""
        ...

    def expand(self, index: Tensor, n_copies: int, n_tokens: int) -> KVCache:
        """A cache of the rows ``index`` = every row copied ``n_copies`` times, rows ordered
        (env, copy, row), that take ``n_tokens`` more tokens before the next :meth:`select`.
        A cache may let the copies share their parent's keys instead of copying them."""
        ...

    def dense(self) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(R, nh, length, hd)`` keys and values of every row in sequence order, and a
        ``(R, 1, 1, length)`` mask that is False where the cache dropped a key no query may see
        (None: none dropped). May copy; for readers (attention capture, tests)."""
        ...


class _OwnKeysKV:
    """Caches whose rows each attend over their own keys, with fused attention."""

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add ``(R, nh, T, hd)`` keys/values; return every held one."""
        raise NotImplementedError

    def select(self, index: Tensor) -> KVCache:
        raise NotImplementedError

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, **sdpa: Any) -> Tensor:
        k, v = self.append(k, v)  # (R, nh, length, hd) each
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **sdpa)  # (R, nh, T, hd)

    def expand(self, index: Tensor, n_copies: int, n_tokens: int) -> KVCache:
        return self.select(index)


class ConcatKV(_OwnKeysKV):
    """Keys/values as plain ``(R, nh, length, hd)`` tensors (None: no token yet).

    What a forward without a cache returns; continuing from it concatenates, which copies every
    held key per call (planners turn it into a :class:`KVBuffer` or :class:`SharedPrefixKV`).
    """

    def __init__(self, keys: Tensor | None = None, values: Tensor | None = None):
        self.keys, self.values = keys, values

    @property
    def length(self) -> int:
        return 0 if self.keys is None else self.keys.shape[2]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if self.keys is not None and self.values is not None:
            k = torch.cat([self.keys, k], dim=2)  # (R, nh, length + T, hd)
            v = torch.cat([self.values, v], dim=2)
        self.keys, self.values = k, v
        return k, v

    def select(self, index: Tensor) -> ConcatKV:
        if self.keys is None or self.values is None:
            return ConcatKV()
        return ConcatKV(self.keys[index], self.values[index])  # (R', nh, length, hd) each

    def dense(self) -> tuple[Tensor, Tensor, Tensor | None]:
        if self.keys is None or self.values is None:
            raise ValueError("this ConcatKV holds no token yet")
        return self.keys, self.values, None


class KVBuffer(_OwnKeysKV):
    """Preallocated keys/values ``(R, nh, capacity, hd)``, filled up to ``length``.

    New keys/values are written in place and attention reads the filled part, instead of
    concatenating (which copies the whole cache for every decoded token).
    """

    def __init__(self, keys: Tensor, values: Tensor, length: int) -> None:
        self.keys, self.values = keys, values  # (R, nh, capacity, hd) each
        self.length = length

    @classmethod
    def from_cache(cls, cache: KVCache, capacity: int) -> KVBuffer:
        """A copy of ``cache`` in buffers holding up to ``capacity`` tokens."""
        k, v, _ = cache.dense()  # (R, nh, length, hd) each
        R, n_head, length, head_dim = k.shape
        keys = k.new_empty(R, n_head, capacity, head_dim)  # (R, nh, capacity, hd)
        values = v.new_empty(R, n_head, capacity, head_dim)
        keys[:, :, :length], values[:, :, :length] = k, v
        return cls(keys, values, length)

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write ``(R, nh, T, hd)`` keys/values in place; return all filled ones (views)."""
        end = self.length + k.shape[2]
        if end > self.keys.shape[2]:
            raise ValueError(f"KVBuffer holds {self.keys.shape[2]} tokens, {end} needed")
        self.keys[:, :, self.length : end] = k
        self.values[:, :, self.length : end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]  # (R, nh, end, hd) each

    def select(self, index: Tensor) -> KVBuffer:
        """Only the filled ``length`` tokens are copied; the rest of the capacity stays empty."""
        _, n_head, capacity, head_dim = self.keys.shape
        keys = self.keys.new_empty(len(index), n_head, capacity, head_dim)  # (R', nh, cap, hd)
        values = torch.empty_like(keys)
        if self.length:
            filled = slice(0, self.length)
            torch.index_select(self.keys[:, :, filled], 0, index, out=keys[:, :, filled])
            torch.index_select(self.values[:, :, filled], 0, index, out=values[:, :, filled])
        return KVBuffer(keys, values, self.length)

    def dense(self) -> tuple[Tensor, Tensor, Tensor | None]:
        return self.keys[:, :, : self.length], self.values[:, :, : self.length], None
