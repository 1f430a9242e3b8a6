"""Training figures: a run's ``metrics.jsonl`` read back and drawn as loss/evaluation curves."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seqagents.analysis.plotting import new_figure

__all__ = ["read_metrics", "training_curves"]


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
        (
            k
            # mean_reward: metrics.jsonl written before the one vocabulary (seqagents.report)
            for k in ("normalized_score", "success_rate", "mean_return", "mean_reward")
            if evals and k in evals[0]
        ),
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
    fig, axes = new_figure(panels, width=4.0, height=3.2)
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
