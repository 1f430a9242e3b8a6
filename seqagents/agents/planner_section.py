"""The saved planner section of TT and LEAP checkpoints (``config.json`` ``inference["planner"]``).

One flat dict, the layout every checkpoint has: the planner's settings (a
:class:`~seqagents.planning.BeamSearchConfig` or :class:`~seqagents.planning.RefinementConfig`,
which validates them) and the agent's own settings next to them (the planning seed; LEAP's
``replan_every``), which the planner never sees.
"""

from __future__ import annotations

from typing import Any, TypeVar

from seqagents.planning._settings import PlannerSettings

__all__ = ["override_planner_section", "read_planner_section", "write_planner_section"]

Settings = TypeVar("Settings", bound=PlannerSettings)


def read_planner_section(
    section: dict[str, Any], settings_class: type[Settings], **agent_defaults: int
) -> tuple[Settings, dict[str, int]]:
    """Split a saved section into the planner's settings and the agent's (the keys of
    ``agent_defaults``, each an int, defaulting to its value there).

    Example:
        >>> from seqagents.planning import BeamSearchConfig
        >>> config, own = read_planner_section({"beam_width": 32, "seed": 3}, BeamSearchConfig,
        ...                                    seed=0)
        >>> config.beam_width, own
        (32, {'seed': 3})
    """
    settings, own = dict(section), {}
    for key, default in agent_defaults.items():
        value = settings.pop(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key} must be an int, got {value!r}")
        own[key] = value
    return settings_class.from_dict(settings), own


def write_planner_section(settings: PlannerSettings, **agent_settings: int) -> dict[str, Any]:
    """The section to save: the planner's settings, then the agent's."""
    return {**settings.to_dict(), **agent_settings}


def override_planner_section(
    section: dict[str, Any],
    settings_class: type[PlannerSettings],
    overrides: dict[str, Any],
    **agent_defaults: int,
) -> dict[str, Any]:
    """The complete section with ``overrides``: the agent's settings (keys of
    ``agent_defaults``) set, the planner's through ``replace`` (their one validation). The agent
    checks its own when it reads the section."""
    settings, own = read_planner_section(section, settings_class, **agent_defaults)
    own.update((k, v) for k, v in overrides.items() if k in agent_defaults)
    theirs = {k: v for k, v in overrides.items() if k not in agent_defaults}
    return write_planner_section(settings.replace(**theirs), **own)
