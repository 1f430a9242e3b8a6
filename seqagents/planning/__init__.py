"""Planners: pure functions that take a model (TT discretizer and beam search)."""

from seqagents.planning.beam_search import Plan, TokenModel, beam_plan
from seqagents.planning.discretizer import Discretizer, trajectory_transitions

__all__ = [
    # Trajectory Transformer
    "Discretizer",
    "trajectory_transitions",
    "beam_plan",
    "Plan",
    "TokenModel",
]
