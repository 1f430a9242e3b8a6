"""A checkpoint's evaluation protocol: how its published numbers were measured.

The protocol is saved with the checkpoint (``config.json`` section ``protocol``) and every
evaluation entry point follows it unless told otherwise: :func:`seqagents.evaluate_policy`,
:func:`seqagents.record_video`, and ``seqagents evaluate|record|enjoy|benchmark|push``.
``predict`` keeps its documented default (greedy), as SB3's does.

Why it matters: greedy play on Atari never presses FIRE after a lost ball (Breakout scores 0),
so the Atari agents are evaluated with sampled actions, as the DT paper and rl-zoo do.

The target return is not repeated here: it is the agent's inference default
(``agent.target_return``). ``max_episode_steps`` caps episodes on top of the env's own limit
(None: the env's own, e.g. HalfCheetah's 1,000 steps or ALE's 108,000 frames).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from seqagents.errors import reject_unknown_keys

__all__ = ["EvaluationProtocol", "resolve_protocol"]


@dataclass(frozen=True)
class EvaluationProtocol:
    """How a checkpoint is evaluated.

    Example:
        >>> EvaluationProtocol.from_dict({"deterministic": False}).describe(target_return=17)
        'sampled actions, target return 17'
        >>> EvaluationProtocol().describe()
        'greedy actions'
    """

    deterministic: bool = True  # greedy actions (True) or sampled from the policy (False)
    max_episode_steps: int | None = None  # episode cap over the env's own; None = the env's

    def __post_init__(self) -> None:
        if not isinstance(self.deterministic, bool):
            raise TypeError(f"protocol.deterministic must be a bool, got {self.deterministic!r}")
        cap = self.max_episode_steps
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(f"protocol.max_episode_steps must be an int >= 1 or None, got {cap!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationProtocol:
        reject_unknown_keys(cls, data, "unknown protocol keys")
        return cls(**data)

    @classmethod
    def of_checkpoint(cls, protocol: dict[str, Any], evaluation: dict[str, Any]) -> Any:
        """The protocol of a saved config: its ``protocol`` section, else (configs written
        before the section existed) the sampling mode its stored evaluation was measured with."""
        if protocol:
            return cls.from_dict(protocol)
        if isinstance(evaluation.get("deterministic"), bool):
            return cls(deterministic=evaluation["deterministic"])
        return cls()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self, target_return: float | None = None) -> str:
        """The protocol in words, as every evaluation output prints it."""
        parts = ["greedy actions" if self.deterministic else "sampled actions"]
        if target_return is not None:
            parts.append(f"target return {target_return:g}")
        if self.max_episode_steps is not None:
            parts.append(f"at most {self.max_episode_steps} steps per episode")
        return ", ".join(parts)


def resolve_protocol(
    model: Any, deterministic: bool | None, max_episode_steps: int | None = None
) -> tuple[bool, int | None]:
    """``(deterministic, max_episode_steps)``: the caller's values where given, else the model's
    protocol (a seqagents agent), else greedy and no extra cap (an SB3 model).

    Example:
        >>> resolve_protocol(object(), None)
        (True, None)
        >>> resolve_protocol(object(), False, 50)
        (False, 50)
    """
    protocol = getattr(model, "protocol", None)
    if not isinstance(protocol, EvaluationProtocol):
        protocol = EvaluationProtocol()
    return (
        protocol.deterministic if deterministic is None else bool(deterministic),
        protocol.max_episode_steps if max_episode_steps is None else max_episode_steps,
    )
