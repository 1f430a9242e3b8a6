"""Trajectory Transformer training: TT's parts of the one recipe (:mod:`seqagents.training.recipe`)
— its defaults, agent creation (with the discretizer), token windows and the weighted loss — and
the ``train_tt`` entry point.

Protocol (TT paper / jannerm/trajectory-transformer ``config/offline.py``,
``docs/references.md`` section 2):
transitions ``(obs, action, reward, value-to-go)`` with value discount 0.99 and termination
penalty -100 (:func:`~seqagents.planning.trajectory_transitions`), quantile-discretized into
N = 100 bins per dimension; sequences of 10 transitions (249 input tokens); next-token
cross-entropy with action tokens weighted 5; 4 layers, 4 heads, width 128; batch 256, lr 6e-4.

Deviation, written down: windows are drawn uniformly among the starts whose 10 transitions lie in
one episode (the original also draws windows that run past an episode's end and pads them with
masked zeros); episodes shorter than the window are skipped. The original's cosine learning-rate
decay over tokens is replaced by the shared trainer's linear warmup and constant rate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from seqagents.agents.tt import TrajectoryTransformerAgent
from seqagents.data import TrajectoryData
from seqagents.planning import trajectory_transitions
from seqagents.training.recipe import (
    RECORD_FIELDS,
    Algorithm,
    AlgorithmParts,
    RunSetup,
    run_recipe,
)
from seqagents.training.train_config import TrainConfig
from seqagents.training.trainer import Batch

__all__ = ["TT_TRAIN_DEFAULTS", "train_tt", "tt_loss", "window_sampler"]

logger = logging.getLogger(__name__)

# TrainConfig values of the original TT (config/offline.py; the GPT optimizer of minGPT).
TT_TRAIN_DEFAULTS = {
    "batch_size": 256,
    "learning_rate": 6e-4,
    "weight_decay": 0.1,
    "betas": (0.9, 0.95),
    "grad_clip": 1.0,
    "warmup_steps": 1000,
}


def _check_data(data: TrajectoryData) -> None:
    if data.is_discrete or len(data.obs_shape) != 1:
        raise ValueError(
            "Trajectory Transformer training needs flat observations and continuous actions"
        )


# The recipe's view of TT. It does not evaluate while training (plans are slow; evaluate the
# checkpoint afterwards).
TT = Algorithm(
    name="tt",
    trainer="seqagents.training.train_tt",
    defaults=TT_TRAIN_DEFAULTS,
    record_layout=(*RECORD_FIELDS[:7], "loss", *RECORD_FIELDS[7:], "sequence_transitions"),
    check_data=_check_data,
    evaluates=False,
    kwargs_follow_env_id=True,
)


def tt_loss(network: nn.Module, batch: Batch) -> torch.Tensor:
    """Weighted next-token cross-entropy of a TT network on a token batch.

    Args:
        network: a :class:`~seqagents.models.tt.TrajectoryTransformer`.
        batch: ``tokens (B, T)`` inputs and ``targets (B, T)`` (the inputs shifted by one).
    """
    return network.loss(batch["tokens"], batch["targets"])


def _window_starts(offsets: np.ndarray, length: int) -> np.ndarray:
    """Every start index whose ``length`` transitions stay inside one episode."""
    starts = [
        np.arange(a, b - length + 1) for a, b in zip(offsets[:-1], offsets[1:]) if b - a >= length
    ]
    if not starts:
        raise ValueError(f"no episode has {length} transitions; lower sequence_transitions")
    return np.concatenate(starts)


def window_sampler(
    tokens: torch.Tensor, offsets: np.ndarray, sequence_transitions: int
) -> Callable[[int, np.random.Generator], Batch]:
    """TT's training windows: ``sample(batch_size, rng)`` draws starts uniformly among those whose
    ``sequence_transitions`` transitions lie in one episode and gathers their tokens.

    Args:
        tokens: ``(N, D)`` discretized transitions, episodes back to back.
        offsets: episode boundaries ``(n_episodes + 1,)`` (``TrajectoryData.episode_starts``).
        sequence_transitions: L, transitions per window.
    """
    starts = _window_starts(offsets, sequence_transitions)  # (n_windows,)
    span = torch.arange(sequence_transitions, device=tokens.device)  # (L,)

    def sample(batch_size: int, rng: np.random.Generator) -> Batch:
        idx = torch.as_tensor(rng.choice(starts, size=batch_size), device=tokens.device)  # (B,)
        seq = tokens[idx[:, None] + span].reshape(batch_size, -1)  # (B, L * D)
        return {"tokens": seq[:, :-1], "targets": seq[:, 1:]}  # (B, L*D - 1) each

    return sample


def train_tt(
    dataset: str | TrajectoryData,
    *,
    env_id: str | None = None,
    model_config: dict[str, Any] | None = None,
    train_config: TrainConfig | dict[str, Any] | None = None,
    planner: dict[str, Any] | None = None,
    n_bins: int = 100,
    discretizer_kind: str = "quantile",
    sequence_transitions: int = 10,
    resume: bool = False,
    progress_bar: bool = True,
) -> TrajectoryTransformerAgent:
    """Train a Trajectory Transformer on an offline dataset; save it as a native checkpoint.

    Args:
        dataset: a local Minari dataset id or :class:`~seqagents.data.TrajectoryData`.
        env_id: env recorded in the checkpoint (default: the dataset's ``env_spec``).
        model_config: :class:`~seqagents.models.tt.TTConfig` fields (dims come from the data;
            ``block_size`` from ``sequence_transitions``).
        train_config: :class:`TrainConfig` fields; missing ones take :data:`TT_TRAIN_DEFAULTS`.
        planner: :class:`~seqagents.planning.BeamSearchConfig` fields and ``seed``, stored as
            inference defaults.
        n_bins: N, bins per dimension (paper: 100).
        discretizer_kind: ``"quantile"`` (paper) or ``"uniform"``.
        sequence_transitions: transitions per training sequence (paper: 10).
        resume: continue from ``out_dir/trainer_state.pt``.
        progress_bar: tqdm bar on stderr.

    Returns:
        The trained agent, also saved in ``out_dir/checkpoint``.

    Example:
        >>> import numpy as np, gymnasium as gym, tempfile
        >>> rng = np.random.default_rng(0)
        >>> data = TrajectoryData(
        ...     observations=rng.normal(size=(300, 2)).astype(np.float32),
        ...     actions=rng.uniform(-1, 1, (300, 1)).astype(np.float32),
        ...     rewards=np.ones(300), terminals=np.zeros(300, bool),
        ...     episode_starts=np.array([0, 150, 300]),
        ...     observation_space=gym.spaces.Box(-np.inf, np.inf, (2,)),
        ...     action_space=gym.spaces.Box(-1, 1, (1,)))
        >>> run = tempfile.TemporaryDirectory()
        >>> agent = train_tt(data, model_config={"n_layer": 1, "n_head": 1, "n_embd": 16},
        ...                  train_config={"steps": 5, "batch_size": 4, "device": "cpu",
        ...                                "out_dir": run.name}, n_bins=10,
        ...                  sequence_transitions=3, progress_bar=False)
        >>> agent.model_config.block_size, agent.config.training["steps"]
        (14, 5)
        >>> run.cleanup()
    """

    def build(setup: RunSetup) -> AlgorithmParts:
        data, config, device = setup.data, setup.config, setup.device
        rows = trajectory_transitions(
            data.observations, data.actions, data.rewards, data.terminals, data.episode_starts
        )  # (N, D)
        transition_dim = rows.shape[1]
        model = {"block_size": sequence_transitions * transition_dim - 1, **(model_config or {})}
        agent = TrajectoryTransformerAgent.create(
            data.observation_space,
            data.action_space,
            rows,
            n_bins=n_bins,
            discretizer_kind=discretizer_kind,
            env_id=setup.env_id,
            env_kwargs=setup.env_kwargs,
            planner=planner,
            device=str(device),
            seed=config.seed,
            **model,
        )
        tokens = agent.discretizer.discretize(rows).to(device)  # (N, D) long
        sample = window_sampler(tokens, data.episode_starts, sequence_transitions)

        record = {"loss": "weighted_cross_entropy", "sequence_transitions": sequence_transitions}
        return AlgorithmParts(agent, tt_loss, sample, record=record)

    return run_recipe(
        TT, dataset, build, env_id=env_id, train_config=train_config, resume=resume,
        progress_bar=progress_bar,
    )  # fmt: skip
