"""Observation and action spaces as checkpoints and datasets compare, describe and store them."""

from __future__ import annotations

import string

import gymnasium as gym
import numpy as np

__all__ = ["describe_space", "spaces_match", "storable_space"]


def describe_space(space: gym.Space) -> str:
    """Short text for error messages: ``Box(shape=(17,), dtype=float64)`` or the space's repr."""
    if isinstance(space, gym.spaces.Box):
        return f"Box(shape={space.shape}, dtype={space.dtype})"
    if isinstance(space, gym.spaces.Dict):
        items = ", ".join(f"{k}={describe_space(v)}" for k, v in space.spaces.items())
        return f"Dict({items})"
    if isinstance(space, gym.spaces.Text):
        return f"Text(max_length={space.max_length})"
    return repr(space)


def spaces_match(a: gym.Space, b: gym.Space) -> bool:
    """Whether a model made for space ``a`` can act in ``b``: same Box shape, same Discrete n
    (Box bounds and dtypes may differ), Dicts key by key, any two text spaces (minigrid's
    MissionSpace is stored as ``Text``), otherwise equal."""
    if isinstance(a, gym.spaces.Box) and isinstance(b, gym.spaces.Box):
        return a.shape == b.shape
    if isinstance(a, gym.spaces.Discrete) and isinstance(b, gym.spaces.Discrete):
        return a.n == b.n
    if isinstance(a, gym.spaces.Dict) and isinstance(b, gym.spaces.Dict):
        return a.spaces.keys() == b.spaces.keys() and all(
            spaces_match(a[key], b[key]) for key in a.spaces
        )
    if _is_text(a) and _is_text(b):  # minigrid's MissionSpace is stored as Text in datasets
        return True
    if (_is_text(a) and _is_token_box(b)) or (_is_token_box(a) and _is_text(b)):
        return True  # mission text vs the word ids of MissionTokens (checked when read)
    return a == b


def _is_token_box(space: gym.Space) -> bool:
    """A 1-D integer Box: the word ids :class:`MissionTokens` puts in place of mission text."""
    return (
        isinstance(space, gym.spaces.Box)
        and len(space.shape) == 1
        and np.issubdtype(space.dtype, np.integer)
    )


def _is_text(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Text) or type(space).__name__.endswith("MissionSpace")


def storable_space(space: gym.spaces.Space) -> gym.spaces.Space:
    """Replace spaces Minari cannot serialize (minigrid's ``MissionSpace``) by ``Text`` (datasets
    and checkpoint configs store spaces with Minari's serialization)."""
    if isinstance(space, gym.spaces.Dict):
        return gym.spaces.Dict({key: storable_space(sub) for key, sub in space.spaces.items()})
    if type(space).__name__.endswith("MissionSpace"):
        return gym.spaces.Text(max_length=1024, min_length=0, charset=string.printable)
    return space
