"""LEAP network (Chen, Du, Chen, Tenenbaum, Vela, ICLR 2023, arXiv 2303.16189), plain torch.

A bidirectional masked model over action plans (BERT-style; the official code's settings:
docs/references.md section 3). A window covers ``T = P + H`` steps: ``P`` history steps (known
states and actions), the current step ``c = P`` (known state) and ``H - 1`` future steps (unknown
states); the ``H`` actions from ``c`` on are the plan. Token order, per step ``i``:

    [s_i, a_i]          mission/goal-conditioned layout (BabyAI)   -> 2T tokens
    [R_i, s_i, a_i]     return-conditioned layout (Atari)          -> 3T tokens

- States of future steps (``i > P``) are one learned placeholder token, and so are their
  returns-to-go: the future is what is planned. (The official code likewise feeds only the
  current state plus goal-only placeholders; goal information here comes only through the
  observation.)
- Actions are ids ``0 .. n_actions - 1`` plus ``PAD = n_actions`` (steps past the episode end,
  and history before its start) and ``MASK = n_actions + 1`` (to be predicted).
- The logits for ``a_i`` are read at the output of the ``s_i`` token; a masked ``a_i`` is
  predicted from every other token (bidirectional attention). History steps before the episode's
  start are hidden from attention.
- Every token gets its step's timestep embedding (``t_c - P + i``, clamped to
  ``[0, max_ep_len)``) and a learned per-token position embedding.

The state/return tokens of a window depend only on the observations, so :meth:`LEAP.context` is
computed once per plan and :meth:`LEAP.action_logits` reuses it for every refinement iteration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from seqagents.errors import check_maximums, check_minimums
from seqagents.models.encoders import make_state_encoder
from seqagents.models.transformer import SequenceModelConfig, Transformer, gpt_init_

__all__ = ["LEAPConfig", "LEAP", "PlanContext"]


@dataclass
class LEAPConfig(SequenceModelConfig):
    """LEAP hyperparameters (defaults: the official BabyAI code, ``run_leap.py``)."""

    state_shape: tuple[int, ...] = (7, 7, 3)  # shape of one state (BabyAI: the image)
    n_actions: int = 6  # the env's discrete actions (BabyAI: LEAP uses the first 6 of 7)
    horizon: int = 5  # H, plan steps from the current one (official: 5, mazes 10)
    history_len: int = 0  # P, past steps in the window (official BabyAI: 0)
    return_conditioned: bool = False  # [R, s, a] (Atari) instead of [s, a] (BabyAI)
    hidden_size: int = 128  # official: 128
    n_layer: int = 3  # official: 3
    n_head: int = 4  # official: 4
    n_inner: int | None = None  # MLP width, None -> 4H
    activation: str = "gelu"  # minGPT: GELU
    dropout: float = 0.1  # embedding, residual and attention dropout (official: 0.1)
    max_ep_len: int = 1024  # timestep embedding size (official max_timestep 1024)
    state_encoder: str = "babyai"  # see seqagents.models.encoders.STATE_ENCODERS
    state_encoder_kwargs: dict = field(default_factory=dict)  # e.g. babyai: vocab_size
    layer_norm_epsilon: float = 1e-5

    def __post_init__(self) -> None:
        self.state_shape = tuple(int(d) for d in self.state_shape)
        check_minimums(
            self, n_actions=1, horizon=1, history_len=0, max_ep_len=1, hidden_size=1, n_layer=1
        )
        check_maximums(self)

    @property
    def steps(self) -> int:
        """``T = P + H`` steps per window."""
        return self.history_len + self.horizon

    @property
    def tokens_per_step(self) -> int:
        return 3 if self.return_conditioned else 2

    @property
    def pad_id(self) -> int:
        return self.n_actions

    @property
    def mask_id(self) -> int:
        return self.n_actions + 1


@dataclass
class PlanContext:
    """The observation-dependent part of a window, computed once per plan."""

    tokens: torch.Tensor  # (B, T, k - 1, H): R_i (return-conditioned) and s_i tokens, per step
    action_time: torch.Tensor  # (B, T, H): what every action token gets added (time + position)
    attn_mask: torch.Tensor | None  # (B, 1, kT, kT) bool, None = every token sees every token

    def repeat(self, copies: int) -> PlanContext:
        """The context of each window repeated ``copies`` times (row ``b * copies + j``)."""
        rep = lambda x: None if x is None else x.repeat_interleave(copies, dim=0)
        return PlanContext(rep(self.tokens), rep(self.action_time), rep(self.attn_mask))


class LEAP(nn.Module):
    """The LEAP energy model: action logits of every plan step given everything else."""

    def __init__(self, config: LEAPConfig) -> None:
        super().__init__()
        self.config = config
        H, T, k = config.hidden_size, config.steps, config.tokens_per_step
        self.embed_state = make_state_encoder(
            config.state_encoder, config.state_shape, H, **config.state_encoder_kwargs
        )
        self.future_state = nn.Parameter(torch.zeros(H))  # placeholder of unknown states
        self.embed_action = nn.Sequential(nn.Embedding(config.n_actions + 2, H), nn.Tanh())
        if config.return_conditioned:
            self.embed_return = nn.Sequential(nn.Linear(1, H), nn.Tanh())
            self.future_return = nn.Parameter(torch.zeros(H))  # placeholder of unknown RTGs
        self.embed_timestep = nn.Embedding(config.max_ep_len, H)
        self.pos_emb = nn.Parameter(torch.zeros(T, k, H))  # learned, one per token
        self.drop = nn.Dropout(config.dropout)
        self.transformer = Transformer(config.transformer())
        self.action_head = nn.Linear(H, config.n_actions, bias=False)  # no PAD/MASK logits
        # minGPT's init on the transformer/heads; the state encoder keeps torch's defaults (as
        # the official code, whose init pass runs before its encoders exist).
        for name, module in self.named_children():
            if name != "embed_state":
                module.apply(gpt_init_)

    # ------------------------------------------------------------------ the two halves
    def context(
        self,
        state_emb: torch.Tensor,
        timesteps: torch.Tensor,
        returns_to_go: torch.Tensor | None = None,
        known: torch.Tensor | None = None,
    ) -> PlanContext:
        """State/return tokens of windows whose first ``P + 1`` states are known.

        Args:
            state_emb: ``(B, P + 1, H)`` = ``embed_state`` of the history and current states.
            timesteps: ``(B,)`` long, timestep of the current step.
            returns_to_go: ``(B, P + 1, 1)`` scaled returns-to-go (return-conditioned only).
            known: ``(B, P + 1)`` bool, False on history steps before the episode start (hidden
                from attention); None = all real.
        """
        cfg = self.config
        B, P1, H = state_emb.shape
        P, T = cfg.history_len, cfg.steps
        if P1 != P + 1:
            raise ValueError(f"expected {P + 1} known states (history_len + 1), got {P1}")
        steps = timesteps.reshape(B, 1) + torch.arange(-P, T - P, device=timesteps.device)
        time = self.embed_timestep(steps.clamp(0, cfg.max_ep_len - 1))  # (B, T, H)
        future = self.future_state.expand(B, T - P1, H)  # (B, H - 1, H)
        states = torch.cat([state_emb, future], dim=1)  # (B, T, H)
        parts = [states]
        if cfg.return_conditioned:
            if returns_to_go is None:
                raise ValueError("a return-conditioned LEAP needs returns_to_go")
            known_r = self.embed_return(returns_to_go.to(states.dtype))  # (B, P + 1, H)
            parts.insert(0, torch.cat([known_r, self.future_return.expand(B, T - P1, H)], dim=1))
        tokens = torch.stack(parts, dim=2) + time[:, :, None]  # (B, T, k - 1, H)
        tokens = tokens + self.pos_emb[None, :, :-1]  # (B, T, k - 1, H)
        action_time = time + self.pos_emb[None, :, -1]  # (B, T, H)
        mask = None
        if known is not None and not bool(known.all()):
            k = cfg.tokens_per_step
            valid = torch.ones(B, T, dtype=torch.bool, device=known.device)  # (B, T)
            valid[:, :P1] = known
            keys = valid.repeat_interleave(k, dim=1)  # (B, kT)
            eye = torch.eye(k * T, dtype=torch.bool, device=known.device)  # (kT, kT)
            mask = (keys[:, None, :] | eye)[:, None]  # (B, 1, kT, kT): queries see valid keys
        return PlanContext(tokens, action_time, mask)

    def action_logits(self, ctx: PlanContext, actions: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, n_actions)`` of every step's action given the window.

        Args:
            ctx: :meth:`context` of ``B`` windows.
            actions: ``(B, T)`` long ids with PAD/MASK.
        """
        B, T = actions.shape
        a = self.embed_action(actions) + ctx.action_time  # (B, T, H)
        x = torch.cat([ctx.tokens, a[:, :, None]], dim=2)  # (B, T, k, H): [R], s, a per step
        k = x.shape[2]
        x = self.drop(x.reshape(B, k * T, -1))  # (B, kT, H)
        x, _ = self.transformer(x, attn_mask=ctx.attn_mask)  # (B, kT, H), bidirectional
        s_out = x.reshape(B, T, k, -1)[:, :, k - 2]  # (B, T, H): outputs at the s_i tokens
        return self.action_head(s_out)  # (B, T, n_actions)

    # ------------------------------------------------------------------ training
    def forward(
        self,
        states: torch.Tensor | dict[str, torch.Tensor],
        actions: torch.Tensor,
        timesteps: torch.Tensor,
        returns_to_go: torch.Tensor | None = None,
        known: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``(B, T, n_actions)`` for windows given their known states.

        Args:
            states: ``(B, P + 1, *state_shape)`` (or a dict of such tensors for BabyAI).
            actions: ``(B, T)`` long with PAD/MASK.
            timesteps: ``(B,)`` timestep of the current step (slot ``P``).
            returns_to_go: ``(B, P + 1, 1)`` (return-conditioned only).
            known: ``(B, P + 1)`` bool, False on history padding.
        """
        ctx = self.context(self.embed_state(states), timesteps, returns_to_go, known)
        return self.action_logits(ctx, actions)
