"""The plain env factory: ``gymnasium.make`` with headless rendering, the env's package imported on
demand, MuJoCo's camera checked and clear errors for missing optional packages. The BabyAI and
Atari factories build on it."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from seqagents._gl import ensure_headless_gl
from seqagents.envs.mujoco import _check_camera, _route_mujoco_warnings
from seqagents.envs.registry import register_env_package

__all__ = ["make_gym_env"]


def make_gym_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make(env_id, **kwargs)`` with clear errors for missing optional packages and
    unknown ids; ``camera_name`` (MuJoCo envs only) must name one of the model's cameras.

    Example:
        >>> env = make_gym_env("Pendulum-v1")
        >>> env.observation_space.shape
        (3,)
    """
    ensure_headless_gl()
    register_env_package(env_id)
    mujoco_env = _route_mujoco_warnings(env_id)
    if kwargs.get("camera_name") is not None and not mujoco_env:
        raise ValueError(f"a camera name applies to MuJoCo envs only; {env_id} is not one")
    try:
        env = gym.make(env_id, **kwargs)
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
    if "camera_name" in kwargs:
        _check_camera(env, kwargs["camera_name"])
    return env
