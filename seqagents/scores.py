"""Normalized scores: D4RL locomotion (HalfCheetah, Hopper, Walker2d) and Atari gamer-normalized.

Both use ``score = 100 * (R - low) / (high - low)`` with per-task reference returns ``low``
(random policy) and ``high`` (D4RL expert / human gamer). The Decision Transformer paper reports
its tables in these units (DT paper, Tables 1 and 2).

Example:
    >>> round(normalized_score(4800.0, "HalfCheetah-v5"), 1)
    40.9
    >>> normalized_score([1.7, 30.5], "ALE/Breakout-v5").tolist()
    [0.0, 100.0]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple, overload

import numpy as np
import numpy.typing as npt

__all__ = ["REFERENCE_SCORES", "ReferenceScore", "has_normalized_score", "normalized_score"]


class ReferenceScore(NamedTuple):
    """Reference returns of one task: ``score = 100 * (R - low) / (high - low)``."""

    low: float  # return of a random policy (score 0)
    high: float  # return of the D4RL expert / the human gamer (score 100)
    kind: str  # "d4rl" or "atari-gamer"


# Sources:
# - D4RL (Fu et al. 2020), d4rl/infos.py REF_MIN_SCORE / REF_MAX_SCORE for the gym locomotion
#   tasks; the same constants serve the -v0/-v1/-v2 datasets and are used by the DT paper.
# - Atari random / professional-gamer returns used for the DT paper's gamer-normalized scores
#   (Chen et al. 2021, Section 5.1 / Table 1).
# Both as listed in docs/references.md section 4.
# Keys are canonical task names; see _canonical_task for the env ids that map onto them.
REFERENCE_SCORES: Mapping[str, ReferenceScore] = MappingProxyType(
    {
        "halfcheetah": ReferenceScore(-280.178953, 12135.0, "d4rl"),
        "hopper": ReferenceScore(-20.272305, 3234.3, "d4rl"),
        "walker2d": ReferenceScore(1.629008, 4592.3, "d4rl"),
        "breakout": ReferenceScore(1.7, 30.5, "atari-gamer"),
        "qbert": ReferenceScore(163.9, 13455.0, "atari-gamer"),
        "pong": ReferenceScore(-20.7, 14.6, "atari-gamer"),
        "seaquest": ReferenceScore(68.4, 42054.7, "atari-gamer"),
    }
)

_VERSION = re.compile(r"-v\d+$")
_ATARI_VARIANTS = ("noframeskip", "deterministic")


def _canonical_part(part: str) -> str:
    """``"HalfCheetah-v5"`` -> ``"halfcheetah"``, ``"BreakoutNoFrameskip-v4"`` -> ``"breakout"``,
    ``"halfcheetah-medium-replay-v2"`` -> ``"halfcheetah"``."""
    name = _VERSION.sub("", part.strip().lower())
    name = name.split("-")[0]
    for variant in _ATARI_VARIANTS:
        name = name.replace(variant, "")
    return name.replace("_", "").replace(" ", "")


def _canonical_task(env_id_or_task: str) -> str | None:
    # Every "/"-separated part is tried, so "ALE/Breakout-v5", "mujoco/halfcheetah/medium-v0"
    # (Minari) and "atari/breakout/expert-v0" all resolve.
    for part in str(env_id_or_task).split("/"):
        name = _canonical_part(part)
        if name in REFERENCE_SCORES:
            return name
    return None


def has_normalized_score(env_id: str) -> bool:
    """Whether :func:`normalized_score` knows reference returns for ``env_id``.

    Example:
        >>> has_normalized_score("Hopper-v5"), has_normalized_score("CartPole-v1")
        (True, False)
    """
    return _canonical_task(env_id) is not None


@overload
def normalized_score(returns: float, env_id_or_task: str) -> float: ...
@overload
def normalized_score(returns: npt.ArrayLike, env_id_or_task: str) -> float | np.ndarray: ...
def normalized_score(returns: npt.ArrayLike, env_id_or_task: str) -> float | np.ndarray:
    """Normalize episode returns: ``100 * (R - low) / (high - low)``.

    D4RL normalization for halfcheetah / hopper / walker2d, Atari gamer normalization for
    Breakout / Qbert / Pong / Seaquest (see :data:`REFERENCE_SCORES`).

    Args:
        returns: one return (gives a float) or an array of returns (gives an array).
        env_id_or_task: an env id (``"HalfCheetah-v5"``, ``"ALE/Breakout-v5"``,
            ``"BreakoutNoFrameskip-v4"``), a D4RL / Minari dataset name
            (``"halfcheetah-medium-v2"``, ``"mujoco/hopper/medium-v0"``) or a task name
            (``"walker2d"``, ``"pong"``). Case-insensitive.

    Returns:
        The normalized score(s); 0 = random policy, 100 = expert (D4RL) or human gamer (Atari).

    Raises:
        KeyError: no reference returns are known for ``env_id_or_task``.

    Example:
        >>> round(normalized_score(6000.0, "halfcheetah-medium"), 2)
        50.58
    """
    task = _canonical_task(env_id_or_task)
    if task is None:
        known = ", ".join(sorted(REFERENCE_SCORES))
        raise KeyError(
            f"no normalized score for {env_id_or_task!r}; known tasks: {known} "
            "(env ids such as 'HalfCheetah-v5' or 'ALE/Breakout-v5' are accepted too)"
        )
    ref = REFERENCE_SCORES[task]
    scores = 100.0 * (np.asarray(returns, dtype=np.float64) - ref.low) / (ref.high - ref.low)
    return float(scores) if scores.ndim == 0 else scores
