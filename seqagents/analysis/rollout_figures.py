"""Rollout figures: return-to-go tracking, target-return sweeps, TT/DT error propagation,
compute cost per step, and LEAP's plan energy and refinement iterations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from seqagents.analysis.plotting import MODEL_COLORS, new_figure
from seqagents.analysis.rollouts import Episode

__all__ = [
    "compute_cost",
    "error_propagation",
    "leap_energy",
    "leap_iterations",
    "rtg_tracking",
    "target_return_sweep",
]


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
    fig, (ax,) = new_figure()
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
    fig, (ax,) = new_figure()
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
    fig, axes = new_figure(len(panels), width=4.8)
    for ax, (key, title, unit) in zip(axes, panels):
        ax.plot(data[key]["cumulative"], color=MODEL_COLORS[key.upper()])
        ax.set_yscale("log")
        ax.set_xlabel("episode step t")
        ax.set_ylabel(unit)
        ax.set_title(title)
    fig.suptitle("error propagation (each model its own error, see the docstring)")
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
    fig, (ax,) = new_figure()
    ax.plot(beams, tt_ms, marker="o", color=MODEL_COLORS["TT"], label="TT (beam search)")
    for name, ms in refs.items():
        ax.axhline(ms, linestyle="--", color=MODEL_COLORS.get(name), label=f"{name} (reference)")
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
    fig, (ax,) = new_figure()
    ax.plot(iterations, mean, marker="o", color=MODEL_COLORS["LEAP"], label="mean over plans")
    ax.fill_between(iterations, low, high, alpha=0.25, color=MODEL_COLORS["LEAP"], label="± std")
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
    fig, (left, right) = new_figure(2, width=4.2)  # two quantities, two axes (no twin axis)
    left.plot(counts, success, marker="o", color=MODEL_COLORS["LEAP"])
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
