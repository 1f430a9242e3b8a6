"""What TT's beam search buys for what it costs: score and seconds per step over a grid of beam
widths and horizons.

:func:`planner_grid` evaluates one checkpoint at every (beam width, horizon) of a grid, in
batched envs, timing each evaluation; :func:`planner_sweep_figure` draws the measured records
(a pure function of them). From the command line::

    python -m seqagents.analysis.planner_sweep tt/halfcheetah-medium --beam-widths 4 16 32 \\
        --horizons 1 3 5 --episodes 4 --n-envs 4 --out runs/tt-sweep
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["planner_grid", "planner_sweep_figure"]


def planner_grid(
    model: str,
    beam_widths: Sequence[int],
    horizons: Sequence[int],
    *,
    n_episodes: int = 4,
    n_envs: int = 4,
    seed: int = 0,
    max_steps: int | None = None,
    device: str = "cpu",
    log: Any = None,
) -> list[dict[str, Any]]:
    """Evaluate the TT checkpoint ``model`` at every (beam width, horizon).

    Args:
        model: a zoo entry, checkpoint folder or Hub id (loaded once per grid cell with the
            cell's planner settings as overrides).
        beam_widths: beam widths to try.
        horizons: planning horizons to try.
        n_episodes: episodes per cell (the same seeds in every cell).
        n_envs: envs stepped as one batch (one planner call per step for all of them).
        seed: first reset seed.
        max_steps: cut each episode after this many steps (None: the env's limit).
        device: torch device.
        log: called with each record as it is measured.

    Returns:
        One record per cell: ``beam_width``, ``horizon``, ``returns``, ``normalized`` (None
        when the env has no normalization), ``s_per_step`` (wall seconds per batched step).
    """
    import gymnasium as gym

    from seqagents import evaluate_policy, load_agent
    from seqagents.envs import make_env
    from seqagents.scores import has_normalized_score, normalized_score

    records = []
    for horizon in horizons:
        for beam in beam_widths:
            agent = load_agent(model, device=device, beam_width=int(beam), horizon=int(horizon))
            make = functools.partial(make_env, agent.env_id, **agent.config.env_kwargs)
            env = gym.vector.SyncVectorEnv([make] * n_envs) if n_envs > 1 else make()
            start = time.perf_counter()
            returns, lengths = evaluate_policy(
                agent, env, n_eval_episodes=n_episodes, seed=seed, return_episode_rewards=True,
                max_episode_steps=max_steps if n_envs == 1 else None,
            )  # fmt: skip
            wall = time.perf_counter() - start
            env.close()
            steps = -(-int(np.sum(lengths)) // n_envs)  # batched steps, about
            record = {
                "beam_width": int(beam),
                "horizon": int(horizon),
                "returns": [float(r) for r in returns],
                "normalized": (
                    [
                        float(s)
                        for s in np.atleast_1d(normalized_score(np.asarray(returns), agent.env_id))
                    ]
                    if has_normalized_score(agent.env_id)
                    else None
                ),  # fmt: skip
                "s_per_step": wall / max(steps, 1),
                "n_envs": n_envs,
            }
            records.append(record)
            if log is not None:
                log(record)
    return records


def planner_sweep_figure(records: Sequence[dict[str, Any]]) -> tuple:
    """Score (normalized where defined, else return; mean and standard error over episodes)
    against seconds per step, one line per horizon through its beam widths.

    Returns:
        ``(Figure, {"horizon": {h: {"beam_width": [...], "score": [...], "sem": [...],
        "s_per_step": [...]}}, "score": "normalized" | "return"})``.

    Example:
        >>> fig, data = planner_sweep_figure([
        ...     {"beam_width": 4, "horizon": 5, "returns": [1.0, 3.0], "normalized": None,
        ...      "s_per_step": 0.1},
        ...     {"beam_width": 32, "horizon": 5, "returns": [5.0, 5.0], "normalized": None,
        ...      "s_per_step": 0.5}])
        >>> data["horizon"][5]["score"], data["score"]
        ([2.0, 5.0], 'return')
    """
    from seqagents.analysis.plotting import new_figure

    normalized = all(r.get("normalized") is not None for r in records)
    key = "normalized" if normalized else "returns"
    by_horizon: dict[int, dict[str, list]] = {}
    for r in sorted(records, key=lambda r: (r["horizon"], r["beam_width"])):
        values = np.asarray(r[key], dtype=np.float64)
        line = by_horizon.setdefault(
            r["horizon"], {"beam_width": [], "score": [], "sem": [], "s_per_step": []}
        )
        line["beam_width"].append(r["beam_width"])
        line["score"].append(float(values.mean()))
        line["sem"].append(float(values.std() / np.sqrt(len(values))))
        line["s_per_step"].append(float(r["s_per_step"]))
    fig, (ax,) = new_figure(width=5.6, height=4.0)
    for horizon, line in by_horizon.items():
        ax.errorbar(line["s_per_step"], line["score"], yerr=line["sem"], marker="o", capsize=3,
                    label=f"horizon {horizon}")  # fmt: skip
        for x, y, beam in zip(line["s_per_step"], line["score"], line["beam_width"]):
            ax.annotate(f"K={beam}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("planning time (s per step, batched envs)")
    ax.set_ylabel("normalized score" if normalized else "episode return")
    ax.set_title("TT beam search: quality vs compute")
    ax.legend(fontsize=7)
    return fig, {"horizon": by_horizon, "score": "normalized" if normalized else "return"}


def main(argv: list[str] | None = None) -> int:
    """``python -m seqagents.analysis.planner_sweep MODEL ...``: measure the grid, write
    ``planner_sweep.json`` and ``planner_sweep.png`` to ``--out``."""
    from seqagents.analysis.plotting import save_figure

    p = argparse.ArgumentParser(prog="python -m seqagents.analysis.planner_sweep")
    p.add_argument("model", help="TT zoo entry, checkpoint folder or Hub id")
    p.add_argument("--beam-widths", type=int, nargs="+", default=[4, 16, 32])
    p.add_argument("--horizons", type=int, nargs="+", default=[1, 3, 5])
    p.add_argument("--episodes", type=int, default=4, help="episodes per cell (default 4)")
    p.add_argument("--n-envs", type=int, default=4, help="batched envs (default 4)")
    p.add_argument("--seed", type=int, default=0, help="first reset seed (default 0)")
    p.add_argument("--max-steps", type=int, help="cut episodes (one env only)")
    p.add_argument("--out", required=True, help="output folder")
    args = p.parse_args(argv)
    records = planner_grid(
        args.model, args.beam_widths, args.horizons, n_episodes=args.episodes,
        n_envs=args.n_envs, seed=args.seed, max_steps=args.max_steps,
        log=lambda r: print(json.dumps(r), flush=True),
    )  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "planner_sweep_records.json").write_text(json.dumps(records, indent=1))
    fig, data = planner_sweep_figure(records)
    print(save_figure(fig, data, out, "planner_sweep"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
