"""Planners: pure functions that take a model (TT discretizer and beam search; LEAP refinement)."""

from seqagents.planning.beam_search import Plan, TokenModel, beam_plan
from seqagents.planning.discretizer import Discretizer, trajectory_transitions
from seqagents.planning.refinement import LEAPPlan, plan_energy, refine_plan

__all__ = [
    # Trajectory Transformer
    "Discretizer",
    "trajectory_transitions",
    "beam_plan",
    "Plan",
    "TokenModel",
    # LEAP
    "refine_plan",
    "plan_energy",
    "LEAPPlan",
]
