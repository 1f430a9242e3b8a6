"""What the planners' frozen settings dataclasses share: strict dict round trips and overrides."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from seqagents.errors import reject_unknown_keys

__all__ = ["PlannerSettings"]


class PlannerSettings:
    """Mixin of :class:`~seqagents.planning.BeamSearchConfig` and
    :class:`~seqagents.planning.RefinementConfig`: each validates itself in ``__post_init__``,
    so :meth:`from_dict` and :meth:`replace` run the one validation."""

    _kind: ClassVar[str] = "planner settings"  # names the settings in errors

    def to_dict(self) -> dict[str, Any]:
        """The settings as saved in a checkpoint's ``inference["planner"]`` section."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Settings from a saved section; unknown keys or wrong types are a ``TypeError``."""
        reject_unknown_keys(cls, data, f"unknown {cls._kind}", TypeError)
        return cls(**data)

    def replace(self, **overrides: Any) -> Any:
        """A copy with ``overrides`` (``dataclasses.replace``), checked as :meth:`from_dict`."""
        reject_unknown_keys(type(self), overrides, f"unknown {self._kind}", TypeError)
        return dataclasses.replace(self, **overrides)  # type: ignore[type-var]
