"""Trajectory Transformer network (Janner, Li, Levine 2021, arXiv 2106.02039), plain torch.

Token order: a trajectory is a flat sequence of discretized transitions,

    (s_1^0 .. s_1^{O-1}, a_1^0 .. a_1^{A-1}, r_1, V_1, s_2^0, ...)     # transition_dim tokens each

with ``O = observation_dim``, ``A = action_dim`` and ``transition_dim = O + A + 2`` (reward and
value-to-go). The token at position ``i`` belongs to dimension ``d = i % transition_dim`` and holds
a bin index in ``[0, vocab_size)`` or the stop token ``vocab_size``. Each dimension has its own
slice of the embedding table (index ``token + d * vocab_size``); the stop token of every
dimension shares the last row ``vocab_size * transition_dim``.

The output at position ``i`` holds the logits of the token at position ``i + 1`` (dimension
``(i + 1) % transition_dim``), computed by ``head.weight[i % transition_dim]``: one output head per
dimension, as the original's ``EinLinear`` (jannerm/trajectory-transformer
``trajectory/models/ein.py``).

Value tokens are hidden from attention: no query may attend to a position of dimension
``transition_dim - 1`` (the original zeroes those columns of its causal mask), so the planner's
guessed values never leak into the predictions of later tokens through attention.

Positions are counted from the first token the model sees (the original crops its input to whole
transitions, so position 0 always holds an ``s^0`` token). With a KV cache the new tokens continue
from the cached length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqagents.errors import check_maximums, check_minimums, reject_unknown_keys
from seqagents.models.kv_cache import KVCache
from seqagents.models.transformer import Transformer, TransformerConfig, gpt_init_

__all__ = ["TTConfig", "TrajectoryTransformer", "past_length"]


@dataclass
class TTConfig:
    """Trajectory Transformer hyperparameters (defaults: TT paper / original code, halfcheetah)."""

    vocab_size: int = 100  # N, bins per dimension (paper: 100); the stop token is index N
    observation_dim: int = 17  # O, observation dimensions (halfcheetah: 17)
    action_dim: int = 6  # A, action dimensions (halfcheetah: 6)
    transition_dim: int = 25  # O + A + 2 (reward, value-to-go); validated
    block_size: int = 249  # max tokens in one forward: 10 transitions - 1 (original)
    n_layer: int = 4  # paper: 4
    n_head: int = 4  # paper: 4
    n_embd: int = 128  # H; original: 32 per head x 4 heads
    dropout: float = 0.1  # embedding, residual and attention dropout (original: 0.1 each)
    # Attention-weight dropout if different from ``dropout`` (None: the same). On CPU it costs
    # ~30% of a training step (it rules out the fused attention kernel; measured, zoo/tt.yml).
    attn_dropout: float | None = None
    action_weight: float = 5.0  # loss weight of action tokens (original config: 5)
    reward_weight: float = 1.0  # loss weight of reward tokens (original config: 1)
    value_weight: float = 1.0  # loss weight of value tokens (original config: 1)

    def __post_init__(self) -> None:
        if self.observation_dim < 1 or self.action_dim < 1:
            raise ValueError(
                f"observation_dim={self.observation_dim} and action_dim={self.action_dim} "
                "must be >= 1"
            )
        expected = self.observation_dim + self.action_dim + 2
        if self.transition_dim != expected:
            raise ValueError(
                f"transition_dim={self.transition_dim} must equal observation_dim + action_dim + 2"
                f" = {expected} (reward and value-to-go are one token each)"
            )
        if self.vocab_size < 1:
            raise ValueError(f"vocab_size={self.vocab_size} must be >= 1")
        check_minimums(self, block_size=1, n_layer=1, n_head=1, n_embd=1)
        check_maximums(self)
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")

    @property
    def stop_token(self) -> int:
        """Embedding row of the stop token (shared by all dimensions)."""
        return self.vocab_size * self.transition_dim

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TTConfig:
        reject_unknown_keys(cls, data, "unknown TTConfig keys")
        return cls(**data)

    def transformer(self) -> TransformerConfig:
        # The original blocks: exact (erf) GELU MLP of width 4H, LayerNorm eps 1e-5 (torch default).
        return TransformerConfig(
            n_embd=self.n_embd,
            n_head=self.n_head,
            n_layer=self.n_layer,
            activation="gelu",
            resid_pdrop=self.dropout,
            attn_pdrop=self.dropout if self.attn_dropout is None else self.attn_dropout,
            layer_norm_epsilon=1e-5,
        )


def past_length(past: Sequence[KVCache] | None) -> int:
    """Number of tokens held by per-layer caches (0 for None)."""
    return past[0].length if past else 0


class _DimensionHeads(nn.Module):
    """One bias-free linear head per transition dimension: ``weight (transition_dim, N + 1, H)``."""

    def __init__(self, transition_dim: int, n_embd: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(transition_dim, n_out, n_embd))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's default init applied per head, as the original EinLinear does.
        for head in self.weight:
            nn.init.kaiming_uniform_(head, a=math.sqrt(5))

    def forward(self, x: torch.Tensor, dims: torch.Tensor) -> torch.Tensor:
        """Apply head ``dims[t]`` to ``x[:, t]``: ``(B, T, H)``, ``(T,)`` -> ``(B, T, N + 1)``."""
        return torch.einsum("bth,tvh->btv", x, self.weight[dims])


class TrajectoryTransformer(nn.Module):
    """The TT sequence model: discretized trajectory tokens -> next-token logits."""

    def __init__(self, config: TTConfig) -> None:
        super().__init__()
        self.config = config
        H = config.n_embd
        self.tok_emb = nn.Embedding(config.vocab_size * config.transition_dim + 1, H)
        self.pos_emb = nn.Parameter(torch.zeros(1, config.block_size, H))
        self.drop = nn.Dropout(config.dropout)
        self.transformer = Transformer(config.transformer())
        self.head = _DimensionHeads(config.transition_dim, H, config.vocab_size + 1)
        # Causal mask with the value-token columns hidden (True = may attend).
        T = config.block_size
        causal = torch.ones(T, T, dtype=torch.bool).tril()  # (T, T)
        is_value = torch.arange(T) % config.transition_dim == config.transition_dim - 1  # (T,)
        self.register_buffer("base_mask", causal & ~is_value[None, :], persistent=False)
        # Loss weight of each target dimension: obs 1, action, reward, value weights (original).
        weights = torch.ones(config.transition_dim)
        weights[config.observation_dim : config.observation_dim + config.action_dim] = (
            config.action_weight
        )
        weights[-2] = config.reward_weight
        weights[-1] = config.value_weight
        self.register_buffer("dimension_weights", weights, persistent=False)
        self.apply(gpt_init_)

    def forward(
        self,
        tokens: torch.Tensor,
        past: Sequence[KVCache] | None = None,
        pad: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[KVCache]]:
        """Next-token logits for ``tokens``, continuing after ``past`` if given.

        Args:
            tokens: ``(B, T)`` long, bin indices in ``[0, N]`` (``N`` = stop token). The first
                token of the whole sequence (``past`` included) is dimension 0.
            past: per-layer key/value caches of the ``T_past`` earlier tokens, any
                :class:`~seqagents.models.kv_cache.KVCache` (those of an earlier call, or the
                beam-search planner's shared-prefix caches made from them), appended to in
                place; the new tokens take positions ``T_past .. T_past + T - 1``.
            pad: ``(B,)`` long, number of left-padding tokens at the start of each row of the
                whole sequence (``past`` included), a multiple of ``transition_dim``. Padding is
                hidden from attention and row ``b``'s position 0 is its first real token; the
                logits at padded positions are meaningless. None = no padding.

        Returns:
            ``(B, T, N + 1)`` logits (position ``i`` predicts token ``i + 1``) and the caches
            covering ``past`` + ``tokens``.
        """
        cfg = self.config
        B, T = tokens.shape
        start = past_length(past)
        end = start + T
        if end > cfg.block_size:
            raise ValueError(
                f"sequence of {end} tokens exceeds the model's block_size={cfg.block_size}"
            )
        frame = torch.arange(start, end, device=tokens.device)  # (T,) indices in the sequence
        dims = frame % cfg.transition_dim  # (T,) dimension of each new token
        if pad is not None and past is None and bool((pad % cfg.transition_dim).any()):
            raise ValueError(f"pad must be a multiple of transition_dim={cfg.transition_dim}")
        ids = torch.where(
            tokens == cfg.vocab_size, cfg.stop_token, tokens + dims * cfg.vocab_size
        )  # (B, T) rows of tok_emb
        if pad is None:
            pos = self.pos_emb[:, start:end]  # (1, T, H)
        else:
            positions = (frame[None, :] - pad[:, None]).clamp(min=0)  # (B, T)
            pos = self.pos_emb[0, positions]  # (B, T, H)
        x = self.drop(self.tok_emb(ids) + pos)  # (B, T, H)
        x, caches = self.transformer(x, attn_mask=self._attention_mask(start, end, pad), past=past)
        return self.head(x, dims), caches  # (B, T, N + 1)

    def _attention_mask(self, start: int, end: int, pad: torch.Tensor | None) -> torch.Tensor:
        """Boolean ``(B or 1, 1, T, end)`` mask for queries ``start..end-1`` over keys ``0..end-1``.

        Causal, value-token keys hidden; with ``pad``, padding keys hidden too and every padding
        query attends to itself only, so its row stays finite instead of a NaN that would leak
        through ``0 * NaN`` into real rows.
        """
        allowed = self.base_mask[start:end, :end]  # (T, S)
        if pad is None:
            return allowed[None, None]  # (1, 1, T, S)
        keys = torch.arange(end, device=pad.device)  # (S,)
        queries = keys[start:end]  # (T,)
        real_key = keys[None, :] >= pad[:, None]  # (B, S)
        pad_query = queries[None, :] < pad[:, None]  # (B, T)
        itself = queries[:, None] == keys[None, :]  # (T, S)
        mask = (allowed[None] & real_key[:, None, :]) | (pad_query[:, :, None] & itself[None])
        return mask[:, None]  # (B, 1, T, S)

    def loss(
        self, tokens: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Weighted next-token cross-entropy (original ``GPT.forward`` with targets).

        Each target's loss is multiplied by its dimension's weight (observations 1, actions
        ``action_weight``, reward ``reward_weight``, value ``value_weight``) and by ``mask``,
        then averaged over all ``B * T`` entries, masked ones included, as the original does.

        Args:
            tokens: ``(B, T)`` inputs, starting at dimension 0 (``joined[:-1]`` in the original).
            targets: ``(B, T)`` next tokens (``joined[1:]``), in ``[0, N]``.
            mask: ``(B, T)`` 0/1 or bool, 0 where the target must not count. None = all count.

        Returns:
            Scalar loss.
        """
        logits, _ = self(tokens)  # (B, T, N + 1)
        B, T, V = logits.shape
        flat_logits = logits.reshape(B * T, V)  # (B * T, N + 1)
        loss = F.cross_entropy(flat_logits, targets.reshape(B * T), reduction="none")  # (B * T,)
        target_dims = (torch.arange(1, T + 1, device=tokens.device)) % self.config.transition_dim
        loss = loss.view(B, T) * self.dimension_weights[target_dims]  # (B, T)
        if mask is not None:
            loss = loss * mask.to(loss.dtype)
        return loss.mean()
