"""TT discretizer, dataset transitions and the beam-search planner."""

from __future__ import annotations

import doctest
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load, save

import seqagents.planning.beam_search as beam_search
import seqagents.planning.discretizer as discretizer_module
from seqagents.models.kv_cache import ConcatKV
from seqagents.models.tt import TrajectoryTransformer, past_length
from seqagents.planning import BeamSearchConfig, Discretizer, beam_plan, trajectory_transitions
from seqagents.planning.beam_search import _filter_cdf
from tests._tt import CONFIG, random_context, tiny_discretizer, tiny_tt
from tests._tt_reference import beam_plan_per_beam, beam_plan_reference

# ------------------------------------------------------------------------------------------------
# Discretizer


def test_docstring_examples() -> None:
    for module in (discretizer_module, beam_search):
        result = doctest.testmod(module, extraglobs={"np": np, "torch": torch})
        assert result.attempted > 0 and result.failed == 0


def test_quantile_thresholds_follow_the_original_rule() -> None:
    data = np.random.default_rng(0).normal(size=(1234, 4))
    disc = Discretizer.from_data(data, n_bins=10)
    stride = math.ceil(1234 / 10)  # every 124th sorted value, plus the column max
    expected = np.concatenate([np.sort(data, axis=0)[::stride], data.max(axis=0)[None]])
    np.testing.assert_allclose(disc.thresholds.numpy(), expected.astype(np.float32))
    assert disc.thresholds.dtype == torch.float32 and disc.n_bins == 10
    # Each bin holds about the same number of rows.
    counts = np.bincount(disc.discretize(data)[:, 0].numpy(), minlength=10)
    assert counts.min() >= 100 and counts.max() <= 130


def test_quantile_needs_enough_rows() -> None:
    with pytest.raises(ValueError, match="give only 75 of the 100 bins"):
        Discretizer.from_data(np.random.default_rng(0).normal(size=(150, 2)), n_bins=100)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    kind=st.sampled_from(["quantile", "uniform"]),
    scale=st.floats(1e-3, 1e3),
)
def test_reconstruction_error_within_half_a_bin(seed: int, kind: str, scale: float) -> None:
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(500, 3)) * scale
    data[:, 2] = np.round(data[:, 2])  # a column with repeated values (duplicate thresholds)
    disc = Discretizer.from_data(data, n_bins=20, kind=kind)
    idx = disc.discretize(data)
    assert idx.dtype == torch.long and int(idx.min()) >= 0 and int(idx.max()) < 20
    recon = disc.reconstruct(idx).double().numpy()
    thresholds = disc.thresholds.double().numpy()
    columns = np.arange(3)
    width = thresholds[idx.numpy() + 1, columns] - thresholds[idx.numpy(), columns]
    assert (np.abs(recon - data) <= width / 2 + 1e-6 * scale).all()
    # Re-discretizing a reconstruction gives the same bin (non-empty bins).
    nonempty = width > 0
    assert (disc.discretize(recon).numpy()[nonempty] == idx.numpy()[nonempty]).all()


def test_out_of_range_values_offsets_and_stop_token() -> None:
    disc = Discretizer(torch.linspace(0, 1, 11)[:, None].repeat(1, 4))  # 10 bins of 0.1
    idx = disc.discretize(torch.tensor([[-5.0, 0.0, 0.55, 7.0]], dtype=torch.float64))
    assert idx.tolist() == [[0, 0, 5, 9]]
    # offset: the columns of an observation only, any leading shape
    assert disc.discretize(np.array([[[0.31]]]), offset=3).tolist() == [[[3]]]
    with pytest.raises(ValueError, match="out of range"):
        disc.discretize(np.zeros(2), offset=3)
    # Stop token (index N) and negative indices are clipped, as in the original.
    torch.testing.assert_close(
        disc.reconstruct(torch.tensor([10, -1, 4, 9])), torch.tensor([0.95, 0.05, 0.45, 0.95])
    )


def test_state_dict_round_trip_through_safetensors() -> None:
    data = np.random.default_rng(1).uniform(size=(400, 5))
    disc = Discretizer.from_data(data, n_bins=8, kind="uniform")
    blob = save({f"discretizer.{k}": v for k, v in disc.to_state_dict().items()})
    restored = Discretizer.from_state_dict(
        {k.removeprefix("discretizer."): v for k, v in load(blob).items()}
    )
    assert torch.equal(restored.discretize(data), disc.discretize(data))
    with pytest.raises(ValueError, match="exactly 'thresholds'"):
        Discretizer.from_state_dict({"thresholds": disc.thresholds, "extra": disc.thresholds})
    with pytest.raises(ValueError, match="non-decreasing"):
        Discretizer(torch.tensor([[1.0], [0.0]]))


def _naive_transitions(obs, act, rew, term, offsets, discount, penalty):  # type: ignore[no-untyped-def]
    rows = []
    for start, end in zip(offsets[:-1], offsets[1:], strict=True):
        r = [penalty if term[t] else rew[t] for t in range(start, end)]
        for t in range(end - start):
            value = sum(discount**k * r[t + 1 + k] for k in range(end - start - t - 1))
            rows.append([*obs[start + t], *act[start + t], r[t], value])
    return np.array(rows)


def test_trajectory_transitions_match_the_original_definition() -> None:
    rng = np.random.default_rng(0)
    lengths = [5, 1, 12, 3, 7]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    n = offsets[-1]
    obs, act, rew = rng.normal(size=(n, 2)), rng.normal(size=(n, 1)), rng.normal(size=n)
    term = np.zeros(n, dtype=bool)
    term[offsets[1] - 1] = term[offsets[3] - 1] = True  # episodes 0 and 2 terminate; others end
    rows = trajectory_transitions(obs, act, rew, term, offsets, discount=0.9)
    expected = _naive_transitions(obs, act, rew, term, offsets, 0.9, -100.0)
    np.testing.assert_allclose(rows, expected, rtol=1e-12, atol=1e-12)
    no_penalty = trajectory_transitions(
        obs, act, rew, term, offsets, discount=0.9, termination_penalty=None
    )
    np.testing.assert_allclose(no_penalty[:, -2], rew)
    with pytest.raises(ValueError, match="episode_offsets"):
        trajectory_transitions(obs, act, rew, term, np.array([0, 5]))


# ------------------------------------------------------------------------------------------------
# Planner

PLANNER = dict(beam_width=6, n_expand=2, max_context_transitions=3)  # window of 20 tokens


@pytest.fixture(scope="module")
def model() -> TrajectoryTransformer:
    return tiny_tt(0)


@pytest.fixture(scope="module")
def disc() -> Discretizer:
    return tiny_discretizer(0)


_context = random_context


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _assert_same_plan(a: beam_search.Plan, b: beam_search.Plan) -> None:
    assert torch.equal(a.tokens, b.tokens)
    torch.testing.assert_close(a.value, b.value, atol=1e-9, rtol=0)
    torch.testing.assert_close(a.action, b.action)


@pytest.mark.parametrize("n_context, horizon", [(0, 1), (1, 4), (4, 3)])
def test_cached_plan_equals_recomputing_reference(
    model: TrajectoryTransformer, disc: Discretizer, n_context: int, horizon: int
) -> None:
    context = _context(n_context)
    config = BeamSearchConfig(**PLANNER, horizon=horizon, k_act=4)
    cached = beam_plan(model, disc, context, config, generator=_seeded(3))
    reference = beam_plan_reference(model, disc, context, config, generator=_seeded(3))
    _assert_same_plan(cached, reference)
    assert cached.tokens.shape == (horizon, 7) and cached.action.shape == (2,)
    # The first planned transition starts with the current observation.
    assert torch.equal(cached.tokens[0, :3], context[-3:])
    torch.testing.assert_close(cached.trajectory, disc.reconstruct(cached.tokens))


class _Recorder:
    """Wraps a model and records how many tokens each call covers (past included)."""

    def __init__(self, model: TrajectoryTransformer) -> None:
        self.model, self.config, self.calls = model, model.config, []

    def __call__(self, tokens, past=None, pad=None):  # type: ignore[no-untyped-def]
        past_len = past_length(past)
        self.calls.append((past_len, tokens.shape[1]))
        return self.model(tokens, past=past, pad=pad)


@pytest.mark.parametrize("planner", [beam_plan, beam_plan_per_beam], ids=["shared", "per-beam"])
def test_window_crop_and_cache_reuse(
    model: TrajectoryTransformer, disc: Discretizer, planner: Callable[..., beam_search.Plan]
) -> None:
    recorder = _Recorder(model)
    horizon = 5
    config = BeamSearchConfig(horizon=horizon, **PLANNER)
    planner(recorder, disc, _context(4), config, generator=_seeded(0))
    window = 3 * CONFIG.transition_dim - 1  # max_context_transitions * transition_dim - 1
    assert max(past + new for past, new in recorder.calls) <= window
    fresh = [i for i, (past, _) in enumerate(recorder.calls) if past == 0]
    # The context once, then once per planned transition when the window slides.
    assert len(fresh) == horizon
    assert sum(new > 1 for _, new in recorder.calls) > horizon  # prefixes were shared
    if planner is beam_plan_per_beam:
        # A fresh call covers the beams' common prefix (once per env); the next call the rest
        # of the window (once per beam); every other call decodes one token on the cache.
        special = set(fresh) | {i + 1 for i in fresh}
        assert all(new == 1 for i, (_, new) in enumerate(recorder.calls) if i not in special)


def test_same_seed_same_plan(model: TrajectoryTransformer, disc: Discretizer) -> None:
    context = _context(2)
    config = BeamSearchConfig(**PLANNER, horizon=3, cdf_act=None)
    plans = [
        beam_plan(model, disc, context, config, generator=_seeded(seed))
        for seed in (7, 7, 8, 9, 10)
    ]
    _assert_same_plan(plans[0], plans[1])
    # The seed matters: some other seed samples a different plan.
    assert not all(torch.equal(plans[0].tokens, p.tokens) for p in plans[2:])


def test_batched_envs_equal_per_env_plans(model: TrajectoryTransformer, disc: Discretizer) -> None:
    contexts = [_context(3, seed=1), _context(0, seed=2), _context(1, seed=3)]
    seeds = [11, 12, 13]
    config = BeamSearchConfig(**PLANNER, horizon=3)
    batched = beam_plan(model, disc, contexts, config, generator=[_seeded(s) for s in seeds])
    assert batched.tokens.shape == (3, 3, 7) and batched.value.shape == (3,)
    for i, (context, seed) in enumerate(zip(contexts, seeds, strict=True)):
        alone = beam_plan(model, disc, context, config, generator=_seeded(seed))
        assert torch.equal(batched.tokens[i], alone.tokens)
        torch.testing.assert_close(batched.value[i], alone.value, atol=1e-9, rtol=0)
    # A 2-D tensor of equal-length contexts is a batch too.
    stacked = torch.stack([_context(1, seed=4), _context(1, seed=5)])
    plan = beam_plan(model, disc, stacked, config, generator=_seeded(0))
    assert plan.action.shape == (2, 2)


class _RewardIsFirstAction:
    """Toy model: uniform actions, reward bin = the transition's first action token."""

    def __init__(self) -> None:
        self.config = CONFIG

    def __call__(self, tokens, past=None, pad=None):  # type: ignore[no-untyped-def]
        cfg = self.config
        if past is None:
            seen = tokens  # (B, S)
        else:  # the "keys" are the tokens seen so far: (B, 1, S_past, 1), read from any cache
            seen = torch.cat([past[0].dense()[0][:, 0, :, 0].long(), tokens], dim=1)
        B, S = seen.shape
        T = tokens.shape[1]
        V = cfg.vocab_size + 1
        bins = torch.arange(V, dtype=torch.float64)
        logits = torch.zeros(B, T, V, dtype=torch.float64)
        logits[..., -1] = -math.inf  # never the stop token
        for j, position in enumerate(range(S - T, S)):
            next_dim = (position + 1) % cfg.transition_dim
            if next_dim < cfg.observation_dim or next_dim == cfg.transition_dim - 1:
                logits[:, j, :-1] = -10.0 * bins[:-1]  # observations and values: bin 0
            elif next_dim == cfg.observation_dim + cfg.action_dim:  # reward
                first_action = seen[:, position - cfg.action_dim + 1].double()  # (B,)
                logits[:, j, :-1] = -10.0 * (bins[None, :-1] - first_action[:, None]) ** 2
        cache = ConcatKV() if past is None else past[0]
        new = tokens.double()[:, None, :, None]  # (B, 1, T, 1): the tokens are their own keys
        cache.attend(new, new, new, None)  # appends them, whatever the cache's kind
        return logits, [cache]


def test_planner_finds_the_best_action() -> None:
    disc = Discretizer(torch.linspace(0, 1, CONFIG.vocab_size + 1)[:, None].repeat(1, 7))
    plan = beam_plan(
        _RewardIsFirstAction(),
        disc,
        _context(1),
        # cdf_act None: plain sampling, 64 uniform draws of 12 bins per step
        BeamSearchConfig(horizon=2, beam_width=16, n_expand=4, cdf_act=None),
        generator=_seeded(0),
    )
    best = disc.midpoints[-1, 0]  # the top bin's midpoint
    assert plan.tokens[0, 3] == CONFIG.vocab_size - 1  # the top bin for the first action dim
    torch.testing.assert_close(plan.action[0], best)
    rewards = plan.trajectory[:, -2].double()  # reward bin = first action bin, each step
    assert torch.equal(plan.tokens[:, -2], plan.tokens[:, 3]) and rewards[0] == best
    # score = sum_t discount^t E[r_t] + discount^H E[V] with E[V] = bin 0's midpoint.
    value = sum(0.99**t * rewards[t] for t in range(2)) + 0.99**2 * disc.midpoints[0, -1]
    torch.testing.assert_close(plan.value.double(), value.double(), atol=1e-4, rtol=0)


def test_filter_cdf_follows_the_original_rule() -> None:
    logits = torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=torch.float64).log()
    # Ascending cumulative mass 0.1, 0.3, 0.6, 1.0: the tokens with 0.1 and 0.2 together hold
    # less than 0.6, so they go.
    filtered = _filter_cdf(logits, 0.6)
    assert (filtered[0, :2] == -1000).all() and torch.equal(filtered[0, 2:], logits[0, 2:])
    flat = torch.zeros(1, 5)
    assert (_filter_cdf(flat, 0.6) == -1000).all()  # all equally likely: all dropped, still flat


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(beam_width=0), "beam_width must be an int >= 1, got 0"),
        (dict(horizon=0), "horizon must be an int >= 1, got 0"),
        (dict(n_expand=0), "n_expand must be an int >= 1, got 0"),
        (dict(horizon=2.0), "horizon must be an int >= 1, got 2.0"),
        (dict(max_context_transitions=1), "max_context_transitions >= 2"),
        (dict(cdf_act=1.5), "cdf_act=1.5"),
        (dict(k_obs=0), "k_obs=0"),
        (dict(discount=1.5), "discount=1.5"),
    ],
)
def test_bad_settings(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BeamSearchConfig(**{**PLANNER, **overrides})
    # Overrides: replace + the same validation (a wrong type is a TypeError there).
    with pytest.raises((ValueError, TypeError), match=next(iter(overrides))):
        BeamSearchConfig(**PLANNER).replace(**overrides)


def test_settings_the_model_cannot_take(model: TrajectoryTransformer, disc: Discretizer) -> None:
    with pytest.raises(ValueError, match="k_act=14 must be in \\[1, 13\\]"):
        beam_plan(model, disc, _context(1), BeamSearchConfig(k_act=14))
    with pytest.raises(TypeError, match="unknown planner settings \\['beam'\\]"):
        BeamSearchConfig().replace(beam=4)


def test_bad_inputs(model: TrajectoryTransformer, disc: Discretizer) -> None:
    config = BeamSearchConfig(**PLANNER)
    with pytest.raises(ValueError, match="k \\* 7 \\+ 3"):
        beam_plan(model, disc, _context(1)[:-1], config)
    with pytest.raises(ValueError, match="bin indices in \\[0, 12\\)"):
        beam_plan(model, disc, _context(1) + 12, config)
    with pytest.raises(ValueError, match="2 generators for 3 envs"):
        beam_plan(model, disc, [_context(0)] * 3, config, generator=[_seeded(0)] * 2)
    other = Discretizer.from_data(np.random.default_rng(0).normal(size=(400, 7)), n_bins=10)
    with pytest.raises(ValueError, match="10 bins x 7 columns"):
        beam_plan(model, other, _context(1), config)


def test_training_mode_warns(model: TrajectoryTransformer, disc: Discretizer) -> None:
    model.train()
    try:
        config = BeamSearchConfig(horizon=1, beam_width=2)
        with pytest.warns(UserWarning, match="model.eval"):
            beam_plan(model, disc, _context(0), config, generator=_seeded(0))
    finally:
        model.eval()


def test_plan_tokens_are_not_views_of_inputs(
    model: TrajectoryTransformer, disc: Discretizer
) -> None:
    context = _context(1)
    before = context.clone()
    config = BeamSearchConfig(**PLANNER, horizon=2)
    beam_plan(model, disc, context, config, generator=_seeded(0))
    assert torch.equal(context, before)
