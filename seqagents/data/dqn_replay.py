"""The DQN Replay Dataset (dopamine replay logs), sampled as the Decision Transformer paper did.

DT's Atari results (Section 5.1) train on "1% of the DQN Replay Dataset" (Agarwal et al. 2020):
500k transitions of whole games from one DQN run's replay logs. This module reads them into the
:class:`~seqagents.data.atari.AtariTrajectoryData` that recorded PPO histories give (frames stored
once), so the DT and LEAP Atari windows work unchanged: ``train_dt("dqn-replay:PATH")``, ``seqagents
train dt/breakout --dataset dqn-replay:PATH?num_buffers=5`` (query keys: :class:`DQNReplayOptions`).

Format (dopamine ``OutOfGraphReplayBuffer`` logged by batch_rl, ``<Game>/<run>/replay_logs/``): per
checkpoint ``N`` (0..49) one gzip file per array holding one ``np.save`` array:
``$store$_observation_ckpt.N.gz`` ``(n, 84, 84)`` uint8, one frame per step; ``$store$_action_...``
``(n,)`` int32; ``$store$_reward_...`` ``(n,)`` float32, clipped to [-1, 1] by dopamine before
storing (so "raw" equals clipped for this dataset); ``$store$_terminal_...`` ``(n,)`` uint8 (game
over). ``add_count``/``invalid_range`` are not read: rows never filled are zeros, which parse as an
unfinished trajectory. Rows become trajectories by these facts of dopamine and batch_rl:

- after each terminal (and at an empty buffer's start) dopamine writes 3 all-zero padding rows
  (frame, action, reward, terminal) for its frame stacks: they are checked and dropped; the frame
  view pads an episode's start by repeating its first frame, as the evaluation env does;
- rows before a buffer's first terminal finish a game begun in the previous buffer and rows after
  its last terminal an unfinished one: both are dropped (the original keeps the first, its
  timesteps restarting mid-game);
- a logged buffer's last row is stale (logged before it is rewritten) and never read.

Sampling (kzl/decision-transformer ``atari/create_dataset.py``): pick a buffer uniformly among the
last ``num_buffers``; read its next ``trajectories_per_buffer`` whole trajectories from where the
last visit stopped, within its first ``buffer_steps`` rows (the original's ``FixedReplayBuffer`` has
capacity 100,000); a visit that would pass that end is discarded whole and the buffer retired; stop
at ``num_steps`` transitions or more (the last visit is whole). RTGs are sums of clipped rewards,
timesteps restart per trajectory (:class:`~seqagents.data.WindowSampler`). Trajectories come out
grouped by buffer, not in visit order: no matter for windows drawn uniformly over transitions.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import gymnasium as gym
import numpy as np

from seqagents.data.atari import FRAME_SIZE, AtariTrajectoryData
from seqagents.data.frames import FrameStackedFrames

__all__ = [
    "DQN_REPLAY_FORMAT",
    "DQN_REPLAY_PREFIX",
    "DQNReplayOptions",
    "load_dqn_replay",
    "parse_dqn_replay_spec",
]

logger = logging.getLogger(__name__)

DQN_REPLAY_PREFIX = "dqn-replay:"
"""A ``dataset`` string that starts with this names a replay-logs folder (``train_dt`` etc.)."""

DQN_REPLAY_FORMAT = "dqn-replay"
"""``metadata["format"]`` of the data this module returns."""

# dopamine's _store arrays: accepted dtype kinds, row shape, what the error says is expected
_EXPECTED = {
    "observation": ("u", (FRAME_SIZE, FRAME_SIZE), "(n, 84, 84) uint8"),
    "action": ("iu", (), "(n,) int32"),
    "reward": ("fiu", (), "(n,) float32"),
    "terminal": ("biu", (), "(n,) uint8"),
}
_FILE = re.compile(r"^\$store\$_(observation|action|reward|terminal)_ckpt\.(\d+)\.gz$")
_PADDING = 3  # zero rows dopamine writes after each terminal: stack_size - 1 (stack 4)
_CHUNK_ROWS = 8192  # frames decompressed at a time (58 MB)
_DOWNLOAD = "gsutil -m cp -R gs://atari-replay-datasets/dqn/GAME ./ (the DQN Replay Dataset)"


@dataclass(frozen=True)
class DQNReplayOptions:
    """How trajectories are drawn from the replay logs; defaults are the DT paper's.

    Each field is also a query key of a ``dqn-replay:PATH?key=value&...`` dataset string.
    """

    # candidates: the highest-numbered this many buffers in the folder (DT: N = 50 - this .. 49)
    num_buffers: int = 50
    num_steps: int = 500_000  # transitions to gather, at least (DT: 500k, "1% of DQN-replay")
    trajectories_per_buffer: int = 10  # whole trajectories read per visit of a buffer (DT: 10)
    buffer_steps: int | None = 100_000  # rows read per buffer (DT's FixedReplayBuffer); None: all
    seed: int = 0  # seed of the buffer choices
    reward: str = "clipped"  # data.rewards: "clipped" to [-1, 1] (DT's RTGs) or "raw" as stored
    n_actions: int | None = None  # action space size; None: the largest action seen + 1

    def __post_init__(self) -> None:
        for name in ("num_buffers", "num_steps", "trajectories_per_buffer"):
            _check_count(name, getattr(self, name))
        for name in ("buffer_steps", "n_actions"):
            if getattr(self, name) is not None:
                _check_count(name, getattr(self, name))
        if self.reward not in ("clipped", "raw"):
            raise ValueError(f"reward must be 'clipped' or 'raw', got {self.reward!r}.")

    def to_query(self) -> str:
        """The options as a query string, every field written (provenance).

        Example:
            >>> DQNReplayOptions(num_buffers=1).to_query().split("&")[:3]
            ['num_buffers=1', 'num_steps=500000', 'trajectories_per_buffer=10']
        """
        values = {k: "all" if v is None else v for k, v in dataclasses.asdict(self).items()}
        return "&".join(f"{key}={value}" for key, value in values.items())


def parse_dqn_replay_spec(spec: str) -> tuple[Path, DQNReplayOptions]:
    """Split ``dqn-replay:PATH?key=value&...`` into the folder and its options.

    ``all`` (or ``none``) sets ``buffer_steps`` / ``n_actions`` to None.

    Example:
        >>> path, options = parse_dqn_replay_spec("dqn-replay:/data/Pong/1?num_buffers=1&seed=3")
        >>> str(path), options.num_buffers, options.seed, options.num_steps
        ('/data/Pong/1', 1, 3, 500000)
    """
    if not spec.startswith(DQN_REPLAY_PREFIX):
        raise ValueError(f"a DQN-replay dataset string starts with {DQN_REPLAY_PREFIX!r}: {spec!r}")
    path, _, query = spec[len(DQN_REPLAY_PREFIX) :].partition("?")
    if not path:
        raise ValueError(f"{spec!r} names no folder: use dqn-replay:<Game>/<run>/replay_logs.")
    fields = {field.name: field for field in dataclasses.fields(DQNReplayOptions)}
    values: dict[str, Any] = {}
    for key, text in parse_qsl(query, keep_blank_values=True):
        if key not in fields:
            raise ValueError(f"unknown option {key!r} in {spec!r}; known: {', '.join(fields)}.")
        if key == "reward":
            values[key] = text
        elif text.lower() in ("all", "none") and key in ("buffer_steps", "n_actions"):
            values[key] = None
        else:
            try:
                values[key] = int(text)
            except ValueError:
                raise ValueError(
                    f"option {key} in {spec!r} must be an integer, got {text!r}."
                ) from None
    return Path(path), DQNReplayOptions(**values)


def load_dqn_replay(
    path: str | os.PathLike,
    options: DQNReplayOptions | None = None,
    *,
    frame_stack: int = 4,
) -> AtariTrajectoryData:
    """Draw whole trajectories from a run's replay logs by the DT paper's rule (module docstring).

    Only the rows needed are decompressed (gzip streams are read row by row and stop early), into
    one preallocated ``(N, 84, 84)`` uint8 array: peak memory is about the result plus one chunk.

    Args:
        path: the ``replay_logs`` folder of one run, or the run folder holding it, or a
            ``dqn-replay:PATH?...`` string holding the options.
        options: the sampling rule; default :class:`DQNReplayOptions` (the paper's).
        frame_stack: frames per observation.

    Returns:
        :class:`~seqagents.data.atari.AtariTrajectoryData` with ``(N, frame_stack, 84, 84)`` uint8
        observations; ``metadata`` holds the buffers used and, when the folder is laid out as
        ``<Game>/<run>/replay_logs``, the game's ``env_id`` (``ALE/<Game>-v5``).

    Raises:
        FileNotFoundError: no replay logs in ``path``, or a candidate buffer lacks a file.
        ValueError: a truncated or corrupt file, arrays of the wrong dtype/shape or of different
            lengths, or no complete trajectory.

    Example:
        >>> import gzip, tempfile, numpy as np
        >>> logs = Path(tempfile.mkdtemp()) / "Pong" / "1" / "replay_logs"
        >>> logs.mkdir(parents=True)
        >>> terminal = np.zeros(40, np.uint8); terminal[[9, 24, 38]] = 1
        >>> arrays = {"observation": np.full((40, 84, 84), 7, np.uint8),
        ...           "action": np.ones(40, np.int32), "reward": np.full(40, 2, np.float32),
        ...           "terminal": terminal}
        >>> for pad in (10, 25):  # dopamine's zero rows after a terminal
        ...     for array in arrays.values():
        ...         array[pad : pad + 3] = 0
        >>> for name, array in arrays.items():
        ...     with gzip.open(logs / f"$store$_{name}_ckpt.0.gz", "wb") as file:
        ...         np.save(file, array)
        >>> data = load_dqn_replay(logs, DQNReplayOptions(trajectories_per_buffer=1,
        ...                                               n_actions=6))
        >>> data.episode_lengths.tolist(), data.game_returns().tolist(), data.rewards[0]
        ([12, 11], [24.0, 22.0], np.float32(1.0))
        >>> data.metadata["env_id"], data.observations.shape
        ('ALE/Pong-v5', (23, 4, 84, 84))
    """
    if isinstance(path, str) and path.startswith(DQN_REPLAY_PREFIX):
        if options is not None:
            raise ValueError("pass options in the dqn-replay: string or as options, not both.")
        path, options = parse_dqn_replay_spec(path)
    options = options or DQNReplayOptions()
    folder = Path(path)
    if (folder / "replay_logs").is_dir():
        folder = folder / "replay_logs"
    buffers = _find_buffers(folder)
    candidates = sorted(buffers)[-options.num_buffers :]
    parsed = {index: _read_buffer(folder, index, buffers[index], options) for index in candidates}
    taken = _plan(
        {index: np.diff(episodes, axis=1)[:, 0] for index, (episodes, *_) in parsed.items()},
        options,
    )
    kept = [(index, parsed[index][0][:count]) for index, count in taken.items() if count]
    if not kept:
        raise ValueError(
            f"{folder}: no buffer holds {options.trajectories_per_buffer} complete trajectories in "
            f"its first {options.buffer_steps or 'all'} rows; lower trajectories_per_buffer or "
            "raise buffer_steps (dqn-replay:PATH?trajectories_per_buffer=1&buffer_steps=all)."
        )
    lengths = np.concatenate([np.diff(episodes, axis=1)[:, 0] for _, episodes in kept])  # (E,)
    episode_starts = np.concatenate([[0], np.cumsum(lengths)])  # (E + 1,)
    n = int(episode_starts[-1])
    if n < options.num_steps:
        logger.warning(
            "%s: only %d transitions (num_steps=%d): every candidate buffer ran out of whole "
            "trajectories; raise num_buffers or buffer_steps for more",
            folder, n, options.num_steps,
        )  # fmt: skip
    frames = np.empty((n, FRAME_SIZE, FRAME_SIZE), dtype=np.uint8)  # (N, 84, 84)
    columns: dict[str, list[np.ndarray]] = {"action": [], "reward": []}
    offset = 0
    for index, episodes in kept:
        rows = np.concatenate([np.arange(start, end) for start, end in episodes])  # (n_b,)
        offset = _copy_frames(buffers[index]["observation"], episodes, rows, frames, offset)
        _, actions, rewards = parsed[index]
        columns["action"].append(actions[rows])
        columns["reward"].append(rewards[rows])
    actions = np.concatenate(columns["action"]).astype(np.int64)  # (N,)
    raw = np.concatenate(columns["reward"]).astype(np.float32)  # (N,)
    clipped = np.clip(raw, -1.0, 1.0)  # (N,) dopamine's reward clipping
    n_actions = options.n_actions or int(actions.max()) + 1
    if actions.min() < 0 or actions.max() >= n_actions:
        raise ValueError(f"{folder}: actions outside [0, {n_actions}) (n_actions={n_actions}).")
    terminals = np.zeros(n, dtype=bool)  # (N,)
    terminals[episode_starts[1:] - 1] = True
    metadata = {
        "format": DQN_REPLAY_FORMAT,
        "path": str(folder),
        "options": dataclasses.asdict(options),
        "trajectories_per_buffer_used": {int(i): len(e) for i, e in kept},
        "n_actions": n_actions,
        **_game(folder),
    }
    logger.info("%s: %d trajectories, %d transitions from buffers %s", folder, len(lengths), n,
                [index for index, _ in kept])  # fmt: skip
    return AtariTrajectoryData(
        observations=FrameStackedFrames(frames, episode_starts, stack=frame_stack),
        actions=actions,
        rewards=clipped if options.reward == "clipped" else raw,
        terminals=terminals,
        truncations=np.zeros(n, dtype=bool),
        episode_starts=episode_starts,
        observation_space=gym.spaces.Box(0, 255, (frame_stack, FRAME_SIZE, FRAME_SIZE), np.uint8),
        action_space=gym.spaces.Discrete(n_actions),
        dataset_id=f"{DQN_REPLAY_PREFIX}{folder}?{options.to_query()}",
        raw_rewards=raw,
        clipped_rewards=clipped,
        metadata=metadata,
    )


# ---------------------------------------------------------------------------- helpers
def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")


def _game(folder: Path) -> dict[str, Any]:
    """``<Game>/<run>/replay_logs`` names the game: its env id and DT's evaluation settings."""
    run, game = folder.resolve().parent, folder.resolve().parent.parent.name
    if folder.name != "replay_logs" or not run.name.isdigit() or not game.isidentifier():
        return {}
    return {
        "game": game,
        "run": int(run.name),
        "env_id": f"ALE/{game}-v5",
        # DT's evaluation: no sticky actions, the zoo's Atari pipeline (zoo/dt.yml `_atari`).
        "eval_env_kwargs": {"atari_preprocessing": True, "repeat_action_probability": 0.0},
    }


def _find_buffers(folder: Path) -> dict[int, dict[str, Path]]:
    """The files of each checkpoint index in ``folder``: ``{N: {array name: path}}``."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no DQN replay logs at {folder}: not a folder. Download a run with {_DOWNLOAD} and "
            "pass dqn-replay:GAME/1/replay_logs."
        )
    buffers: dict[int, dict[str, Path]] = {}
    for file in folder.iterdir():
        match = _FILE.match(file.name)
        if match:
            buffers.setdefault(int(match.group(2)), {})[match.group(1)] = file
    if not buffers:
        raise FileNotFoundError(
            f"no DQN replay logs in {folder} (no $store$_observation_ckpt.N.gz); download a run "
            f"with {_DOWNLOAD} and pass its replay_logs folder."
        )
    return buffers


def _file(folder: Path, index: int, files: dict[str, Path], name: str) -> Path:
    if name not in files:
        raise FileNotFoundError(
            f"{folder / f'$store$_{name}_ckpt.{index}.gz'} is missing (buffer {index} has "
            f"{sorted(files)}); download it again with {_DOWNLOAD}, or leave buffer {index} out "
            "with a smaller num_buffers."
        )
    return files[name]


class _NpyGzip:
    """A gzipped ``.npy`` file read row by row: the header at once, rows on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = gzip.open(path, "rb")
        try:
            version = np.lib.format.read_magic(self._file)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(self._file)
            else:
                header = np.lib.format.read_array_header_2_0(self._file)
        except (OSError, EOFError, ValueError, zlib.error) as error:
            self._file.close()
            raise _corrupt(path, error) from error
        self.shape, fortran_order, self.dtype = header
        if fortran_order or self.dtype.hasobject:
            self._file.close()
            raise ValueError(f"{path}: a Fortran-ordered or object array is not a dopamine log.")

    def read(self, count: int) -> np.ndarray:
        """The next ``count`` rows, ``(count, *shape[1:])``."""
        row_shape = self.shape[1:]
        size = count * int(np.prod(row_shape, dtype=np.int64)) * self.dtype.itemsize
        try:
            raw = self._file.read(size)
        except (OSError, EOFError, zlib.error) as error:
            raise _corrupt(self.path, error) from error
        if len(raw) != size:
            raise _corrupt(self.path, f"{len(raw)} of {size} bytes")
        return np.frombuffer(raw, dtype=self.dtype).reshape(count, *row_shape)  # (count, ...)

    def close(self) -> None:
        self._file.close()


def _corrupt(path: Path, reason: object) -> ValueError:
    return ValueError(
        f"{path} is truncated or corrupt ({reason}); download it again with {_DOWNLOAD}, "
        "or leave this buffer out with a smaller num_buffers."
    )


def _check_shape(file: _NpyGzip, name: str, rows: int | None) -> int:
    """Check ``file`` against dopamine's dtype and shape for ``name``; its number of rows."""
    kinds, row_shape, want = _EXPECTED[name]
    dtype_ok = file.dtype == np.uint8 if name == "observation" else file.dtype.kind in kinds
    if not dtype_ok or len(file.shape) != 1 + len(row_shape) or file.shape[1:] != row_shape:
        raise ValueError(
            f"{file.path}: expected {want} (dopamine's Atari replay logs), got {file.shape} "
            f"{file.dtype}; this reader takes dopamine Atari replay buffers only."
        )
    if rows is not None and file.shape[0] != rows:
        raise ValueError(
            f"{file.path} has {file.shape[0]} rows but the buffer's observations have {rows}: the "
            f"files come from different checkpoints or a partial download; download them again "
            f"with {_DOWNLOAD}."
        )
    return int(file.shape[0])


def _read_buffer(
    folder: Path, index: int, files: dict[str, Path], options: DQNReplayOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One buffer's complete trajectories ``(E, 2)`` (start, end rows) and its actions, rewards."""
    observation = _NpyGzip(_file(folder, index, files, "observation"))
    observation.close()  # its header alone: frames are read later, for the rows kept
    n = _check_shape(observation, "observation", None)
    usable = max(n - 1, 0)  # the last row is stale: batch_rl logs before rewriting it
    if options.buffer_steps is not None:
        usable = min(usable, options.buffer_steps)
    arrays = {}
    for name in ("action", "reward", "terminal"):
        file = _NpyGzip(_file(folder, index, files, name))
        try:
            _check_shape(file, name, n)
            arrays[name] = file.read(usable)  # (usable,)
        finally:
            file.close()
    terminal = arrays["terminal"]
    if np.any((terminal != 0) & (terminal != 1)):
        raise ValueError(f"{files['terminal']}: terminal flags must be 0 or 1.")
    ends = np.flatnonzero(terminal) + 1  # (T,) one past each terminal row
    starts = ends[:-1] + _PADDING  # (T - 1,) first real row after each terminal
    episodes = np.stack([starts, ends[1:]], axis=1)  # (T - 1, 2): rows before ends[0] dropped
    padding = (starts[:, None] - np.arange(_PADDING, 0, -1)).reshape(-1)  # (3 (T - 1),)
    padding = padding[padding < usable]
    if np.any(episodes[:, 1] <= episodes[:, 0]) or any(
        np.any(arrays[name][padding]) for name in arrays
    ):
        raise ValueError(
            f"buffer {index} in {folder}: the {_PADDING} rows after a terminal are not dopamine's "
            "zero padding (action, reward and terminal 0); these files were not written by "
            "dopamine's replay buffer."
        )
    return episodes, arrays["action"], arrays["reward"]


def _plan(lengths: dict[int, np.ndarray], options: DQNReplayOptions) -> dict[int, int]:
    """How many leading trajectories to take from each buffer (the DT sampling rule).

    Args:
        lengths: per candidate buffer, the lengths of its complete trajectories in order.
        options: ``num_steps``, ``trajectories_per_buffer`` and ``seed``.

    Example:
        >>> _plan({0: np.full(5, 10), 1: np.full(9, 10)},
        ...       DQNReplayOptions(num_steps=60, trajectories_per_buffer=2))
        {0: 0, 1: 6}
    """
    rng = np.random.default_rng(options.seed)
    taken = dict.fromkeys(lengths, 0)
    active = sorted(lengths)
    total = 0
    while total < options.num_steps and active:
        index = active[int(rng.integers(len(active)))]
        first, last = taken[index], taken[index] + options.trajectories_per_buffer
        if last > len(lengths[index]):  # the visit would run past the rows read: discarded
            active.remove(index)  # ~ the original re-drawing until a buffer with room comes up
            continue
        total += int(lengths[index][first:last].sum())
        taken[index] = last
    return taken


def _copy_frames(
    path: Path, episodes: np.ndarray, rows: np.ndarray, frames: np.ndarray, offset: int
) -> int:
    """Stream a buffer's frames up to its last kept row, the kept ones into ``frames[offset:]``.

    Returns the new offset. ``episodes`` ``(E, 2)`` are the kept trajectories, ``rows`` their rows.
    """
    end = int(episodes[-1, 1])
    keep = np.zeros(end, dtype=bool)  # (end,) rows of kept trajectories
    keep[rows] = True
    padding = np.zeros(end, dtype=bool)  # (end,) dopamine's zero rows between kept trajectories
    for start in episodes[:, 0]:
        padding[start - _PADDING : start] = True
    file = _NpyGzip(path)
    try:
        for chunk_start in range(0, end, _CHUNK_ROWS):
            count = min(_CHUNK_ROWS, end - chunk_start)
            chunk = file.read(count)  # (count, 84, 84) uint8
            window = slice(chunk_start, chunk_start + count)
            if chunk[padding[window]].any():
                raise ValueError(
                    f"{path}: the frames after a terminal are not dopamine's zero padding; "
                    "these files were not written by dopamine's replay buffer."
                )
            kept = chunk[keep[window]]  # (n_kept, 84, 84)
            frames[offset : offset + len(kept)] = kept
            offset += len(kept)
    finally:
        file.close()
    return offset
