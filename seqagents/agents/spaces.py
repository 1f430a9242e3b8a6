"""The state encoder an agent's network needs for an env's observation space."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from seqagents.observations import PRIVILEGED_KEYS, MissionVocabulary

__all__ = ["encoder_for_space"]


def encoder_for_space(
    observation_space: gym.Space, vocabulary: MissionVocabulary | None = None
) -> dict[str, Any]:
    """The state-encoder fields of a model config for ``observation_space``: ``state_shape``,
    ``state_encoder`` and ``state_encoder_kwargs`` (flat Box -> ``linear``; ``(C, 84, 84)``
    frames -> ``nature_cnn``; BabyAI Dict -> ``babyai``, which needs the mission vocabulary).

    Example:
        >>> encoder_for_space(gym.spaces.Box(-1, 1, (3,)))["state_encoder"]
        'linear'
    """
    if isinstance(observation_space, gym.spaces.Dict):
        keys = set(observation_space.spaces)
        if not {"image", "direction", "mission"} <= keys:
            raise ValueError(
                f"Dict observations with keys {sorted(keys)} are not supported: the only Dict "
                "layout read is BabyAI/MiniGrid's (image, direction, mission). Flatten the "
                "observation first (gymnasium.wrappers.FlattenObservation) for a Box"
            )
        if vocabulary is None:
            raise ValueError(
                "BabyAI Dict observations need the mission_vocabulary "
                "(seqagents.observations.MissionVocabulary.from_missions)"
            )
        privileged = all(k in observation_space.spaces for k in PRIVILEGED_KEYS)
        return {
            "state_shape": tuple(observation_space["image"].shape),
            "state_encoder": "babyai",
            "state_encoder_kwargs": {"vocab_size": vocabulary.size, "privileged": privileged},
        }
    shape = tuple(observation_space.shape or ())
    kind = "nature_cnn" if len(shape) == 3 and shape[1:] == (84, 84) else "linear"
    return {"state_shape": shape, "state_encoder": kind, "state_encoder_kwargs": {}}
