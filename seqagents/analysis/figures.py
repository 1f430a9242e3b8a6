"""The seed document's analyses as pure functions: recorded data -> (Figure, numbers).

Every function takes :class:`~seqagents.analysis.rollouts.Episode` s (or a run's metrics) and
returns a matplotlib :class:`~matplotlib.figure.Figure` (made without pyplot: no global state,
any backend) and a JSON-able dict of the numbers it draws; :func:`save_figure` writes both.
matplotlib is the ``analysis`` extra: ``pip install "seqagents[analysis]"``.

The "decision query" of a step is the token whose output the agent acts on: DT the ``s_t``
token (it predicts ``a_t``), TT the last context token (it predicts the first action token),
LEAP the current step's ``s_c`` token (the logits of ``a_c``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seqagents.analysis.capture import key_steps, token_roles
from seqagents.analysis.catalog import FIGURES  # noqa: F401  (re-exported: F.FIGURES)
from seqagents.analysis.rollouts import Episode
from seqagents.errors import require

__all__ = [
    "FIGURES",
    "attention_heatmaps",
    "attention_allocation",
    "rtg_tracking",
    "target_return_sweep",
    "attention_distance",
    "head_entropy",
    "error_propagation",
    "attention_sparsity",
    "compute_cost",
    "leap_energy",
    "leap_iterations",
    "training_curves",
    "read_metrics",
    "save_figure",
    "moving_average",
]

_SHORT = {"rtg": "R", "state": "s", "action": "a", "reward": "r", "value": "V"}
_COLORS = {"DT": "tab:blue", "TT": "tab:orange", "LEAP": "tab:green"}


def _figure(
    n_axes: int = 1, width: float = 5.0, height: float = 3.6, columns: int | None = None
) -> tuple[Any, list[Any]]:
    """A pyplot-free Figure with ``n_axes`` panels, ``columns`` per row (default: one row);
    ``width``/``height`` are one panel's, in inches."""
    require("matplotlib", "analysis")
    from matplotlib.figure import Figure

    cols = min(n_axes, columns or n_axes)
    rows = -(-n_axes // cols)  # ceil
    fig = Figure(figsize=(width * cols, height * rows), dpi=80, layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False).reshape(-1))
    for extra in axes[n_axes:]:
        extra.remove()
    return fig, axes[:n_axes]


MAX_TICKS = 10
"""Most token labels per heatmap axis (each labels a step's first token), so they stay legible."""
TICK_FONTSIZE = 8


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Centred moving average over ``window`` points (odd windows are centred exactly); at the
    ends the mean of the points the window covers, so the length is unchanged and a constant
    stays constant.

    Example:
        >>> moving_average([0.0, 3.0, 0.0, 3.0], 3).tolist()
        [1.5, 1.0, 2.0, 1.5]
    """
    x = np.asarray(values, dtype=np.float64)
    if window <= 1 or x.size == 0:
        return x.copy()
    kernel = np.ones(int(window))
    total = np.convolve(x, kernel, mode="same")
    count = np.convolve(np.ones_like(x), kernel, mode="same")
    return total / count


def save_figure(fig: Any, data: dict, out_dir: str | os.PathLike[str], name: str) -> Path:
    """Write ``out_dir/name.png`` and the numbers behind it, ``out_dir/name.json``.

    Example:
        >>> import tempfile
        >>> fig, data = training_curves([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}])
        >>> save_figure(fig, data, tempfile.mkdtemp(), "curves").suffix
        '.png'
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.savefig(path)
    (out / f"{name}.json").write_text(json.dumps(_jsonable(data)) + "\n")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


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
    fig, axes = _figure(len(layers), width=5.6, height=5.0, columns=3)  # one panel per layer
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
    fig, (ax,) = _figure(width=6.0)
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


def rtg_tracking(episodes: Sequence[Episode]) -> tuple:
    """The commanded return-to-go ``R_t`` (``agent.returns_to_go`` when ``a_t`` was chosen)
    against ``G_t``, the return the episode actually collected from step t on.

    ``R_t - G_t`` is the tracking error; it equals ``R_0 - G_0`` (target minus achieved return)
    at every step, since both decrease by ``r_t``.

    Returns:
        ``(Figure, {"episodes": [{"commanded": [...], "collected_after": [...]}, ...]})``.

    Example:
        >>> episode = Episode("dt", None, rewards=[1.0, 2.0], returns_to_go=[5.0, 4.0])
        >>> fig, data = rtg_tracking([episode])  # real ones: run_rollouts(dt_agent, env, 3)
        >>> data["episodes"][0]["collected_after"].tolist()
        [3.0, 2.0]
    """
    if not any(e.returns_to_go for e in episodes):
        raise ValueError("these episodes have no returns-to-go (DT or return-conditioned LEAP)")
    fig, (ax,) = _figure()
    rows = []
    for i, e in enumerate(episodes):
        commanded, after = np.asarray(e.returns_to_go), e.return_after()
        line = ax.plot(commanded, label=f"commanded R_t (ep {i})")[0]
        ax.plot(after, linestyle="--", color=line.get_color(), label=f"collected G_t (ep {i})")
        rows.append({"commanded": commanded, "collected_after": after})
    ax.set_xlabel("episode step t")
    ax.set_ylabel("return to go (reward units)")
    ax.legend(fontsize=7)
    ax.set_title("return-to-go tracking")
    return fig, {"episodes": rows}


def target_return_sweep(
    results: Mapping[float, Sequence[Episode]], dataset_best: float | None = None
) -> tuple:
    """Achieved return against the target return it was conditioned on (DT paper Fig. 4), the
    ``y = x`` line for reference and, when known, the dataset's best episode return.

    Args:
        results: :func:`~seqagents.analysis.rollouts.sweep` over ``"target_return"``.
        dataset_best: the best return in the training data (None: not drawn).

    Returns:
        ``(Figure, {"target": [...], "mean": [...], "std": [...], "dataset_best": ...})``.

    Example:
        >>> results = {10.0: [Episode("dt", None, rewards=[4.0])],
        ...            20.0: [Episode("dt", None, rewards=[6.0])]}  # sweep(agent, env, ...)
        >>> fig, data = target_return_sweep(results, dataset_best=8.0)
        >>> data["mean"]
        [4.0, 6.0]
    """
    targets = [float(t) for t in results]
    achieved = [[e.episode_return for e in results[t]] for t in results]
    mean = [float(np.mean(a)) for a in achieved]
    std = [float(np.std(a)) for a in achieved]
    fig, (ax,) = _figure()
    ax.errorbar(targets, mean, yerr=std, marker="o", capsize=3, label="achieved return")
    ax.plot(targets, targets, linestyle=":", color="grey", label="achieved = target")
    if dataset_best is not None:
        ax.axhline(dataset_best, color="tab:red", linestyle="--", label="best in dataset")
    ax.set_xlabel("target return (reward units)")
    ax.set_ylabel("achieved return (reward units)")
    ax.legend(fontsize=7)
    ax.set_title("achieved vs target return")
    data = {"target": targets, "mean": mean, "std": std, "returns": achieved}
    return fig, {**data, "dataset_best": dataset_best}


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
    fig, (ax,) = _figure()
    layers = list(range(len(means)))
    ax.bar(layers, means, yerr=stds, capsize=3, color=_COLORS["TT"])
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
    fig, axes = _figure(n_layer, width=2.6, height=3.0)
    for layer, ax in enumerate(axes):
        ax.bar(range(n_head), entropy[layer], color=_COLORS["TT"])
        ax.set_xticks(range(n_head), [f"H{h}" for h in range(n_head)])
        ax.set_title(f"layer {layer}")
        ax.set_xlabel("head")
        if layer == 0:
            ax.set_ylabel("attention entropy (nats)")
    fig.suptitle("TT head entropy")
    return fig, {"entropy": entropy}


def error_propagation(
    tt_episodes: Sequence[Episode], dt_episodes: Sequence[Episode] | None = None
) -> tuple:
    """Cumulative prediction error over an episode, log scale.

    TT (a world model): at step t its best beam holds the model's greedy prediction of the next
    state given the executed action ``a_t`` (plan transition 1, needs ``horizon >= 2``) and of
    the reward ``r_t`` (plan transition 0). Its error is ``e_t = sqrt(mean_d ((s^_{t+1,d} -
    s_{t+1,d}) / sigma_d)^2)``, ``sigma_d`` the standard deviation of state dimension ``d`` over
    the recorded episodes; the reward error ``|r^_t - r_t|`` is reported beside it.

    DT predicts no states (its state head is never trained: action loss only), so it
    contributes the error of its conditioning signal instead: at step t it is told to collect
    ``R_t`` in the ``T - t`` steps left, i.e. ``R_t / (T - t)`` per step; ``d_t = |R_t / (T - t) -
    r_t| / mean_t |r_t|`` is how far the reward it got is from the one it was asked for (``T``:
    the env's time limit, else the episode's length). Both are cumulative (``sum_{tau <= t}``)
    and measure different things, each model's own way of going wrong: so each has its own
    panel and unit (TT: state standard deviations; DT: multiples of the mean |reward|).

    Returns:
        ``(Figure, {"tt": {"state_error", "reward_error", "cumulative"}, "dt": {...} | None})``.

    Example:
        >>> from seqagents.models.tt import TTConfig
        >>> config = TTConfig(observation_dim=1, action_dim=1, transition_dim=4)
        >>> plans = [np.array([[0.0, 0.0, 1.0, 0.0], [0.5, 0.0, 0.0, 0.0]])]  # (horizon, D)
        >>> episode = Episode("tt", config, observations=[np.zeros(1), np.ones(1)],
        ...                   rewards=[1.0], plans=plans)  # s_1 = 1 predicted 0.5, r_0 exact
        >>> fig, data = error_propagation([episode])  # state sigma 0.5: error 1 sigma
        >>> data["tt"]["state_error"].round(6).tolist(), data["tt"]["reward_error"].tolist()
        ([1.0], [0.0])
    """
    if not tt_episodes or tt_episodes[0].algorithm != "tt":
        raise ValueError("error_propagation needs Trajectory Transformer rollouts")
    cfg = tt_episodes[0].config
    obs_dim, act_dim = cfg.observation_dim, cfg.action_dim
    states = np.concatenate([np.asarray(e.observations, dtype=np.float64) for e in tt_episodes])
    sigma = states.reshape(len(states), -1).std(0) + 1e-8  # (obs_dim,)
    e0 = tt_episodes[0]
    plans = np.asarray(e0.plans)  # (T, horizon, transition_dim)
    if plans.ndim != 3 or plans.shape[1] < 2:
        raise ValueError("error_propagation needs TT plans with horizon >= 2")
    real_next = np.asarray(e0.observations[1 : len(plans) + 1], dtype=np.float64)  # (T, obs)
    state_error = np.sqrt((((plans[:, 1, :obs_dim] - real_next) / sigma) ** 2).mean(-1))  # (T,)
    reward_error = np.abs(plans[:, 0, obs_dim + act_dim] - np.asarray(e0.rewards[: len(plans)]))
    data: dict[str, Any] = {
        "tt": {
            "state_error": state_error,
            "reward_error": reward_error,
            "cumulative": np.cumsum(state_error),
        },
        "dt": None,
    }
    if dt_episodes:
        d = dt_episodes[0]
        if not d.returns_to_go:
            raise ValueError("the DT episodes have no returns-to-go")
        r, rtg = np.asarray(d.rewards), np.asarray(d.returns_to_go)
        left = max(d.time_limit or 0, d.length) - np.arange(d.length)  # (T,) steps left, >= 1
        demand_error = np.abs(rtg / left - r) / (np.abs(r).mean() + 1e-8)  # (T,)
        data["dt"] = {"demand_error": demand_error, "cumulative": np.cumsum(demand_error)}
    panels = [("tt", "TT next-state error", "cumulative state error (state std units, σ)")]
    if data["dt"] is not None:
        panels.append(("dt", "DT reward-demand error", "cumulative demand error (× mean |r|)"))
    fig, axes = _figure(len(panels), width=4.8)
    for ax, (key, title, unit) in zip(axes, panels):
        ax.plot(data[key]["cumulative"], color=_COLORS[key.upper()])
        ax.set_yscale("log")
        ax.set_xlabel("episode step t")
        ax.set_ylabel(unit)
        ax.set_title(title)
    fig.suptitle("error propagation (each model its own error, see the docstring)")
    return fig, data


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
    fig, axes = _figure(2, width=4.2)
    names = list(data)
    x = np.arange(len(names))
    for ax, (quantity, unit, limits) in zip(axes, panels):
        means = [data[n][f"{quantity}_mean"] for n in names]
        stds = [float(np.sqrt(data[n][f"{quantity}_var"])) for n in names]
        colors = [_COLORS.get(n.upper(), "tab:gray") for n in names]
        ax.bar(x, means, yerr=stds, capsize=4, color=colors)
        ax.set_xticks(x, names)
        ax.set_ylabel(unit, fontsize=8)
        ax.set_ylim(*limits)
        ax.set_title(f"{quantity} (mean ± std)")
    fig.suptitle("attention sparsity")
    return fig, data


def _ms_per_step(episodes: Sequence[Episode]) -> float:
    times = np.concatenate([np.asarray(e.step_time_s[1:] or e.step_time_s) for e in episodes])
    return float(np.median(times) * 1e3)


def compute_cost(
    tt_by_beam: Mapping[float, Sequence[Episode]],
    references: Mapping[str, Sequence[Episode]] | None = None,
) -> tuple:
    """Measured ``predict`` time (median ms per step, first step of each episode left out) of TT
    against its beam width, with other agents (DT, LEAP) as horizontal reference lines.

    Args:
        tt_by_beam: :func:`~seqagents.analysis.rollouts.sweep` over ``"beam_width"``.
        references: ``{"DT": episodes, "LEAP": episodes}`` (measured on their own envs).

    Returns:
        ``(Figure, {"beam_width": [...], "tt_ms_per_step": [...], "references": {...}})``.

    Example:
        >>> by_beam = {4: [Episode("tt", None, step_time_s=[0.5, 0.01, 0.01])],
        ...            16: [Episode("tt", None, step_time_s=[0.5, 0.03, 0.03])]}
        >>> fig, data = compute_cost(by_beam, {"DT": [Episode("dt", None, step_time_s=[0.002])]})
        >>> data["tt_ms_per_step"], data["references"]
        ([10.0, 30.0], {'DT': 2.0})
    """
    beams = [int(b) for b in tt_by_beam]
    tt_ms = [_ms_per_step(tt_by_beam[b]) for b in tt_by_beam]
    refs = {name: _ms_per_step(eps) for name, eps in (references or {}).items()}
    fig, (ax,) = _figure()
    ax.plot(beams, tt_ms, marker="o", color=_COLORS["TT"], label="TT (beam search)")
    for name, ms in refs.items():
        ax.axhline(ms, linestyle="--", color=_COLORS.get(name), label=f"{name} (reference)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("beam width K")
    ax.set_ylabel("predict time (ms per step)")
    ax.legend(fontsize=7)
    ax.set_title("compute cost per step")
    return fig, {"beam_width": beams, "tt_ms_per_step": tt_ms, "references": refs}


def leap_energy(episodes: Sequence[Episode]) -> tuple:
    """LEAP: the plan's energy (negative pseudo-log-likelihood, nats) after each refinement
    iteration, mean and spread over every plan of the episodes (iteration 0 = the parallel
    fill of the all-MASK plan).

    The band is mean ± std clipped at 0 (an energy is a negative log-likelihood: never below 0).

    Returns:
        ``(Figure, {"iteration": [...], "mean": [...], "std": [...], "band_low": [...],
        "band_high": [...], "n_plans": n})``.

    Example:
        >>> episode = Episode("leap", None, energies=[np.array([9.0, 3.0]), np.array([7.0, 1.0])])
        >>> fig, data = leap_energy([episode])  # real ones: run_rollouts(leap_agent, env, 3)
        >>> data["mean"].tolist()
        [8.0, 2.0]
    """
    plans = [np.asarray(x) for e in episodes for x in e.energies]
    if not plans:
        raise ValueError("no LEAP plan energies in these episodes (LEAP rollouts record them)")
    energy = np.stack(plans)  # (n_plans, iterations)
    mean, std = energy.mean(0), energy.std(0)
    low, high = np.maximum(mean - std, 0.0), mean + std  # energies are >= 0
    iterations = np.arange(energy.shape[1])
    fig, (ax,) = _figure()
    ax.plot(iterations, mean, marker="o", color=_COLORS["LEAP"], label="mean over plans")
    ax.fill_between(iterations, low, high, alpha=0.25, color=_COLORS["LEAP"], label="± std")
    ax.set_xlabel("refinement iteration")
    ax.set_ylabel("plan energy (nats)")
    ax.set_ylim(bottom=0.0)
    ax.legend(fontsize=7)
    ax.set_title(f"LEAP energy, {len(plans)} plans")
    data = {"iteration": iterations, "mean": mean, "std": std, "band_low": low, "band_high": high}
    return fig, {**data, "n_plans": len(plans)}


def leap_iterations(results: Mapping[float, Sequence[Episode]]) -> tuple:
    """LEAP: success rate (episode return > 0, BabyAI's definition) and mean return against the
    number of refinement iterations.

    Args:
        results: :func:`~seqagents.analysis.rollouts.sweep` over ``"n_iterations"``.

    Returns:
        ``(Figure, {"n_iterations": [...], "success_rate": [...], "mean_return": [...]})``.

    Example:
        >>> results = {1: [Episode("leap", None, rewards=[0.0])],
        ...            5: [Episode("leap", None, rewards=[0.9])]}  # sweep(agent, env, ...)
        >>> fig, data = leap_iterations(results)
        >>> data["success_rate"]
        [0.0, 1.0]
    """
    counts = [int(n) for n in results]
    success = [float(np.mean([e.episode_return > 0 for e in results[n]])) for n in results]
    mean_return = [float(np.mean([e.episode_return for e in results[n]])) for n in results]
    fig, (left, right) = _figure(2, width=4.2)  # two quantities, two axes (no twin axis)
    left.plot(counts, success, marker="o", color=_COLORS["LEAP"])
    left.set_ylabel("success rate (fraction of episodes)")
    left.set_ylim(-0.05, 1.05)
    left.set_title("success rate")
    right.plot(counts, mean_return, marker="s", color="tab:gray")
    right.set_ylabel("mean return (reward units)")
    right.set_title("mean return")
    for ax in (left, right):
        ax.set_xlabel("refinement iterations")
        ax.set_xticks(counts)
    fig.suptitle("LEAP: refinement iterations")
    data = {"n_iterations": counts, "success_rate": success, "mean_return": mean_return}
    return fig, {**data, "n_episodes": [len(results[n]) for n in results]}


def read_metrics(run_dir: str | os.PathLike[str]) -> list[dict]:
    """The records of ``run_dir/metrics.jsonl`` (or of ``run_dir`` itself if it is the file).

    Raises:
        FileNotFoundError: no metrics.jsonl there.
        ValueError: a line is not JSON.

    Example:
        ``records = read_metrics("runs/dt-halfcheetah-medium")``
    """
    path = Path(run_dir)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: pass a run folder holding metrics.jsonl")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number} is not JSON ({e})") from e
    if not records:
        raise ValueError(f"{path} holds no records")
    return records


def training_curves(records: Sequence[Mapping[str, Any]]) -> tuple:
    """Training curves of a run: loss, learning rate and, when the run evaluated, the eval
    score (normalized score, else success rate, else mean return) against the step.

    Args:
        records: :func:`read_metrics` of a run folder.

    Returns:
        ``(Figure, {"step", "loss", "lr", "eval_step", "eval_score", "eval_metric"})``.

    Example:
        >>> fig, data = training_curves([{"step": 1, "loss": 2.0, "lr": 1e-4}])
        >>> data["loss"]
        [2.0]
    """
    train = [r for r in records if "loss" in r]
    evals = [r["eval"] for r in records if isinstance(r.get("eval"), dict)]
    metric = next(
        (k for k in ("normalized_score", "success_rate", "mean_reward") if evals and k in evals[0]),
        None,
    )
    data: dict[str, Any] = {
        "step": [r.get("step") for r in train],
        "loss": [r["loss"] for r in train],
        "lr": [r.get("lr") for r in train],
        "eval_metric": metric,
        "eval_step": [e.get("step") for e in evals] if metric else [],
        "eval_score": [e.get(metric) for e in evals] if metric else [],
    }
    panels = 2 + (metric is not None)
    fig, axes = _figure(panels, width=4.0, height=3.2)
    axes[0].plot(data["step"], data["loss"], color="tab:blue")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("training loss (log)")
    axes[1].plot(data["step"], [np.nan if v is None else v for v in data["lr"]], color="tab:purple")
    axes[1].set_ylabel("learning rate")
    if metric:
        axes[2].plot(data["eval_step"], data["eval_score"], marker="o", color="tab:green")
        axes[2].set_ylabel(f"eval {metric}")
    for ax in axes:
        ax.set_xlabel("gradient step")
    fig.suptitle("training curves")
    return fig, data
