"""State encoders: map one observation to an ``H``-dimensional token embedding.

Every sequence model (DT, LEAP) embeds each state with one of these; which one is a config string
(plus keyword options) so that checkpoints name it. ``linear`` is the D4RL choice (a single
``nn.Linear``); ``nature_cnn`` is the Atari choice of the DT paper (Nature-DQN conv stack on
4x84x84 uint8 frames, Tanh output); ``babyai`` reads BabyAI's Dict observation (categorical grid
codes, direction, mission word ids; see :mod:`seqagents.observations`) with FiLM conditioning on
the mission. Encoders map ``(..., *state)`` to ``(..., H)``: any leading batch/time axes.
"""

from __future__ import annotations

import torch
from torch import nn

from seqagents.observations import BABYAI_CODE_COUNTS

__all__ = ["NatureCNN", "BabyAIEncoder", "FiLM", "make_state_encoder", "STATE_ENCODERS"]


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


class FiLM(nn.Module):
    """Feature-wise linear modulation (Perez et al. 2018) of a conv block by a vector:
    ``relu(conv(x) * gamma(c) + beta(c))`` with a residual connection."""

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.gamma = nn.Linear(cond_dim, channels)
        self.beta = nn.Linear(cond_dim, channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # x: (N, C, W, H), cond: (N, cond_dim)
        y = (
            self.conv(x) * (1 + self.gamma(cond))[:, :, None, None]
            + self.beta(cond)[:, :, None, None]
        )
        return x + torch.relu(y)  # (N, C, W, H)


# Categorical channels of minigrid's grid encoding (object type, colour, state).
_BABYAI_CODES = BABYAI_CODE_COUNTS


class BabyAIEncoder(nn.Module):
    """BabyAI Dict observation -> ``H``.

    The image's three categorical channels are embedded (not read as intensities) and
    concatenated, two 3x3 convolutions follow, then two FiLM blocks conditioned on the mission (a
    GRU over its word embeddings, last hidden state), the direction and — in LEAP's privileged
    setting — the agent's and goal's grid coordinates; a 2x2 max-pool, flatten and a linear layer
    give the token (Tanh).

    Args:
        image_shape: ``(W, H, 3)`` of the image (7x7 egocentric view, or the full grid).
        hidden_size: token width.
        vocab_size: mission word ids, padding (0) included.
        privileged: read ``agent_pos`` and ``goal_pos`` too (coordinates < max(W, H)).
        channels: conv width.
    """

    def __init__(
        self,
        image_shape: tuple[int, ...],
        hidden_size: int,
        vocab_size: int,
        privileged: bool = False,
        channels: int = 64,
        word_dim: int = 64,
    ) -> None:
        super().__init__()
        if len(image_shape) != 3 or image_shape[-1] != 3:
            raise ValueError(f"the babyai encoder expects (W, H, 3) images, got {image_shape}")
        if vocab_size < 2:
            raise ValueError(
                f"the babyai encoder needs a mission vocabulary, got size {vocab_size}"
            )
        W, Hh = image_shape[0], image_shape[1]
        code = 16  # embedding width per categorical channel
        self.privileged = privileged
        self.register_buffer("code_max", torch.tensor(_BABYAI_CODES) - 1, persistent=False)
        self.register_buffer(
            "code_offset",
            torch.tensor([0, _BABYAI_CODES[0], sum(_BABYAI_CODES[:2])]),
            persistent=False,
        )
        self.codes = nn.Embedding(sum(_BABYAI_CODES), code)
        self.conv = nn.Sequential(
            nn.Conv2d(3 * code, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
        )
        self.words = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.gru = nn.GRU(word_dim, word_dim, batch_first=True)
        self.direction = nn.Embedding(4, word_dim)
        cond = 2 * word_dim
        if privileged:
            self.grid_size = max(W, Hh)
            self.position = nn.Embedding(self.grid_size, word_dim // 2)  # x and y of agent, goal
            cond += 2 * word_dim
        self.film = nn.ModuleList(FiLM(channels, cond) for _ in range(2))
        self.pool = nn.MaxPool2d(2)
        self.out = nn.Sequential(nn.Linear(channels * (W // 2) * (Hh // 2), hidden_size), nn.Tanh())

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        image = obs["image"]  # (..., W, H, 3) integer codes
        lead = image.shape[:-3]
        image = image.reshape(-1, *image.shape[-3:]).long()  # (N, W, H, 3)
        N = image.shape[0]
        image = torch.minimum(image.clamp(min=0), self.code_max)  # codes of unknown objects
        x = self.codes(image + self.code_offset)  # (N, W, H, 3, code)
        x = x.flatten(-2).permute(0, 3, 1, 2)  # (N, 3 * code, W, H)
        x = self.conv(x)  # (N, C, W, H)
        words = self.words(obs["mission"].reshape(N, -1).long())  # (N, L, word_dim)
        _, mission = self.gru(words)  # (1, N, word_dim): last hidden state (left padding)
        parts = [mission[0], self.direction(obs["direction"].reshape(N).long())]
        if self.privileged:
            coords = torch.cat(
                [obs["agent_pos"].reshape(N, 2), obs["goal_pos"].reshape(N, 2)], dim=1
            ).long()  # (N, 4)
            parts.append(self.position(coords.clamp(0, self.grid_size - 1)).flatten(1))
        cond = torch.cat(parts, dim=1)  # (N, cond_dim)
        for film in self.film:
            x = film(x, cond)  # (N, C, W, H)
        y = self.out(self.pool(x).flatten(1))  # (N, H)
        return y.reshape(*lead, -1)  # (..., H)


STATE_ENCODERS = ("linear", "nature_cnn", "babyai")


def make_state_encoder(
    kind: str, state_shape: tuple[int, ...], hidden_size: int, **options: object
) -> nn.Module:
    """Build the state encoder named ``kind`` for observations of ``state_shape``.

    ``options`` are the encoder's keyword arguments (``babyai``: ``vocab_size``, ``privileged``);
    they are stored in the model config (e.g. ``DTConfig.state_encoder_kwargs``).
    """
    if kind == "babyai":
        return BabyAIEncoder(tuple(state_shape), hidden_size, **options)  # type: ignore[arg-type]
    if options:
        raise ValueError(f"the {kind} state encoder takes no options, got {sorted(options)}")
    if kind == "linear":
        if len(state_shape) != 1:
            raise ValueError(f"the linear state encoder needs flat states, got shape {state_shape}")
        return nn.Linear(state_shape[0], hidden_size)
    if kind == "nature_cnn":
        if len(state_shape) != 3 or tuple(state_shape[1:]) != (84, 84):
            raise ValueError(f"nature_cnn expects (C, 84, 84) frames, got shape {state_shape}")
        return NatureCNN(state_shape[0], hidden_size)
    raise ValueError(f"unknown state encoder {kind!r}; expected one of {STATE_ENCODERS}")
