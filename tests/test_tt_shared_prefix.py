"""Shared-prefix attention in the TT beam-search planner (SharedPrefixKV, LSE merge)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

import seqagents.models.kv_cache.shared as shared_kv
from seqagents.models.kv_cache import (
    ConcatKV,
    KVBuffer,
    SharedPrefixKV,
    SiblingKV,
    attention_with_lse,
    merge_attention,
)
from seqagents.models.tt import TrajectoryTransformer
from seqagents.planning import BeamSearchConfig, Discretizer, Plan, beam_plan
from seqagents.planning.beam_decoder import BeamDecoder
from tests._tt import CONFIG, random_context, tiny_discretizer, tiny_tt
from tests._tt_reference import beam_plan_per_beam, beam_plan_reference

PLANNER = dict(n_expand=2, max_context_transitions=3, k_act=4)  # window of 20 tokens


@pytest.fixture(scope="module")
def model() -> TrajectoryTransformer:
    return tiny_tt(1)


@pytest.fixture(scope="module")
def disc() -> Discretizer:
    return tiny_discretizer(1)


_context = random_context


def _generators(n: int | None) -> torch.Generator | list[torch.Generator]:
    if n is None:
        return torch.Generator().manual_seed(5)
    return [torch.Generator().manual_seed(10 + i) for i in range(n)]


def _assert_same_plan(a: Plan, b: Plan) -> None:
    assert torch.equal(a.tokens, b.tokens)
    torch.testing.assert_close(a.value, b.value, atol=1e-9, rtol=0)
    torch.testing.assert_close(a.trajectory, b.trajectory)


class _CountAttend:
    """Counts SharedPrefixKV.attend calls and the largest prefix batch (envs) they saw."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls, self.prefix_envs, self.grouped, self.decoding = 0, set(), 0, 0
        self.siblings = 0  # calls on copies of beams that share their parent's keys
        original = SharedPrefixKV.attend

        def attend(cache: SharedPrefixKV, *args: torch.Tensor | None, **sdpa: Any) -> torch.Tensor:
            self.calls += 1
            self.siblings += isinstance(cache, SiblingKV)
            self.prefix_envs.add(cache.keys.shape[0])
            q = args[0]
            assert q is not None
            if q.shape[2] == 1:  # a decoding step (window recomputes run distinct rows only)
                self.decoding += 1
                self.grouped += cache._rows_grouped()
            return original(cache, *args, **sdpa)

        monkeypatch.setattr(shared_kv.SharedPrefixKV, "attend", attend)


CASES = {  # context, generators (None: one), horizon, beam width, other settings
    "single env, no earlier transitions": (lambda: _context(0), None, 2, 4, {}),
    "single env, window slides in the horizon": (lambda: _context(4), None, 5, 3, {}),
    "single env, beam 1": (lambda: _context(2), None, 3, 1, {}),
    # Sampled observations: later windows share no prefix at all.
    "single env, beams differ from the window's start": (
        lambda: _context(1),
        None,
        6,
        4,
        {"k_obs": None},
    ),
    "3 envs of different context lengths": (
        lambda: [_context(3, seed=1), _context(0, seed=2), _context(1, seed=3)],
        3,
        4,
        4,
        {},
    ),
    "2 equal envs, one generator": (
        lambda: torch.stack([_context(2, 4), _context(2, 5)]),
        None,
        3,
        3,
        {},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_shared_prefix_plan_equals_per_beam_and_reference(
    model: TrajectoryTransformer,
    disc: Discretizer,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    make_context, n_generators, horizon, beam_width, other = CASES[case]
    context = make_context()
    config = BeamSearchConfig(**PLANNER, horizon=horizon, beam_width=beam_width, **other)
    counter = _CountAttend(monkeypatch)
    shared = beam_plan(model, disc, context, config, generator=_generators(n_generators))
    assert counter.calls > 0  # the public planner took the shared-prefix path
    n_envs = 1 if isinstance(context, torch.Tensor) and context.ndim == 1 else len(context)
    assert counter.prefix_envs == {n_envs}  # the prefix is stored once per env, not per beam
    assert counter.grouped == counter.decoding  # and read once per env when decoding
    assert counter.siblings > 0  # expanded beams read their parent's keys once
    calls = counter.calls
    per_beam = beam_plan_per_beam(model, disc, context, config, generator=_generators(n_generators))
    reference = beam_plan_reference(
        model, disc, context, config, generator=_generators(n_generators)
    )
    assert counter.calls == calls  # neither of those shares keys
    _assert_same_plan(shared, per_beam)
    _assert_same_plan(shared, reference)


def test_float32_plan_equals_per_beam(disc: Discretizer) -> None:
    torch.manual_seed(2)
    model = TrajectoryTransformer(CONFIG).eval()
    config = BeamSearchConfig(**PLANNER, horizon=4, beam_width=5)
    contexts = [_context(4, seed=6), _context(1, seed=7)]
    shared = beam_plan(model, disc, contexts, config, generator=_generators(2))
    per_beam = beam_plan_per_beam(model, disc, contexts, config, generator=_generators(2))
    assert torch.equal(shared.tokens, per_beam.tokens)
    torch.testing.assert_close(shared.value, per_beam.value, atol=1e-5, rtol=1e-5)


def test_any_token_model_gets_the_shared_caches(
    model: TrajectoryTransformer, disc: Discretizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Wrapped:  # a TokenModel that only passes the caches on: they answer for themselves
        config = CONFIG

        def __call__(self, tokens, past=None, pad=None):  # type: ignore[no-untyped-def]
            return model(tokens, past=past, pad=pad)

    counter = _CountAttend(monkeypatch)
    config = BeamSearchConfig(**PLANNER, horizon=3, beam_width=3)
    plan = beam_plan(Wrapped(), disc, _context(2), config, generator=_generators(None))
    assert counter.calls > 0
    _assert_same_plan(
        plan, beam_plan(model, disc, _context(2), config, generator=_generators(None))
    )


def _full_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def test_lse_merge_equals_attention_over_the_concatenation() -> None:
    g = torch.Generator().manual_seed(0)
    B, nh, T, hd, S1, S2 = 3, 2, 4, 8, 5, 6
    q = torch.randn(B, nh, T, hd, generator=g, dtype=torch.float64)
    k1, v1 = (torch.randn(B, nh, S1, hd, generator=g, dtype=torch.float64) * 3 for _ in range(2))
    k2, v2 = (torch.randn(B, nh, S2, hd, generator=g, dtype=torch.float64) * 3 for _ in range(2))
    mask = torch.rand(B, 1, T, S1 + S2, generator=g) < 0.6
    mask[0, 0, 0, :S1] = False  # a query that sees nothing in the first part
    mask[1, 0, 1, S1:] = False  # and one that sees nothing in the second
    mask[:, :, :, 0] |= ~mask.any(dim=-1)  # every query sees some key
    scale = hd**-0.5
    out1, lse1 = attention_with_lse(q * scale, k1, v1, mask[..., :S1])
    out2, lse2 = attention_with_lse(q * scale, k2, v2, mask[..., S1:])
    assert torch.isneginf(lse1[0, :, 0]).all() and torch.equal(
        out1[0, :, 0], torch.zeros(nh, hd, dtype=torch.float64)
    )
    merged = merge_attention(out1, lse1, out2, lse2)
    expected = _full_attention(q, torch.cat([k1, k2], 2), torch.cat([v1, v2], 2), mask)
    torch.testing.assert_close(merged, expected, atol=1e-12, rtol=1e-12)
    # The log-sum-exp is the scores' own.
    scores = (q * scale) @ k1.transpose(-1, -2)
    expected_lse = scores.masked_fill(~mask[..., :S1], float("-inf")).logsumexp(-1, keepdim=True)
    torch.testing.assert_close(lse1, expected_lse)
    # Merging is symmetric, and a part nobody may attend to changes nothing.
    torch.testing.assert_close(merge_attention(out2, lse2, out1, lse1), merged)
    nothing = torch.full_like(lse1, float("-inf"))
    torch.testing.assert_close(merge_attention(out2 * 0, nothing, out2, lse2), out2)


@pytest.mark.parametrize("order", ["grouped", "shuffled"])
@pytest.mark.parametrize("prefix_mask", ["none", "same hidden keys", "padding", "per query"])
def test_shared_prefix_kv_equals_attention_over_copied_prefix(order: str, prefix_mask: str) -> None:
    g = torch.Generator().manual_seed(1)
    E, n, nh, hd, P, T = 2, 3, 2, 4, 5, 2
    R = E * n
    keys, values = (torch.randn(E, nh, P, hd, generator=g, dtype=torch.float64) for _ in range(2))
    env = torch.arange(E).repeat_interleave(n)  # (R,)
    cache = SharedPrefixKV.from_cache(ConcatKV(keys, values), env, capacity=2 * T)
    index = torch.randperm(R, generator=g) if order == "shuffled" else torch.arange(R)
    per_row = [KVBuffer.from_cache(ConcatKV(keys[env], values[env]), P + 2 * T)]  # copied prefix
    for step in range(2):
        q, k, v = (torch.randn(R, nh, T, hd, generator=g, dtype=torch.float64) for _ in range(3))
        total = P + (step + 1) * T
        mask = torch.ones(R, 1, T, total, dtype=torch.bool).tril(diagonal=total - T)  # causal
        if prefix_mask == "same hidden keys":
            mask[..., 1] = False
        elif prefix_mask == "padding":
            mask[env == 1, ..., :2] = False  # env 1 is left-padded by 2 tokens
        elif prefix_mask == "per query" and step == 0:
            mask[0, 0, 0, 3] = False
        if step == 1:
            cache, per_row = cache.select(index), [per_row[0].select(index)]
            env = env[index]
            mask[..., :P] = mask[..., :P][index] if prefix_mask != "per query" else mask[..., :P]
        out = cache.attend(q, k, v, mask)
        ks, vs = per_row[0].append(k, v)
        torch.testing.assert_close(out, _full_attention(q, ks, vs, mask), atol=1e-12, rtol=1e-12)
        assert cache.length == total and cache.keys.shape[0] == E
    settled = cache.prefix_mask
    assert settled is not None and settled.per_query == (prefix_mask == "per query")
    assert (settled.visible is not None) == (prefix_mask == "padding")
    assert (settled.kept is not None) == (prefix_mask == "same hidden keys")
    assert cache.keys.shape[2] == (P - 1 if prefix_mask == "same hidden keys" else P)
    # What it holds, read through the interface: the dropped key comes back masked.
    keys_held, values_held, kept = cache.dense()
    expected_k, expected_v, _ = per_row[0].dense()
    visible = torch.ones(1, 1, 1, cache.length, dtype=torch.bool)
    if prefix_mask == "same hidden keys":
        visible[..., 1] = False
        assert kept is not None and torch.equal(kept, visible.expand_as(kept))
    else:
        assert kept is None
    shown = visible.transpose(-1, -2)  # (1, 1, length, 1)
    torch.testing.assert_close(keys_held * shown, expected_k * shown)
    torch.testing.assert_close(values_held * shown, expected_v * shown)


@torch.inference_mode()
def test_window_recompute_runs_each_distinct_history_once(model: TrajectoryTransformer) -> None:
    # 6 beams of one env over a 17-token window: a shared s^0 (3 tokens), then two
    # transitions-from-an-action chunks ending before each action: [3, 10) and [10, 17).
    # Beams 0-2 and 3-5 branch at the first chunk; in the second, beams 0 and 1 drew the
    # same tokens, so 5 distinct histories remain.
    generator = torch.Generator().manual_seed(3)
    observation = torch.randint(0, CONFIG.vocab_size, (3,), generator=generator)
    first = torch.randint(0, CONFIG.vocab_size, (2, 7), generator=generator)  # (branches, 7)
    second = torch.randint(0, CONFIG.vocab_size, (5, 7), generator=generator)  # (distinct, 7)
    window = torch.cat(
        [
            observation.expand(6, 3),  # (6, 3)
            first[torch.tensor([0, 0, 0, 1, 1, 1])],  # (6, 7)
            second[torch.tensor([0, 0, 1, 2, 3, 4])],  # (6, 7)
        ],
        dim=1,
    )  # (6, 17)
    fed: list[tuple[int, int]] = []
    handle = model.register_forward_pre_hook(lambda _, args: fed.append(tuple(args[0].shape)))
    try:
        decoder = BeamDecoder(model, 20, [0])
        logits = decoder._recompute(window)  # (6, 1, V)
    finally:
        handle.remove()
    assert fed == [(1, 3), (2, 7), (5, 7)]  # prefix once, then each distinct history once

    expected_logits, expected_caches = model(window)  # every beam on its own
    torch.testing.assert_close(logits[:, -1], expected_logits[:, -1])
    assert decoder.cache is not None
    for cache, expected in zip(decoder.cache, expected_caches, strict=True):
        assert cache.length == 17
        stored_k, stored_v, _ = cache.dense()  # (6, nh, 17, hd) each
        keys, values, _ = expected.dense()
        torch.testing.assert_close(stored_k, keys)
        torch.testing.assert_close(stored_v, values)


@pytest.mark.parametrize("n_prefix", [0, 3], ids=["no env prefix", "env prefix"])
@pytest.mark.parametrize("row_masks", [False, True], ids=["one mask", "a mask per row"])
def test_sibling_kv_equals_attention_over_copied_keys(n_prefix: int, row_masks: bool) -> None:
    torch.manual_seed(0)
    E, B, n, nh, hd, S, t = 2, 3, 2, 2, 4, 5, 3  # envs, beams, copies, heads, dim, suffix, slots
    prefix = ConcatKV(torch.randn(E, nh, n_prefix, hd), torch.randn(E, nh, n_prefix, hd))
    suffix = torch.randn(E * B, nh, S, hd), torch.randn(E * B, nh, S, hd)
    env = torch.arange(E).repeat_interleave(B)  # (G,)
    parent = SharedPrefixKV.from_cache(prefix, env, S + n * t)
    parent.suffix.append(*suffix)
    parent.suffix.keys[:, :, S:] = float("nan")  # spare capacity is never read as it is
    parent.suffix.values[:, :, S:] = float("nan")
    R = E * n * B
    copies = parent.expand(torch.arange(E * B).view(E, 1, B).expand(E, n, B).reshape(-1), n, t)
    assert isinstance(copies, SiblingKV)
    rows = torch.arange(R)
    of = rows // (n * B) * B + rows % B  # (R,) parent of each copy, rows (env, copy, beam)
    own_k, own_v = [], []
    for j in range(t):
        q, k, v = (torch.randn(R, nh, 1, hd) for _ in range(3))
        own_k.append(k)
        own_v.append(v)
        mask = torch.ones(R if row_masks else 1, 1, 1, n_prefix + S + j + 1, dtype=torch.bool)
        mask[..., n_prefix + 1] = False  # a hidden suffix key
        if row_masks:
            mask[::2, ..., n_prefix + 2] = False
        out = copies.attend(q, k, v, mask)  # (R, nh, 1, hd)
        keys = torch.cat([prefix.keys[env[of]], suffix[0][of], torch.cat(own_k, 2)], 2)
        values = torch.cat([prefix.values[env[of]], suffix[1][of], torch.cat(own_v, 2)], 2)
        torch.testing.assert_close(out, _full_attention(q, keys, values, mask))
    assert copies.length == n_prefix + S + t
    keep = torch.tensor([0, 5, 7, 11, 2])
    kept = copies.select(keep)  # each kept copy gets its own suffix: parent's, then its tokens
    assert kept.length == n_prefix + S + t and torch.equal(kept.env, env[of[keep]])
    expected = torch.cat([suffix[0][of], torch.cat(own_k, 2)], 2)[keep]
    torch.testing.assert_close(kept.dense()[0][:, :, n_prefix:], expected)
    torch.testing.assert_close(copies.dense()[0][keep], kept.dense()[0])  # read in place


def test_sibling_kv_refuses_what_it_cannot_hold() -> None:
    keys = ConcatKV(torch.zeros(1, 1, 0, 2), torch.zeros(1, 1, 0, 2))  # (E, nh, 0, hd)
    parent = SharedPrefixKV.from_cache(keys, torch.zeros(2, dtype=torch.long), 4)  # 2 beams
    parent.suffix.append(torch.zeros(2, 1, 1, 2), torch.zeros(2, 1, 1, 2))
    with pytest.raises(ValueError, match="room for 3 tokens, 2 x 2 needed"):
        SiblingKV(parent, 2, 2)
    two_envs = SharedPrefixKV.from_cache(
        ConcatKV(torch.zeros(2, 1, 0, 2), torch.zeros(2, 1, 0, 2)), torch.tensor([1, 0]), 4
    )
    with pytest.raises(ValueError, match="grouped by env"):
        SiblingKV(two_envs, 2, 1)
    copies = SiblingKV(parent.select(torch.tensor([0, 1])), 2, 1)
    token = torch.zeros(4, 1, 1, 2)  # (R, nh, 1, hd)
    copies.attend(token, token, token, None)
    with pytest.raises(ValueError, match="holds 1 tokens per copy, 2 needed"):
        copies.attend(token, token, token, None)
