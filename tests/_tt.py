"""A tiny Trajectory Transformer, its discretizer and random context tokens, shared by the
planner tests (sharper, position-dependent distributions than the init gives)."""

from __future__ import annotations

import numpy as np
import torch

from seqagents.models.tt import TrajectoryTransformer, TTConfig
from seqagents.planning import Discretizer

CONFIG = TTConfig(
    vocab_size=12,
    observation_dim=3,
    action_dim=2,
    transition_dim=7,
    block_size=48,
    n_layer=2,
    n_head=2,
    n_embd=16,
)


def tiny_tt(seed: int) -> TrajectoryTransformer:
    """A float64 eval-mode :data:`CONFIG` model with spread positions and a sharper head."""
    torch.manual_seed(seed)
    model = TrajectoryTransformer(CONFIG).double().eval()
    with torch.no_grad():
        model.pos_emb.normal_(0.0, 0.5)
        model.head.weight.mul_(2.0)
    return model


def tiny_discretizer(seed: int) -> Discretizer:
    data = np.random.default_rng(seed).normal(size=(400, CONFIG.transition_dim))
    return Discretizer.from_data(data, n_bins=CONFIG.vocab_size)


def random_context(n_transitions: int, seed: int = 0) -> torch.Tensor:
    """``(n_transitions * transition_dim + observation_dim,)`` random tokens."""
    length = n_transitions * CONFIG.transition_dim + CONFIG.observation_dim
    return torch.randint(
        0, CONFIG.vocab_size, (length,), generator=torch.Generator().manual_seed(seed)
    )
