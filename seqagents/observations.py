"""Observations that are not flat vectors: BabyAI's ``Dict(image, direction, mission)``.

The one place where an env's Dict observation becomes the arrays a network reads. A BabyAI
observation, single or batched (a vector env's dict of arrays), becomes

    {"image": (n, W, H, 3) uint8,        # categorical codes (object, colour, state), kept as uint8
     "direction": (n,) int64,            # 0..3
     "mission": (n, L) int64,            # word ids, LEFT-padded with 0 to L words
     # only with LEAP's privileged wrapper (seqagents.envs.BabyAIPrivileged):
     "agent_pos": (n, 2) int64, "goal_pos": (n, 2) int64}

Missions are split into lower-case words (``re.findall("[a-z]+", text.lower())``, as BabyAI and
LEAP do) and mapped through a :class:`MissionVocabulary` saved in the checkpoint config; id 0 is
padding, word ``i`` of the sorted vocabulary has id ``i + 1`` (sorted, so a vocabulary does not
depend on the order a dataset was read in). An unknown word is an error naming it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BABYAI_CODE_COUNTS",
    "BABYAI_WORDS",
    "BABYAI_KEYS",
    "PRIVILEGED_KEYS",
    "MissionVocabulary",
    "tokenize_mission",
    "babyai_arrays",
]

BABYAI_KEYS = ("image", "direction", "mission")
"""Keys of a BabyAI observation the agents read."""
PRIVILEGED_KEYS = ("agent_pos", "goal_pos")
"""Extra keys of LEAP's privileged observation (full grid, agent and goal coordinates)."""
BABYAI_CODE_COUNTS = (11, 6, 4)
"""Values of each categorical channel of minigrid's grid encoding: object type (0-10), colour
(0-5), state (door 0-2; the agent's direction 0-3 in FullyObsWrapper's encoding)."""
BABYAI_CHANNELS = ("object", "colour", "state")

BABYAI_WORDS = (
    "a after and ball behind blue box door front go green grey in key left next of on open pick "
    "purple put red right the then to up yellow you your"
).split()
"""Every word of minigrid 3.x BabyAI missions (read off 300 resets of ten levels, BossLevel
included): a vocabulary built from demos holds them all, so that a mission form the demos
happened to miss (e.g. "go to a key", filtered out by LEAP's one-goal rule) is still readable."""
MIN_MISSION_LEN = 12
"""Words per encoded mission at least (LEAP's levels use at most 9)."""

_WORD = re.compile("[a-z]+")


def tokenize_mission(text: str) -> list[str]:
    """Lower-case words of a mission, as BabyAI/LEAP split them.

    Example:
        >>> tokenize_mission("Pick up the red ball, then open a door.")
        ['pick', 'up', 'the', 'red', 'ball', 'then', 'open', 'a', 'door']
    """
    return _WORD.findall(str(text).lower())


@dataclass(frozen=True)
class MissionVocabulary:
    """Word ids of missions: 0 = padding, ``words[i]`` -> ``i + 1``.

    Args:
        words: the known words (stored sorted and unique).
        max_len: ``L``, words per encoded mission (left-padded with 0); longer missions are an
            error.

    Example:
        >>> vocab = MissionVocabulary.from_missions(["go to the red ball", "go to a key"])
        >>> vocab.words
        ('a', 'ball', 'go', 'key', 'red', 'the', 'to')
        >>> vocab.encode(["go to a key"]).tolist()
        [[0, 3, 7, 1, 4]]
        >>> vocab.encode(["go to the blue box"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: mission 'go to the blue box' has words unknown to ...: ['blue', 'box']; ...
    """

    words: tuple[str, ...]
    max_len: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", tuple(sorted(set(self.words))))
        if self.max_len < 1:
            raise ValueError(f"max_len must be at least 1, got {self.max_len}")

    @classmethod
    def from_missions(
        cls,
        missions: Iterable[str],
        max_len: int | None = None,
        extra_words: Iterable[str] = (),
    ) -> MissionVocabulary:
        """The vocabulary of ``missions`` plus ``extra_words``; ``max_len`` defaults to their
        longest word count."""
        words: set[str] = set(extra_words)
        longest = 1
        for mission in missions:
            tokens = tokenize_mission(mission)
            words.update(tokens)
            longest = max(longest, len(tokens))
        return cls(tuple(words), max_len or longest)

    @property
    def size(self) -> int:
        """Number of ids, padding included (the embedding table size)."""
        return len(self.words) + 1

    def encode(self, missions: Sequence[str] | np.ndarray) -> np.ndarray:
        """Word ids ``(n, max_len)`` int64 of ``n`` missions, left-padded with 0.

        Raises:
            ValueError: a mission has a word not in the vocabulary, or more than ``max_len``
                words.
        """
        index = {word: i + 1 for i, word in enumerate(self.words)}
        out = np.zeros((len(missions), self.max_len), dtype=np.int64)  # (n, L)
        cache: dict[str, np.ndarray] = {}
        for row, mission in enumerate(missions):
            mission = str(mission)
            ids = cache.get(mission)
            if ids is None:
                tokens = tokenize_mission(mission)
                unknown = [t for t in tokens if t not in index]
                if unknown:
                    raise ValueError(
                        f"mission {mission!r} has words unknown to this agent's vocabulary: "
                        f"{unknown}; known words: {', '.join(self.words)}"
                    )
                if len(tokens) > self.max_len:
                    raise ValueError(
                        f"mission {mission!r} has {len(tokens)} words; this agent reads at most "
                        f"{self.max_len}"
                    )
                ids = cache[mission] = np.asarray([index[t] for t in tokens], dtype=np.int64)
            if ids.size:
                out[row, self.max_len - ids.size :] = ids  # left padding
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"words": list(self.words), "max_len": self.max_len}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MissionVocabulary:
        return cls(tuple(data["words"]), int(data["max_len"]))


def babyai_arrays(
    observation: dict[str, Any], vocabulary: MissionVocabulary
) -> dict[str, np.ndarray]:
    """A BabyAI observation (one env, or a vector env's dict of arrays) as batched arrays.

    Args:
        observation: ``{"image": (W, H, 3) or (n, W, H, 3), "direction": int or (n,),
            "mission": str or (n,) strings}``, or the mission as integer word ids ``(L,)`` or
            ``(n, L)`` of ``vocabulary`` (:class:`seqagents.envs.MissionTokens`), plus
            ``agent_pos``/``goal_pos`` ``(2,)`` or ``(n, 2)`` from the privileged wrapper.
        vocabulary: the agent's mission vocabulary.

    Returns:
        The module docstring's dict, every array with a leading ``n`` (1 for one env).

    Raises:
        ValueError: missing keys, a bad image shape, an unknown mission word.

    Example:
        >>> vocab = MissionVocabulary(("go", "to", "key"), 3)
        >>> obs = {"image": np.zeros((7, 7, 3), np.uint8), "direction": 2, "mission": "go to key"}
        >>> {k: v.shape for k, v in babyai_arrays(obs, vocab).items()}
        {'image': (1, 7, 7, 3), 'direction': (1,), 'mission': (1, 3)}
    """
    if not isinstance(observation, dict):
        raise ValueError(
            f"expected a BabyAI observation dict with keys {list(BABYAI_KEYS)}, got "
            f"{type(observation).__name__}"
        )
    missing = [k for k in BABYAI_KEYS if k not in observation]
    if missing:
        raise ValueError(
            f"BabyAI observation lacks {missing}; expected keys {list(BABYAI_KEYS)} "
            f"(got {sorted(observation)})"
        )
    image = np.asarray(observation["image"])
    if image.ndim == 3:
        single = True
        image = image[None]  # (1, W, H, 3)
    elif image.ndim == 4:
        single = False
    else:
        raise ValueError(
            f"BabyAI image has shape {image.shape}; expected (W, H, 3) or (n, W, H, 3)"
        )
    if image.shape[-1] != 3:
        raise ValueError(f"BabyAI image has shape {image.shape}; the last axis must hold 3 codes")
    _check_integers(image, "image", "minigrid's uint8 (object, colour, state) codes")
    for channel, (name, count) in enumerate(zip(BABYAI_CHANNELS, BABYAI_CODE_COUNTS)):
        codes = image[..., channel]
        if codes.min() < 0 or codes.max() >= count:
            bad = codes[(codes < 0) | (codes >= count)]
            raise ValueError(
                f"BabyAI image holds {name} code {int(bad.flat[0])}; {name} codes are 0-"
                f"{count - 1} (minigrid's encoding). Pass the env's observation unchanged"
            )
    n = image.shape[0]
    missions = observation["mission"]
    direction = np.asarray(observation["direction"])
    _check_integers(direction, "direction", "an integer 0-3")
    direction = direction.astype(np.int64).reshape(-1)  # (n,)
    if direction.size and (direction.min() < 0 or direction.max() > 3):
        raise ValueError(f"BabyAI direction {direction.tolist()} is out of range; expected 0-3")
    if _is_token_ids(missions):  # word ids already (seqagents.envs.MissionTokens)
        encoded = _mission_ids(np.asarray(missions), single, vocabulary)  # (n, L)
        n_missions = encoded.shape[0]
    else:
        texts = [missions] if isinstance(missions, str) else list(np.asarray(missions).ravel())
        n_missions = len(texts)
    if n_missions != n or direction.shape != (n,):
        raise ValueError(
            f"BabyAI observation batch sizes differ: {n} images, {direction.size} directions, "
            f"{n_missions} missions"
        )
    if not _is_token_ids(missions):
        encoded = vocabulary.encode(texts)  # (n, L)
    out = {
        "image": image.astype(np.uint8, copy=False),  # (n, W, H, 3)
        "direction": direction,  # (n,)
        "mission": encoded,  # (n, L)
    }
    for key in PRIVILEGED_KEYS:
        if key in observation:
            value = np.asarray(observation[key])
            _check_integers(value, key, "integer grid coordinates")
            size = max(image.shape[1], image.shape[2])  # the full grid (privileged setting)
            if value.size and (value.min() < 0 or value.max() >= size):
                raise ValueError(f"BabyAI {key} {value.tolist()} is outside the {size}x{size} grid")
            value = value.astype(np.int64)
            out[key] = value[None] if single else value  # (n, 2)
    return out


def _check_integers(value: np.ndarray, name: str, expected: str) -> None:
    """BabyAI codes are integers: a float array (e.g. an image scaled to [0, 1]) would be cast
    to other codes without a word."""
    if value.dtype.kind not in "iu":
        raise ValueError(f"BabyAI {name} has dtype {value.dtype}; expected {expected}")


def _is_token_ids(missions: Any) -> bool:
    """Whether ``missions`` are word ids (an integer array) rather than text."""
    return isinstance(missions, np.ndarray) and missions.dtype.kind in "iu"


def _mission_ids(ids: np.ndarray, single: bool, vocabulary: MissionVocabulary) -> np.ndarray:
    """Word ids of :class:`seqagents.envs.MissionTokens` (``(L,)`` for one env, ``(n, L)``
    batched) as ``(n, L)`` int64, checked against ``vocabulary``."""
    given = ids.shape
    ids = ids.astype(np.int64)[None] if single else ids.astype(np.int64)  # (n, L)
    if ids.ndim != 2 or ids.shape[1] != vocabulary.max_len:
        raise ValueError(
            f"the mission is given as word ids of shape {given}; this agent reads "
            f"({vocabulary.max_len},) ids per env: make them with "
            "seqagents.MissionTokens(env, agent.mission_vocabulary) or pass the mission text"
        )
    if ids.size and (ids.min() < 0 or ids.max() >= vocabulary.size):
        raise ValueError(
            f"mission word ids must lie in [0, {vocabulary.size - 1}] (this agent's vocabulary); "
            f"got values in [{ids.min()}, {ids.max()}]: make them with "
            "seqagents.MissionTokens(env, agent.mission_vocabulary)"
        )
    return ids
