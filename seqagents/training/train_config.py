"""The settings of one training run: :class:`TrainConfig` (optimisation and bookkeeping), read
from plain dicts (zoo YAML, ``train_config=``), and which of its fields may change at a resume."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from seqagents.errors import reject_unknown_keys

__all__ = ["RESUME_FREE_FIELDS", "TrainConfig"]

_AMP_MODES = ("auto", "bf16", "off")
# Fields that may differ between a run and its resumption without changing the optimisation.
RESUME_FREE_FIELDS = frozenset(
    {
        "steps",
        "device",
        "eval_every",
        "eval_episodes",
        "eval_targets",
        "log_every",
        "checkpoint_every",
        "out_dir",
        "overwrite",
        "tensorboard",  # turned on at resume: metrics.jsonl is backfilled (Trainer._load_state)
    }
)


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping settings of one training run (defaults: DT paper, D4RL).

    Example:
        >>> config = TrainConfig.from_dict({"steps": 1000, "batch_size": 32})
        >>> config.learning_rate, config.warmup_steps
        (0.0001, 10000)
        >>> TrainConfig.from_dict({"stepz": 10})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown TrainConfig keys ['stepz']...
    """

    steps: int = 100_000  # gradient steps in total (DT paper: 100k, docs/references.md section 1)
    batch_size: int = 64  # windows per step, per process (DT gym/experiment.py: 64)
    learning_rate: float = 1e-4  # AdamW peak learning rate (DT: 1e-4)
    weight_decay: float = 1e-4  # AdamW decoupled decay on weight matrices only (DT: 1e-4)
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas (torch default, as the DT code)
    warmup_steps: int = 10_000  # linear warmup lr * min(1, (step + 1) / warmup) (DT: 10k)
    grad_clip: float = 0.25  # max global gradient norm, 0 = no clipping (DT: 0.25)
    seed: int = 0  # seeds model init and every step's sampling and dropout (see module doc)
    device: str = "auto"  # "auto" = CUDA (cuda:LOCAL_RANK under torchrun) if available, else CPU
    amp: str = "auto"  # "auto" = bf16 autocast on CUDA only, "bf16" = always, "off" = never
    eval_every: int = 0  # evaluate every this many steps and at the end; 0 = never
    eval_episodes: int = 10  # episodes per evaluation target (DT paper: 100 for final scores)
    eval_targets: list[float] = field(default_factory=list)  # DT target returns; [] = the agent's
    log_every: int = 100  # write a metrics.jsonl record every this many steps (and at the end)
    checkpoint_every: int = 10_000  # save every this many steps (and at the end); 0 = end only
    out_dir: str | None = None  # run folder (metrics, checkpoint, trainer state); None = no files
    tensorboard: bool = False  # also log the records to out_dir/tensorboard (needs tensorboard)
    # A fresh run replaces a previous seqagents run in out_dir (`seqagents train --force`): the
    # old folder is moved aside when the run starts, after every set-up step has succeeded, and
    # deleted then; a folder holding anything a run does not write is refused (ValueError).
    overwrite: bool = False

    def __post_init__(self) -> None:
        # float() also accepts YAML 1.1's "1e-4", which PyYAML reads as a string (no dot).
        self.learning_rate = float(self.learning_rate)
        self.weight_decay = float(self.weight_decay)
        self.grad_clip = float(self.grad_clip)
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        self.eval_targets = [float(target) for target in self.eval_targets]
        if self.out_dir is not None:
            self.out_dir = str(self.out_dir)
        if not isinstance(self.overwrite, bool):
            raise TypeError(f"TrainConfig.overwrite must be a bool, got {self.overwrite!r}")
        positive = ("steps", "batch_size", "log_every", "eval_episodes")
        non_negative = ("warmup_steps", "eval_every", "checkpoint_every", "seed")
        for name in positive + non_negative:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"TrainConfig.{name} must be an int, got {value!r}")
            if value < (1 if name in positive else 0):
                bound = "at least 1" if name in positive else "non-negative"
                raise ValueError(f"TrainConfig.{name} must be {bound}, got {value}")
        if not self.learning_rate > 0:
            raise ValueError(
                f"TrainConfig.learning_rate must be positive, got {self.learning_rate}"
            )
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("TrainConfig.weight_decay and grad_clip must be non-negative")
        if self.amp not in _AMP_MODES:
            raise ValueError(f"TrainConfig.amp must be one of {_AMP_MODES}, got {self.amp!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists)."""
        data = asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a plain dict (e.g. parsed YAML); unknown keys or wrong types raise
        ``ValueError``. Numeric strings in float fields are read as floats (PyYAML reads YAML
        1.1's ``1e-4`` as a string)."""
        floats = ("learning_rate", "weight_decay", "grad_clip")
        if isinstance(data, dict):
            data = {k: _yaml_float(v) if k in floats else v for k, v in data.items()}
        reject_unknown_keys(cls, data, "unknown TrainConfig keys")
        return cls(**data)


def _yaml_float(value: Any) -> Any:
    """``"1e-4"`` -> ``1e-4``; anything else unchanged (left for the type check)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
