"""Atari offline data: the on-disk format of recorded games (frames stored once) and its loader.

The games are written by :mod:`seqagents.data.atari_collect` (the learning history of an SB3 PPO
agent, recorded while it learns); this module holds the format, the frame preprocessing both
sides share, and :func:`load_atari_dataset`.

``s_t`` (the observation before ``a_t``), ``a_t`` and ``r_t`` received after it; the final frame of
an episode (after its last action) is not stored.

On-disk format (a folder): ``chunk_00000.npz``, ... written with ``np.savez_compressed`` as
completed games accumulate (nothing is held in RAM beyond the games in progress and one chunk);
each chunk holds whole games: ``frames (n, 84, 84) uint8``, ``actions (n,) int16``,
``rewards (n,) float32`` (raw points), ``clipped_rewards (n,) float32`` (sign), ``terminals (n,)``
and ``truncations (n,)`` bool (real game over / the 108k-frame cap or the end of the run),
``episode_lengths (e,) int64``; plus ``metadata.json`` (env, spaces, settings, counts),
``training_curve.csv`` (one row per finished game) and, from ``record_ppo_history``,
``ppo_policy.zip`` (the final SB3 policy).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from seqagents.data.frames import FrameStackedFrames
from seqagents.data.minari_io import TrajectoryData
from seqagents.errors import require

__all__ = [
    "ATARI_FORMAT",
    "AtariTrajectoryData",
    "load_atari_dataset",
    "preprocess_frame",
]

logger = logging.getLogger(__name__)

ATARI_FORMAT = "seqagents-atari-frames-v1"
"""``metadata.json["format"]`` of a dataset folder (written by ``AtariDatasetWriter``)."""

FRAME_SIZE = 84  # frame height and width (Nature DQN, SB3 WarpFrame, AtariPreprocessing)


def preprocess_frame(frame: np.ndarray) -> np.ndarray:
    """One RGB Atari frame ``(210, 160, 3)`` uint8 → ``(84, 84)`` uint8 grayscale (SB3 WarpFrame).

    Example:
        >>> preprocess_frame(np.zeros((210, 160, 3), np.uint8)).shape
        (84, 84)
    """
    cv2 = require("cv2", "atari")
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)  # (210, 160)
    return cv2.resize(gray, (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_AREA)  # (84, 84)


# ---------------------------------------------------------------------------- loading
@dataclass
class AtariTrajectoryData(TrajectoryData):
    """:class:`~seqagents.data.TrajectoryData` of an Atari dataset: frames stored once.

    ``observations`` is a :class:`~seqagents.data.frames.FrameStackedFrames` view ``(N, 4, 84, 84)``
    uint8 (stacked at gather time, never as float); ``rewards`` is the array chosen at load time
    (clipped by default: DT's Atari RTGs come from clipped rewards); both arrays stay available.
    """

    raw_rewards: np.ndarray | None = None  # (N,) float32, game points
    clipped_rewards: np.ndarray | None = None  # (N,) float32, sign of the raw reward
    metadata: dict[str, Any] | None = None  # the dataset's metadata.json

    def __post_init__(self) -> None:
        if not isinstance(self.observations, FrameStackedFrames):
            raise TypeError("AtariTrajectoryData.observations must be a FrameStackedFrames view.")
        super().__post_init__()
        if not np.array_equal(self.observations.episode_starts, self.episode_starts):
            raise ValueError("the frame view's episode boundaries differ from episode_starts.")

    @property
    def frames(self) -> np.ndarray:
        """The stored single frames, ``(N, 84, 84)`` uint8."""
        return self.observations.frames

    def game_returns(self) -> np.ndarray:
        """Raw (unclipped) return of each game, ``(n_episodes,)`` float64."""
        rewards = self.raw_rewards if self.raw_rewards is not None else self.rewards
        return np.add.reduceat(rewards.astype(np.float64), self.episode_starts[:-1])


def load_atari_dataset(
    path: str | os.PathLike,
    *,
    reward: str = "clipped",
    frame_stack: int = 4,
) -> AtariTrajectoryData:
    """Load a dataset folder written by ``record_ppo_history`` / ``AtariDatasetWriter``.

    Frames are decompressed chunk by chunk into one preallocated ``(N, 84, 84)`` uint8 array
    (peak memory ≈ the frames plus one chunk).

    Args:
        path: the dataset folder.
        reward: ``"clipped"`` (sign, DT/DQN-replay RTGs) or ``"raw"`` (game points) as
            ``data.rewards``; both stay in ``raw_rewards`` / ``clipped_rewards``.
        frame_stack: frames per observation.

    Returns:
        An :class:`AtariTrajectoryData` with ``(N, frame_stack, 84, 84)`` uint8 observations.

    Raises:
        FileNotFoundError: no dataset in ``path``.
        ValueError: an unknown ``reward`` or a corrupt dataset.
    """
    if reward not in ("clipped", "raw"):
        raise ValueError(f"reward must be 'clipped' or 'raw', got {reward!r}.")
    path = Path(path)
    chunks = sorted(path.glob("chunk_[0-9]*.npz"))
    chunks = [chunk for chunk in chunks if not chunk.name.endswith(".tmp.npz")]
    if not chunks:
        raise FileNotFoundError(
            f"no Atari dataset in {path} (no chunk_*.npz); record one with "
            "`seqagents collect --learn ppo --env ALE/Breakout-v5 --steps N --out DIR`."
        )
    metadata = _read_metadata(path)
    _check_chunk_names(path, chunks, metadata)
    lengths = []
    for chunk in chunks:
        with _open_chunk(chunk) as archive:  # reads only the members that are accessed
            lengths.append(_member(archive, chunk, "episode_lengths"))
    episode_lengths = np.concatenate(lengths)  # (n_episodes,)
    n = int(episode_lengths.sum())
    frames = np.empty((n, FRAME_SIZE, FRAME_SIZE), dtype=np.uint8)  # (N, 84, 84)
    fields = ("actions", "rewards", "clipped_rewards", "terminals", "truncations")
    columns: dict[str, list[np.ndarray]] = {key: [] for key in fields}
    offset, episode = 0, 0
    for chunk, chunk_lengths in zip(chunks, lengths):
        with _open_chunk(chunk) as archive:
            chunk_frames = _member(archive, chunk, "frames")  # (n_chunk, 84, 84) uint8
            steps = int(chunk_lengths.sum())
            if chunk_frames.dtype != np.uint8 or chunk_frames.shape != (
                steps,
                FRAME_SIZE,
                FRAME_SIZE,
            ):
                raise ValueError(
                    f"{chunk}: frames are {chunk_frames.dtype} {chunk_frames.shape}; expected "
                    f"uint8 ({steps}, {FRAME_SIZE}, {FRAME_SIZE}) (its episode lengths sum to "
                    f"{steps}); the file is corrupt: record the dataset again."
                )
            frames[offset : offset + steps] = chunk_frames
            del chunk_frames
            for key in fields:
                column = _member(archive, chunk, key)
                if column.shape != (steps,):
                    raise ValueError(
                        f"{chunk}: {key} has shape {column.shape}; expected ({steps},)."
                    )
                if column.dtype.kind == "f" and not np.isfinite(column).all():
                    row = int(np.flatnonzero(~np.isfinite(column))[0])
                    game = episode + int(np.searchsorted(np.cumsum(chunk_lengths), row, "right"))
                    raise ValueError(
                        f"{chunk}: {key} hold NaN or inf (game {game} of the dataset, row "
                        f"{offset + row}); the file is corrupt: record the dataset again."
                    )
                columns[key].append(column)
            offset += steps
            episode += len(chunk_lengths)
    _check_counts(path, metadata, n, len(episode_lengths))
    episode_starts = np.concatenate([[0], np.cumsum(episode_lengths)])  # (n_episodes + 1,)
    arrays = {key: np.concatenate(parts) for key, parts in columns.items()}  # (N,) each
    n_actions = metadata.get("n_actions") or int(arrays["actions"].max()) + 1
    if arrays["actions"].min() < 0 or arrays["actions"].max() >= n_actions:
        raise ValueError(
            f"{path}: actions range over [{arrays['actions'].min()}, {arrays['actions'].max()}] "
            f"but the game has {n_actions} actions (metadata.json n_actions)."
        )
    observation_space = gym.spaces.Box(0, 255, (frame_stack, FRAME_SIZE, FRAME_SIZE), np.uint8)
    return AtariTrajectoryData(
        observations=FrameStackedFrames(frames, episode_starts, stack=frame_stack),
        actions=arrays["actions"].astype(np.int64),
        rewards=arrays["clipped_rewards" if reward == "clipped" else "rewards"],
        terminals=arrays["terminals"],
        truncations=arrays["truncations"],
        episode_starts=episode_starts,
        observation_space=observation_space,
        action_space=gym.spaces.Discrete(int(n_actions)),
        dataset_id=str(path),
        raw_rewards=arrays["rewards"],
        clipped_rewards=arrays["clipped_rewards"],
        metadata=metadata,
    )


def _read_metadata(path: Path) -> dict[str, Any]:
    """``metadata.json`` (written when a recording closes) as a dict, or a clear error."""
    from seqagents._files import check_regular_file

    file = path / "metadata.json"
    if not file.exists():
        raise FileNotFoundError(
            f"{file} is missing: the recording did not finish (the writer writes it when it "
            "closes) or the file was lost; continue the recording with `seqagents collect "
            "--learn ppo --resume` (or record it again), so that no game is silently missing."
        )
    check_regular_file(file, ValueError)
    try:
        metadata = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{file} is not valid JSON ({e}); record the dataset again.") from e
    if not isinstance(metadata, dict):
        raise ValueError(f"{file} holds a JSON {type(metadata).__name__}; expected an object.")
    if metadata.get("format", ATARI_FORMAT) != ATARI_FORMAT:
        raise ValueError(f"{path}: unknown dataset format {metadata.get('format')!r}.")
    return metadata


def _check_chunk_names(path: Path, chunks: list[Path], metadata: dict[str, Any]) -> None:
    """The chunks are exactly ``chunk_00000.npz`` .. of the ``n_chunks`` in metadata.json."""
    try:
        indices = {int(chunk.name[len("chunk_") :].split(".")[0]) for chunk in chunks}
    except ValueError:
        indices = set()
    count = metadata.get("n_chunks")
    count = int(count) if isinstance(count, int) else max(indices, default=-1) + 1
    missing = [f"chunk_{i:05d}.npz" for i in range(count) if i not in indices]
    if missing:
        raise FileNotFoundError(
            f"{path}: {len(missing)} of its {count} chunks are missing ({', '.join(missing[:5])});"
            " the dataset is incomplete: restore the file(s) or record the dataset again."
        )
    extra = sorted(chunk.name for chunk in chunks if chunk.name not in _chunk_names(count))
    if extra:
        raise ValueError(
            f"{path}: {', '.join(extra[:5])} are not among the {count} chunks metadata.json "
            "lists (left from another recording?); move them away or record the dataset again."
        )


def _chunk_names(count: int) -> set[str]:
    return {f"chunk_{i:05d}.npz" for i in range(count)}


def _open_chunk(chunk: Path) -> Any:
    """``np.load`` of one chunk (no pickles), a corrupt file as a ``ValueError`` naming it."""
    import zipfile

    from seqagents._files import check_regular_file

    check_regular_file(chunk, ValueError)
    try:
        return np.load(chunk, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(
            f"{chunk} is not a readable .npz chunk ({e}); the file is corrupt or truncated: "
            "restore it or record the dataset again."
        ) from e


def _member(archive: Any, chunk: Path, key: str) -> np.ndarray:
    import zipfile

    try:
        return archive[key]
    except KeyError:
        raise ValueError(f"{chunk} has no {key!r} array; it is not a seqagents chunk.") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(
            f"{chunk}: its {key!r} array cannot be read ({e}); the file is corrupt or "
            "truncated: restore it or record the dataset again."
        ) from e


def _check_counts(path: Path, metadata: dict[str, Any], n_steps: int, n_episodes: int) -> None:
    """The steps and games read are those metadata.json counts."""
    for key, value in (("n_steps", n_steps), ("n_episodes", n_episodes)):
        expected = metadata.get(key)
        if isinstance(expected, int) and expected != value:
            raise ValueError(
                f"{path}: the chunks hold {value} {key[2:]} but metadata.json says {expected}; "
                "the dataset is incomplete or mixed: record it again."
            )
