"""Environment construction for checkpoints and zoo entries (headless rendering set up here)."""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym

__all__ = ["make_env", "ensure_headless_gl"]


def ensure_headless_gl() -> None:
    """Select MuJoCo's EGL backend unless the user chose one (must precede ``import mujoco``)."""
    os.environ.setdefault("MUJOCO_GL", "egl")


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make(env_id, **kwargs)`` with clear errors for missing optional packages."""
    ensure_headless_gl()
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as e:
        extra = "mujoco" if "mujoco" in str(e).lower() else "all"
        raise gym.error.DependencyNotInstalled(
            f"{e}; install it with pip install \"seqagents[{extra}]\""
        ) from e
