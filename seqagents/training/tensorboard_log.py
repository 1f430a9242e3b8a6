"""TensorBoard scalars beside a run's ``metrics.jsonl`` (``TrainConfig.tensorboard``): the writer,
opened on first use, and the backfill of earlier records when a run is resumed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqagents.errors import require
from seqagents.training.run_folder import TENSORBOARD_DIR

__all__ = ["TensorBoardLog"]


class TensorBoardLog:
    """The TensorBoard event files of one run folder (``out_dir/tensorboard``)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._writer: Any = None  # SummaryWriter, opened at the first record (rank 0)

    def _open(self, purge_step: int | None = None) -> None:
        if self._writer is None:
            require("tensorboard", "tensorboard")
            from torch.utils.tensorboard import SummaryWriter

            folder = str(self.out_dir / TENSORBOARD_DIR)
            self._writer = SummaryWriter(folder, purge_step=purge_step)

    def backfill(self, history: list[dict[str, Any]], step: int) -> None:
        """At resume with ``tensorboard``: a run that logged no events before gets the resumed
        records of metrics.jsonl (issue 28: ``--tensorboard`` at resume did not backfill); one
        that did keeps its events, less those past the resumed ``step`` (a crash replays them)."""
        if any((self.out_dir / TENSORBOARD_DIR).glob("events.out.tfevents.*")):
            self._open(purge_step=step + 1)
            return
        for record in history:
            self.write(record)

    def write(self, record: dict[str, Any]) -> None:
        """The record's numbers as TensorBoard scalars under ``train/`` (and ``eval/`` for a
        flat evaluation dict), at ``record["step"]``; the writer opens on first use."""
        self._open()
        step = record["step"]
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)):
                self._writer.add_scalar(f"train/{key}", value, step)
        for key, value in (record.get("eval") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(f"eval/{key}", value, step)
        self._writer.flush()

    def close(self) -> None:
        """Close the writer (a later record opens a new one)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
