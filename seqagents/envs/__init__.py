"""Env construction for checkpoints and zoo entries, one factory per env family.

- :func:`make_gym_env` (:mod:`.base`): ``gymnasium.make`` with headless rendering and clear errors;
- :func:`make_babyai_env` (:mod:`.babyai`): BabyAI/MiniGrid levels, LEAP's privileged observations;
- :func:`make_atari_env` (:mod:`.atari`): the Atari evaluation pipeline;
- :func:`make_env`: rebuilds the env a checkpoint or zoo entry saved as ``env_id`` + ``env_kwargs``
  (:func:`env_factory` picks the factory).

Registration of known ids (:mod:`.registry`), MuJoCo render settings (:mod:`.mujoco`) and space
helpers (:mod:`.spaces`) live beside them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym

from seqagents._gl import ensure_headless_gl
from seqagents.envs import babyai as _babyai
from seqagents.envs.atari import ATARI_PREPROCESSING_KWARG, make_atari_env
from seqagents.envs.babyai import (  # noqa: F401 (in __all__ through _babyai.__all__)
    PRIVILEGED_KWARG,
    BabyAIPrivileged,
    MissionTokens,
    QuietStdout,
    babyai_goal_candidates,
    is_babyai_env,
    make_babyai_env,
)
from seqagents.envs.base import make_gym_env
from seqagents.envs.mujoco import render_kwargs
from seqagents.envs.registry import _OnFirstImport as _OnFirstImport  # tests count these finders
from seqagents.envs.registry import (
    check_env_id_from_file,
    register_env_package,
    register_known_envs,
)
from seqagents.envs.spaces import _is_text as _is_text  # evaluation's MissionTokens check
from seqagents.envs.spaces import describe_space, spaces_match, storable_space

__all__ = [
    "make_env",
    "env_factory",
    "make_gym_env",
    "check_env_id_from_file",
    "ensure_headless_gl",
    "register_env_package",
    "register_known_envs",
    "render_kwargs",
    "describe_space",
    "spaces_match",
    "storable_space",
    *_babyai.__all__,
    # Atari
    "ATARI_PREPROCESSING_KWARG",
    "make_atari_env",
]


def env_factory(
    env_id: str, env_kwargs: Mapping[str, Any]
) -> tuple[Callable[..., gym.Env], dict[str, Any]]:
    """The factory that builds a saved ``env_id`` + ``env_kwargs`` pair, and the kwargs it takes.

    ``ALE/`` ids with ``atari_preprocessing=True`` (:data:`ATARI_PREPROCESSING_KWARG`, the key
    checkpoints and zoo entries store) → :func:`make_atari_env` with the other kwargs;
    BabyAI/MiniGrid ids → :func:`make_babyai_env` (``privileged`` is its argument); any other id
    → :func:`make_gym_env`. This is the one place that reads those keys.

    Example:
        >>> factory, kwargs = env_factory("ALE/Breakout-v5", {"atari_preprocessing": True})
        >>> factory.__name__, kwargs
        ('make_atari_env', {})
    """
    kwargs = dict(env_kwargs)
    if kwargs.pop(ATARI_PREPROCESSING_KWARG, False):
        return make_atari_env, kwargs
    if is_babyai_env(env_id):
        if PRIVILEGED_KWARG in kwargs:
            kwargs[PRIVILEGED_KWARG] = bool(kwargs[PRIVILEGED_KWARG])
        return make_babyai_env, kwargs
    return make_gym_env, kwargs


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """The env a checkpoint or zoo entry names (``env_id`` + its saved ``env_kwargs``), built by
    its family's factory (:func:`env_factory`): ``gymnasium.make`` with clear errors for missing
    optional packages; BabyAI/MiniGrid levels wrapped in :class:`QuietStdout` (and
    :class:`BabyAIPrivileged` with ``privileged=True``); ``ALE/`` ids with
    ``atari_preprocessing=True`` as the Atari evaluation pipeline (:func:`make_atari_env`).

    Example:
        >>> env = make_env("Pendulum-v1")
        >>> env.observation_space.shape
        (3,)
    """
    factory, kwargs = env_factory(env_id, kwargs)
    return factory(env_id, **kwargs)
