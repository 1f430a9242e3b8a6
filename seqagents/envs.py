"""Environment construction for checkpoints and zoo entries (headless rendering set up here)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import gymnasium as gym

from seqagents.errors import require

__all__ = [
    "make_env",
    "ensure_headless_gl",
    "register_env_package",
    "describe_space",
    "spaces_match",
]

_logger = logging.getLogger(__name__)

# env id prefix -> (package that registers it, seqagents extra that installs it)
_ENV_PACKAGES = (
    ("BabyAI-", "minigrid", "babyai"),
    ("MiniGrid-", "minigrid", "babyai"),
    ("ALE/", "ale_py", "atari"),
)


def ensure_headless_gl() -> str | None:
    """Pick MuJoCo's EGL backend on a Linux machine without a display, unless already chosen.

    Sets ``MUJOCO_GL=egl`` only if ``MUJOCO_GL`` is unset, the platform is Linux and neither
    ``DISPLAY`` nor ``WAYLAND_DISPLAY`` is set (EGL is not available on macOS/Windows, and with a
    display MuJoCo's default GLFW backend works and also serves ``render_mode="human"``). It only
    takes effect if called before ``mujoco`` is imported, e.g. at package import or before the
    first MuJoCo env is made.

    Returns:
        The ``MUJOCO_GL`` value now in effect, or None if unset.

    Example:
        >>> ensure_headless_gl() in (None, "egl", "osmesa", "glfw", "glx")
        True
    """
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if sys.platform.startswith("linux") and headless and "MUJOCO_GL" not in os.environ:
        if "mujoco" in sys.modules:
            _logger.debug("mujoco was imported before MUJOCO_GL was set; setting it anyway")
        os.environ["MUJOCO_GL"] = "egl"
    return os.environ.get("MUJOCO_GL")


def register_env_package(env_id: str) -> None:
    """Import the package that registers ``env_id`` (minigrid, ale-py) if gymnasium lacks it."""
    for prefix, module, extra in _ENV_PACKAGES:
        if env_id.startswith(prefix) and env_id not in gym.registry:
            gym.register_envs(require(module, extra))


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make(env_id, **kwargs)`` with clear errors for missing optional packages.

    Example:
        >>> env = make_env("Pendulum-v1")
        >>> env.observation_space.shape
        (3,)
    """
    ensure_headless_gl()
    register_env_package(env_id)
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as e:
        extra = "mujoco" if "mujoco" in str(e).lower() else "all"
        raise gym.error.DependencyNotInstalled(
            f'{e}; install it with pip install "seqagents[{extra}]"'
        ) from e
    except gym.error.Error as e:
        raise gym.error.Error(
            f"cannot make env {env_id!r}: {e}. Check the id (gymnasium.pprint_registry() lists "
            "the registered ones)"
        ) from e


def describe_space(space: gym.Space) -> str:
    """Short text for error messages: ``Box(shape=(17,), dtype=float64)`` or the space's repr."""
    if isinstance(space, gym.spaces.Box):
        return f"Box(shape={space.shape}, dtype={space.dtype})"
    return repr(space)


def spaces_match(a: gym.Space, b: gym.Space) -> bool:
    """Whether a model made for space ``a`` can act in ``b``: same Box shape, same Discrete n
    (Box bounds and dtypes may differ), otherwise equal."""
    if isinstance(a, gym.spaces.Box) and isinstance(b, gym.spaces.Box):
        return a.shape == b.shape
    if isinstance(a, gym.spaces.Discrete) and isinstance(b, gym.spaces.Discrete):
        return a.n == b.n
    return a == b
