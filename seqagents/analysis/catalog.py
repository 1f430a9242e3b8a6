"""The figures ``seqagents analyze`` draws, by name: importable without torch or matplotlib, so
``seqagents --help`` lists them fast (:mod:`seqagents.analysis.figures` re-exports it)."""

from __future__ import annotations

__all__ = ["FIGURES"]

FIGURES = {
    "heatmaps": ("attention heatmaps per layer", ("dt", "tt", "leap")),
    "allocation": ("attention allocation over an episode", ("dt", "tt", "leap")),
    "rtg": ("return-to-go tracking", ("dt", "leap")),
    "targets": ("achieved vs target return", ("dt", "leap")),
    "distance": ("TT attention distance per layer", ("tt",)),
    "entropy": ("TT attention entropy per layer and head", ("tt",)),
    "errors": ("DT vs TT error propagation", ("tt",)),
    "sparsity": ("attention sparsity (with --compare: DT vs TT)", ("dt", "tt", "leap")),
    "cost": ("TT ms/step vs beam width (--compare: DT/LEAP lines)", ("tt",)),
    "energy": ("LEAP energy vs refinement iteration", ("leap",)),
    "iterations": ("LEAP success vs refinement iterations", ("leap",)),
}
"""``seqagents analyze --figures`` names: (what it draws, algorithms it applies to)."""
