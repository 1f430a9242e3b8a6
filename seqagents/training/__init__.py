"""Training: :func:`train` (a zoo entry or a dataset), the per-algorithm entry points, the one
recipe they share and its generic loop (:class:`Trainer`).

Modules: ``launch`` (:func:`train`: zoo entry -> algorithm), ``recipe`` (set-up, run folder,
training record), ``trainer`` (the loop: AdamW, warmup, clipping, checkpoints, resume),
``train_config`` (:class:`TrainConfig`), ``run_folder`` (its files), ``distributed`` (torchrun),
``tensorboard_log``; one module per algorithm (``dt``, ``tt``, ``leap``) with its defaults,
agent creation, batch sampling and loss.

Example:
    >>> import seqagents
    >>> agent = seqagents.train("dt/halfcheetah-medium", steps=1000)  # doctest: +SKIP
    >>> agent = seqagents.train("local/pendulum/random-v0", algo="dt", steps=1000)  # doctest: +SKIP
"""

from seqagents.training.distributed import init_distributed
from seqagents.training.dt import dt_loss, train_dt
from seqagents.training.launch import train
from seqagents.training.leap import leap_loss, train_leap
from seqagents.training.train_config import TrainConfig
from seqagents.training.trainer import (
    Batch,
    CheckpointFn,
    EvaluateFn,
    LossFn,
    SampleFn,
    Trainer,
)
from seqagents.training.tt import train_tt, tt_loss

__all__ = [
    # a zoo entry, or an algorithm on a dataset
    "train",
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
