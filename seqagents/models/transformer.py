"""GPT-2 style pre-LayerNorm transformer blocks shared by the sequence models.

The blocks use ``torch.nn.functional.scaled_dot_product_attention`` with an optional boolean
attention mask (``True`` = may attend) and an optional key/value cache for incremental decoding.
Parameter names follow GPT-2 (``c_attn``, ``c_proj``, ``c_fc``) so that foreign checkpoints map
onto them key by key; GPT-2's ``Conv1D`` stores weights ``[in, out]``, ours are ``nn.Linear``
``[out, in]`` (the converters transpose).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seqagents.errors import reject_unknown_keys

__all__ = [
    "gpt_init_",
    "TransformerConfig",
    "SequenceModelConfig",
    "SelfAttention",
    "Block",
    "Transformer",
    "KVCache",
    "KVBuffer",
    "SharedPrefixKV",
    "SiblingKV",
    "attention_with_lse",
    "merge_attention",
]

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    # GPT-2's "gelu_new" is the tanh approximation.
    "gelu_new": lambda: nn.GELU(approximate="tanh"),
}


@dataclass
class TransformerConfig:
    """Hyperparameters of a stack of transformer blocks."""

    n_embd: int = 128  # hidden width H
    n_head: int = 1  # attention heads; H must be divisible by it
    n_layer: int = 3  # number of blocks
    n_inner: int | None = None  # MLP width; None -> 4 * H (GPT-2 default)
    activation: str = "relu"  # MLP activation: relu | gelu | gelu_new (DT paper: relu)
    resid_pdrop: float = 0.1  # dropout after attention/MLP projections (DT paper: 0.1)
    attn_pdrop: float = 0.1  # dropout on attention weights
    layer_norm_epsilon: float = 1e-5  # GPT-2 default

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; expected one of {sorted(_ACTIVATIONS)}"
            )


class SequenceModelConfig:
    """What the DT and LEAP config dataclasses share: dict round trips that reject unknown keys,
    and the :class:`TransformerConfig` of their blocks (from ``hidden_size``, ``n_head``,
    ``n_layer``, ``n_inner``, ``activation``, ``dropout``, ``layer_norm_epsilon``)."""

    def to_dict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict) -> Any:
        reject_unknown_keys(cls, data, f"unknown {cls.__name__} keys")
        return cls(**data)

    def transformer(self) -> TransformerConfig:
        c: Any = self
        return TransformerConfig(
            n_embd=c.hidden_size,
            n_head=c.n_head,
            n_layer=c.n_layer,
            n_inner=c.n_inner,
            activation=c.activation,
            resid_pdrop=c.dropout,
            attn_pdrop=c.dropout,
            layer_norm_epsilon=c.layer_norm_epsilon,
        )


def gpt_init_(module: nn.Module) -> None:
    """GPT-2 / minGPT initialisation, for ``model.apply``: N(0, 0.02) Linear and Embedding
    weights, zero biases, unit LayerNorms (transformers' ``initializer_range=0.02``, the
    original DT and TT code). Other modules (e.g. TT's per-dimension heads) keep their own."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


KVCache = tuple[torch.Tensor, torch.Tensor]  # keys, values: (B, n_head, T_past, head_dim)


class KVBuffer:
    """Preallocated keys/values of one layer, filled up to ``length``.

    Passed as ``past``, new keys/values are written in place and attention reads the filled part;
    a ``(k, v)`` tuple instead is concatenated, which copies the whole cache for every decoded
    token (the dominant cost of TT beam search on CPU). The buffer is modified in place.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        self.keys, self.values = keys, values  # (B, n_head, capacity, head_dim) each
        self.length = length

    @classmethod
    def from_cache(cls, cache: KVCache, capacity: int) -> KVBuffer:
        """Copy a ``(k, v)`` cache into buffers holding up to ``capacity`` tokens."""
        k, v = cache
        B, n_head, length, head_dim = k.shape
        keys = k.new_empty(B, n_head, capacity, head_dim)
        values = v.new_empty(B, n_head, capacity, head_dim)
        keys[:, :, :length], values[:, :, :length] = k, v
        return cls(keys, values, length)

    def select(self, index: torch.Tensor) -> KVBuffer:
        """A new buffer with the rows ``index`` (e.g. beams kept by a search); only the filled
        ``length`` tokens are copied, the rest of the capacity is left empty."""
        _, n_head, capacity, head_dim = self.keys.shape
        keys = self.keys.new_empty(len(index), n_head, capacity, head_dim)  # (R', nh, cap, hd)
        values = torch.empty_like(keys)
        if self.length:
            filled = slice(0, self.length)
            torch.index_select(self.keys[:, :, filled], 0, index, out=keys[:, :, filled])
            torch.index_select(self.values[:, :, filled], 0, index, out=values[:, :, filled])
        return KVBuffer(keys, values, self.length)

    def append(self, k: torch.Tensor, v: torch.Tensor) -> KVCache:
        """Write ``(B, n_head, T, head_dim)`` keys/values; return all filled ones (views)."""
        end = self.length + k.shape[2]
        if end > self.keys.shape[2]:
            raise ValueError(f"KVBuffer holds {self.keys.shape[2]} tokens, {end} needed")
        self.keys[:, :, self.length : end] = k
        self.values[:, :, self.length : end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


def attention_with_lse(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
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


def merge_attention(
    out_a: torch.Tensor, lse_a: torch.Tensor, out_b: torch.Tensor, lse_b: torch.Tensor
) -> torch.Tensor:
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


class SharedPrefixKV:
    """Keys/values of one layer split into a prefix shared by each env's rows and per-row suffixes.

    Beam search over ``E`` envs keeps ``R = E * rows_per_env`` rows whose sequences start with
    the same ``P`` tokens per env (the context window). Their keys/values are stored once per env
    (``(E, nh, P, hd)``); each row's later tokens go to a :class:`KVBuffer` ``(R, nh, capacity,
    hd)``. Passed as ``past`` to :class:`SelfAttention`, each row attends to its env's prefix and
    to its own suffix, and the two partial attentions are merged exactly
    (:func:`merge_attention`): the prefix is read once per env for all of its rows, as one
    matrix product, instead of once per row. :meth:`select` reorders only the suffixes and the
    row -> env index. For inference (no attention dropout).

    The attention mask over the prefix keys must depend only on the env, not on the query
    (true for causal masks that hide some keys, as the TT's value tokens and padding): the
    first :meth:`attend` checks that for its queries, then drops the hidden prefix keys (when
    every env hides as many), so later calls need no prefix mask.
    """

    def __init__(
        self,
        keys: torch.Tensor,
        values: torch.Tensor,
        env: torch.Tensor,
        suffix: KVBuffer,
        prefix_mask: torch.Tensor | None | str = "unknown",
    ) -> None:
        self.keys, self.values = keys, values  # (E, nh, P, hd) each: the shared prefix
        self.env = env  # (R,) long: env of each row
        self.suffix = suffix  # (R, nh, capacity, hd): each row's tokens after the prefix
        self.n_prefix = keys.shape[2]  # prefix tokens of the sequence (before any key is dropped)
        # "unknown" until the first attend; then None (no key hidden), an (E, 1, 1, P) mask of
        # the visible keys, or "per-query" (use the masks given).
        self.prefix_mask = prefix_mask
        self._grouped: bool | None = None  # rows in env order, equally many per env

    @classmethod
    def from_cache(cls, cache: KVCache, env: torch.Tensor, capacity: int) -> SharedPrefixKV:
        """Prefix ``(k, v)`` ``(E, nh, P, hd)`` (not copied), empty suffixes for rows ``env``."""
        k, v = cache
        _, n_head, _, head_dim = k.shape
        empty = k.new_empty(len(env), n_head, capacity, head_dim)  # (R, nh, capacity, hd)
        return cls(k, v, env, KVBuffer(empty, torch.empty_like(empty), 0))

    @classmethod
    def per_row(
        cls, cache: KVCache, n_envs: int, env: torch.Tensor, capacity: int, rows: torch.Tensor
    ) -> SharedPrefixKV:
        """No shared prefix: row ``r`` of the suffixes gets row ``rows[r]`` of ``(k, v)``.

        For prefixes too short to be worth sharing (``(k, v)`` ``(B, nh, T, hd)`` are copied
        into every row's buffer of ``capacity`` tokens); attention is then plain
        ``scaled_dot_product_attention`` over each row's suffix, as over a :class:`KVBuffer`,
        and :meth:`select` still copies only the filled part.
        """
        k, _ = cache
        _, n_head, _, head_dim = k.shape
        empty = k.new_empty(n_envs, n_head, 0, head_dim)  # (E, nh, 0, hd)
        return cls(empty, empty, env, KVBuffer.from_cache(cache, capacity).select(rows))

    @property
    def length(self) -> int:
        """Tokens per row: prefix + suffix."""
        return self.n_prefix + self.suffix.length

    def suffix_keys(self) -> torch.Tensor:
        """``(R, nh, S, hd)``: each row's filled suffix keys (for readers such as
        :func:`seqagents.analysis.capture_attention`; attention does not use this)."""
        return self.suffix.keys[:, :, : self.suffix.length]

    def select(self, index: torch.Tensor) -> SharedPrefixKV:
        """A new cache with the rows ``index``: copies the filled suffixes only, not the prefix."""
        selected = SharedPrefixKV(
            self.keys, self.values, self.env[index], self.suffix.select(index)
        )
        selected.n_prefix, selected.prefix_mask = self.n_prefix, self.prefix_mask
        return selected

    def _rows_grouped(self) -> bool:
        """Whether rows are ``E`` consecutive equal blocks, one per env in order (the planner's)."""
        if self._grouped is None:
            n_envs, n_rows = self.keys.shape[0], len(self.env)
            expected = torch.arange(n_envs, device=self.env.device)  # (E,)
            self._grouped = n_rows % n_envs == 0 and torch.equal(
                self.env, expected.repeat_interleave(n_rows // n_envs)
            )
        return self._grouped

    def _settle_prefix_mask(self, mask: torch.Tensor | None) -> None:
        """First call: keep the visible prefix keys per env if the mask allows (see class doc)."""
        if mask is None:
            self.prefix_mask = None
            return
        E, P = self.keys.shape[0], self.n_prefix
        rows = mask.expand(len(self.env), 1, mask.shape[2], P)[:, 0]  # (R, T, P)
        visible = torch.zeros(E, P, dtype=torch.bool, device=mask.device)  # (E, P)
        visible[self.env] = rows[:, 0]  # one query's mask per env
        if not torch.equal(rows, visible[self.env][:, None].expand_as(rows)):
            self.prefix_mask = "per-query"
            return
        counts = visible.sum(dim=1)  # (E,)
        if bool((counts == P).all()):
            self.prefix_mask = None
        elif bool((counts == counts[0]).all()):  # drop the hidden keys: no mask needed
            keep = visible.nonzero()[:, 1].view(E, 1, -1, 1)  # (E, 1, P', 1) key indices
            keep = keep.expand(E, self.keys.shape[1], keep.shape[2], self.keys.shape[3])
            self.keys = self.keys.gather(2, keep)  # (E, nh, P', hd)
            self.values = self.values.gather(2, keep)  # (E, nh, P', hd)
            self.prefix_mask = None
        else:
            self.prefix_mask = visible[:, None, None, :]  # (E, 1, 1, P)

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Append ``(R, nh, T, hd)`` keys/values ``k, v``; attention output for queries ``q``.

        Args:
            q: ``(R, nh, T, hd)`` queries of the new tokens.
            k: ``(R, nh, T, hd)`` their keys, appended to the suffixes in place.
            v: ``(R, nh, T, hd)`` their values.
            attn_mask: boolean ``(R or 1, 1, T, P + S + T)`` over prefix, earlier suffix and new
                keys, True where a query may attend; None = all of them.

        Returns:
            ``(R, nh, T, hd)`` attention output, equal to attention over the concatenated keys.
        """
        P = self.n_prefix
        if P == 0:  # (R, nh, T, hd), exactly as over a KVBuffer
            return self._own_attention(q, k, v, attn_mask, with_lse=False)[0]
        suffix_mask = None if attn_mask is None else attn_mask[..., P:]  # (R or 1, 1, T, S + T)
        out_s, lse_s = self._own_attention(q, k, v, suffix_mask, with_lse=True)  # (R, nh, T, *)
        q = q * q.shape[-1] ** -0.5  # (R, nh, T, hd) scaled as in attention_with_lse
        if isinstance(self.prefix_mask, str) and self.prefix_mask == "unknown":
            self._settle_prefix_mask(None if attn_mask is None else attn_mask[..., :P])
        if isinstance(self.prefix_mask, str):  # "per-query": the given mask, rows gathered
            assert attn_mask is not None
            out_p, lse_p = attention_with_lse(
                q, self.keys[self.env], self.values[self.env], attn_mask[..., :P]
            )  # (R, nh, T, hd), (R, nh, T, 1)
        elif self._rows_grouped():
            out_p, lse_p = self._grouped_prefix_attention(q, self.prefix_mask)
        else:  # any row order: gather each row's prefix (copies it, as a KVBuffer would)
            mask = None if self.prefix_mask is None else self.prefix_mask[self.env]
            out_p, lse_p = attention_with_lse(q, self.keys[self.env], self.values[self.env], mask)
        return merge_attention(out_p, lse_p, out_s, lse_s)  # (R, nh, T, hd)

    def _own_attention(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None,
        with_lse: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Append ``(R, nh, T, hd)`` ``k, v`` to the rows' own keys; attention of the (unscaled)
        queries over those, with its log-sum-exp if ``with_lse`` (else fused SDPA, lse None).

        ``mask``: boolean ``(R or 1, 1, T, S + T)`` over the suffix and new keys, or None.
        """
        suffix_k, suffix_v = self.suffix.append(k, v)  # (R, nh, S + T, hd) views
        if not with_lse:
            return F.scaled_dot_product_attention(q, suffix_k, suffix_v, attn_mask=mask), None
        return attention_with_lse(q * q.shape[-1] ** -0.5, suffix_k, suffix_v, mask)

    def _grouped_prefix_attention(
        self, q: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
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
    suffixes again. For inference (no attention dropout).
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
        super().__init__(parent.keys, parent.values, env.reshape(-1), parent.suffix)
        self.n_prefix, self.prefix_mask = parent.n_prefix, parent.prefix_mask
        self.n_copies, self.n_tokens, self.filled = n_copies, n_tokens, 0
        # Masked keys get weight 0, but 0 * NaN is NaN: no uninitialised memory in the slots.
        self._slots(self.suffix.keys).zero_()
        self._slots(self.suffix.values).zero_()

    @property
    def length(self) -> int:
        """Tokens per row: prefix + the parent's suffix + the copy's own tokens."""
        return self.n_prefix + self.suffix.length + self.filled

    def _slots(self, buffer: torch.Tensor) -> torch.Tensor:
        """``(G, nh, n, n_tokens, hd)`` view of the copies' slots in a parent buffer."""
        G, n_head, _, head_dim = buffer.shape
        start = self.suffix.length
        slots = buffer[:, :, start : start + self.n_copies * self.n_tokens]  # (G, nh, n * t, hd)
        return slots.view(G, n_head, self.n_copies, self.n_tokens, head_dim)

    def _by_parent(self, x: torch.Tensor) -> torch.Tensor:
        """``(R, *rest)`` rows in (env, copy, beam) order -> ``(G, n, *rest)`` by parent."""
        E, n = self.keys.shape[0], self.n_copies
        B = len(self.env) // (E * n)
        x = x.view(E, n, B, *x.shape[1:]).transpose(1, 2)  # (E, B, n, *rest)
        return x.reshape(E * B, n, *x.shape[3:])  # (G, n, *rest)

    def _to_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`_by_parent`: ``(G, n, *rest)`` -> ``(R, *rest)``."""
        E, n = self.keys.shape[0], self.n_copies
        x = x.view(E, x.shape[0] // E, n, *x.shape[2:]).transpose(1, 2)  # (E, n, B, *rest)
        return x.reshape(len(self.env), *x.shape[3:])  # (R, *rest)

    def _own_attention(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None,
        with_lse: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        _, n_head, T, head_dim = q.shape
        n, t, j, S = self.n_copies, self.n_tokens, self.filled, self.suffix.length
        if j + T > t:
            raise ValueError(f"SiblingKV holds {t} tokens per copy, {j + T} needed")
        # Each copy's new keys/values go to its slots: (G, nh, n, T, hd).
        self._slots(self.suffix.keys)[:, :, :, j : j + T] = self._by_parent(k).transpose(1, 2)
        self._slots(self.suffix.values)[:, :, :, j : j + T] = self._by_parent(v).transpose(1, 2)
        self.filled = j + T
        G = len(self.env) // n
        width = S + n * t
        # Queries of a parent's copies together: (G, nh, n * T, hd).
        q_parent = self._by_parent(q).transpose(1, 2).reshape(G, n_head, n * T, head_dim)
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
        if with_lse:
            out, lse = attention_with_lse(q_parent * head_dim**-0.5, keys, values, group_mask)
        else:
            out = F.scaled_dot_product_attention(q_parent, keys, values, attn_mask=group_mask)
            lse = None

        def to_rows(x: torch.Tensor) -> torch.Tensor:  # (G, nh, n * T, d) -> (R, nh, T, d)
            return self._to_rows(x.view(G, n_head, n, T, x.shape[-1]).transpose(1, 2))

        return to_rows(out), None if lse is None else to_rows(lse)

    def _parents(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(R',)`` parent row and copy number of the rows ``index`` (env, copy, beam)."""
        n = self.n_copies
        B = len(self.env) // (self.keys.shape[0] * n)
        return (index // (n * B)) * B + index % B, (index // B) % n

    def suffix_keys(self) -> torch.Tensor:
        """``(R, nh, S + filled, hd)``: each copy's parent suffix keys, then its own."""
        parent, copy = self._parents(torch.arange(len(self.env), device=self.env.device))
        inherited = self.suffix.keys[parent, :, : self.suffix.length]  # (R, nh, S, hd)
        own = self._slots(self.suffix.keys)[parent, :, copy, : self.filled]  # (R, nh, j, hd)
        return torch.cat([inherited, own], dim=2)

    def select(self, index: torch.Tensor) -> SharedPrefixKV:
        """A :class:`SharedPrefixKV` with the copies ``index``, each with its own suffix (the
        parent's keys, then the copy's)."""
        parent, copy = self._parents(index)  # (R',) each
        S, j = self.suffix.length, self.filled
        suffix = self.suffix.select(parent)  # (R', nh, capacity, hd), the parent's S filled
        for own, source in ((suffix.keys, self.suffix.keys), (suffix.values, self.suffix.values)):
            own[:, :, S : S + j] = self._slots(source)[parent, :, copy, :j]  # (R', nh, j, hd)
        suffix.length = S + j
        selected = SharedPrefixKV(self.keys, self.values, self.env[index], suffix)
        selected.n_prefix, selected.prefix_mask = self.n_prefix, self.prefix_mask
        return selected


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused qkv projection."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_pdrop = config.attn_pdrop
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        past: KVCache | KVBuffer | SharedPrefixKV | None = None,
    ) -> tuple[torch.Tensor, KVCache | KVBuffer | SharedPrefixKV]:
        """Attend over ``past`` keys/values followed by ``x``.

        Args:
            x: ``(B, T, H)`` new tokens.
            attn_mask: boolean ``(B or 1, 1, T, T_past + T)``, True where a query may attend.
            is_causal: use the causal mask (only valid without ``past`` and ``attn_mask``).
            past: cached keys/values of earlier tokens; a :class:`KVBuffer` is appended to in
                place, and so is a :class:`SharedPrefixKV` (each row attends to its env's
                shared prefix and its own suffix; inference only, no attention dropout).

        Returns:
            ``(B, T, H)`` output and the updated cache (past + this call's keys/values; the same
            object when ``past`` is a :class:`KVBuffer` or :class:`SharedPrefixKV`).
        """
        B, T, H = x.shape
        q, k, v = self.c_attn(x).split(H, dim=2)  # 3 x (B, T, H)
        q, k, v = (t.view(B, T, self.n_head, H // self.n_head).transpose(1, 2) for t in (q, k, v))
        if isinstance(past, SharedPrefixKV):  # prefix per env + suffix per row, LSE-merged
            y = past.attend(q, k, v, attn_mask)  # (B, nh, T, hd)
            return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, H))), past
        if isinstance(past, KVBuffer):  # (B, nh, T_past + T, hd) views
            k, v = past.append(k, v)
        elif past is not None:  # (B, nh, T_past + T, hd)
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            is_causal=is_causal and attn_mask is None,
            dropout_p=self.attn_pdrop if self.training else 0.0,
        )  # (B, nh, T, hd)
        y = y.transpose(1, 2).reshape(B, T, H)  # (B, T, H)
        cache = past if isinstance(past, KVBuffer) else (k, v)
        return self.resid_dropout(self.c_proj(y)), cache


class MLP(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        inner = config.n_inner or 4 * config.n_embd
        self.c_fc = nn.Linear(config.n_embd, inner)
        self.act = _ACTIVATIONS[config.activation]()
        self.c_proj = nn.Linear(inner, config.n_embd)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LN block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))`` (GPT-2)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = SelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        past: KVCache | KVBuffer | SharedPrefixKV | None = None,
    ) -> tuple[torch.Tensor, KVCache | KVBuffer | SharedPrefixKV]:
        a, cache = self.attn(self.ln_1(x), attn_mask, is_causal, past)
        x = x + a
        return x + self.mlp(self.ln_2(x)), cache


class Transformer(nn.Module):
    """``n_layer`` blocks followed by a final LayerNorm ``ln_f``."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        past: list[KVCache] | list[KVBuffer] | list[SharedPrefixKV] | None = None,
    ) -> tuple[torch.Tensor, list[KVCache | KVBuffer | SharedPrefixKV]]:
        """Run all blocks; returns ``(B, T, H)`` and the per-layer caches."""
        caches = []
        for i, block in enumerate(self.h):
            x, cache = block(x, attn_mask, is_causal, None if past is None else past[i])
            caches.append(cache)
        return self.ln_f(x), caches
