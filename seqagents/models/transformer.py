"""GPT-2 style pre-LayerNorm transformer blocks shared by the sequence models.

Owns the blocks (attention, MLP, the stack), their config and the GPT-2 initialisation.
Attention takes an optional boolean mask (``True`` = may attend) and an optional key/value
cache for incremental decoding, any kind of :mod:`seqagents.models.kv_cache` (attention asks it
to attend, whatever its kind).

Parameter names follow GPT-2 (``c_attn``, ``c_proj``, ``c_fc``) so that foreign checkpoints map
onto them key by key; GPT-2's ``Conv1D`` stores weights ``[in, out]``, ours are ``nn.Linear``
``[out, in]`` (the converters transpose).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from seqagents.errors import reject_unknown_keys
from seqagents.models.kv_cache import ConcatKV, KVCache

__all__ = [
    "gpt_init_",
    "TransformerConfig",
    "SequenceModelConfig",
    "SelfAttention",
    "Block",
    "Transformer",
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
        past: KVCache | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        """Attend over the ``past`` cache's keys/values followed by ``x``'s.

        Args:
            x: ``(B, T, H)`` new tokens.
            attn_mask: boolean ``(B or 1, 1, T, T_past + T)``, True where a query may attend.
            is_causal: use the causal mask (only valid without ``past`` and ``attn_mask``).
            past: cached keys/values of earlier tokens (any :class:`KVCache`: it appends this
                call's keys/values and computes the attention; None = no earlier tokens).

        Returns:
            ``(B, T, H)`` output and the cache holding past + this call's keys/values (``past``
            itself, updated in place, or a new :class:`ConcatKV`).
        """
        B, T, H = x.shape
        q, k, v = self.c_attn(x).split(H, dim=2)  # 3 x (B, T, H)
        # (B, nh, T, hd) each
        q, k, v = (t.view(B, T, self.n_head, H // self.n_head).transpose(1, 2) for t in (q, k, v))
        cache = ConcatKV() if past is None else past
        causal = is_causal and attn_mask is None
        dropout_p = self.attn_pdrop if self.training else 0.0
        y = cache.attend(
            q, k, v, attn_mask, is_causal=causal, dropout_p=dropout_p
        )  # (B, nh, T, hd)
        y = y.transpose(1, 2).reshape(B, T, H)  # (B, T, H)
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
        past: KVCache | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
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
        past: Sequence[KVCache] | None = None,
    ) -> tuple[torch.Tensor, list[KVCache]]:
        """Run all blocks; returns ``(B, T, H)`` and the per-layer caches."""
        caches = []
        for i, block in enumerate(self.h):
            x, cache = block(x, attn_mask, is_causal, None if past is None else past[i])
            caches.append(cache)
        return self.ln_f(x), caches
