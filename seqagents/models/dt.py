"""Decision Transformer network (Chen et al. 2021, arXiv 2106.01345), plain torch.

Token order: each timestep t contributes three tokens, interleaved as

    (R_1, s_1, a_1, R_2, s_2, a_2, ..., R_K, s_K, a_K)        # 3K tokens

where ``R_t`` is the return-to-go (already divided by the return scale), ``s_t`` the (normalized)
state and ``a_t`` the action. Positions (``position_scheme``): ``"timestep"`` (gym/HF, default)
adds each token its step's timestep embedding (it replaces a positional one); ``"global"``
(DT-Atari) adds every token of a window the embedding of the window's first real timestep plus a
learned embedding of the token's place in the block, counted from the first real token.
The action ``a_t`` is predicted from the output at ``s_t``;
the next return and state from the output at ``a_t``. Causal attention means the action token
placed at ``a_t`` while predicting it (a zero placeholder at inference) never influences the
prediction.

Compatibility with ``transformers.DecisionTransformerModel`` (what the Hub checkpoints are): the
GPT-2 encoder there adds ``wpe.weight[0]`` to every token after ``embed_ln`` (its ``position_ids``
are all zero), so we keep a single learned ``position_bias`` vector that does the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from seqagents.errors import check_maximums, check_minimums
from seqagents.models.encoders import make_state_encoder
from seqagents.models.transformer import SequenceModelConfig, Transformer, gpt_init_

__all__ = ["DTConfig", "DecisionTransformer", "POSITION_SCHEMES"]

POSITION_SCHEMES = ("timestep", "global")


@dataclass
class DTConfig(SequenceModelConfig):
    """Decision Transformer hyperparameters (defaults: DT paper, D4RL gym experiments)."""

    state_shape: tuple[int, ...] = (17,)  # shape of one (preprocessed) state
    act_dim: int = 6  # continuous: action dimension; discrete: number of actions
    discrete: bool = False  # discrete actions (Embedding in, logits out) vs continuous
    hidden_size: int = 128  # H (paper: 128)
    n_layer: int = 3  # paper: 3
    n_head: int = 1  # paper: 1
    n_inner: int | None = None  # MLP width, None -> 4H
    activation: str = "relu"  # paper: ReLU
    dropout: float = 0.1  # embedding, residual and attention dropout (paper: 0.1)
    max_ep_len: int = 1000  # size of the timestep embedding; larger timesteps are clamped
    context_len: int = 20  # K, steps of context (paper: 20 for D4RL)
    action_tanh: bool = True  # squash continuous actions with tanh (HF checkpoints: true)
    state_encoder: str = "linear"  # see seqagents.models.encoders.STATE_ENCODERS
    state_encoder_kwargs: dict = field(default_factory=dict)  # e.g. babyai: vocab_size
    # DT-Atari options (kzl/decision-transformer atari/mingpt/model_atari.py):
    position_scheme: str = "timestep"  # "timestep": each token its step's embedding (gym/HF);
    # "global": one embedding of the window's first timestep + learned in-block positions
    embedding_tanh: bool = False  # Tanh after the return and action embeddings (DT-Atari)
    embed_layernorm: bool = True  # LayerNorm on the token embeddings (gym/HF; not DT-Atari)
    layer_norm_epsilon: float = 1e-5

    def __post_init__(self) -> None:
        self.state_shape = tuple(int(d) for d in self.state_shape)
        check_minimums(
            self, act_dim=1, hidden_size=1, n_layer=1, n_head=1, max_ep_len=1, context_len=1
        )
        check_maximums(self)
        if self.position_scheme not in POSITION_SCHEMES:
            raise ValueError(
                f"position_scheme must be one of {POSITION_SCHEMES}, got {self.position_scheme!r}"
            )


@dataclass
class DTOutput:
    action: torch.Tensor  # (B, K, act_dim): continuous actions or discrete logits
    state: torch.Tensor | None = None  # (B, K, *state_shape) next-state predictions
    ret: torch.Tensor | None = None  # (B, K, 1) next return-to-go predictions


class DecisionTransformer(nn.Module):
    """The DT policy network: (returns-to-go, states, actions, timesteps) -> action predictions."""

    def __init__(self, config: DTConfig) -> None:
        super().__init__()
        self.config = config
        H = config.hidden_size
        self.embed_timestep = nn.Embedding(config.max_ep_len, H)
        self.embed_return = nn.Linear(1, H)
        self.embed_state = make_state_encoder(
            config.state_encoder, config.state_shape, H, **config.state_encoder_kwargs
        )
        self.embed_action = (
            nn.Embedding(config.act_dim, H) if config.discrete else nn.Linear(config.act_dim, H)
        )
        if config.embed_layernorm:
            self.embed_ln = nn.LayerNorm(H, eps=config.layer_norm_epsilon)
        if config.position_scheme == "global":  # learned position of each token in the block
            self.pos_emb = nn.Parameter(torch.zeros(3 * config.context_len, H))
        self.position_bias = nn.Parameter(torch.zeros(H))  # HF: wpe.weight[0] on every token
        self.drop = nn.Dropout(config.dropout)
        self.transformer = Transformer(config.transformer())
        self.predict_action = nn.Sequential(
            nn.Linear(H, config.act_dim),
            nn.Tanh() if config.action_tanh and not config.discrete else nn.Identity(),
        )
        flat = len(config.state_shape) == 1 and config.state_encoder == "linear"
        flat_state = config.state_shape[0] if flat else None
        self.predict_state = nn.Linear(H, flat_state) if flat_state else None
        self.predict_return = nn.Linear(H, 1)
        self.apply(gpt_init_)

    def forward(
        self,
        states: torch.Tensor | dict[str, torch.Tensor],
        actions: torch.Tensor,
        returns_to_go: torch.Tensor,
        timesteps: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> DTOutput:
        """Predict actions for every timestep of a window.

        Args:
            states: ``(B, K, *state_shape)`` (BabyAI: a dict of such tensors, see
                :mod:`seqagents.observations`).
            actions: ``(B, K, act_dim)`` float, or ``(B, K)`` long for discrete actions.
            returns_to_go: ``(B, K, 1)`` scaled returns-to-go.
            timesteps: ``(B, K)`` long, already within ``[0, max_ep_len)``.
            attention_mask: ``(B, K)`` bool, False on left padding; None = all valid.

        Returns:
            :class:`DTOutput` with ``action`` of shape ``(B, K, act_dim)``.
        """
        tokens = self.step_tokens(self.embed_state(states), actions, returns_to_go, timesteps)
        x = self._encode(tokens, timesteps, attention_mask)  # (B, K, 3, H)
        return DTOutput(
            action=self.predict_action(x[:, :, 1]),  # a_t from s_t: (B, K, act_dim)
            state=self.predict_state(x[:, :, 2]) if self.predict_state is not None else None,
            ret=self.predict_return(x[:, :, 2]),  # (B, K, 1)
        )

    def act(
        self,
        states: torch.Tensor,
        actions: torch.Tensor,
        returns_to_go: torch.Tensor,
        timesteps: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Inference: only the newest action, ``(B, act_dim)`` (no state/return heads)."""
        tokens = self.step_tokens(self.embed_state(states), actions, returns_to_go, timesteps)
        return self.act_tokens(tokens, timesteps, attention_mask)

    def act_tokens(
        self,
        tokens: torch.Tensor,
        timesteps: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:meth:`act` on a window already embedded by :meth:`step_tokens` (``(B, K, 3, H)``):
        the agent caches each step's tokens in its context, so every step is embedded once, not
        K times. ``timesteps`` (``(B, K)``) and the mask as in :meth:`forward`."""
        x = self._encode(tokens, timesteps, attention_mask)  # (B, K, 3, H)
        return self.predict_action(x[:, -1, 1])  # a_K from s_K: (B, act_dim)

    def embed_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Action embeddings with no position, ``(*batch, H)`` from ``(*batch, act_dim)`` float
        or ``(*batch)`` long: :meth:`step_tokens` adds the position, the agent adds them onto
        the placeholder token of a step whose action it has just chosen."""
        a = self.embed_action(actions)  # (*batch, H)
        return torch.tanh(a) if self.config.embedding_tanh else a

    def step_tokens(
        self,
        state_emb: torch.Tensor,
        actions: torch.Tensor | None,
        returns_to_go: torch.Tensor,
        timesteps: torch.Tensor,
    ) -> torch.Tensor:
        """The tokens ``(R_t, s_t, a_t)`` of a batch of steps, ``(*batch, 3, H)``, as far as they
        depend on the step alone: under ``"timestep"`` each step's timestep embedding is added
        here, the window-dependent ``"global"`` positions by :meth:`_encode`. ``*batch`` is
        ``(B, K)`` for a window, ``(n,)`` for the newest step of the agent's ``n`` envs.

        Args:
            state_emb: ``(*batch, H)`` from ``embed_state``.
            actions: ``(*batch, act_dim)`` float or ``(*batch)`` long, or None when ``a_t`` is
                not chosen yet (inference): its token is then the bare position (zero under
                ``"global"``), and adding :meth:`embed_actions` of the action later gives the
                full token. Causal attention keeps it out of the prediction at ``s_t`` either
                way.
            returns_to_go: ``(*batch, 1)`` scaled returns-to-go.
            timesteps: ``(*batch)`` long, within ``[0, max_ep_len)``.
        """
        r = self.embed_return(returns_to_go)  # (*batch, H)
        if self.config.embedding_tanh:
            r = torch.tanh(r)
        a = torch.zeros_like(r) if actions is None else self.embed_actions(actions)  # (*batch, H)
        x = torch.stack((r, state_emb, a), dim=-2)  # (*batch, 3, H): R_t s_t a_t
        if self.config.position_scheme == "timestep":
            x = x + self.embed_timestep(timesteps).unsqueeze(-2)  # (*batch, 3, H)
        return x

    def _encode(
        self, tokens: torch.Tensor, timesteps: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Transformer outputs of the interleaved tokens (:meth:`step_tokens`), ``(B, K, 3, H)``."""
        cfg = self.config
        B, K = timesteps.shape
        x = tokens.reshape(B, 3 * K, -1)  # (B, 3K, H): R_1 s_1 a_1 R_2 ...
        if cfg.position_scheme == "global":  # DT-Atari: depends on the window, so added here
            pad = torch.zeros(B, dtype=torch.long, device=timesteps.device)  # (B,) left padding
            if attention_mask is not None:
                pad = (~attention_mask).sum(1)
            first = timesteps.gather(1, pad.clamp(max=K - 1)[:, None])  # (B, 1)
            # In-block position 0 is the first real token (the original never pads windows).
            pos = (torch.arange(3 * K, device=pad.device) - 3 * pad[:, None]).clamp(min=0)
            x = x + self.embed_timestep(first) + self.pos_emb[pos]  # (B, 3K, H)
        if cfg.embed_layernorm:
            x = self.embed_ln(x)
        x = self.drop(x + self.position_bias)  # (B, 3K, H)
        mask = None if attention_mask is None else self.token_mask(attention_mask)
        x, _ = self.transformer(x, attn_mask=mask, is_causal=mask is None)  # (B, 3K, H)
        return x.reshape(B, K, 3, -1)  # (B, K, 3, H): [:, :, 0] = R_t, 1 = s_t, 2 = a_t outputs

    @staticmethod
    def token_mask(step_mask: torch.Tensor) -> torch.Tensor:
        """Boolean ``(B, 1, 3K, 3K)`` attention mask: causal, padding keys hidden.

        Every query may attend to itself, so fully padded rows stay finite (their outputs are
        never read) instead of turning into NaN that would leak through 0 * NaN.
        """
        B, K = step_mask.shape
        valid = step_mask.repeat_interleave(3, dim=1)  # (B, 3K)
        T = 3 * K
        # index comparisons, not tril/eye: the same masks, and exportable to ONNX (whose
        # runtime has no boolean EyeLike; seqagents.export)
        index = torch.arange(T, device=step_mask.device)  # (3K,)
        causal = index[:, None] >= index[None, :]  # (3K, 3K): query i sees keys j <= i
        eye = index[:, None] == index[None, :]  # (3K, 3K)
        return (causal & (valid[:, None, :] | eye))[:, None]  # (B, 1, 3K, 3K)
