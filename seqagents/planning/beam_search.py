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

Speed: the original recomputes the whole window for every sampled token. Here each later token
is one incremental step over a key/value cache. The beams' common prefix of the window (at
first the whole context) is computed once per env and its keys/values stay stored once per env
(:class:`~seqagents.models.transformer.SharedPrefixKV`, ``(E, nh, P, hd)``): each beam attends
to its env's prefix and to its own suffix (the tokens since the window was last computed), the
two partial attentions merged exactly with their log-sum-exps, so beam expansion and selection
reorder only the small suffixes. Only when the window slides (once per planned transition,
when it starts a new ``s^0``) are the positions re-based and the window recomputed: its new
common prefix again once per env, and the rest once per distinct node of the beam tree (beams
branch only at actions, so beams with a common ancestor share every token up to it; each
transition of the window runs once per distinct history, not once per beam). A prefix shorter
than the beams' own parts is copied into every beam's buffer instead (sharing it would cost
more than it saves). The ``n_expand`` copies of a beam made before its actions are sampled
share that beam's keys/values (:class:`~seqagents.models.transformer.SiblingKV`): their new
tokens go to spare slots after the beam's own, each beam's keys are read once for all of its
copies, and only the copies kept by the selection get buffers of their own. Models that do not
declare ``supports_shared_prefix`` get per-beam
:class:`~seqagents.models.transformer.KVBuffer` s (``_beam_plan_cached``, the planner before
shared prefixes). ``_beam_plan_reference`` is the recomputing version; with the same random
draws all three return the same plan (tests, ``benchmarks/tt_planning.py``).

Randomness: tokens are drawn by inverse-CDF sampling from ``torch.rand`` on the given
generator(s), one uniform per beam and token, so a seed fixes the plan. With one generator per env
a batched call returns exactly the per-env plans.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from seqagents.errors import check_minimums
from seqagents.models.kv_cache import KVBuffer, KVCache, SharedPrefixKV
from seqagents.planning._settings import PlannerSettings
from seqagents.planning.discretizer import Discretizer

__all__ = ["BeamSearchConfig", "Plan", "TokenModel", "beam_plan"]


@dataclass(frozen=True)
class Plan:
    """The best beam of a :func:`beam_plan` call (leading ``E`` only for a batch of envs)."""

    tokens: torch.Tensor  # ([E,] horizon, transition_dim) long: planned transitions, s_t first
    trajectory: torch.Tensor  # ([E,] horizon, transition_dim) float: bin midpoints of `tokens`
    action: torch.Tensor  # ([E,] action_dim) float: the first planned action, to execute now
    value: torch.Tensor  # ([E,]) search score of the plan (discounted rewards + final value)


class _TokenModelConfig(Protocol):
    vocab_size: int
    observation_dim: int
    action_dim: int
    transition_dim: int
    block_size: int


class TokenModel(Protocol):
    """What the planner needs from a model (:class:`~seqagents.models.tt.TrajectoryTransformer`)."""

    config: _TokenModelConfig

    def __call__(
        self,
        tokens: torch.Tensor,
        past: Sequence[KVCache] | None = None,
        pad: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[KVCache]]:
        """``(B, T)`` tokens -> ``(B, T, N + 1)`` next-token logits and per-layer caches.

        Without ``past``: a fresh forward returning ``(k, v)`` caches ``(B, ..., T, ...)``
        (batch first, sequence third), which the planner copies into :class:`KVBuffer` s, or,
        if the model has ``supports_shared_prefix = True``, into
        :class:`~seqagents.models.transformer.SharedPrefixKV` s.
        With ``past``: continue after the caches' tokens, appending to them in place.
        ``pad``: see :meth:`~seqagents.models.tt.TrajectoryTransformer.forward`.
        """
        ...


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
    # Models that accept SharedPrefixKV caches (the TT) get shared-prefix attention; others
    # (e.g. test doubles that read KVBuffer keys) the per-beam KV cache. Same plan either way.
    decoder = _SharedPrefixDecoder if getattr(model, "supports_shared_prefix", False) else None
    return _plan(decoder or _CachedDecoder, model, discretizer, context_tokens, config, generator)


@torch.inference_mode()
def _beam_plan_reference(
    model: TokenModel,
    discretizer: Discretizer,
    context_tokens: torch.Tensor | Sequence[torch.Tensor],
    config: BeamSearchConfig | None = None,
    *,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> Plan:
    """:func:`beam_plan` recomputing the whole window for every token, as the original does.

    Same arguments and random draws as :func:`beam_plan`, hence the same plan up to float
    rounding; for tests and ``benchmarks/tt_planning.py``.
    """
    return _plan(_RecomputeDecoder, model, discretizer, context_tokens, config, generator)


@torch.inference_mode()
def _beam_plan_cached(
    model: TokenModel,
    discretizer: Discretizer,
    context_tokens: torch.Tensor | Sequence[torch.Tensor],
    config: BeamSearchConfig | None = None,
    *,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> Plan:
    """:func:`beam_plan` with a per-beam KV cache (every beam holds a copy of the window's).

    The planner before shared-prefix attention; same arguments, random draws and plan as
    :func:`beam_plan`, for tests and ``benchmarks/tt_planning.py``.
    """
    return _plan(_CachedDecoder, model, discretizer, context_tokens, config, generator)


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
# Decoders: next-token logits for all beams, with or without a KV cache


def _window_start(length: int, window: int, transition_dim: int) -> int:
    """First token the model sees of a ``length``-token sequence (original ``forward`` crop).

    Sequences longer than ``window`` lose whole transitions from the front, as few as needed.
    """
    if length <= window:
        return 0
    return -(-(length - window) // transition_dim) * transition_dim  # ceil to whole transitions


class _RecomputeDecoder:
    """Runs the model over each beam's whole window for every token (the original's cost)."""

    def __init__(
        self, model: TokenModel, window: int, env_pad: list[int], expand_room: int = 0
    ) -> None:
        self.model = model
        self.window = window
        # Spare key/value slots per row for copies' new tokens (_SharedPrefixDecoder.expand).
        self.expand_room = expand_room
        self.env_pad = env_pad  # left padding of each env's rows in the token buffer
        self.transition_dim = model.config.transition_dim

    def _window(self, length: int) -> tuple[tuple[int, ...], int, list[int]]:
        """Each env's first visible token, the first token to feed, each env's padding in it."""
        starts = tuple(
            pad + _window_start(length - pad, self.window, self.transition_dim)
            for pad in self.env_pad
        )
        frame = min(starts)
        return starts, frame, [start - frame for start in starts]

    def _row_pad(
        self, env_pad: list[int], n_rows: int, device: torch.device
    ) -> torch.Tensor | None:
        """``(R,)`` padding of every row (rows are grouped by env), None if there is none."""
        if not any(env_pad):
            return None
        pad = torch.tensor(env_pad, device=device)  # (E,)
        return pad.repeat_interleave(n_rows // len(env_pad))  # (R,)

    def logits(self, tokens: torch.Tensor, length: int) -> torch.Tensor:
        """``(R, V)`` logits of token ``length`` given ``tokens[:, :length]`` ``(R, >= length)``."""
        _, frame, env_pad = self._window(length)
        pad = self._row_pad(env_pad, tokens.shape[0], tokens.device)
        logits, _ = self.model(tokens[:, frame:length], pad=pad)  # (R, length - frame, V)
        return logits[:, -1]

    def select(self, index: torch.Tensor) -> None:
        """Rows were reordered/copied as ``tokens[index]`` (nothing cached here)."""

    def expand(self, index: torch.Tensor, n_copies: int, n_tokens: int) -> None:
        """Rows were copied ``n_copies`` times as ``tokens[index]`` (rows (env, copy, beam)),
        and the next :meth:`select` comes after ``n_tokens`` more tokens."""
        self.select(index)


class _CachedDecoder(_RecomputeDecoder):
    """Feeds only new tokens through a KV cache; recomputes when the window slides."""

    def __init__(
        self, model: TokenModel, window: int, env_pad: list[int], expand_room: int = 0
    ) -> None:
        super().__init__(model, window, env_pad, expand_room)
        self.cache: list[KVCache] | None = None
        self.starts: tuple[int, ...] | None = None  # each env's first visible token
        self.frame = 0  # sequence index of the cache's first token
        self.fed = 0  # sequence index one past the cache's last token
        self.row_pad: torch.Tensor | None = None  # (R,) padding inside the cache, None if none
        self.last: torch.Tensor | None = None  # (R, V) logits after the last fed token

    def logits(self, tokens: torch.Tensor, length: int) -> torch.Tensor:
        starts, frame, env_pad = self._window(length)
        if starts != self.starts:
            # First call, or the window slid: positions change, so recompute it from scratch.
            self.starts, self.frame = starts, frame
            self.row_pad = self._row_pad(env_pad, tokens.shape[0], tokens.device)
            logits = self._recompute(tokens[:, frame:length])
        elif length > self.fed:
            new = tokens[:, self.fed : length]  # (R, length - fed)
            logits, _ = self.model(new, past=self.cache, pad=self.row_pad)  # appends in place
        else:
            assert self.last is not None
            return self.last
        self.fed = length
        self.last = logits[:, -1]  # (R, V)
        return self.last

    def _recompute(self, window: torch.Tensor) -> torch.Tensor:
        """Fill the cache from ``(R, W)`` window tokens; return their ``(R, W, V)`` logits.

        The beams of an env usually start with the same tokens (context transitions still in
        the window, shared ancestors): that common prefix runs once per env, and only the rest
        once per beam.
        """
        n_rows, width = window.shape
        n_envs = len(self.env_pad)
        per_env = n_rows // n_envs
        grouped = window.view(n_envs, per_env, width)  # (E, R / E, W)
        agrees = (grouped == grouped[:, :1]).all(dim=1).all(dim=0)  # (W,)
        shared = min(int(agrees.long().cumprod(dim=0).sum()), width - 1)  # keep >= 1 per beam
        if per_env == 1 or shared == 0:
            logits, caches = self.model(window, pad=self.row_pad)  # (R, W, V)
            # Room for the tokens until the next slide; the window never exceeds self.window.
            self.cache = [KVBuffer.from_cache(cache, self.window) for cache in caches]
            return logits
        first = torch.arange(n_envs, device=window.device) * per_env  # (E,) one row per env
        pad = None if self.row_pad is None else self.row_pad[first]
        _, caches = self.model(window[first, :shared], pad=pad)  # (E, shared, V)
        copies = torch.arange(n_envs, device=window.device).repeat_interleave(per_env)  # (R,)
        self.cache = [KVBuffer.from_cache(cache, self.window).select(copies) for cache in caches]
        logits, _ = self.model(window[:, shared:], past=self.cache, pad=self.row_pad)
        return logits  # (R, W - shared, V)

    def select(self, index: torch.Tensor) -> None:
        assert self.cache is not None and self.last is not None
        self.cache = [buffer.select(index) for buffer in self.cache]  # (R', nh, window, hd)
        self.last = self.last[index]
        if self.row_pad is not None:
            self.row_pad = self.row_pad[index]


class _SharedPrefixDecoder(_CachedDecoder):
    """:class:`_CachedDecoder` whose cache holds each env's common prefix once.

    When the window is (re)computed, the beams' common prefix runs once per env and stays in
    :class:`~seqagents.models.transformer.SharedPrefixKV` s as ``(E, nh, P, hd)``; the rest of
    the window runs once per distinct history (:meth:`_extend_distinct`), and every beam's later
    tokens go to its own small suffix buffer; attention merges the two parts exactly. Beam
    selection reorders only the suffixes, and only when they are next read: if the window
    slides first, its recompute rebuilds them from the tokens and the copy is never made.
    """

    def __init__(
        self, model: TokenModel, window: int, env_pad: list[int], expand_room: int = 0
    ) -> None:
        super().__init__(model, window, env_pad, expand_room)
        self.pending: torch.Tensor | None = None  # (R,) rows of self.cache not yet selected

    def select(self, index: torch.Tensor) -> None:
        self.pending = index if self.pending is None else self.pending[index]  # (R',)
        self._reindex_rows(index)

    def _reindex_rows(self, index: torch.Tensor) -> None:
        """The per-row state other than the cache follows ``tokens[index]`` at once."""
        assert self.last is not None
        self.last = self.last[index]  # (R', V)
        if self.row_pad is not None:
            self.row_pad = self.row_pad[index]  # (R',)

    def _apply_pending(self) -> None:
        """Make the selected rows' cache (copies their suffixes)."""
        if self.pending is not None:
            assert self.cache is not None
            self.cache = [buffer.select(self.pending) for buffer in self.cache]
            self.pending = None

    def logits(self, tokens: torch.Tensor, length: int) -> torch.Tensor:
        if self._window(length)[0] != self.starts:  # the window slides: recomputed from tokens
            self.pending = None
        else:
            self._apply_pending()
        return super().logits(tokens, length)

    def _recompute(self, window: torch.Tensor) -> torch.Tensor:
        n_rows, width = window.shape
        n_envs = len(self.env_pad)
        per_env = n_rows // n_envs
        grouped = window.view(n_envs, per_env, width)  # (E, R / E, W)
        agrees = (grouped == grouped[:, :1]).all(dim=1).all(dim=0)  # (W,)
        shared = int(agrees.long().cumprod(dim=0).sum())  # common prefix length, all envs
        if per_env > 1:
            shared = min(shared, width - 1)  # keep >= 1 token per beam: its own logits
        envs = torch.arange(n_envs, device=window.device)  # (E,)
        env_of_row = envs.repeat_interleave(per_env)  # (R,)
        if shared == 0:  # the beams differ from the first token: nothing shared per env
            self.cache = None
            return self._extend_distinct(window, 0, env_of_row)
        first = envs * per_env  # (E,) one row per env
        pad = None if self.row_pad is None else self.row_pad[first]  # (E,)
        logits, caches = self.model(window[first, :shared], pad=pad)  # (E, shared, V)
        # Until the next slide each beam's suffix averages (width - shared) + transition_dim / 2
        # tokens. Reading a short shared prefix once per env saves less than the merge costs
        # (measured on CPU: break-even near prefix = suffix), so short prefixes are copied into
        # every beam's buffer, as the per-beam cached decoder does.
        if per_env == 1 or shared >= width - shared + self.transition_dim // 2:
            # Suffix room for the tokens until the next slide (the window never exceeds it).
            capacity = self.window - shared + self.expand_room
            self.cache = [SharedPrefixKV.from_cache(c, envs, capacity) for c in caches]
        else:
            self.cache = [
                SharedPrefixKV.per_row(c, n_envs, envs, self.window + self.expand_room, envs)
                for c in caches
            ]
        if shared == width:  # one row per env: the whole window is the prefix
            return logits  # (R, W, V)
        return self._extend_distinct(window, shared, env_of_row)

    def expand(self, index: torch.Tensor, n_copies: int, n_tokens: int) -> None:
        """Copies without copying keys/values: each beam's keys are read once for its copies,
        whose new tokens go to spare slots after the beam's own (:class:`SiblingKV`)."""
        self._apply_pending()
        if self.cache is None:
            self.select(index)
            return
        self.cache = [cache.expand(index, n_copies, n_tokens) for cache in self.cache]
        self._reindex_rows(index)

    def _extend_distinct(
        self, window: torch.Tensor, start: int, history: torch.Tensor
    ) -> torch.Tensor:
        """Run ``window[:, start:]`` once per distinct history, then give every row its cache.

        ``self.cache`` holds one row per distinct history of ``window[:, :start]``, and row
        ``r`` of the window has history ``history[r]``; with ``start`` 0 there is no cache yet
        (None) and ``history[r]`` is row ``r``'s env. Beams branch only where they sample
        actions, so the rest is cut into chunks that end before each action's first token: a
        chunk is one transition of the beam tree, and rows that agree on every token up to its
        end (the same tree node, or beams that drew the same tokens) run it once. The rows'
        caches are then copied out of the distinct ones, as the per-beam planner would have
        them.

        Returns:
            ``(R, 1, V)`` logits after each row's last window token.
        """
        width = window.shape[1]
        obs_dim = self.model.config.observation_dim
        # Chunk ends: every action's first token after `start` (the window starts at an s^0
        # token, so window index i is dimension i % transition_dim), then the window's end.
        first_action = start + (obs_dim - start) % self.transition_dim
        ends = [*range(first_action, width, self.transition_dim), width]
        ends = [end for end in ends if end > start]
        pad = self.row_pad
        logits = window.new_empty(0)
        lo = start
        for hi in ends:
            # Rows agree up to `hi` iff they agree up to `lo` and on this chunk (and padding).
            key = [history[:, None], window[:, lo:hi]]  # (R, 1), (R, hi - lo)
            if pad is not None:
                key.append(pad[:, None])  # (R, 1)
            _, node = torch.unique(torch.cat(key, dim=1), dim=0, return_inverse=True)  # (R,)
            n_nodes = int(node.max()) + 1
            rows = torch.arange(len(node), device=node.device)  # (R,)
            first = torch.full((n_nodes,), len(node), dtype=torch.long, device=node.device)
            first = first.scatter_reduce_(0, node, rows, "amin")  # (U,) one row per node
            node_pad = None if pad is None else pad[first]  # (U,)
            if self.cache is None:  # the first chunk starts the window
                logits, caches = self.model(window[first, lo:hi], pad=node_pad)  # (U, hi, V)
                nodes = torch.arange(n_nodes, device=node.device)  # (U,)
                n_envs = len(self.env_pad)
                self.cache = [
                    SharedPrefixKV.per_row(
                        c, n_envs, history[first], self.window + self.expand_room, nodes
                    )
                    for c in caches
                ]
            else:
                self.cache = [cache.select(history[first]) for cache in self.cache]  # U rows
                logits, _ = self.model(window[first, lo:hi], past=self.cache, pad=node_pad)
            history, lo = node, hi  # (R,) node of each row; logits (U, hi - lo, V)
        assert self.cache is not None
        self.cache = [cache.select(history) for cache in self.cache]  # (R, ...) per row
        return logits[history, -1:]  # (R, 1, V)


# ------------------------------------------------------------------------------------------------
# The search


def _plan(
    decoder_class: Callable[[TokenModel, int, list[int], int], _RecomputeDecoder],
    model: TokenModel,
    discretizer: Discretizer,
    context_tokens: torch.Tensor | Sequence[torch.Tensor],
    config: BeamSearchConfig | None,
    generator: torch.Generator | Sequence[torch.Generator] | None,
) -> Plan:
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
    decoder = decoder_class(model, window, env_pad, n_expand * (act_dim + 2))

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
    settings: BeamSearchConfig, config: _TokenModelConfig, discretizer: Discretizer
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
    config: _TokenModelConfig,
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
