"""The next-token decoder of TT beam search: logits of every beam, fed through KV caches.

Owns what the model is fed and what its caches hold while :func:`~seqagents.planning.beam_plan`
searches: the window the model sees (cropped from the front by whole transitions, so it always
starts at an ``s^0`` token), when it is recomputed (once per planned transition, when it
slides), and how the beams' keys/values are shared (:mod:`seqagents.models.kv_cache`). The
search only asks a decoder for the next token's logits and tells it how the beams were
reordered (:class:`Decoder`); a decoder only asks its caches questions (``length``,
``select``, ``expand``).

:class:`BeamDecoder` shares keys: the beams' common prefix of the window is computed once per
env and its keys/values stay stored once per env (``SharedPrefixKV``, ``(E, nh, P, hd)``): each
beam attends to its env's prefix and to its own suffix (the tokens since the window was last
computed), the two partial attentions merged exactly, so beam expansion and selection reorder
only the small suffixes. The rest of a recomputed window runs once per distinct node of the beam
tree (beams branch only at actions, so beams with a common ancestor share every token up to it).
A prefix shorter than the beams' own parts is copied into every beam's buffer instead (sharing
it would cost more than it saves). The ``n_expand`` copies of a beam made before its actions
are sampled share that beam's keys/values (``SiblingKV``): their new tokens go to spare slots
after the beam's own, and only the copies kept by the selection get buffers of their own, when
next read. With ``share_keys=False`` every beam holds its own copy of the window's keys/values
(``KVBuffer``; the planner before shared prefixes, kept as a benchmark baseline). Both feed
the model the same tokens at the same positions, so they return the same logits up to float
rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from seqagents.models.kv_cache import KVBuffer, KVCache, SharedPrefixKV

__all__ = [
    "BeamDecoder",
    "Decoder",
    "DecoderFactory",
    "TokenModel",
    "TokenModelConfig",
    "row_padding",
    "visible_window",
]


class TokenModelConfig(Protocol):
    """The sizes the planner reads of a model's config (:class:`~seqagents.models.tt.TTConfig`)."""

    vocab_size: int
    observation_dim: int
    action_dim: int
    transition_dim: int
    block_size: int


class TokenModel(Protocol):
    """What the planner needs from a model (:class:`~seqagents.models.tt.TrajectoryTransformer`)."""

    config: TokenModelConfig

    def __call__(
        self,
        tokens: torch.Tensor,
        past: Sequence[KVCache] | None = None,
        pad: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[KVCache]]:
        """``(B, T)`` tokens -> ``(B, T, N + 1)`` next-token logits and per-layer caches.

        Without ``past``: a fresh forward, returning its keys/values as caches
        (:class:`~seqagents.models.kv_cache.KVCache`, e.g. ``ConcatKV``) that the decoder turns
        into shared or per-beam ones. With ``past``: continue after the caches' tokens; each
        layer's cache appends the new keys/values and attends (``cache.attend``), whatever its
        kind.
        ``pad``: see :meth:`~seqagents.models.tt.TrajectoryTransformer.forward`.
        """
        ...


class Decoder(Protocol):
    """What the search asks of a decoder (rows of ``tokens`` = beams, grouped by env)."""

    def logits(self, tokens: torch.Tensor, length: int) -> torch.Tensor:
        """``(R, V)`` logits of token ``length`` given ``tokens[:, :length]``."""
        ...

    def select(self, index: torch.Tensor) -> None:
        """The rows were reordered/copied as ``tokens[index]``."""
        ...

    def expand(self, index: torch.Tensor, n_copies: int, n_tokens: int) -> None:
        """The rows were copied ``n_copies`` times as ``tokens[index]`` (rows (env, copy,
        beam)), and the next :meth:`select` comes after ``n_tokens`` more tokens."""
        ...


# (model, window in tokens, each env's left padding, spare tokens per row for copies) -> decoder
DecoderFactory = Callable[[TokenModel, int, list[int], int], Decoder]


def _window_start(length: int, window: int, transition_dim: int) -> int:
    """First token the model sees of a ``length``-token sequence (original ``forward`` crop).

    Sequences longer than ``window`` lose whole transitions from the front, as few as needed.
    """
    if length <= window:
        return 0
    return -(-(length - window) // transition_dim) * transition_dim  # ceil to whole transitions


def visible_window(
    length: int, window: int, transition_dim: int, env_pad: Sequence[int]
) -> tuple[tuple[int, ...], int, list[int]]:
    """Each env's first visible token, the first token to feed, each env's padding in it
    (``env_pad``: each env's left padding in the token buffer)."""
    starts = tuple(pad + _window_start(length - pad, window, transition_dim) for pad in env_pad)
    frame = min(starts)
    return starts, frame, [start - frame for start in starts]


def row_padding(env_pad: list[int], n_rows: int, device: torch.device) -> torch.Tensor | None:
    """``(R,)`` padding of every row (rows are grouped by env), None if there is none."""
    if not any(env_pad):
        return None
    pad = torch.tensor(env_pad, device=device)  # (E,)
    return pad.repeat_interleave(n_rows // len(env_pad))  # (R,)


class BeamDecoder:
    """Feeds only new tokens through per-layer KV caches; recomputes when the window slides
    (module docstring: what is shared, and ``share_keys=False``)."""

    def __init__(
        self,
        model: TokenModel,
        window: int,
        env_pad: list[int],
        expand_room: int = 0,
        share_keys: bool = True,
    ) -> None:
        self.model, self.window, self.env_pad = model, window, env_pad
        self.transition_dim = model.config.transition_dim
        self.share_keys = share_keys
        # Spare key/value slots per row for copies' new tokens (SiblingKV).
        self.expand_room = expand_room if share_keys else 0
        self.cache: list[KVCache] | None = None
        self.starts: tuple[int, ...] | None = None  # each env's first visible token
        self.fed = 0  # sequence index one past the cache's last token
        self.row_pad: torch.Tensor | None = None  # (R,) padding inside the cache, None if none
        self.last: torch.Tensor | None = None  # (R, V) logits after the last fed token
        self.pending: torch.Tensor | None = None  # (R,) rows of self.cache not yet selected

    def logits(self, tokens: torch.Tensor, length: int) -> torch.Tensor:
        starts, frame, env_pad = visible_window(
            length, self.window, self.transition_dim, self.env_pad
        )
        if starts != self.starts:
            # First call, or the window slid: positions change, so recompute it from the
            # tokens (a selection not applied yet is never made).
            self.starts, self.pending = starts, None
            self.row_pad = row_padding(env_pad, tokens.shape[0], tokens.device)
            logits = self._recompute(tokens[:, frame:length])
        else:
            self._apply_pending()
            if length <= self.fed:
                assert self.last is not None
                return self.last
            new = tokens[:, self.fed : length]  # (R, length - fed)
            logits, _ = self.model(new, past=self.cache, pad=self.row_pad)  # appends in place
        self.fed = length
        self.last = logits[:, -1]  # (R, V)
        return self.last

    def select(self, index: torch.Tensor) -> None:
        if self.share_keys:  # copied only when next read: skipped if the window slides first
            self.pending = index if self.pending is None else self.pending[index]  # (R',)
        else:
            assert self.cache is not None
            self.cache = [cache.select(index) for cache in self.cache]
        self._reindex_rows(index)

    def expand(self, index: torch.Tensor, n_copies: int, n_tokens: int) -> None:
        """With ``share_keys``, copies without copying keys/values: the caches decide
        (``SharedPrefixKV.expand``); else a selection."""
        if not self.share_keys:
            self.select(index)
            return
        self._apply_pending()
        assert self.cache is not None
        self.cache = [cache.expand(index, n_copies, n_tokens) for cache in self.cache]
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
            self.cache = [cache.select(self.pending) for cache in self.cache]
            self.pending = None

    def _recompute(self, window: torch.Tensor) -> torch.Tensor:
        """Fill the caches from ``(R, W)`` window tokens; return the logits after each row's
        last token (``(R, >= 1, V)``).

        The beams of an env usually start with the same tokens (context transitions still in
        the window, shared ancestors): that common prefix runs once per env.
        """
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
        first = envs * per_env  # (E,) one row per env
        pad = None if self.row_pad is None else self.row_pad[first]  # (E,)
        if not self.share_keys:
            return self._recompute_per_beam(window, shared, first, pad, env_of_row)
        if shared == 0:  # the beams differ from the first token: nothing shared per env
            self.cache = None
            return self._extend_distinct(window, 0, env_of_row)
        logits, caches = self.model(window[first, :shared], pad=pad)  # (E, shared, V)
        # Until the next slide each beam's suffix averages (width - shared) + transition_dim / 2
        # tokens. Reading a short shared prefix once per env saves less than the merge costs
        # (measured on CPU: break-even near prefix = suffix), so short prefixes are copied into
        # every beam's buffer, as share_keys=False does.
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

    def _recompute_per_beam(
        self,
        window: torch.Tensor,
        shared: int,
        first: torch.Tensor,
        pad: torch.Tensor | None,
        env_of_row: torch.Tensor,
    ) -> torch.Tensor:
        """``share_keys=False``: the common prefix runs once per env and is copied into every
        beam's buffer; the rest of the window runs once per beam."""
        if len(first) == len(env_of_row) or shared == 0:  # one beam per env, or no prefix
            logits, caches = self.model(window, pad=self.row_pad)  # (R, W, V)
            # Room for the tokens until the next slide; the window never exceeds self.window.
            self.cache = [KVBuffer.from_cache(cache, self.window) for cache in caches]
            return logits
        _, caches = self.model(window[first, :shared], pad=pad)  # (E, shared, V)
        self.cache = [KVBuffer.from_cache(c, self.window).select(env_of_row) for c in caches]
        logits, _ = self.model(window[:, shared:], past=self.cache, pad=self.row_pad)
        return logits  # (R, W - shared, V)

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
