"""See inside the agents: attention capture, recorded rollouts and the seed's analysis figures.

- :mod:`seqagents.analysis.capture`: :func:`capture_attention`, exact weights, free when off.
- :mod:`seqagents.analysis.rollouts`: :func:`run_rollouts` records episodes (observations,
  actions, rewards, returns-to-go, attention) and the sweeps some figures need.
- :mod:`seqagents.analysis.figures`: pure functions ``recorded data -> (Figure, numbers)``
  (matplotlib: ``pip install "seqagents[analysis]"``).
- ``seqagents analyze`` / ``seqagents plot`` (:mod:`seqagents.analysis.cli`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_CAPTURE = (
    "ROLES",
    "AttentionRecord",
    "AttentionRecorder",
    "capture_attention",
    "key_steps",
    "token_roles",
)
_ROLLOUTS = ("Episode", "run_rollouts", "sweep")  # figures: seqagents.analysis.figures (matplotlib)
__all__ = [*_CAPTURE, *_ROLLOUTS]

# Imported on first use (PEP 562): ``seqagents.analysis.cli`` registers the commands without
# importing torch, which keeps ``seqagents --help`` fast.
_LAZY = {
    **dict.fromkeys(_CAPTURE, "seqagents.analysis.capture"),
    **dict.fromkeys(_ROLLOUTS, "seqagents.analysis.rollouts"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # names in __all__ through _CAPTURE and _ROLLOUTS
    from seqagents.analysis.capture import (  # noqa: F401
        ROLES,
        AttentionRecord,
        AttentionRecorder,
        capture_attention,
        key_steps,
        token_roles,
    )
    from seqagents.analysis.rollouts import Episode, run_rollouts, sweep  # noqa: F401
