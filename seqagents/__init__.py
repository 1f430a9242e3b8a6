"""seqagents: pretrained sequence-model agents (DT, TT, LEAP) for gymnasium loops."""

from __future__ import annotations

__version__ = "0.1.0"

from seqagents.agents import (  # noqa: E402
    Agent,
    CheckpointConfig,
    DecisionTransformerAgent,
    SequenceAgent,
    load_agent,
)
from seqagents.errors import CheckpointError, MissingDependencyError  # noqa: E402

__all__ = [
    # agents
    "Agent",
    "SequenceAgent",
    "DecisionTransformerAgent",
    "load_agent",
    # checkpoints
    "CheckpointConfig",
    # errors
    "CheckpointError",
    "MissingDependencyError",
]
