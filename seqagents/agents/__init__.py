"""Agents: one file per algorithm, all behind :class:`~seqagents.agents.base.SequenceAgent`;
checkpoint I/O in ``io.py``, input checks in ``checks.py``, return conditioning and state
normalization (DT, LEAP) in ``conditioning.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqagents.agents.base import Agent, AgentConfig, CheckpointConfig, SequenceAgent
from seqagents.agents.dt import DecisionTransformerAgent
from seqagents.agents.leap import LEAPAgent
from seqagents.agents.tt import TrajectoryTransformerAgent

__all__ = [
    "Agent",
    "AgentConfig",
    "CheckpointConfig",
    "SequenceAgent",
    "DecisionTransformerAgent",
    "TrajectoryTransformerAgent",
    "LEAPAgent",
    "load_agent",
]


def load_agent(repo_id_or_path: str | Path, **kwargs: Any) -> SequenceAgent:
    """Load any seqagents checkpoint (or supported foreign one), whatever its algorithm.

    Example:
        >>> agent = load_agent("some/checkpoint-repo")  # doctest: +SKIP
    """
    return SequenceAgent.from_pretrained(repo_id_or_path, **kwargs)
