"""seqagents: pretrained sequence-model agents (DT, TT, LEAP) for gymnasium loops."""

from __future__ import annotations

__version__ = "0.1.0"

from seqagents.agents import (  # noqa: E402
    Agent,
    CheckpointConfig,
    DecisionTransformerAgent,
    LEAPAgent,
    SequenceAgent,
    TrajectoryTransformerAgent,
    load_agent,
)
from seqagents.envs import (  # noqa: E402
    BabyAIPrivileged,
    MissionTokens,
    ensure_headless_gl,
    make_env,
    register_known_envs,
)

ensure_headless_gl()  # before anything imports mujoco
register_known_envs()  # ALE and BabyAI ids for plain gym.make; MuJoCo's warnings to logging

from seqagents.errors import CheckpointError, MissingDependencyError  # noqa: E402
from seqagents.evaluation import (  # noqa: E402
    EpisodeStarts,
    SB3Adapter,
    episode_successes,
    evaluate_policy,
)
from seqagents.scores import has_normalized_score, normalized_score  # noqa: E402
from seqagents.video import record_video  # noqa: E402

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
    "episode_successes",
    "SB3Adapter",
    "EpisodeStarts",
    "normalized_score",
    "has_normalized_score",
    "record_video",
    # envs
    "make_env",
    "ensure_headless_gl",
    "BabyAIPrivileged",
    "MissionTokens",
    # checkpoints
    "CheckpointConfig",
    # errors
    "CheckpointError",
    "MissingDependencyError",
]
