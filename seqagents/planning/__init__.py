"""Planners: pure functions that take a model (TT discretizer and beam search; LEAP refinement)."""

from seqagents.planning.beam_decoder import TokenModel
from seqagents.planning.beam_search import BeamSearchConfig, Plan, beam_plan
from seqagents.planning.discretizer import Discretizer, trajectory_transitions
from seqagents.planning.refinement import LEAPPlan, RefinementConfig, plan_energy, refine_plan

__all__ = [
    # Trajectory Transformer
    "Discretizer",
    "trajectory_transitions",
    "beam_plan",
    "BeamSearchConfig",
    "Plan",
    "TokenModel",
    # LEAP
    "refine_plan",
    "RefinementConfig",
    "plan_energy",
    "LEAPPlan",
]
