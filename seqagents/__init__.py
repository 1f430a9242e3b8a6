"""seqagents: pretrained sequence-model agents (DT, TT, LEAP) for gymnasium loops.

The names below are imported on first use (PEP 562), so ``import seqagents`` and
``seqagents --help`` do not pay for torch (issue 28: ``--help`` took 3-8 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from seqagents._gl import ensure_headless_gl
from seqagents._version import __version__ as __version__  # the one place (pyproject reads it)

ensure_headless_gl()  # before anything imports mujoco

from seqagents.envs import register_known_envs  # noqa: E402  (gymnasium; torch stays lazy)

register_known_envs()  # ALE and BabyAI ids for plain gym.make; MuJoCo's warnings to logging

__all__ = [
    # agents
    "Agent",
    "SequenceAgent",
    "DecisionTransformerAgent",
    "TrajectoryTransformerAgent",
    "LEAPAgent",
    "load_agent",
    # evaluation and videos
    "evaluate_policy",
    "evaluation_report",
    "EvaluationReport",
    "episode_successes",
    "SB3Adapter",
    "EpisodeStarts",
    "normalized_score",
    "has_normalized_score",
    "record_video",
    # training
    "train",
    # envs
    "make_env",
    "ensure_headless_gl",
    "BabyAIPrivileged",
    "MissionTokens",
    # checkpoints: the agent's typed config (AgentConfig) and the saved config.json layout
    "AgentConfig",
    "CheckpointConfig",
    # errors
    "CheckpointError",
    "MissingDependencyError",
]

# public name -> the module that defines it
_LAZY = {
    **dict.fromkeys(
        (
            "Agent",
            "CheckpointConfig",
            "DecisionTransformerAgent",
            "LEAPAgent",
            "SequenceAgent",
            "TrajectoryTransformerAgent",
            "load_agent",
        ),
        "seqagents.agents",
    ),
    **dict.fromkeys(("BabyAIPrivileged", "MissionTokens", "make_env"), "seqagents.envs"),
    **dict.fromkeys(("CheckpointError", "MissingDependencyError"), "seqagents.errors"),
    **dict.fromkeys(
        ("EpisodeStarts", "SB3Adapter", "episode_successes", "evaluate_policy"),
        "seqagents.evaluation",
    ),
    **dict.fromkeys(("EvaluationReport", "evaluation_report"), "seqagents.report"),
    **dict.fromkeys(("has_normalized_score", "normalized_score"), "seqagents.scores"),
    "AgentConfig": "seqagents.config",
    "record_video": "seqagents.video",
    "train": "seqagents.training",
}


def __getattr__(name: str) -> Any:
    """Import a public name (or a submodule such as ``seqagents.zoo``) on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise  # a dependency of that submodule is missing: say so
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from seqagents.agents import (
        Agent,
        CheckpointConfig,
        DecisionTransformerAgent,
        LEAPAgent,
        SequenceAgent,
        TrajectoryTransformerAgent,
        load_agent,
    )
    from seqagents.config import AgentConfig
    from seqagents.envs import BabyAIPrivileged, MissionTokens, make_env
    from seqagents.errors import CheckpointError, MissingDependencyError
    from seqagents.evaluation import EpisodeStarts, SB3Adapter, episode_successes, evaluate_policy
    from seqagents.report import EvaluationReport, evaluation_report
    from seqagents.scores import has_normalized_score, normalized_score
    from seqagents.training import train
    from seqagents.video import record_video
