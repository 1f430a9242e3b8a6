"""Figures a reader can read (issue 28 item 10), checked by what they draw: the heatmaps' pixels
and their few, legible labels; the allocation's smoothed bands; one quantity per axis (sparsity,
errors, LEAP iterations: no twin axes); the energy band clipped at 0. Synthetic recorded data
with known numbers, no agents."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seqagents.analysis import figures as F
from seqagents.analysis.rollouts import Episode
from seqagents.models.tt import TTConfig

pytest.importorskip("matplotlib")


def _causal(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random causal attention map ``(1, n, n)`` whose rows sum to 1."""
    w = np.tril(rng.uniform(0.1, 1.0, (n, n)))
    return (w / w.sum(-1, keepdims=True))[None]


def _dt_episode(steps: int = 30, K: int = 20, layers: int = 3, seed: int = 0) -> Episode:
    rng = np.random.default_rng(seed)
    attention = [[[_causal(3 * K, rng) for _ in range(layers)]] for _ in range(steps)]
    return Episode("dt", None, attention=attention, rewards=[1.0] * steps)


def _axes(fig) -> list:
    """The figure's plotting axes (colorbars left out)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def test_heatmaps_draw_the_data_with_few_legible_labels(tmp_path):
    episodes = [_dt_episode()]
    fig, data = F.attention_heatmaps(episodes)
    axes = _axes(fig)
    assert len(axes) == 3  # one panel per layer
    expected = [np.mean([s[0][i][0] for s in episodes[0].attention], 0) for i in range(3)]
    for ax, layer, mean in zip(axes, data["layers"], expected):
        np.testing.assert_allclose(ax.images[0].get_array(), layer)  # the pixels are the data
        np.testing.assert_allclose(layer, mean, atol=1e-12)  # the data is the recorded mean
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels == data["tick_labels"] and 2 <= len(labels) <= F.MAX_TICKS
        assert all(t.get_fontsize() >= 7 for t in ax.get_xticklabels())
        assert labels[-1] == "R" and all(x.startswith("R") for x in labels)  # a step each
        width, height = fig.get_size_inches() / np.array([3, 1])
        assert width >= 5 and height >= 4.5  # a panel big enough for its 60 tokens
    assert len(data["labels"]) == 60
    saved = json.loads(F.save_figure(fig, data, tmp_path, "h").with_suffix(".json").read_text())
    np.testing.assert_allclose(saved["layers"][0], data["layers"][0])


def test_heatmaps_of_many_layers_wrap_into_rows():
    fig, data = F.attention_heatmaps([_dt_episode(steps=2, K=4, layers=5)])
    axes = _axes(fig)
    assert len(axes) == 5 and len({round(ax.get_position().y0, 3) for ax in axes}) == 2
    assert (
        data["tick_labels"]
        == [label for label in data["labels"] if label.startswith("R")][-F.MAX_TICKS :]
    )


def test_allocation_is_smoothed_over_a_window_and_draws_the_smoothed_shares():
    rng = np.random.default_rng(1)
    K, steps = 5, 60
    attention = []
    for _ in range(steps):  # the decision query's row varies a lot from step to step
        w = _causal(3 * K, rng)
        attention.append([[w]])
    episode = Episode("dt", None, attention=attention)
    fig, data = F.attention_allocation(episode, window=7)
    assert data["window"] == 7
    for name in ("RTG", "recent", "older"):
        np.testing.assert_allclose(data["smoothed"][name], F.moving_average(data[name], 7))
        # smoothing evens it out
        assert np.std(data["smoothed"][name]) < np.std(data[name])
    np.testing.assert_allclose(sum(np.asarray(v) for v in data["smoothed"].values()), 1.0)
    # the stacked bands' upper edges are the cumulative smoothed shares
    (ax,) = _axes(fig)
    cumulative = np.cumsum([data["smoothed"][n] for n in ("RTG", "recent", "older")], axis=0)
    for band, top in zip(ax.collections, cumulative):
        vertices = band.get_paths()[0].vertices
        for x, y in zip(data["step"], top):
            assert np.isclose(vertices[vertices[:, 0] == x][:, 1], y).any()
    assert "7-step moving average" in ax.get_title()
    # default window: about 1/25 of the episode, odd
    assert F.attention_allocation(episode)[1]["window"] == 3
    assert F.attention_allocation(Episode("dt", None, attention=attention[:5]))[1]["window"] == 1


def test_moving_average():
    np.testing.assert_allclose(F.moving_average([2.0] * 5, 3), 2.0)  # constants stay
    np.testing.assert_allclose(F.moving_average([0, 0, 3, 0, 0], 3), [0, 1, 1, 1, 0])
    np.testing.assert_allclose(F.moving_average([1.0, 2.0], 1), [1.0, 2.0])


def test_sparsity_has_one_quantity_per_axis_with_units():
    one_key = np.eye(4)[None]  # every query on itself: sparsity 1
    uniform = (np.tril(np.ones((4, 4))) / np.arange(1, 5)[:, None])[None]
    models = {
        "DT": [Episode("dt", None, attention=[[[one_key]]])],
        "TT-like": [Episode("dt", None, attention=[[[uniform]]])],
    }
    fig, data = F.attention_sparsity(models)
    sparsity_ax, weight_ax = _axes(fig)
    for ax, quantity in ((sparsity_ax, "sparsity"), (weight_ax, "weight")):
        heights = [p.get_height() for p in ax.patches]
        np.testing.assert_allclose(heights, [data[n][f"{quantity}_mean"] for n in models])
        assert "(" in ax.get_ylabel()  # a unit or a scale
    assert data["DT"]["sparsity_mean"] == 1.0 and data["TT-like"]["sparsity_mean"] < 0.5
    assert "1 - H" in sparsity_ax.get_ylabel() and "probability" in weight_ax.get_ylabel()


def test_error_figure_has_one_model_per_axis_with_its_unit():
    config = TTConfig(observation_dim=1, action_dim=1, transition_dim=4)
    plans = [np.array([[0.0, 0.0, 1.0, 0.0], [0.5, 0.0, 0.0, 0.0]])] * 2
    tt = Episode("tt", config, observations=[np.zeros(1), np.ones(1), np.ones(1)],
                 rewards=[1.0, 1.0], plans=plans)  # fmt: skip
    dt = Episode("dt", None, rewards=[1.0, 3.0], returns_to_go=[4.0, 3.0], time_limit=2)
    fig, data = F.error_propagation([tt], [dt])
    tt_ax, dt_ax = _axes(fig)
    np.testing.assert_allclose(tt_ax.lines[0].get_ydata(), data["tt"]["cumulative"])
    np.testing.assert_allclose(dt_ax.lines[0].get_ydata(), data["dt"]["cumulative"])
    assert len(tt_ax.lines) == len(dt_ax.lines) == 1
    assert "σ" in tt_ax.get_ylabel() and "mean |r|" in dt_ax.get_ylabel()
    # |R_t / (T - t) - r_t| / mean |r|: |4/2 - 1| / 2 = 0.5, |3/1 - 3| / 2 = 0
    np.testing.assert_allclose(data["dt"]["demand_error"], [0.5, 0.0])
    (only,) = _axes(F.error_propagation([tt])[0])  # without DT: one panel
    assert only.get_title().startswith("TT")


def test_leap_iterations_has_no_twin_axes():
    results = {
        1: [Episode("leap", None, rewards=[0.0]), Episode("leap", None, rewards=[0.0])],
        5: [Episode("leap", None, rewards=[0.9]), Episode("leap", None, rewards=[0.0])],
    }
    fig, data = F.leap_iterations(results)
    success_ax, return_ax = fig.axes  # two panels, nothing sharing an x axis with a twin
    assert not success_ax.get_shared_x_axes().get_siblings(success_ax)[1:]
    np.testing.assert_allclose(success_ax.lines[0].get_ydata(), data["success_rate"])
    np.testing.assert_allclose(return_ax.lines[0].get_ydata(), data["mean_return"])
    assert data["success_rate"] == [0.0, 0.5] and data["mean_return"] == [0.0, 0.45]
    assert "fraction" in success_ax.get_ylabel() and "reward units" in return_ax.get_ylabel()


def test_energy_band_is_clipped_at_zero():
    energies = [np.array([1.0, 0.1]), np.array([9.0, 0.1]), np.array([2.0, 2.9])]
    fig, data = F.leap_energy([Episode("leap", None, energies=energies)])
    mean, std = np.mean(energies, 0), np.std(energies, 0)
    assert (mean - std).min() < 0  # the unclipped band would dip below 0
    np.testing.assert_allclose(data["band_low"], np.maximum(mean - std, 0.0))
    np.testing.assert_allclose(data["band_high"], mean + std)
    (ax,) = _axes(fig)
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == 0.0 and np.isclose(band[:, 1].max(), (mean + std).max())
    assert ax.get_ylim()[0] == 0.0
    np.testing.assert_allclose(ax.lines[0].get_ydata(), data["mean"])
