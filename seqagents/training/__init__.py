"""Training: one generic loop (:class:`Trainer`) and per-algorithm entry points.

Example:
    >>> from seqagents.training import TrainConfig, train_dt
    >>> agent = train_dt("local/pendulum/random-v0", env_id="Pendulum-v1",
    ...                  train_config=TrainConfig(steps=1000))  # doctest: +SKIP
"""

from seqagents.training.dt import dt_loss, train_dt
from seqagents.training.trainer import (
    Batch,
    CheckpointFn,
    EvaluateFn,
    LossFn,
    SampleFn,
    TrainConfig,
    Trainer,
    init_distributed,
)

__all__ = [
    # the generic loop
    "TrainConfig",
    "Trainer",
    "init_distributed",
    "Batch",
    "LossFn",
    "SampleFn",
    "EvaluateFn",
    "CheckpointFn",
    # algorithms
    "dt_loss",
    "train_dt",
    "tt_loss",
    "train_tt",
    "leap_loss",
    "train_leap",
]

from seqagents.training.leap import leap_loss, train_leap  # noqa: E402  (imports dt helpers)
from seqagents.training.tt import train_tt, tt_loss  # noqa: E402  (imports dt helpers)
