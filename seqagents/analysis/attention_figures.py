"""Attention figures: heatmaps, where attention goes (recent steps, token roles), attention
distance, head entropy and sparsity.

The "decision query" of a step is the token whose output the agent acts on: DT the ``s_t``
token (it predicts ``a_t``), TT the last context token (it predicts the first action token),
LEAP the current step's ``s_c`` token (the logits of ``a_c``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from seqagents.analysis.capture import key_steps, token_roles
from seqagents.analysis.plotting import MODEL_COLORS, moving_average, new_figure
from seqagents.analysis.rollouts import Episode

__all__ = [
    "MAX_TICKS",
    "attention_allocation",
    "attention_distance",
    "attention_heatmaps",
    "attention_sparsity",
    "head_entropy",
]

_SHORT = {"rtg": "R", "state": "s", "action": "a", "reward": "r", "value": "V"}

MAX_TICKS = 10
"""Most token labels per heatmap axis (each labels a step's first token), so they stay legible."""
TICK_FONTSIZE = 8


# ------------------------------------------------------------------------------ attention helpers
def _step_maps(episode: Episode, t: int) -> list[np.ndarray] | None:
    """Per layer ``(n_head, T, S)`` weights of step ``t``, averaged over its network calls of the
    same shape as the first (LEAP: refinement iterations and energy passes)."""
    calls = episode.attention[t] if t < len(episode.attention) else []
    if not calls:
        return None
    shape = calls[0][0].shape
    same = [call for call in calls if call[0].shape == shape]
    return [np.mean([call[layer] for call in same], axis=0) for layer in range(len(calls[0]))]


def _decision_query(episode: Episode, n_keys: int) -> int:
    """Row of the decision query among ``n_keys`` (module docstring)."""
    if episode.algorithm == "dt":
        return n_keys - 2  # s_t of [.., R_t, s_t, a_t]
    if episode.algorithm == "leap":
        k = episode.config.tokens_per_step
        return episode.config.history_len * k + k - 2  # s_c
    return n_keys - 1  # TT: the current observation's last token


def _all_maps(episodes: Sequence[Episode], full: bool = False) -> list[list[np.ndarray]]:
    """Every recorded step's per-layer maps (steps without a network call skipped); ``full``:
    only steps whose window holds no padding (the last query gives weight to every key the
    layout lets it see; padded keys get exact zeros)."""
    maps = []
    for e in episodes:
        for t in range(len(e.attention)):
            m = _step_maps(e, t)
            if m is not None and full:
                _, T, S = m[0].shape
                m = m if (m[0][:, -1][:, _allowed(e, T, S)[-1]] > 0).all() else None
            if m is not None:
                maps.append(m)
    return maps


def _labels(episode: Episode, n_keys: int) -> list[str]:
    roles = token_roles(episode.algorithm, episode.config, n_keys)
    steps = key_steps(episode.algorithm, episode.config, n_keys)
    return [f"{_SHORT[r]}{s:+d}" if s else _SHORT[r] for r, s in zip(roles, steps)]


def _row_stats(weights: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entropy (nats) and ``1 - entropy / log(n_allowed)`` of each attention row ``(..., S)``."""
    p = np.where(allowed, weights, 0.0)
    entropy = -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1)
    n = allowed.sum(-1)
    sparsity = np.where(n > 1, 1.0 - entropy / np.log(np.maximum(n, 2)), 1.0)
    return entropy, sparsity


def _allowed(episode: Episode, T: int, S: int) -> np.ndarray:
    """``(T, S)`` keys a query may attend to by the model's layout (causal for DT/TT, TT's
    value tokens hidden, LEAP all); padding is left out by the rollout's own zeros."""
    if episode.algorithm == "leap":
        return np.ones((T, S), dtype=bool)
    rows = np.arange(T)[:, None] + (S - T)
    allowed = np.arange(S)[None, :] <= rows  # (T, S)
    if episode.algorithm == "tt":
        D = episode.config.transition_dim
        allowed &= (np.arange(S) % D != D - 1)[None, :]
    return allowed


# ------------------------------------------------------------------------------ figures
def attention_heatmaps(episodes: Sequence[Episode], max_steps: int | None = None) -> tuple:
    """Attention maps per layer, averaged over heads and over every recorded step whose window
    is full (no padding) and of the most common shape, with token-role axes; the colour scale
    stops at the 99th percentile of the weights (so one dominant key does not hide the rest).

    Args:
        episodes: rollouts recorded with attention (DT, TT or LEAP).
        max_steps: average over at most this many such steps (None: all).

    Returns:
        ``(Figure, {"algorithm", "labels", "layers": [(T, S) mean map per layer], "n_steps"})``.

    Example:
        >>> dt_layer = np.tril(np.ones((6, 6))) / np.arange(1, 7)[:, None]  # (T, S) causal
        >>> episode = Episode("dt", None, attention=[[[dt_layer[None]]]])  # 1 step, 1 layer
        >>> fig, data = attention_heatmaps([episode])  # real ones: run_rollouts(agent, env)
        >>> data["labels"]
        ['R-1', 's-1', 'a-1', 'R', 's', 'a']
    """
    maps = _all_maps(episodes, full=True) or _all_maps(episodes)
    if not maps:
        raise ValueError("the episodes hold no attention (record them with capture=True)")
    shape = Counter(m[0].shape for m in maps).most_common(1)[0][0]
    maps = [m for m in maps if m[0].shape == shape][:max_steps]
    layers = [np.mean([m[layer] for m in maps], axis=0).mean(0) for layer in range(len(maps[0]))]
    T, S = layers[0].shape
    labels = _labels(episodes[0], S)
    ticks = _heatmap_ticks(episodes[0], S)
    rows = [j - (S - T) for j in ticks if j >= S - T]
    fig, axes = new_figure(len(layers), width=5.6, height=5.0, columns=3)  # one panel per layer
    for i, (ax, weights) in enumerate(zip(axes, layers)):
        top = float(np.quantile(weights[weights > 0], 0.99)) if (weights > 0).any() else 1.0
        image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=top, aspect="auto")
        ax.set_xticks(ticks, [labels[j] for j in ticks], rotation=90, fontsize=TICK_FONTSIZE)
        ax.set_yticks(rows, [labels[j + S - T] for j in rows], fontsize=TICK_FONTSIZE)
        ax.set_title(f"layer {i} (mean over heads)")
        ax.set_xlabel("key token (role, step offset)")
        ax.set_ylabel("query token")
        fig.colorbar(image, ax=ax, shrink=0.8, label="attention weight (probability)")
    fig.suptitle(f"{episodes[0].algorithm.upper()} attention, {len(maps)} steps")
    data = {
        "algorithm": episodes[0].algorithm,
        "labels": labels,
        "tick_labels": [labels[j] for j in ticks],
        "n_steps": len(maps),
        "layers": layers,
    }
    return fig, data


def _heatmap_ticks(episode: Episode, n_keys: int) -> list[int]:
    """Key tokens to label: every token when they fit (<= MAX_TICKS), else the first token of
    every k-th step (k so that at most MAX_TICKS remain), always with the newest step's."""
    if n_keys <= MAX_TICKS:
        return list(range(n_keys))
    steps = key_steps(episode.algorithm, episode.config, n_keys)
    firsts = [j for j in range(n_keys) if j == 0 or steps[j] != steps[j - 1]]  # a step's first
    stride = -(-len(firsts) // MAX_TICKS)  # ceil
    chosen = firsts[::-1][::stride][::-1]  # counted back from the newest step
    return chosen[-MAX_TICKS:]


def attention_allocation(episode: Episode, recent: int = 3, window: int | None = None) -> tuple:
    """Where the decision query's attention goes over an episode: RTG tokens (TT: its reward
    and value tokens), the ``recent`` latest steps (the current one included), older steps and
    (LEAP) the planned future steps, as fractions of 1 averaged over layers and heads. The
    figure shows them smoothed by a centred moving average over ``window`` steps (they still
    sum to 1 at every step); the numbers hold both.

    Args:
        episode: one rollout recorded with attention.
        recent: steps that count as recent.
        window: moving-average window in steps (None: about 1/25 of the episode, odd, at
            least 1; 1 = unsmoothed).

    Returns:
        ``(Figure, {"step": [...], "<category>": [fraction per step], ..., "window": w,
        "smoothed": {"<category>": [...]}})``.

    Example:
        >>> uniform = np.tril(np.ones((6, 6))) / np.arange(1, 7)[:, None]  # (T, S) causal
        >>> episode = Episode("dt", None, attention=[[[uniform[None]]]])  # s_t sees 5 keys
        >>> fig, data = attention_allocation(episode)
        >>> round(data["RTG"][0], 6), round(data["recent"][0], 6), data["older"]
        (0.4, 0.6, [0.0])
    """
    returns = {"rtg"} if episode.algorithm != "tt" else {"reward", "value"}
    categories = ["RTG" if episode.algorithm != "tt" else "reward/value", "recent", "older"]
    if episode.algorithm == "leap":
        categories.append("future (plan)")
    rows: dict[str, list[float]] = {c: [] for c in categories}
    steps = []
    for t in range(len(episode.attention)):
        maps = _step_maps(episode, t)
        if maps is None:
            continue
        S = maps[0].shape[-1]
        q = _decision_query(episode, S) - (S - maps[0].shape[-2])
        w = np.mean([m[:, q] for m in maps], axis=(0, 1))  # (S,) over layers and heads
        roles = np.array(token_roles(episode.algorithm, episode.config, S))
        offset = key_steps(episode.algorithm, episode.config, S)
        is_return = np.isin(roles, list(returns))
        parts = [is_return, ~is_return & (offset > -recent) & (offset <= 0)]
        parts.append(~is_return & (offset <= -recent))
        if episode.algorithm == "leap":
            parts.append(~is_return & (offset > 0))
        for name, part in zip(categories, parts):
            rows[name].append(float(w[part].sum()))
        steps.append(t)
    if not steps:
        raise ValueError("the episode holds no attention (record it with capture=True)")
    if window is None:
        window = max(1, len(steps) // 25) | 1  # odd: centred exactly
    smoothed = {c: moving_average(rows[c], window) for c in categories}
    fig, (ax,) = new_figure(width=6.0)
    ax.stackplot(steps, *[smoothed[c] for c in categories], labels=categories, alpha=0.85)
    ax.set_xlabel("episode step t")
    ax.set_ylabel("share of the decision query's attention")
    ax.set_ylim(0, 1)
    if len(steps) > 1:
        ax.set_xlim(steps[0], steps[-1])
    ax.legend(loc="upper right", fontsize=7)
    smoothing = f", {window}-step moving average" if window > 1 else ""
    ax.set_title(
        f"{episode.algorithm.upper()} attention allocation (recent = last {recent}{smoothing})"
    )
    return fig, {
        "step": steps,
        "recent_steps": recent,
        **rows,
        "window": window,
        "smoothed": smoothed,
    }


def _tt_maps(episodes: Sequence[Episode]) -> list[list[np.ndarray]]:
    if not episodes or episodes[0].algorithm != "tt":
        raise ValueError("this figure is for Trajectory Transformer rollouts")
    maps = _all_maps(episodes)
    if not maps:
        raise ValueError("the episodes hold no attention (record them with capture=True)")
    return maps


def attention_distance(episodes: Sequence[Episode]) -> tuple:
    """TT: how far back each layer looks: the attention-weighted distance ``sum_j w_ij (i - j)``
    from each query token to its keys, in tokens, averaged over queries, heads and steps (mean
    and standard deviation over query rows); also in transitions (``/ transition_dim``).

    Returns:
        ``(Figure, {"layer": [...], "mean_tokens": [...], "std_tokens": [...],
        "mean_transitions": [...]})``.

    Example:
        >>> from seqagents.models.tt import TTConfig
        >>> config = TTConfig(observation_dim=1, action_dim=1, transition_dim=4)
        >>> last_key = np.eye(5)[[0, 0, 1, 2, 3]]  # (T, S): every query on the key before it
        >>> episode = Episode("tt", config, attention=[[[last_key[None]]]])
        >>> fig, data = attention_distance([episode])
        >>> data["mean_tokens"]
        [0.8]
    """
    maps = _tt_maps(episodes)
    D = episodes[0].config.transition_dim
    means, stds = [], []
    for layer in range(len(maps[0])):
        rows = []
        for m in maps:
            _, T, S = m[layer].shape
            distance = (np.arange(T)[:, None] + (S - T)) - np.arange(S)[None, :]  # (T, S)
            rows.append((m[layer] * distance).sum(-1).reshape(-1))  # (n_head * T,)
        rows_all = np.concatenate(rows)
        means.append(float(rows_all.mean()))
        stds.append(float(rows_all.std()))
    fig, (ax,) = new_figure()
    layers = list(range(len(means)))
    ax.bar(layers, means, yerr=stds, capsize=3, color=MODEL_COLORS["TT"])
    ax.set_xlabel("layer")
    ax.set_ylabel("attention distance (tokens back)")
    ax.set_xticks(layers)
    ax.set_title(f"TT: how far back it looks ({D} tokens per transition)")
    transitions = [m / D for m in means]
    data = {"layer": layers, "mean_tokens": means, "std_tokens": stds}
    return fig, {**data, "mean_transitions": transitions}


def head_entropy(episodes: Sequence[Episode]) -> tuple:
    """TT: the entropy (nats) of each head's attention rows, averaged over queries and steps,
    per layer and head; low = a specialised head, high = a broad one.

    Returns:
        ``(Figure, {"entropy": [[per head] per layer]})``.

    Example:
        >>> from seqagents.models.tt import TTConfig
        >>> config = TTConfig(observation_dim=1, action_dim=1, transition_dim=4)
        >>> first_key = np.eye(3)[[0, 0, 0]]  # (T, S): every query on key 0, entropy 0
        >>> episode = Episode("tt", config, attention=[[[first_key[None]]]])
        >>> fig, data = head_entropy([episode])
        >>> data["entropy"].tolist()
        [[0.0]]
    """
    maps = _tt_maps(episodes)
    n_layer, n_head = len(maps[0]), maps[0][0].shape[0]
    entropy = np.zeros((n_layer, n_head))
    for layer in range(n_layer):
        values = []
        for m in maps:
            _, T, S = m[layer].shape
            live = _allowed(episodes[0], T, S)[None] & (m[layer] > 0)  # padding: exact zeros
            h, _ = _row_stats(m[layer], live)  # (n_head, T)
            values.append(h)
        entropy[layer] = np.concatenate(values, axis=1).mean(1)
    fig, axes = new_figure(n_layer, width=2.6, height=3.0)
    for layer, ax in enumerate(axes):
        ax.bar(range(n_head), entropy[layer], color=MODEL_COLORS["TT"])
        ax.set_xticks(range(n_head), [f"H{h}" for h in range(n_head)])
        ax.set_title(f"layer {layer}")
        ax.set_xlabel("head")
        if layer == 0:
            ax.set_ylabel("attention entropy (nats)")
    fig.suptitle("TT head entropy")
    return fig, {"entropy": entropy}


def attention_sparsity(models: Mapping[str, Sequence[Episode]]) -> tuple:
    """Attention sparsity per model: for every attention row (step, layer, head, query) over
    the keys it may attend to, ``sparsity = 1 - entropy / log(n_keys)`` (1 = one key, 0 =
    uniform); its mean and variance per model, and the mean and variance of the weights.

    Args:
        models: ``{"DT": episodes, "TT": episodes, ...}`` recorded with attention.

    The figure has one panel per quantity: sparsity (mean ± std over rows, per model) and the
    attention weight of a key (a probability; mean ± std).

    Returns:
        ``(Figure, {name: {"sparsity_mean", "sparsity_var", "weight_mean", "weight_var"}})``.

    Example:
        >>> one_key = np.eye(3)[[0, 1, 2]][None]  # (1, T, S): each query on itself
        >>> fig, data = attention_sparsity({"DT": [Episode("dt", None, attention=[[[one_key]]])]})
        >>> data["DT"]["sparsity_mean"]
        1.0
    """
    data = {}
    for name, episodes in models.items():
        sparsity, weights = [], []
        for m in _all_maps(episodes):
            for layer_map in m:
                _, T, S = layer_map.shape
                # The mask's keys: the layout's, less padding (exact zeros of the softmax).
                live = _allowed(episodes[0], T, S)[None] & (layer_map > 0)
                _, s = _row_stats(layer_map, live)
                sparsity.append(s.reshape(-1))
                weights.append(layer_map[live])
        if not sparsity:
            raise ValueError(f"the {name} episodes hold no attention")
        s_all, w_all = np.concatenate(sparsity), np.concatenate(weights)
        data[name] = {
            "sparsity_mean": float(s_all.mean()),
            "sparsity_var": float(s_all.var()),
            "weight_mean": float(w_all.mean()),
            "weight_var": float(w_all.var()),
        }
    panels = [
        ("sparsity", "sparsity 1 - H / ln(n keys)  (0 uniform, 1 one key)", (0.0, 1.0)),
        ("weight", "attention weight of a key (probability)", (0.0, None)),
    ]
    fig, axes = new_figure(2, width=4.2)
    names = list(data)
    x = np.arange(len(names))
    for ax, (quantity, unit, limits) in zip(axes, panels):
        means = [data[n][f"{quantity}_mean"] for n in names]
        stds = [float(np.sqrt(data[n][f"{quantity}_var"])) for n in names]
        colors = [MODEL_COLORS.get(n.upper(), "tab:gray") for n in names]
        ax.bar(x, means, yerr=stds, capsize=4, color=colors)
        ax.set_xticks(x, names)
        ax.set_ylabel(unit, fontsize=8)
        ax.set_ylim(*limits)
        ax.set_title(f"{quantity} (mean ± std)")
    fig.suptitle("attention sparsity")
    return fig, data
