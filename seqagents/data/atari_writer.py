"""Writing Atari games to a dataset folder: compressed ``.npz`` chunks of whole games, a learning
curve CSV and ``metadata.json``, in the format :mod:`seqagents.data.atari` reads."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seqagents.data.atari import ATARI_FORMAT, FRAME_SIZE

if TYPE_CHECKING:
    from seqagents.data.atari_collect import LearningHistoryRecorder

__all__ = ["AtariDatasetWriter"]

_CURVE_COLUMNS = (
    "episode",
    "env_index",
    "policy_steps",
    "recorded_steps",
    "length",
    "return",
    "clipped_return",
    "terminated",
    "truncated",
    "wall_time_s",
)


class AtariDatasetWriter:
    """Streams finished games to compressed ``.npz`` chunks in a dataset folder.

    Games are buffered until at least ``chunk_size`` steps are waiting, then written as one chunk
    (a chunk holds whole games, so it may exceed ``chunk_size`` by one game). :meth:`close` asks
    the attached recorders to hand over the games still in progress (stored as truncated), writes
    the last chunk and ``metadata.json``.

    Args:
        out_dir: the dataset folder (created).
        chunk_size: steps per chunk (10,000 steps ≈ 70 MB of frames in RAM before compression).
        metadata: extra JSON-safe entries for ``metadata.json`` (env id, settings).
        overwrite: replace an existing dataset folder instead of failing.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        *,
        chunk_size: int = 10_000,
        metadata: dict[str, Any] | None = None,
        overwrite: bool = False,
        resume: dict[str, Any] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        if resume is not None:
            self._init_counts(chunk_size, metadata)
            self._restore(resume)
            return
        if (self.out_dir / "metadata.json").exists() or any(self.out_dir.glob("chunk_*.npz")):
            if not overwrite:
                raise FileExistsError(
                    f"{self.out_dir} already holds an Atari dataset; pass overwrite=True "
                    "(--overwrite) or choose another folder."
                )
            for path in [*self.out_dir.glob("chunk_*.npz"), self.out_dir / "metadata.json"]:
                path.unlink(missing_ok=True)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._init_counts(chunk_size, metadata)
        self._curve_file = open(self.out_dir / "training_curve.csv", "w", newline="")  # noqa: SIM115
        self._curve = csv.writer(self._curve_file)
        self._curve.writerow(_CURVE_COLUMNS)

    def _init_counts(self, chunk_size: int, metadata: dict[str, Any] | None) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}.")
        self.chunk_size = int(chunk_size)
        self.metadata = dict(metadata or {})
        self.policy_steps = 0  # set by the training loop: policy steps taken so far
        self.n_steps = 0  # steps handed over so far (written or buffered)
        self.n_episodes = 0
        self.n_chunks = 0
        self.returns: list[float] = []  # raw return of every finished game, in order
        self._pending: list[dict[str, np.ndarray]] = []
        self._pending_steps = 0
        self._recorders: list[LearningHistoryRecorder] = []
        self._start = time.monotonic()
        self._elapsed_before = 0.0  # wall time of the sessions before a resume
        self._closed = False

    def stage(self) -> dict[str, Any]:
        """Write the finished games still buffered as a chunk and return the writer's counts
        (what :func:`record_ppo_history` saves in ``stage.json`` to resume from here)."""
        self._write_chunk()
        self._curve_file.flush()
        return {
            "n_steps": self.n_steps,
            "n_episodes": self.n_episodes,
            "n_chunks": self.n_chunks,
            "returns": list(self.returns),
            "wall_time_s": round(self._elapsed(), 1),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        """Continue a folder from a :meth:`stage`: later chunks and curve rows are dropped."""
        self.n_steps, self.n_episodes = int(state["n_steps"]), int(state["n_episodes"])
        self.n_chunks, self.returns = int(state["n_chunks"]), [float(r) for r in state["returns"]]
        self._elapsed_before = float(state["wall_time_s"])
        for path in self.out_dir.glob("chunk_*.npz"):
            index = int(path.name[len("chunk_") :].split(".")[0])
            if index >= self.n_chunks or ".tmp" in path.name:
                path.unlink()  # written after the stage (or half-written): recorded again
        missing = [i for i in range(self.n_chunks) if not self._chunk_path(i).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{self.out_dir}: chunks {missing[:5]} of the stage to resume from are missing; "
                "record the history again (without --resume)."
            )
        (self.out_dir / "metadata.json").unlink(missing_ok=True)  # rewritten by close()
        curve = self.out_dir / "training_curve.csv"
        rows = curve.read_text().splitlines(keepends=True)[: self.n_episodes + 1]
        curve.write_text("".join(rows))  # header + one row per game up to the stage
        self._curve_file = open(curve, "a", newline="")  # noqa: SIM115
        self._curve = csv.writer(self._curve_file)

    def _elapsed(self) -> float:
        return self._elapsed_before + time.monotonic() - self._start

    def _chunk_path(self, index: int) -> Path:
        return self.out_dir / f"chunk_{index:05d}.npz"

    def attach(self, recorder: LearningHistoryRecorder) -> int:
        """Register a recorder (its unfinished game is flushed on close); returns its env index."""
        self._recorders.append(recorder)
        return len(self._recorders) - 1

    def add_episode(
        self,
        frames: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        clipped_rewards: np.ndarray,
        *,
        terminated: bool,
        truncated: bool,
        env_index: int = 0,
    ) -> None:
        """Hand over one game: ``frames (T, 84, 84)`` uint8 and ``(T,)`` actions and rewards."""
        if self._closed:
            raise RuntimeError("the writer is closed.")
        steps = len(actions)
        if steps == 0:
            return
        terminals = np.zeros(steps, dtype=bool)  # (T,)
        truncations = np.zeros(steps, dtype=bool)  # (T,)
        terminals[-1], truncations[-1] = terminated, truncated and not terminated
        self._pending.append(
            {
                "frames": np.asarray(frames, dtype=np.uint8),
                "actions": np.asarray(actions, dtype=np.int16),
                "rewards": np.asarray(rewards, dtype=np.float32),
                "clipped_rewards": np.asarray(clipped_rewards, dtype=np.float32),
                "terminals": terminals,
                "truncations": truncations,
            }
        )
        self._pending_steps += steps
        self.n_steps += steps
        self.n_episodes += 1
        game_return = float(np.sum(rewards, dtype=np.float64))
        self.returns.append(game_return)
        self._curve.writerow(
            (
                self.n_episodes - 1,
                env_index,
                self.policy_steps,
                self.n_steps,
                steps,
                game_return,
                float(np.sum(clipped_rewards, dtype=np.float64)),
                int(terminated),
                int(truncated),
                round(self._elapsed(), 2),
            )
        )
        self._curve_file.flush()
        if self._pending_steps >= self.chunk_size:
            self._write_chunk()

    def _write_chunk(self) -> None:
        if not self._pending:
            return
        arrays = {
            key: np.concatenate([episode[key] for episode in self._pending])  # (n, ...)
            for key in self._pending[0]
        }
        arrays["episode_lengths"] = np.array(
            [len(episode["actions"]) for episode in self._pending], dtype=np.int64
        )  # (e,)
        path = self._chunk_path(self.n_chunks)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)  # a chunk appears only when complete
        self.n_chunks += 1
        self._pending, self._pending_steps = [], 0

    def close(self) -> dict[str, Any]:
        """Flush unfinished games (as truncated) and the last chunk; write ``metadata.json``.

        Returns:
            The metadata written.
        """
        if self._closed:
            return self.metadata
        for recorder in self._recorders:
            recorder.finish_episode(truncated=True)
        self._write_chunk()
        self._closed = True
        self._curve_file.close()
        returns = np.asarray(self.returns, dtype=np.float64)
        self.metadata.update(
            format=ATARI_FORMAT,
            n_steps=self.n_steps,
            n_episodes=self.n_episodes,
            n_chunks=self.n_chunks,
            policy_steps=self.policy_steps,
            frame_shape=[FRAME_SIZE, FRAME_SIZE],
            frame_preprocessing=(
                "MaxAndSkip(4) max-pooled RGB → cv2 RGB2GRAY → cv2.resize 84×84 INTER_AREA, uint8"
            ),
            return_mean=float(returns.mean()) if returns.size else None,
            return_max=float(returns.max()) if returns.size else None,
            wall_time_s=round(self._elapsed(), 1),
        )
        with open(self.out_dir / "metadata.json", "w") as f:
            json.dump(self.metadata, f, indent=2)
        return self.metadata
