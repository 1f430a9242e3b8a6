"""The seed document's analyses as pure functions: recorded data -> (Figure, numbers).

Every function takes :class:`~seqagents.analysis.rollouts.Episode` s (or a run's metrics) and
returns a matplotlib :class:`~matplotlib.figure.Figure` (made without pyplot: no global state,
any backend) and a JSON-able dict of the numbers it draws; :func:`save_figure` writes both.
matplotlib is the ``analysis`` extra: ``pip install "seqagents[analysis]"``.

The functions live by family: :mod:`.attention_figures`, :mod:`.rollout_figures`,
:mod:`.training_figures`, with what they share in :mod:`.plotting`; this module gathers them.
"""

from __future__ import annotations

from seqagents.analysis.attention_figures import (
    MAX_TICKS,
    attention_allocation,
    attention_distance,
    attention_heatmaps,
    attention_sparsity,
    head_entropy,
)
from seqagents.analysis.catalog import FIGURES
from seqagents.analysis.plotting import moving_average, save_figure
from seqagents.analysis.rollout_figures import (
    compute_cost,
    error_propagation,
    leap_energy,
    leap_iterations,
    rtg_tracking,
    target_return_sweep,
)
from seqagents.analysis.training_figures import read_metrics, training_curves

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
    "MAX_TICKS",
]
