"""Trajectory Transformer beam-search planner, KV-cached and batched over envs.

Semantics of the original ``beam_plan`` (jannerm/trajectory-transformer
``trajectory/search/core.py`` and ``sampling.py``), planner defaults from ``config/offline.py``:

1. Every env's context (earlier transitions + the current observation's tokens) is copied
   ``beam_width`` times.
2. For each of the ``horizon`` steps: copy the beams ``n_expand`` times; sample the ``action_dim``
   action tokens (``cdf_act`` / ``k_act`` filtering); take the reward and value tokens (``k_rew``,
   greedy); score every candidate by ``sum_{tau <= t} discount^tau E[r_tau] +
   discount^(t + 1) E[V_t]``, expectations under the model's raw (unfiltered) reward/value
   distributions with the stop token's mass dropped (the original's ``percentile='mean'``
   value function); keep the ``beam_width`` best per env; unless this is the last step, take the
   ``observation_dim`` next-observation tokens (``k_obs`` / ``cdf_obs``, greedy by default).
3. Return the best beam's ``horizon`` transitions; the agent executes its first action.

The model sees at most ``max_context_transitions * transition_dim - 1`` tokens (or its
``block_size``): longer sequences are cropped from the front by whole transitions, so its first
token is always ``s^0`` (``forward`` in the original ``sampling.py``). With the default 5 context
transitions the model therefore sees 4 whole transitions plus the current, partial one.

Owns the search (its settings, :class:`BeamSearchConfig`; the sampling of tokens; the scores;
the selection of beams); what the model is fed and how the beams' keys/values are cached is
the decoder's (:mod:`seqagents.planning.beam_decoder`). Speed: the original recomputes the
whole window for every sampled token; here each later token is one incremental step over
key/value caches that the beams of an env share (the window's common prefix once per env, a
beam's copies reading its keys once), recomputed only when the window slides. The recomputing
planner lives with the tests (``tests/_tt_reference.py``): with the same random draws both
return the same plan up to float rounding (tests, ``benchmarks/tt_planning.py``).

Randomness: tokens are drawn by inverse-CDF sampling from ``torch.rand`` on the given
generator(s), one uniform per beam and token, so a seed fixes the plan. With one generator per env
a batched call returns exactly the per-env plans.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from seqagents.errors import check_minimums
from seqagents.planning._settings import PlannerSettings
from seqagents.planning.beam_decoder import (
    BeamDecoder,
    DecoderFactory,
    TokenModel,
    TokenModelConfig,
)
from seqagents.planning.discretizer import Discretizer

__all__ = ["BeamSearchConfig", "Plan", "beam_plan"]


@dataclass(frozen=True)
class Plan:
    """The best beam of a :func:`beam_plan` call (leading ``E`` only for a batch of envs)."""

    tokens: torch.Tensor  # ([E,] horizon, transition_dim) long: planned transitions, s_t first
    trajectory: torch.Tensor  # ([E,] horizon, transition_dim) float: bin midpoints of `tokens`
    action: torch.Tensor  # ([E,] action_dim) float: the first planned action, to execute now
    value: torch.Tensor  # ([E,]) search score of the plan (discounted rewards + final value)


@dataclass(frozen=True)
class BeamSearchConfig(PlannerSettings):
    """Beam-search settings (defaults: TT paper / original ``config/offline.py``).

    Validated here, once; the checks that need the model (``k_*`` against its vocabulary, the
    window against its ``block_size``) run in :func:`beam_plan`.

    Example:
        >>> BeamSearchConfig(horizon=5, beam_width=32).replace(beam_width=64).beam_width
        64
    """

    horizon: int = 15  # transitions to plan (paper: 15; halfcheetah medium: 5)
    beam_width: int = 128  # beams kept per env (paper: 128; halfcheetah medium: 32)
    n_expand: int = 2  # copies of each beam before sampling its actions (paper: 2)
    cdf_obs: float | None = None  # drop the least likely observation tokens holding this mass
    cdf_act: float | None = 0.6  # same for action tokens (paper: 0.6)
    k_obs: int | None = 1  # keep only the k most likely observation tokens (paper: 1, greedy)
    k_act: int | None = None  # same for action tokens (paper: None)
    k_rew: int | None = 1  # same for reward and value tokens (paper: 1)
    discount: float = 0.99  # discount of the search score (paper: 0.99)
    # The model sees at most max_context_transitions * transition_dim - 1 tokens (paper: 5, so
    # 4 whole transitions + the current partial one); None = its block_size.
    max_context_transitions: int | None = 5

    def __post_init__(self) -> None:
        check_minimums(self, horizon=1, beam_width=1, n_expand=1)
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"discount={self.discount} must be in [0, 1]")
        for name in ("cdf_obs", "cdf_act"):
            cdf = getattr(self, name)
            if cdf is not None and not 0.0 < cdf <= 1.0:
                raise ValueError(f"{name}={cdf} must be in (0, 1] or None")
        for name in ("k_obs", "k_act", "k_rew"):
            k = getattr(self, name)
            if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
                raise ValueError(f"{name}={k!r} must be an integer >= 1 or None")
        n = self.max_context_transitions
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 2):
            raise ValueError(
                f"max_context_transitions={n!r}: use None or max_context_transitions >= 2 (the "
                "model sees max_context_transitions * transition_dim - 1 tokens, at least one "
                "whole transition)"
            )


@torch.inference_mode()
def beam_plan(
    model: TokenModel,
    discretizer: Discretizer,
    context_tokens: torch.Tensor | Sequence[torch.Tensor],
    config: BeamSearchConfig | None = None,
    *,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> Plan:
    """Plan ``config.horizon`` transitions by beam search over the model's token distribution.

    Args:
        model: the sequence model, in eval mode (see :class:`TokenModel`).
        discretizer: the discretizer the model was trained with (``N`` bins, ``transition_dim``
            columns); reconstructs the plan and the reward/value expectations.
        context_tokens: one env: a ``(T,)`` long tensor = earlier transitions' tokens followed by
            the current observation's ``observation_dim`` tokens (``T = k * transition_dim +
            observation_dim``; value tokens of earlier transitions are hidden from the model, any
            bin will do). A batch of envs: ``(E, T)``, or a sequence of ``E`` such 1-D tensors
            of different lengths (left-padded internally).
        config: the search settings (None = the paper's defaults).
        generator: random source; one generator, or one per env (then a batched call equals
            the per-env calls with the same seeds). None = torch's global generator.

    Returns:
        The best :class:`Plan` per env.

    Raises:
        ValueError: on settings the model cannot take or malformed context tokens.

    Example:
        >>> from seqagents.models.tt import TTConfig, TrajectoryTransformer
        >>> config = TTConfig(vocab_size=10, observation_dim=2, action_dim=1, transition_dim=5,
        ...                   block_size=24, n_layer=1, n_head=1, n_embd=8)
        >>> model = TrajectoryTransformer(config).eval()
        >>> disc = Discretizer(torch.linspace(0, 1, 11)[:, None].repeat(1, 5))
        >>> plan = beam_plan(model, disc, torch.tensor([3, 4]),
        ...                  BeamSearchConfig(horizon=2, beam_width=4),
        ...                  generator=torch.Generator().manual_seed(0))
        >>> plan.tokens.shape, plan.action.shape
        (torch.Size([2, 5]), torch.Size([1]))
    """
    return _search(BeamDecoder, model, discretizer, context_tokens, config, generator)


# ------------------------------------------------------------------------------------------------
# Token filtering and sampling (original: trajectory/search/sampling.py)


def _filter_cdf(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """Set to -1000 the logits of the least likely tokens that together hold < ``threshold``.

    Original rule: sort the probabilities ascending, find the last one whose cumulative sum is
    still below ``threshold`` (the first one if none is), and drop every token at most that
    likely. Like the original, a flat distribution loses all its tokens and stays flat (all
    logits -1000), and -1000 rather than -inf keeps such rows finite.
    """
    probs = logits.softmax(dim=-1)  # (R, V)
    probs_sorted = probs.sort(dim=-1).values  # (R, V) ascending
    below = probs_sorted.cumsum(dim=-1) < threshold  # (R, V): a prefix of True
    last = (below.sum(dim=-1, keepdim=True) - 1).clamp(min=0)  # (R, 1)
    cut = probs_sorted.gather(-1, last)  # (R, 1)
    return logits.masked_fill(probs <= cut, -1000.0)


def _top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits (and ties with the k-th), the rest -inf."""
    kth = logits.topk(k, dim=-1).values[:, -1:]  # (R, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def _sample(
    logits: torch.Tensor, uniform: torch.Tensor, topk: int | None, cdf: float | None
) -> torch.Tensor:
    """Draw one token per row: ``(R, V)`` logits, ``(R,)`` uniforms in [0, 1) -> ``(R,)``.

    Inverse-CDF sampling (first token whose cumulative probability exceeds ``u``): the same
    distribution as the original's ``torch.multinomial``, but one explicit uniform per row, so
    that the cached and recomputing planners consume identical random numbers. With ``topk=1``
    the distribution is one-hot and the draw is the argmax.
    """
    if cdf is not None:
        logits = _filter_cdf(logits, cdf)
    if topk is not None:
        logits = _top_k(logits, topk)
    cumulative = logits.softmax(dim=-1).cumsum(dim=-1)  # (R, V)
    target = uniform.to(cumulative.dtype)[:, None] * cumulative[:, -1:]  # (R, 1)
    idx = (cumulative <= target).sum(dim=-1)  # (R,) first index with cumulative > target
    return idx.clamp_(max=logits.shape[-1] - 1)


class _Uniforms:
    """One uniform per row from one generator, or per env block of rows from one per env."""

    def __init__(
        self,
        generator: torch.Generator | Sequence[torch.Generator] | None,
        n_envs: int,
        device: torch.device,
    ) -> None:
        if generator is None or isinstance(generator, torch.Generator):
            self.generators: list[torch.Generator | None] = [generator]
        else:
            self.generators = list(generator)
            if len(self.generators) != n_envs:
                raise ValueError(
                    f"got {len(self.generators)} generators for {n_envs} envs; pass one "
                    "generator, or exactly one per env"
                )
        self.device = device

    def __call__(self, n_rows: int) -> torch.Tensor:
        per_block = n_rows // len(self.generators)
        draws = [
            torch.rand(
                per_block,
                generator=g,
                dtype=torch.float64,
                device=g.device if g is not None else self.device,
            )
            for g in self.generators
        ]
        return torch.cat(draws).to(self.device)  # (n_rows,)


# ------------------------------------------------------------------------------------------------
# The search


def _search(
    make_decoder: DecoderFactory,
    model: TokenModel,
    discretizer: Discretizer,
    context_tokens: torch.Tensor | Sequence[torch.Tensor],
    config: BeamSearchConfig | None,
    generator: torch.Generator | Sequence[torch.Generator] | None,
) -> Plan:
    """:func:`beam_plan`'s search, fed by the decoder ``make_decoder`` builds (the tests plug
    reference decoders in here, ``tests/_tt_reference.py``)."""
    settings = BeamSearchConfig() if config is None else config
    horizon, beam_width, n_expand = settings.horizon, settings.beam_width, settings.n_expand
    model_config = model.config
    n_bins, obs_dim = model_config.vocab_size, model_config.observation_dim
    act_dim, trans_dim = model_config.action_dim, model_config.transition_dim
    window = _window_tokens(settings, model_config, discretizer)
    if getattr(model, "training", False):
        warnings.warn(
            "beam_plan got a model in training mode (dropout on); call model.eval() first",
            stacklevel=3,
        )
    device = _model_device(model, context_tokens)
    contexts, env_pad, single = _batch_contexts(context_tokens, model_config, device)
    E, context_len = contexts.shape
    uniforms = _Uniforms(generator, E, device)
    decoder = make_decoder(model, window, env_pad, n_expand * (act_dim + 2))

    # Token buffer of the whole search: context, then horizon transitions (the first one starts
    # with the current observation, already in the context).
    total = context_len - obs_dim + horizon * trans_dim
    tokens = torch.zeros(E, total, dtype=torch.long, device=device)  # (E, total)
    tokens[:, :context_len] = contexts
    length = context_len

    def select(index: torch.Tensor) -> None:
        nonlocal tokens
        tokens = tokens[index]  # (R', total)
        decoder.select(index)

    def decode(n_tokens: int, topk: int | None, cdf: float | None) -> list[torch.Tensor]:
        """Append ``n_tokens`` tokens to every beam; return their raw distributions."""
        nonlocal length
        raw = []
        for _ in range(n_tokens):
            logits = decoder.logits(tokens, length)  # (R, V)
            raw.append(logits.softmax(dim=-1).to(midpoints.dtype))
            tokens[:, length] = _sample(logits, uniforms(tokens.shape[0]), topk, cdf)
            length += 1
        return raw

    context_logits = decoder.logits(tokens, length)  # (E, V): the context, once per env
    # Scores in the wider of the model's and the thresholds' float types.
    midpoints = discretizer.to(device).midpoints  # (n_bins, trans_dim)
    midpoints = midpoints.to(torch.promote_types(context_logits.dtype, midpoints.dtype))
    select(torch.arange(E, device=device).repeat_interleave(beam_width))  # (E * beam,)
    rows = E * beam_width
    scores = torch.zeros(rows, horizon + 1, dtype=midpoints.dtype, device=device)  # (R, H + 1)
    discounts = settings.discount ** torch.arange(horizon + 1, dtype=torch.float64, device=device)
    discounts = discounts.to(midpoints.dtype)  # (H + 1,)
    env_offset = torch.arange(E, device=device)[:, None] * (n_expand * beam_width)  # (E, 1)
    for t in range(horizon):
        # Copies as the original's x.repeat(n_expand, 1), per env: (E, n_expand * beam).
        expand = torch.arange(rows, device=device).view(E, 1, beam_width)  # (E, 1, beam)
        expand = expand.expand(E, n_expand, beam_width).reshape(-1)  # (E * n_expand * beam,)
        tokens = tokens[expand]  # (E * n_expand * beam, total)
        decoder.expand(expand, n_expand, act_dim + 2)  # the actions, reward and value tokens
        scores = scores[expand]
        decode(act_dim, settings.k_act, settings.cdf_act)
        reward_probs, value_probs = decode(2, settings.k_rew, None)
        scores[:, t] = reward_probs[:, :n_bins] @ midpoints[:, trans_dim - 2]
        scores[:, t + 1] = value_probs[:, :n_bins] @ midpoints[:, trans_dim - 1]
        values = (scores * discounts).sum(dim=-1)  # (E * n_expand * beam,)
        best_values, best = values.view(E, -1).topk(beam_width, dim=1)  # (E, beam), descending
        keep = (best + env_offset).reshape(-1)  # (E * beam,)
        select(keep)
        scores = scores[keep]
        if t < horizon - 1:
            decode(obs_dim, settings.k_obs, settings.cdf_obs)

    best_rows = torch.arange(E, device=device) * beam_width  # first beam = highest score
    plan_tokens = tokens[best_rows, total - horizon * trans_dim :]  # (E, H * trans_dim)
    plan_tokens = plan_tokens.reshape(E, horizon, trans_dim)  # (E, H, trans_dim)
    trajectory = discretizer.to(device).reconstruct(plan_tokens)  # (E, H, trans_dim)
    plan = Plan(
        tokens=plan_tokens,
        trajectory=trajectory,
        action=trajectory[:, 0, obs_dim : obs_dim + act_dim],  # (E, act_dim)
        value=best_values[:, 0],  # (E,)
    )
    if single:
        return Plan(plan.tokens[0], plan.trajectory[0], plan.action[0], plan.value[0])
    return plan


def _window_tokens(
    settings: BeamSearchConfig, config: TokenModelConfig, discretizer: Discretizer
) -> int:
    """Check what the settings ask of this model; return the model's window in tokens."""
    for name in ("k_obs", "k_act", "k_rew"):
        k = getattr(settings, name)
        if k is not None and k > config.vocab_size + 1:
            raise ValueError(f"{name}={k} must be in [1, {config.vocab_size + 1}] or None")
    if discretizer.n_bins != config.vocab_size or discretizer.n_columns != config.transition_dim:
        raise ValueError(
            f"discretizer has {discretizer.n_bins} bins x {discretizer.n_columns} columns but the "
            f"model expects {config.vocab_size} bins x {config.transition_dim} columns"
        )
    trans_dim, window = config.transition_dim, config.block_size
    if settings.max_context_transitions is not None:  # original: max_block
        window = min(window, settings.max_context_transitions * trans_dim - 1)
    if window < trans_dim:
        raise ValueError(
            f"the model would see only {window} tokens (block_size={config.block_size}), less "
            f"than one transition ({trans_dim} tokens)"
        )
    return window


def _model_device(model: TokenModel, context_tokens: object) -> torch.device:
    parameters = getattr(model, "parameters", None)
    if parameters is not None:
        for parameter in parameters():
            return parameter.device
    if isinstance(context_tokens, torch.Tensor):
        return context_tokens.device
    return torch.device("cpu")


def _batch_contexts(
    context_tokens: torch.Tensor | Sequence[torch.Tensor],
    config: TokenModelConfig,
    device: torch.device,
) -> tuple[torch.Tensor, list[int], bool]:
    """Stack the contexts, left-padded with zeros: ``(E, T_max)``, pads, single-env flag."""
    if isinstance(context_tokens, torch.Tensor) and context_tokens.ndim in (1, 2):
        single = context_tokens.ndim == 1
        rows = list(context_tokens[None] if single else context_tokens)
    elif isinstance(context_tokens, torch.Tensor):
        raise ValueError(
            f"context_tokens must be (T,) or (n_envs, T), got {tuple(context_tokens.shape)}"
        )
    else:
        single = False
        rows = [torch.as_tensor(row) for row in context_tokens]
        if not rows or any(row.ndim != 1 for row in rows):
            raise ValueError("context_tokens must be a non-empty sequence of 1-D token tensors")
    obs_dim, trans_dim, n_bins = config.observation_dim, config.transition_dim, config.vocab_size
    for i, row in enumerate(rows):
        if len(row) < obs_dim or (len(row) - obs_dim) % trans_dim:
            raise ValueError(
                f"context {i} has {len(row)} tokens; expected k * transition_dim + "
                f"observation_dim = k * {trans_dim} + {obs_dim} (earlier transitions, then the "
                "current observation)"
            )
        if row.dtype.is_floating_point or bool(((row < 0) | (row >= n_bins)).any()):
            raise ValueError(f"context {i} must hold integer bin indices in [0, {n_bins})")
    longest = max(len(row) for row in rows)
    contexts = torch.zeros(len(rows), longest, dtype=torch.long, device=device)  # (E, T_max)
    env_pad = []
    for i, row in enumerate(rows):
        pad = longest - len(row)  # a multiple of transition_dim
        contexts[i, pad:] = row.to(device)
        env_pad.append(pad)
    return contexts, env_pad, single
