"""State encoders: map one observation to an ``H``-dimensional token embedding.

The Decision Transformer embeds each state with one of these; which one is a config string so that
checkpoints name it. ``linear`` is the D4RL choice (a single ``nn.Linear``); ``nature_cnn`` is the
Atari choice of the DT paper (Nature-DQN conv stack on 4x84x84 uint8 frames, Tanh output).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["NatureCNN", "make_state_encoder", "STATE_ENCODERS"]


class NatureCNN(nn.Module):
    """Nature-DQN conv stack (Mnih et al. 2015) -> Linear -> Tanh, as in the DT Atari code."""

    def __init__(self, in_channels: int, hidden_size: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(3136, hidden_size),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., C, 84, 84) uint8 or float in [0, 255]
        lead = x.shape[:-3]
        y = self.net(x.reshape(-1, *x.shape[-3:]).float() / 255.0)  # (N, H)
        return y.reshape(*lead, -1)  # (..., H)


STATE_ENCODERS = ("linear", "nature_cnn")


def make_state_encoder(kind: str, state_shape: tuple[int, ...], hidden_size: int) -> nn.Module:
    """Build the state encoder named ``kind`` for observations of ``state_shape``."""
    if kind == "linear":
        if len(state_shape) != 1:
            raise ValueError(f"the linear state encoder needs flat states, got shape {state_shape}")
        return nn.Linear(state_shape[0], hidden_size)
    if kind == "nature_cnn":
        if len(state_shape) != 3 or tuple(state_shape[1:]) != (84, 84):
            raise ValueError(f"nature_cnn expects (C, 84, 84) frames, got shape {state_shape}")
        return NatureCNN(state_shape[0], hidden_size)
    raise ValueError(f"unknown state encoder {kind!r}; expected one of {STATE_ENCODERS}")
