"""The run folder: the names of the files a training run writes, which folders count as a
previous run (:func:`foreign_run_entries`), and replacing one (``TrainConfig.overwrite``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = [
    "CHECKPOINT_DIR",
    "DISTRIBUTED_NAME",
    "METRICS_NAME",
    "STATE_NAME",
    "TENSORBOARD_DIR",
    "foreign_run_entries",
    "replace_previous_run",
]

METRICS_NAME = "metrics.jsonl"
STATE_NAME = "trainer_state.pt"
CHECKPOINT_DIR = "checkpoint"  # the agent's save_pretrained folder inside out_dir
TENSORBOARD_DIR = "tensorboard"
DISTRIBUTED_NAME = "distributed.json"


def foreign_run_entries(out_dir: Path | str) -> list[str]:
    """What in ``out_dir`` a seqagents training run did not write (empty for a run folder).

    A run writes ``metrics.jsonl``, ``trainer_state.pt`` (and its ``.tmp``),
    ``distributed.json``, ``tensorboard/`` event files and ``checkpoint/`` (``config.json`` of
    format ``seqagents``, ``model.safetensors``, ``README.md``), plus the hidden temporary
    siblings of an atomic checkpoint write. A folder that holds none of the first three, or is
    a link, counts as foreign as a whole. ``--force`` replaces only folders for which this list
    is empty, so that a mistyped ``--out`` never deletes a user's files.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / "notes.txt").write_text("mine")
        ...     foreign_run_entries(folder)
        ['notes.txt']
    """
    from seqagents._files import TEMP_MARKERS
    from seqagents.checkpoints.native import CONFIG_NAME, FORMAT, WEIGHTS_NAME

    out_dir = Path(out_dir)
    if out_dir.is_symlink() or not out_dir.is_dir():
        return [str(out_dir)]
    files = {METRICS_NAME, STATE_NAME, f"{STATE_NAME}.tmp", DISTRIBUTED_NAME}
    foreign, marked = [], False
    for entry in sorted(os.scandir(out_dir), key=lambda e: e.name):
        name, is_file = entry.name, entry.is_file(follow_symlinks=False)
        is_dir = entry.is_dir(follow_symlinks=False)
        if is_file and name in files:
            marked |= name in (METRICS_NAME, STATE_NAME)
        elif is_dir and name == TENSORBOARD_DIR:
            foreign += [
                f"{name}/{e.name}"
                for e in os.scandir(entry.path)
                if not (e.is_file(follow_symlinks=False) and e.name.startswith("events.out."))
            ]
        elif is_dir and (
            name == CHECKPOINT_DIR
            or (name.startswith(f".{CHECKPOINT_DIR}.") and any(m in name for m in TEMP_MARKERS))
        ):
            known = {CONFIG_NAME, WEIGHTS_NAME, "README.md"}
            foreign += [
                f"{name}/{e.name}"
                for e in os.scandir(entry.path)
                if not (e.is_file(follow_symlinks=False) and e.name in known)
            ]
            if name == CHECKPOINT_DIR:
                try:
                    config = json.loads((Path(entry.path) / CONFIG_NAME).read_text())
                    marked |= isinstance(config, dict) and config.get("format") == FORMAT
                except (OSError, ValueError):
                    foreign.append(f"{name}/{CONFIG_NAME} (not a seqagents checkpoint config)")
        else:
            foreign.append(name + ("/" if is_dir else ""))
    if not marked and not foreign:
        foreign.append(f"(no {METRICS_NAME}, {STATE_NAME} or {CHECKPOINT_DIR}/{CONFIG_NAME})")
    return foreign


def replace_previous_run(out_dir: Path) -> Path | None:
    """Move the previous run in ``out_dir`` aside (``overwrite=True``); returns where it went
    (deleted by the caller once the new folder exists), or None when there was none."""
    from seqagents._files import temp_sibling

    if not os.path.lexists(out_dir):
        return None
    if out_dir.is_dir() and not out_dir.is_symlink() and not any(out_dir.iterdir()):
        return None
    foreign = foreign_run_entries(out_dir)
    if foreign:
        raise ValueError(
            f"{out_dir} is not a seqagents run folder (it holds {', '.join(foreign[:5])}); "
            "overwrite replaces only a previous run: choose another out_dir"
        )
    if Path.cwd().resolve().is_relative_to(out_dir.resolve()):
        raise ValueError(f"{out_dir} is the working folder (or holds it); it cannot be replaced")
    aside = temp_sibling(out_dir, "old")
    os.replace(out_dir, aside / out_dir.name)
    return aside
