"""Reference versions of the TT beam-search planner, for the tests and
``benchmarks/tt_planning.py`` (not part of the library).

- :func:`beam_plan_reference` recomputes each beam's whole window for every sampled token, as
  the original does (jannerm/trajectory-transformer ``trajectory/search/sampling.py``).
- :func:`beam_plan_per_beam` is the KV-cached planner before shared prefixes: every beam holds
  its own copy of the window's keys/values (``BeamDecoder(share_keys=False)``).

Both run :func:`seqagents.planning.beam_plan`'s search with another decoder, so they take the
same arguments and random draws and return the same plan up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch

from seqagents.planning import BeamSearchConfig, Discretizer, Plan
from seqagents.planning.beam_decoder import BeamDecoder, TokenModel, row_padding, visible_window
from seqagents.planning.beam_search import _search

__all__ = ["RecomputeDecoder", "beam_plan_per_beam", "beam_plan_reference"]


class RecomputeDecoder:
    """Runs the model over each beam's whole window for every token (the original's cost)."""

    def __init__(
        self, model: TokenModel, window: int, env_pad: list[int], expand_room: int = 0
    ) -> None:
        self.model, self.window, self.env_pad = model, window, env_pad
        self.transition_dim = model.config.transition_dim

    def logits(self, tokens: torch.Tensor, length: int) -> torch.Tensor:
        """``(R, V)`` logits of token ``length`` given ``tokens[:, :length]`` ``(R, >= length)``."""
        _, frame, env_pad = visible_window(length, self.window, self.transition_dim, self.env_pad)
        pad = row_padding(env_pad, tokens.shape[0], tokens.device)
        logits, _ = self.model(tokens[:, frame:length], pad=pad)  # (R, length - frame, V)
        return logits[:, -1]

    def select(self, index: torch.Tensor) -> None:
        """Nothing is cached: the tokens are all there is."""

    def expand(self, index: torch.Tensor, n_copies: int, n_tokens: int) -> None:
        """Nothing is cached."""


@torch.inference_mode()
def beam_plan_reference(
    model: TokenModel,
    discretizer: Discretizer,
    context_tokens: torch.Tensor | Sequence[torch.Tensor],
    config: BeamSearchConfig | None = None,
    *,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> Plan:
    """:func:`~seqagents.planning.beam_plan`, recomputing every window (the original's way)."""
    return _search(RecomputeDecoder, model, discretizer, context_tokens, config, generator)


@torch.inference_mode()
def beam_plan_per_beam(
    model: TokenModel,
    discretizer: Discretizer,
    context_tokens: torch.Tensor | Sequence[torch.Tensor],
    config: BeamSearchConfig | None = None,
    *,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> Plan:
    """:func:`~seqagents.planning.beam_plan` with a per-beam KV cache (no shared keys)."""
    per_beam = partial(BeamDecoder, share_keys=False)
    return _search(per_beam, model, discretizer, context_tokens, config, generator)
