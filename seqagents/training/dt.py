"""Decision Transformer training: DT's parts of the one recipe (:mod:`seqagents.training.recipe`)
— its model config, agent creation, window sampling, :func:`dt_loss` and per-target evaluation —
and the ``train_dt`` entry point.

Protocol (DT paper and kzl/decision-transformer ``gym/experiment.py``,
``docs/references.md`` section 1):
windows of ``K`` steps drawn uniformly over transitions (:class:`~seqagents.data.WindowSampler`),
states normalized by the dataset mean/std, returns-to-go divided by ``return_scale`` (1000 for
MuJoCo), loss on the predicted actions only (the original's state and return heads exist but are
not trained): MSE for continuous actions, cross-entropy for discrete ones (the Atari variant),
averaged over the window positions that are not padding, the window's last step included.
Optimisation comes from :class:`~seqagents.training.trainer.Trainer` (AdamW 1e-4, weight decay
1e-4, 10k warmup steps, grad-norm clip 0.25, batch 64, 100k steps by default).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqagents.agents.base import encoder_for_space
from seqagents.agents.dt import DecisionTransformerAgent
from seqagents.data import TrajectoryData, WindowSampler
from seqagents.models.dt import DTConfig
from seqagents.training.recipe import (
    RECORD_FIELDS,
    Algorithm,
    AlgorithmParts,
    RunSetup,
    run_recipe,
)
from seqagents.training.train_config import TrainConfig
from seqagents.training.trainer import Batch

__all__ = ["dt_loss", "train_dt"]

logger = logging.getLogger(__name__)

# The recipe's view of DT: TrainConfig's own defaults are the DT paper's.
DT = Algorithm(
    name="dt",
    trainer="seqagents.training.train_dt",
    defaults={},
    record_layout=(*RECORD_FIELDS[:7], "loss", *RECORD_FIELDS[7:]),  # loss after final_loss
)


def dt_loss(network: nn.Module, batch: Batch) -> torch.Tensor:
    """Action loss of a :class:`~seqagents.models.dt.DecisionTransformer` on a window batch.

    MSE between predicted and dataset actions (continuous) or cross-entropy of the logits
    (discrete), over the ``mask`` positions only: padding never counts, every real step does
    (the original reshapes to ``(B * K, act_dim)`` and keeps ``attention_mask > 0``).
    Timesteps are clamped to the model's ``max_ep_len - 1`` as the original sampler does.

    Args:
        network: the DT network.
        batch: :meth:`~seqagents.data.WindowSampler.sample`'s dict: ``states (B, K, *obs)``,
            ``actions (B, K, act_dim)`` float or ``(B, K)`` long, ``returns_to_go (B, K, 1)``,
            ``timesteps (B, K)``, ``mask (B, K)``.

    Returns:
        The scalar loss.

    Example:
        >>> from seqagents.models.dt import DecisionTransformer, DTConfig
        >>> net = DecisionTransformer(DTConfig(state_shape=(3,), act_dim=2, hidden_size=16,
        ...                                    n_layer=1, context_len=4))
        >>> batch = {"states": torch.randn(5, 4, 3), "actions": torch.rand(5, 4, 2),
        ...          "returns_to_go": torch.randn(5, 4, 1), "mask": torch.ones(5, 4, dtype=bool),
        ...          "timesteps": torch.arange(4).repeat(5, 1)}
        >>> dt_loss(net, batch).shape
        torch.Size([])
    """
    config: DTConfig = network.config
    mask = batch["mask"]  # (B, K) bool, False on left padding
    timesteps = batch["timesteps"].clamp(max=config.max_ep_len - 1)  # (B, K)
    out = network(batch["states"], batch["actions"], batch["returns_to_go"], timesteps, mask)
    predicted = out.action[mask].float()  # (n_valid, act_dim): actions or logits
    target = batch["actions"][mask]  # (n_valid, act_dim) float or (n_valid,) long
    if config.discrete:
        return F.cross_entropy(predicted, target)
    return F.mse_loss(predicted, target.float())


def train_dt(
    dataset: str | TrajectoryData,
    *,
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    model_config: DTConfig | dict[str, Any] | None = None,
    train_config: TrainConfig | dict[str, Any] | None = None,
    return_scale: float = 1000.0,
    target_returns: Sequence[float] | None = None,
    normalize_states: bool | None = None,
    resume: bool = False,
    progress_bar: bool = True,
    download: bool = False,
) -> DecisionTransformerAgent:
    """Train a Decision Transformer on an offline dataset and save it as a native checkpoint.

    Builds the window sampler (state statistics and returns-to-go computed once), creates an
    agent for the dataset's spaces with those statistics, trains it with
    :class:`~seqagents.training.trainer.Trainer` and :func:`dt_loss`, evaluates it in the env
    every ``eval_every`` steps (:func:`seqagents.evaluation.evaluate_policy`, one run of
    ``eval_episodes`` episodes per target return, seeded with the train seed, D4RL-normalized
    when known) and saves it with ``save_pretrained`` to ``out_dir/checkpoint`` every
    ``checkpoint_every`` steps and at the end. The checkpoint's ``training`` section records the
    dataset, steps, seed, train config and final loss; ``evaluation`` holds the latest
    evaluation (for the first target, all targets under ``per_target``).

    Args:
        dataset: a Minari dataset id (local, or downloaded before), :class:`TrajectoryData`,
            an Atari learning-history folder or ``dqn-replay:PATH[?options]`` (the DQN Replay
            Dataset, :func:`seqagents.data.load_dqn_replay`).
        env_id: gymnasium id to evaluate in and record in the checkpoint; default: the
            dataset's ``env_spec`` (Minari metadata). Its spaces must match the dataset's.
        env_kwargs: ``gymnasium.make`` kwargs; default: those of the dataset's ``env_spec`` when
            ``env_id`` comes from it.
        model_config: a :class:`DTConfig` or a dict of its fields; ``state_shape``, ``act_dim``
            and ``discrete`` are taken from the dataset when missing. Default: the paper model
            (3 layers, 1 head, H=128, K=20).
        train_config: a :class:`TrainConfig` or a dict of its fields (unknown keys are
            rejected). ``out_dir`` defaults to ``runs/dt/<dataset id>``.
        return_scale: returns-to-go are divided by this (DT paper: 1000 for MuJoCo).
        target_returns: target returns stored in the checkpoint (the first is the default at
            inference) and evaluated unless ``eval_targets`` is set; default: the dataset's best
            episode return.
        normalize_states: standardize states with the dataset mean/std; default: yes for flat
            states, no for images.
        resume: continue from ``out_dir/trainer_state.pt`` (see :class:`Trainer`).
        progress_bar: show a tqdm bar on stderr.
        download: fetch a Minari dataset id from the Minari remote if it is not stored locally.

    Returns:
        The trained agent (network in eval mode), also saved in ``out_dir/checkpoint``.

    Raises:
        ValueError: dataset and env (or model config) spaces differ, empty dataset, bad config.
        FileNotFoundError: the dataset id is not available locally.

    Example:
        >>> import numpy as np, gymnasium as gym, tempfile
        >>> rng = np.random.default_rng(0)
        >>> obs = rng.normal(size=(400, 3)).astype(np.float32)
        >>> data = TrajectoryData(
        ...     observations=obs, actions=np.tanh(obs[:, :1]), rewards=np.ones(400),
        ...     terminals=np.zeros(400, bool), episode_starts=np.arange(0, 401, 100),
        ...     observation_space=gym.spaces.Box(-np.inf, np.inf, (3,)),
        ...     action_space=gym.spaces.Box(-1, 1, (1,)))
        >>> run = tempfile.TemporaryDirectory()
        >>> agent = train_dt(data, model_config={"hidden_size": 32, "n_layer": 1,
        ...                                      "context_len": 5},
        ...                  train_config={"steps": 20, "batch_size": 8, "warmup_steps": 5,
        ...                                "device": "cpu", "out_dir": run.name},
        ...                  return_scale=100.0, progress_bar=False)
        >>> agent.config.training["steps"], agent.target_return
        (20, 100.0)
        >>> loaded = DecisionTransformerAgent.from_pretrained(f"{run.name}/checkpoint")
        >>> loaded.config.training["final_loss"] > 0
        True
        >>> run.cleanup()
    """

    def build(setup: RunSetup) -> AlgorithmParts:
        data, config, device = setup.data, setup.config, setup.device
        model = _model_config(model_config, data)
        longest = int(data.episode_lengths.max())
        if longest > model.max_ep_len:
            logger.warning(
                "the longest episode has %d steps but max_ep_len=%d: later timesteps share the "
                "last timestep embedding; raise model_config max_ep_len to avoid it",
                longest,
                model.max_ep_len,
            )
        normalize = len(data.obs_shape) == 1 if normalize_states is None else normalize_states
        sampler = WindowSampler(
            data, model.context_len, return_scale, normalize_states=normalize, device=device
        )
        stats = sampler.stats
        targets = (
            [float(t) for t in target_returns]
            if target_returns
            else [float(data.episode_returns().max())]
        )
        agent = DecisionTransformerAgent.create(
            data.observation_space,
            data.action_space,
            model,
            env_id=setup.env_id,
            env_kwargs=setup.env_kwargs,
            state_mean=stats.state_mean if normalize else None,
            state_std=stats.state_std if normalize else None,
            return_scale=return_scale,
            target_return=targets[0],
            target_returns=targets,
            mission_vocabulary=data.mission_vocabulary,
            device=str(device),
            seed=config.seed,
        )

        def sample(batch_size: int, rng: np.random.Generator) -> Batch:
            # Uniform over transitions == the original's episode-by-length + uniform start.
            return sampler.windows_at(rng.integers(0, sampler.n_transitions, size=batch_size))

        def evaluate(step: int) -> dict[str, Any]:
            assert setup.env is not None and setup.env_id is not None
            eval_targets = config.eval_targets or targets
            env, env_id = setup.env, setup.env_id
            return _evaluate(
                agent, env, env_id, eval_targets, config.eval_episodes, config.seed, step
            )

        loss_name = "cross_entropy" if model.discrete else "mse"
        return AlgorithmParts(agent, dt_loss, sample, evaluate, record={"loss": loss_name})

    return run_recipe(
        DT,
        dataset,
        build,
        env_id=env_id,
        env_kwargs=env_kwargs,
        train_config=train_config,
        resume=resume,
        progress_bar=progress_bar,
        download=download,
    )


# ---------------------------------------------------------------------------- helpers
def _model_config(model_config: DTConfig | dict[str, Any] | None, data: TrajectoryData) -> DTConfig:
    derived = {
        **encoder_for_space(data.observation_space, data.mission_vocabulary),
        "act_dim": data.act_dim,
        "discrete": data.is_discrete,
    }
    if model_config is None:
        return DTConfig(**derived)
    if isinstance(model_config, DTConfig):
        config = dataclasses.replace(model_config)
    elif isinstance(model_config, dict):
        config = DTConfig.from_dict({**derived, **model_config})
    else:
        raise TypeError(f"model_config must be a DTConfig or dict, got {type(model_config)}")
    got = (config.state_shape, config.act_dim, config.discrete)
    if got != (tuple(derived["state_shape"]), derived["act_dim"], derived["discrete"]):
        raise ValueError(
            f"model_config has state_shape={config.state_shape}, act_dim={config.act_dim}, "
            f"discrete={config.discrete} but the dataset has state_shape={data.obs_shape}, "
            f"act_dim={data.act_dim}, discrete={data.is_discrete}; leave these fields out to take "
            "them from the dataset"
        )
    return config


def _evaluate(
    agent: DecisionTransformerAgent,
    env: gym.Env,
    env_id: str,
    targets: Sequence[float],
    n_episodes: int,
    seed: int,
    step: int,
) -> dict[str, Any]:
    """One evaluate_policy run per target; the first target's numbers at the top level."""
    from seqagents.evaluation import evaluate_policy  # imported late: optional at import time
    from seqagents.scores import has_normalized_score, normalized_score

    results = []  # each evaluation's target is episode state: the saved default stays
    for target in targets:
        returns, lengths = evaluate_policy(
            agent,
            env,
            n_eval_episodes=n_episodes,
            deterministic=True,
            return_episode_rewards=True,
            target_return=target,
            seed=seed,
        )
        result: dict[str, Any] = {
            "target_return": float(target),
            "mean_return": float(np.mean(returns)),
            "std_return": float(np.std(returns)),
            "normalized_score": None,
            "mean_length": float(np.mean(lengths)),
            "n_episodes": len(returns),
        }
        if has_normalized_score(env_id):
            scores = normalized_score(np.asarray(returns, dtype=np.float64), env_id)
            result["normalized_score"] = float(np.mean(scores))
            result["normalized_score_std"] = float(np.std(scores))
        results.append(result)
    return {
        "step": step,
        "env_id": env_id,
        "deterministic": True,
        **results[0],
        "per_target": results,
    }
