"""Caches for beam search whose rows share keys: a prefix stored once per env
(:class:`SharedPrefixKV`) and copies of a row sharing their parent's keys (:class:`SiblingKV`),
with the exact split-softmax arithmetic they need (:func:`attention_with_lse`,
:func:`merge_attention`). For inference (no attention dropout)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from seqagents.models.kv_cache.own import KVBuffer, KVCache

__all__ = ["PrefixMask", "SharedPrefixKV", "SiblingKV", "attention_with_lse", "merge_attention"]

# An attention output (R, nh, T, hd) and its log-sum-exp (R, nh, T, 1), None when not needed.
_Part = tuple[Tensor, Tensor | None]


def attention_with_lse(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Softmax attention over one part of the keys, with its log-sum-exp.

    Args:
        q: ``(..., T, hd)`` queries, already multiplied by the softmax scale.
        k: ``(..., S, hd)`` keys.
        v: ``(..., S, hd)`` values.
        mask: boolean, broadcastable to ``(..., T, S)``, True where a query may attend; None =
            every key.

    Returns:
        ``(..., T, hd)`` attention output normalised over these keys only, and ``(..., T, 1)``
        log-sum-exp of the scores (``-inf`` for a query that may attend to none of them; its
        output is then 0).
    """
    scores = q @ k.transpose(-1, -2)  # (..., T, S)
    if mask is not None:
        scores = torch.where(mask, scores, float("-inf"))
    top = scores.amax(dim=-1, keepdim=True)  # (..., T, 1)
    # A fully masked query has top = -inf: shifting by the float minimum instead keeps its
    # weights exp(-inf) = 0 (output 0, lse -inf) rather than NaN.
    top = top.clamp_(min=torch.finfo(scores.dtype).min)
    weights = (scores - top).exp_()  # (..., T, S) unnormalised softmax
    total = weights.sum(dim=-1, keepdim=True)  # (..., T, 1)
    out = (weights @ v).div_(total.clamp(min=torch.finfo(total.dtype).tiny))  # (..., T, hd)
    return out, total.log_().add_(top)  # lse = top + log(sum exp(scores - top))


def merge_attention(out_a: Tensor, lse_a: Tensor, out_b: Tensor, lse_b: Tensor) -> Tensor:
    """Exact softmax attention over two disjoint key sets from the two partial attentions.

    Attention over the union of the keys is ``w_a * out_a + w_b * out_b`` with ``w_i =
    exp(lse_i - logaddexp(lse_a, lse_b))``, each part's softmax reweighted by its share of the
    total probability mass. Since ``w_a = sigmoid(lse_a - lse_b)`` and ``w_b = 1 - w_a``, this
    is computed as ``lerp(out_b, out_a, w_a)``.

    Args:
        out_a: ``(..., T, hd)`` output of :func:`attention_with_lse` over the first keys.
        lse_a: ``(..., T, 1)`` its log-sum-exp.
        out_b: ``(..., T, hd)`` output over the other keys.
        lse_b: ``(..., T, 1)`` its log-sum-exp.

    Returns:
        ``(..., T, hd)`` attention output over all keys (0 where a query may attend to no key).
    """
    # -inf - -inf (no key in either part) is NaN: weight 0, and both outputs are 0 there.
    w_a = (lse_a - lse_b).nan_to_num_(nan=0.0).sigmoid_()  # (..., T, 1)
    return torch.lerp(out_b, out_a, w_a)  # (..., T, hd)


@dataclass(frozen=True)
class PrefixMask:
    """What the first :meth:`SharedPrefixKV.attend` learned of the masks over a shared prefix."""

    per_query: bool = False  # masks differ between an env's queries: use the caller's each call
    visible: Tensor | None = None  # (E, 1, 1, P) keys each env may see; None = all kept
    kept: Tensor | None = None  # (E, P') positions of the kept keys (the rest dropped)


class SharedPrefixKV:
    """A prefix stored once per env and a suffix buffer per row.

    Beam search over ``E`` envs keeps ``R`` rows whose sequences start with the same ``P``
    tokens per env (the context window). Their keys/values are stored once per env (``(E, nh,
    P, hd)``); each row's later tokens go to a :class:`KVBuffer` ``(R, nh, capacity, hd)``. Each
    row attends to its env's prefix and to its own suffix, and the two partial attentions are
    merged exactly (:func:`merge_attention`): the prefix is read once per env for all of its rows,
    as one matrix product, instead of once per row. :meth:`select` reorders only the suffixes.

    The mask over the prefix keys must depend only on the env, not on the query (true for
    causal masks that hide some keys, as the TT's value tokens and padding): the first
    :meth:`attend` checks that for its queries, then drops the hidden prefix keys (when every
    env hides as many), so later calls need no prefix mask (:class:`PrefixMask`).
    """

    def __init__(
        self,
        keys: Tensor,
        values: Tensor,
        env: Tensor,
        suffix: KVBuffer,
        n_prefix: int | None = None,
        prefix_mask: PrefixMask | None = None,
    ) -> None:
        self.keys, self.values = keys, values  # (E, nh, P', hd) each: the shared prefix
        self.env = env  # (R,) long: env of each row
        self.suffix = suffix  # (R, nh, capacity, hd): each row's tokens after the prefix
        # Prefix tokens of the sequence (keys the first attend drops included).
        self.n_prefix = keys.shape[2] if n_prefix is None else n_prefix
        self.prefix_mask = prefix_mask  # None until the first attend settles it
        self._grouped: bool | None = None  # rows in env order, equally many per env

    @classmethod
    def from_cache(cls, cache: KVCache, env: Tensor, capacity: int) -> SharedPrefixKV:
        """Prefix = ``cache`` (one row per env, ``(E, nh, P, hd)``), empty suffixes of
        ``capacity`` tokens for the rows ``env``."""
        k, v, _ = cache.dense()
        _, n_head, _, head_dim = k.shape
        empty = k.new_empty(len(env), n_head, capacity, head_dim)  # (R, nh, capacity, hd)
        return cls(k, v, env, KVBuffer(empty, torch.empty_like(empty), 0))

    @classmethod
    def per_row(
        cls, cache: KVCache, n_envs: int, env: Tensor, capacity: int, rows: Tensor
    ) -> SharedPrefixKV:
        """No shared prefix: row ``r`` of the suffixes gets row ``rows[r]`` of ``cache``.

        For prefixes too short to be worth sharing: attention is then plain
        ``scaled_dot_product_attention`` over each row's suffix, as over a :class:`KVBuffer`.
        """
        k, _, _ = cache.dense()
        _, n_head, _, head_dim = k.shape
        empty = k.new_empty(n_envs, n_head, 0, head_dim)  # (E, nh, 0, hd)
        return cls(empty, empty, env, KVBuffer.from_cache(cache, capacity).select(rows))

    @property
    def length(self) -> int:
        """Tokens per row: prefix + suffix."""
        return self.n_prefix + self.suffix.length

    def _own(self) -> tuple[Tensor, Tensor]:
        """``(R, nh, S, hd)`` keys and values of each row's own tokens (after the prefix)."""
        filled = slice(0, self.suffix.length)
        return self.suffix.keys[:, :, filled], self.suffix.values[:, :, filled]

    def dense(self) -> tuple[Tensor, Tensor, Tensor | None]:
        (own_k, own_v), P = self._own(), self.n_prefix
        kept = None if self.prefix_mask is None else self.prefix_mask.kept  # (E, P') or None
        parts = []
        for prefix, own in ((self.keys[self.env], own_k), (self.values[self.env], own_v)):
            if kept is not None:  # dropped keys back at their positions, as zeros
                full = prefix.new_zeros(*prefix.shape[:2], P, prefix.shape[3])  # (R, nh, P, hd)
                index = kept[self.env][:, None, :, None].expand_as(prefix)  # (R, nh, P', hd)
                prefix = full.scatter_(2, index, prefix)
            parts.append(torch.cat([prefix, own], dim=2))  # (R, nh, P + S, hd)
        if kept is None:
            return parts[0], parts[1], None
        mask = torch.ones(len(self.env), P + own_k.shape[2], dtype=torch.bool, device=kept.device)
        mask[:, :P] = False
        mask[:, :P].scatter_(1, kept[self.env], True)  # (R, P + S): False where dropped
        return parts[0], parts[1], mask[:, None, None, :]  # (R, 1, 1, P + S)

    def select(self, index: Tensor) -> SharedPrefixKV:
        """The rows ``index``: copies the filled suffixes only, not the prefix."""
        env, suffix = self.env[index], self.suffix.select(index)
        return SharedPrefixKV(self.keys, self.values, env, suffix, self.n_prefix, self.prefix_mask)

    def expand(self, index: Tensor, n_copies: int, n_tokens: int) -> SharedPrefixKV:
        """Copies sharing their parent's keys (:class:`SiblingKV`) when the rows are grouped by
        env and the suffixes have room for the copies' tokens; else :meth:`select`."""
        E, R = self.keys.shape[0], len(self.env)
        copies = torch.arange(R, device=index.device).view(E, 1, R // E)  # (E, 1, R / E)
        copies = copies.expand(E, n_copies, R // E).reshape(-1)  # (E * n * R / E,) the layout
        room = self.suffix.keys.shape[2] - self.suffix.length
        if (
            n_copies == 1
            or not self._rows_grouped()
            or room < n_copies * n_tokens
            or not torch.equal(index, copies)
        ):
            return self.select(index)
        return SiblingKV(self, n_copies, n_tokens)

    def _rows_grouped(self) -> bool:
        """Whether rows are ``E`` consecutive equal blocks, one per env in order (the planner's)."""
        if self._grouped is None:
            n_envs, n_rows = self.keys.shape[0], len(self.env)
            expected = torch.arange(n_envs, device=self.env.device)  # (E,)
            self._grouped = n_rows % n_envs == 0 and torch.equal(
                self.env,
                expected.repeat_interleave(n_rows // n_envs),  # (R,)
            )
        return self._grouped

    def _settle_prefix_mask(self, mask: Tensor | None) -> PrefixMask:
        """First call: keep the visible prefix keys per env if the mask allows (see class doc)."""
        if mask is None:
            return PrefixMask()
        E, P = self.keys.shape[0], self.n_prefix
        rows = mask.expand(len(self.env), 1, mask.shape[2], P)[:, 0]  # (R, T, P)
        visible = torch.zeros(E, P, dtype=torch.bool, device=mask.device)  # (E, P)
        visible[self.env] = rows[:, 0]  # one query's mask per env
        if not torch.equal(rows, visible[self.env][:, None].expand_as(rows)):
            return PrefixMask(per_query=True)
        counts = visible.sum(dim=1)  # (E,)
        if bool((counts == P).all()):
            return PrefixMask()
        if not bool((counts == counts[0]).all()):
            return PrefixMask(visible=visible[:, None, None, :])  # (E, 1, 1, P)
        kept = visible.nonzero()[:, 1].view(E, -1)  # (E, P') positions of the visible keys
        index = kept[:, None, :, None].expand(E, self.keys.shape[1], -1, self.keys.shape[3])
        # index: (E, nh, P', hd)
        self.keys = self.keys.gather(2, index)  # (E, nh, P', hd): the hidden keys dropped
        self.values = self.values.gather(2, index)  # (E, nh, P', hd)
        return PrefixMask(kept=kept)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, **sdpa: Any) -> Tensor:
        """:class:`KVCache` ``attend``; ``mask`` covers prefix, earlier suffix and new keys
        (``(R or 1, 1, T, P + S + T)``); ``sdpa`` is ignored (inference: no dropout)."""
        P = self.n_prefix
        if P == 0:  # (R, nh, T, hd), exactly as over a KVBuffer
            return self._attend_own(q, k, v, mask, lse=False)[0]
        suffix_mask = None if mask is None else mask[..., P:]  # (R or 1, 1, T, S + T)
        out_s, lse_s = self._attend_own(q, k, v, suffix_mask, lse=True)  # (R, nh, T, *)
        q = q * q.shape[-1] ** -0.5  # (R, nh, T, hd) scaled as in attention_with_lse
        if self.prefix_mask is None:
            self.prefix_mask = self._settle_prefix_mask(None if mask is None else mask[..., :P])
        prefix = self.prefix_mask
        if prefix.per_query:  # the given mask, rows gathered
            assert mask is not None
            out_p, lse_p = attention_with_lse(
                q, self.keys[self.env], self.values[self.env], mask[..., :P]
            )  # (R, nh, T, hd), (R, nh, T, 1)
        elif self._rows_grouped():
            out_p, lse_p = self._grouped_prefix_attention(q, prefix.visible)
        else:  # any row order: gather each row's prefix (copies it, as a KVBuffer would)
            visible = None if prefix.visible is None else prefix.visible[self.env]  # (R, 1, 1, P)
            out_p, lse_p = attention_with_lse(
                q, self.keys[self.env], self.values[self.env], visible
            )
        return merge_attention(out_p, lse_p, out_s, lse_s)  # (R, nh, T, hd)

    def _attend_own(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, lse: bool) -> _Part:
        """Append ``(R, nh, T, hd)`` ``k, v`` to the rows' own keys; attention of the (unscaled)
        queries over those, with its log-sum-exp if ``lse`` (else fused SDPA, lse None).

        ``mask``: boolean ``(R or 1, 1, T, S + T)`` over the suffix and new keys, or None.
        """
        suffix_k, suffix_v = self.suffix.append(k, v)  # (R, nh, S + T, hd) views
        if not lse:
            return F.scaled_dot_product_attention(q, suffix_k, suffix_v, attn_mask=mask), None
        return attention_with_lse(q * q.shape[-1] ** -0.5, suffix_k, suffix_v, mask)

    def _grouped_prefix_attention(self, q: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Prefix part for rows grouped by env: one ``(n * T, hd) @ (hd, P)`` product per env.

        ``mask``: None or ``(E, 1, 1, P)`` visible prefix keys per env.
        """
        R, n_head, T, head_dim = q.shape
        E = self.keys.shape[0]
        n = R // E  # rows per env
        q_env = q.reshape(E, n, n_head, T, head_dim).transpose(1, 2)  # (E, nh, n, T, hd)
        q_env = q_env.reshape(E, n_head, n * T, head_dim)  # (E, nh, n * T, hd)
        out, lse = attention_with_lse(q_env, self.keys, self.values, mask)  # (E, nh, n * T, *)
        out = out.view(E, n_head, n, T, head_dim).transpose(1, 2)  # (E, n, nh, T, hd)
        lse = lse.view(E, n_head, n, T, 1).transpose(1, 2)  # (E, n, nh, T, 1)
        return out.reshape(R, n_head, T, head_dim), lse.reshape(R, n_head, T, 1)  # row order


class SiblingKV(SharedPrefixKV):
    """A :class:`SharedPrefixKV` whose ``G`` rows were copied ``n`` times, without copying.

    Beam search copies every beam ``n`` times before sampling its actions (rows ``(E, n, G /
    E)``: env, copy, beam, as ``torch.repeat`` orders them) and keeps some of the copies a few
    tokens later. Instead of copying each beam's keys/values ``n`` times, the copies' new tokens
    are written into ``n`` groups of ``n_tokens`` free slots after the parent's own (``(G, nh,
    S + n * n_tokens, hd)``: the parent suffix's spare capacity), and each parent's keys are
    read once for all of its copies: its ``n * T`` queries attend to the parent's keys and to
    every copy's slots in one product, a mask hiding the other copies' slots. The env prefix is
    shared as in :class:`SharedPrefixKV`. :meth:`select` gives the kept copies their own
    suffixes again. Made by :meth:`SharedPrefixKV.expand`.
    """

    def __init__(self, parent: SharedPrefixKV, n_copies: int, n_tokens: int) -> None:
        n_envs, n_parents = parent.keys.shape[0], len(parent.env)
        if not parent._rows_grouped():
            raise ValueError("SiblingKV needs a parent whose rows are grouped by env")
        room = parent.suffix.keys.shape[2] - parent.suffix.length
        if room < n_copies * n_tokens:
            raise ValueError(
                f"the parent suffix has room for {room} tokens, {n_copies} x {n_tokens} needed"
            )
        per_env = n_parents // n_envs
        env = parent.env.view(n_envs, 1, per_env).expand(n_envs, n_copies, per_env)  # (E, n, B)
        env = env.reshape(-1)  # (R,) rows (env, copy, beam)
        super().__init__(
            parent.keys, parent.values, env, parent.suffix, parent.n_prefix, parent.prefix_mask
        )
        self.n_copies, self.n_tokens, self.filled = n_copies, n_tokens, 0
        # Masked keys get weight 0, but 0 * NaN is NaN: no uninitialised memory in the slots.
        self._slots(self.suffix.keys).zero_()
        self._slots(self.suffix.values).zero_()

    @property
    def length(self) -> int:
        """Tokens per row: prefix + the parent's suffix + the copy's own tokens."""
        return self.n_prefix + self.suffix.length + self.filled

    def _slots(self, buffer: Tensor) -> Tensor:
        """``(G, nh, n, n_tokens, hd)`` view of the copies' slots in a parent buffer."""
        G, n_head, _, head_dim = buffer.shape
        start = self.suffix.length
        slots = buffer[:, :, start : start + self.n_copies * self.n_tokens]  # (G, nh, n * t, hd)
        return slots.view(G, n_head, self.n_copies, self.n_tokens, head_dim)  # (G, nh, n, t, hd)

    def _by_parent(self, x: Tensor) -> Tensor:
        """``(R, *rest)`` rows in (env, copy, beam) order -> ``(G, n, *rest)`` by parent."""
        E, n = self.keys.shape[0], self.n_copies
        B = len(self.env) // (E * n)
        x = x.view(E, n, B, *x.shape[1:]).transpose(1, 2)  # (E, B, n, *rest)
        return x.reshape(E * B, n, *x.shape[3:])  # (G, n, *rest)

    def _to_rows(self, x: Tensor) -> Tensor:
        """Inverse of :meth:`_by_parent`: ``(G, n, *rest)`` -> ``(R, *rest)``."""
        E, n = self.keys.shape[0], self.n_copies
        x = x.view(E, x.shape[0] // E, n, *x.shape[2:]).transpose(1, 2)  # (E, n, B, *rest)
        return x.reshape(len(self.env), *x.shape[3:])  # (R, *rest)

    def _attend_own(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, lse: bool) -> _Part:
        _, n_head, T, head_dim = q.shape
        n, t, j, S = self.n_copies, self.n_tokens, self.filled, self.suffix.length
        if j + T > t:
            raise ValueError(f"SiblingKV holds {t} tokens per copy, {j + T} needed")
        # Each copy's new keys/values go to its slots: (G, nh, n, T, hd).
        for buffer, new in ((self.suffix.keys, k), (self.suffix.values, v)):
            written = self._slots(buffer)[:, :, :, j : j + T]  # (G, nh, n, T, hd)
            written[...] = self._by_parent(new).transpose(1, 2)  # (G, n, nh, T, hd) -> its slots
        self.filled = j + T
        G = len(self.env) // n
        width = S + n * t
        # Queries of a parent's copies together: (G, nh, n * T, hd).
        q_parent = self._by_parent(q).transpose(1, 2)  # (G, nh, n, T, hd)
        q_parent = q_parent.reshape(G, n_head, n * T, head_dim)  # (G, nh, n * T, hd)
        # Mask over the parent's keys and all copies' slots: each copy sees the parent's keys
        # and its own filled slots, as ``mask`` (over the parent's suffix, then its own tokens)
        # says; never another copy's slots.
        if mask is None:
            own = torch.ones(1, 1, T, S + j + T, dtype=torch.bool, device=q.device)
        else:
            own = mask  # (R or 1, 1, T, S + j + T)
        per_copy = (
            own[:, 0, None].expand(-1, n, -1, -1)
            if own.shape[0] == 1
            else self._by_parent(own[:, 0])
        )  # (G or 1, n, T, S + j + T)
        full = torch.zeros(
            per_copy.shape[0], n, T, width, dtype=torch.bool, device=q.device
        )  # (G or 1, n, T, S + n * t)
        full[..., :S] = per_copy[..., :S]
        slots = full[..., S:].view(per_copy.shape[0], n, T, n, t)  # (G or 1, n, T, n, t)
        for c in range(n):  # the copy's own slots only
            slots[:, c, :, c, : j + T] = per_copy[:, c, :, S:]
        group_mask = full.view(per_copy.shape[0], 1, n * T, width)  # (G or 1, 1, n * T, width)
        keys = self.suffix.keys[:, :, :width]  # (G, nh, width, hd)
        values = self.suffix.values[:, :, :width]
        out_lse = None
        if lse:
            out, out_lse = attention_with_lse(q_parent * head_dim**-0.5, keys, values, group_mask)
        else:
            out = F.scaled_dot_product_attention(q_parent, keys, values, attn_mask=group_mask)

        def to_rows(x: Tensor) -> Tensor:  # (G, nh, n * T, d) -> (R, nh, T, d)
            x = x.view(G, n_head, n, T, x.shape[-1]).transpose(1, 2)  # (G, n, nh, T, d)
            return self._to_rows(x)

        return to_rows(out), None if out_lse is None else to_rows(out_lse)

    def _parents(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """``(R',)`` parent row and copy number of the rows ``index`` (env, copy, beam)."""
        n = self.n_copies
        B = len(self.env) // (self.keys.shape[0] * n)
        return (index // (n * B)) * B + index % B, (index // B) % n

    def _own(self) -> tuple[Tensor, Tensor]:
        """``(R, nh, S + filled, hd)``: each copy's parent suffix, then its own tokens."""
        parent, copy = self._parents(torch.arange(len(self.env), device=self.env.device))
        S, j = self.suffix.length, self.filled
        return tuple(  # type: ignore[return-value]
            torch.cat([x[parent, :, :S], self._slots(x)[parent, :, copy, :j]], dim=2)
            for x in (self.suffix.keys, self.suffix.values)
        )  # (R, nh, S, hd) inherited + (R, nh, j, hd) own

    def select(self, index: Tensor) -> SharedPrefixKV:
        """A :class:`SharedPrefixKV` with the copies ``index``, each with its own suffix (the
        parent's keys, then the copy's)."""
        parent, copy = self._parents(index)  # (R',) each
        S, j = self.suffix.length, self.filled
        suffix = self.suffix.select(parent)  # (R', nh, capacity, hd), the parent's S filled
        for own, source in ((suffix.keys, self.suffix.keys), (suffix.values, self.suffix.values)):
            own[:, :, S : S + j] = self._slots(source)[parent, :, copy, :j]  # (R', nh, j, hd)
        suffix.length = S + j
        env = self.env[index]
        return SharedPrefixKV(self.keys, self.values, env, suffix, self.n_prefix, self.prefix_mask)

    def expand(self, index: Tensor, n_copies: int, n_tokens: int) -> SharedPrefixKV:
        own = self.select(torch.arange(len(self.env), device=self.env.device))  # own suffixes
        return own.expand(index, n_copies, n_tokens)
