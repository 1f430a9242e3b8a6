"""See inside the agents: attention capture, recorded rollouts and the seed's analysis figures.

- :mod:`seqagents.analysis.capture`: :func:`capture_attention`, exact weights, free when off.
- :mod:`seqagents.analysis.rollouts`: :func:`run_rollouts` records episodes (observations,
  actions, rewards, returns-to-go, attention) and the sweeps some figures need.
- :mod:`seqagents.analysis.figures`: pure functions ``recorded data -> (Figure, numbers)``
  (matplotlib: ``pip install "seqagents[analysis]"``).
- ``seqagents analyze`` / ``seqagents plot`` (:mod:`seqagents.analysis.cli`).
"""

from seqagents.analysis.capture import (
    ROLES,
    AttentionRecord,
    AttentionRecorder,
    capture_attention,
    key_steps,
    token_roles,
)
from seqagents.analysis.rollouts import Episode, run_rollouts, sweep

__all__ = [
    # capture
    "ROLES",
    "AttentionRecord",
    "AttentionRecorder",
    "capture_attention",
    "key_steps",
    "token_roles",
    # rollouts (figures: seqagents.analysis.figures, needs matplotlib)
    "Episode",
    "run_rollouts",
    "sweep",
]
