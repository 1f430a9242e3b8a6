"""Opt-in capture of the exact attention weights of a DT, TT or LEAP agent.

``capture_attention(agent)`` wraps the ``forward`` of every
:class:`~seqagents.models.transformer.SelfAttention` of the agent's network for the duration of
a ``with`` block: the original forward runs unchanged (same outputs, same caches), then the
weights ``softmax(q k^T / sqrt(head_dim))`` are recomputed from the same input, the keys the call
attended over (read from its KV cache through the cache interface, ``dense()``, whatever its
kind) and the same mask. On exit the modules are restored, so nothing is paid when no capture is
active.

Token layouts (one place, read by :func:`token_roles` and :func:`key_steps`):

- DT: ``[R_t, s_t, a_t]`` per step, ``3K`` keys, the newest step last.
- TT: ``transition_dim`` tokens per transition (``s^0 .. s^{O-1}, a^0 .. a^{A-1}, r, V``); key
  ``j`` of a call is dimension ``j % transition_dim`` (the model's first cached token is always
  ``s^0``).
- LEAP: ``[s_i, a_i]`` (or ``[R_i, s_i, a_i]``, return-conditioned) per step, ``P`` history
  steps, the current step, ``H - 1`` planned ones.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from seqagents.models.transformer import SelfAttention

__all__ = [
    "ROLES",
    "AttentionRecord",
    "AttentionRecorder",
    "capture_attention",
    "token_roles",
    "key_steps",
]

ROLES = ("rtg", "state", "action", "reward", "value")  # token roles, in legend order


@dataclass
class AttentionRecord:
    """The attention weights of one layer in one forward call."""

    step: int  # index of the agent.predict call of the capture (-1: network called directly)
    call: int  # index of this network call within that predict (0 = the first)
    layer: int  # block index
    weights: torch.Tensor  # (B, n_head, T, S) float32 on the CPU; rows sum to 1 over S keys
    query_offset: int  # S - T: keys before the first query (a KV cache)


@dataclass
class AttentionRecorder:
    """What a :func:`capture_attention` block recorded."""

    algorithm: str  # "dt", "tt", "leap" or "" (unknown network)
    config: Any  # the network's config (DTConfig, TTConfig, LEAPConfig)
    records: list[AttentionRecord] = field(default_factory=list)
    steps: int = 0  # predict calls seen

    def calls(self, step: int) -> list[list[AttentionRecord]]:
        """The records of predict call ``step``, grouped by network call (layers in order)."""
        grouped: dict[int, list[AttentionRecord]] = {}
        for record in self.records:
            if record.step == step:
                grouped.setdefault(record.call, []).append(record)
        return [sorted(grouped[c], key=lambda r: r.layer) for c in sorted(grouped)]


def _algorithm(network: nn.Module) -> str:
    from seqagents.models.dt import DecisionTransformer
    from seqagents.models.leap import LEAP
    from seqagents.models.tt import TrajectoryTransformer

    for cls, name in ((DecisionTransformer, "dt"), (TrajectoryTransformer, "tt"), (LEAP, "leap")):
        if isinstance(network, cls):
            return name
    return ""


def _weights(
    q: torch.Tensor, k: torch.Tensor, attn_mask: torch.Tensor | None, is_causal: bool
) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d))`` with the mask ``scaled_dot_product_attention`` applied."""
    T, S = q.shape[-2], k.shape[-2]
    scores = q.float() @ k.float().transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, nh, T, S)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:  # an additive float mask
            scores = scores + attn_mask.float()
    elif is_causal:  # query i sits at sequence index S - T + i
        rows = torch.arange(T, device=q.device)[:, None] + (S - T)  # (T, 1)
        scores = scores.masked_fill(torch.arange(S, device=q.device)[None] > rows, float("-inf"))
    return scores.softmax(-1)  # (B, nh, T, S)


@contextlib.contextmanager
def capture_attention(agent: Any, *, calls: str = "all") -> Iterator[AttentionRecorder]:
    """Record the attention weights every layer computes while the block runs.

    Args:
        agent: a seqagents agent (its ``network`` is used and its ``predict`` calls counted) or
            a bare ``nn.Module`` holding :class:`SelfAttention` blocks.
        calls: ``"all"`` network calls of each ``predict``, or only the ``"first"`` (TT: the
            forward over the real context; later calls decode the beam search's imagined
            tokens, thousands per step).

    Yields:
        An :class:`AttentionRecorder` filled as the model runs.

    Example:
        >>> import gymnasium as gym
        >>> from seqagents import DecisionTransformerAgent
        >>> env = gym.make("Pendulum-v1")
        >>> agent = DecisionTransformerAgent.create(env.observation_space, env.action_space,
        ...                                         n_layer=2, hidden_size=16, context_len=4)
        >>> obs, _ = env.reset(seed=0)
        >>> with capture_attention(agent) as rec:
        ...     action, _ = agent.predict(obs)
        >>> len(rec.records), tuple(rec.records[0].weights.shape)  # 2 layers, (B, nh, 3K, 3K)
        (2, (1, 1, 12, 12))
    """
    if calls not in ("all", "first"):
        raise ValueError(f"calls must be 'all' or 'first', got {calls!r}")
    network = agent if isinstance(agent, nn.Module) else agent.network
    modules = [m for m in network.modules() if isinstance(m, SelfAttention)]
    if not modules:
        raise ValueError(f"{type(network).__name__} has no SelfAttention layers to capture")
    recorder = AttentionRecorder(_algorithm(network), getattr(network, "config", None))
    state = {"step": -1, "call": -1, "layer": -1}

    def wrap(layer: int, module: SelfAttention) -> Any:
        original = module.forward

        @functools.wraps(original)
        def forward(x: torch.Tensor, attn_mask: Any = None, is_causal: bool = False, past=None):
            output = original(x, attn_mask, is_causal, past)
            if layer == 0:  # a new network call starts at the first block
                state["call"] += 1
            if calls == "first" and state["call"] > 0:
                return output
            # (B, nh, S, hd): every key the call attended over, read from its cache (any kind);
            # kept (B, 1, 1, S): False where the cache dropped keys no query may see
            keys, _, kept = output[1].dense()
            B, T, H = x.shape
            with torch.no_grad():
                q = module.c_attn(x)[..., :H]  # (B, T, H), the forward's own queries
                q = q.view(B, T, module.n_head, H // module.n_head)  # (B, T, nh, hd)
                q = q.transpose(1, 2)  # (B, nh, T, hd)
                if kept is not None:  # dropped keys are hidden ones
                    attn_mask = kept if attn_mask is None else attn_mask & kept
                weights = _weights(q, keys, attn_mask, is_causal)  # (B, nh, T, S)
            recorder.records.append(
                AttentionRecord(
                    step=state["step"],
                    call=state["call"],
                    layer=layer,
                    weights=weights.detach().cpu(),
                    query_offset=keys.shape[2] - T,
                )
            )
            return output

        return forward

    predict = getattr(agent, "predict", None) if not isinstance(agent, nn.Module) else None
    for i, module in enumerate(modules):
        module.forward = wrap(i, module)  # type: ignore[method-assign]
    if predict is not None:

        @functools.wraps(predict)  # keeps predict's signature (evaluate_policy reads it)
        def counted_predict(*args: Any, **kwargs: Any) -> Any:
            recorder.steps += 1
            state["step"], state["call"] = recorder.steps - 1, -1
            return predict(*args, **kwargs)

        agent.predict = counted_predict
    try:
        yield recorder
    finally:
        for module in modules:
            del module.forward  # back to the class's forward
        if predict is not None:
            del agent.predict


# ------------------------------------------------------------------------------ token layout
def token_roles(algorithm: str, config: Any, n_keys: int) -> list[str]:
    """The role (one of :data:`ROLES`) of each of ``n_keys`` key positions of a call.

    Example:
        >>> token_roles("dt", None, 6)
        ['rtg', 'state', 'action', 'rtg', 'state', 'action']
    """
    if algorithm == "dt":
        return [("rtg", "state", "action")[j % 3] for j in range(n_keys)]
    if algorithm == "tt":
        D = config.transition_dim
        names = ["state"] * config.observation_dim + ["action"] * config.action_dim
        names += ["reward", "value"]  # (D,) roles of one transition's tokens
        return [names[j % D] for j in range(n_keys)]
    if algorithm == "leap":
        per_step = ["rtg", "state", "action"] if config.return_conditioned else ["state", "action"]
        return [per_step[j % len(per_step)] for j in range(n_keys)]
    raise ValueError(f"no token layout for algorithm {algorithm!r}")


def key_steps(algorithm: str, config: Any, n_keys: int) -> np.ndarray:
    """Step of each key relative to the newest query's step (0 = now, -1 = the step before).

    DT: the newest step is the window's last one. TT: the transition of the last key (the call
    over the context ends with the current observation's tokens). LEAP: the current step is
    window step ``history_len``; the plan's future steps are positive.

    Example:
        >>> key_steps("dt", None, 6).tolist()
        [-1, -1, -1, 0, 0, 0]
    """
    j = np.arange(n_keys)
    if algorithm == "dt":
        return j // 3 - (n_keys - 1) // 3
    if algorithm == "tt":
        D = config.transition_dim
        return j // D - (n_keys - 1) // D
    if algorithm == "leap":
        return j // config.tokens_per_step - config.history_len
    raise ValueError(f"no token layout for algorithm {algorithm!r}")
