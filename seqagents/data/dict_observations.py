"""Dict (BabyAI) observations in datasets: per-key dtypes and code checks, the dataset's space
checked, and mission texts turned into word ids of a :class:`MissionVocabulary`."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from seqagents.observations import (
    BABYAI_WORDS,
    MIN_MISSION_LEN,
    MissionVocabulary,
    tokenize_mission,
)

__all__ = ["babyai_observations", "check_dict_space", "episode_dict_observations", "n_rows"]

_BABYAI_DTYPES = {
    "image": np.uint8,
    "direction": np.int64,
    "mission": np.int64,
    "agent_pos": np.int64,
    "goal_pos": np.int64,
}


def n_rows(observations: np.ndarray | dict[str, np.ndarray]) -> int:
    if isinstance(observations, dict):
        first = observations.get("image", next(iter(observations.values()), None))
        return 0 if first is None else len(first)
    return int(observations.shape[0]) if observations.ndim else 0


def babyai_observations(
    observations: dict[str, object], vocabulary: MissionVocabulary | None, where: str
) -> tuple[dict[str, np.ndarray], MissionVocabulary | None]:
    """Dict observations in the documented dtypes (no float copy); missions encoded if text."""
    if "image" not in observations:
        raise ValueError(
            f"TrajectoryData{where}: Dict observations need an 'image' key, got "
            f"{sorted(observations)}."
        )
    out: dict[str, np.ndarray] = {}
    for key, value in observations.items():
        if key == "mission":
            missions = value if isinstance(value, np.ndarray) else np.asarray(list(value))
            if missions.dtype.kind in "USO":  # text: encode to word ids
                if vocabulary is None:
                    texts = set(missions.tolist())
                    longest = max(len(tokenize_mission(text)) for text in texts)
                    vocabulary = MissionVocabulary.from_missions(
                        texts, max(longest, MIN_MISSION_LEN), extra_words=BABYAI_WORDS
                    )
                out[key] = vocabulary.encode(missions)  # (N, L)
                continue
            value = missions
        dtype = _BABYAI_DTYPES.get(key)
        if dtype is not None:
            _check_codes(np.asarray(value), key, dtype, where)
        out[key] = np.asarray(value) if dtype is None else np.asarray(value, dtype=dtype)
    n = len(out["image"])
    for key, value in out.items():
        if value.ndim == 0 or len(value) != n:
            raise ValueError(
                f"TrajectoryData{where}: observations[{key!r}] has shape {value.shape}, expected "
                f"{n} rows like observations['image']."
            )
    return out, vocabulary


def _check_codes(value: np.ndarray, key: str, dtype: type, where: str) -> None:
    """BabyAI codes must be integers that fit ``dtype`` (a float code or 300 as uint8 would be
    truncated or wrapped without a word)."""
    if value.size == 0:
        return
    if value.dtype.kind not in "biu":
        whole = value.dtype.kind == "f" and np.isfinite(value).all() and (value % 1 == 0).all()
        if not whole:
            raise ValueError(
                f"TrajectoryData{where}: observations[{key!r}] are {value.dtype} with non-integer "
                "values; BabyAI codes are integers (image: uint8 object/colour/state codes)."
            )
    info = np.iinfo(dtype)
    low, high = value.min(), value.max()
    if low < info.min or high > info.max:
        raise ValueError(
            f"TrajectoryData{where}: observations[{key!r}] range over [{low:g}, {high:g}], outside "
            f"{np.dtype(dtype).name} [{info.min}, {info.max}]."
        )


def check_dict_space(dataset_id: str, space: gym.spaces.Dict) -> None:
    for key, sub in space.spaces.items():
        if not isinstance(sub, (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.Text)):
            raise ValueError(
                f"Dataset '{dataset_id}' has a {type(sub).__name__} observation {key!r}; Dict "
                "observations may hold Box, Discrete and Text (the mission) entries."
            )
        if isinstance(sub, gym.spaces.Text) and key != "mission":
            raise ValueError(
                f"Dataset '{dataset_id}': only the 'mission' observation may be text, not {key!r}."
            )
    if "image" not in space.spaces:
        raise ValueError(f"Dataset '{dataset_id}' has Dict observations without an 'image' key.")


def episode_dict_observations(
    observations: dict[str, object], steps: int, where: str
) -> dict[str, np.ndarray | list[str]]:
    """One episode's Dict observations, ``T + 1`` rows cut to ``T`` (missions stay text)."""
    out: dict[str, np.ndarray | list[str]] = {}
    for key, value in observations.items():
        rows = list(value) if key == "mission" else np.asarray(value)  # (T + 1, ...)
        if len(rows) == steps + 1:
            rows = rows[:-1]  # (T, ...): drop the final state, rows align as (s_t, a_t, r_t)
        elif len(rows) != steps:
            raise ValueError(
                f"{where}: {len(rows)} {key!r} observations for {steps} steps (expected "
                f"{steps + 1})."
            )
        out[key] = rows
    return out
