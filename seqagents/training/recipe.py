"""The one training recipe: everything the DT, TT and LEAP trainers share, written once.

:func:`run_recipe` takes an :class:`Algorithm` (its TrainConfig defaults, the data it accepts,
the layout of its training record) and the algorithm's ``build`` function (agent creation, batch
sampling, loss and evaluation, returned as an :class:`AlgorithmParts`) and does the rest, in
this order: the train config over the algorithm's defaults, the data
(:func:`load_training_data`), the env (the dataset's unless one is given), the run folder
(``runs/<algo>/<dataset id>`` unless ``out_dir`` is set), the data against the env's spaces,
the device, then :class:`~seqagents.training.trainer.Trainer` (AdamW, warmup, grad clip, the
evaluation callback, checkpoints, progress bar, per-step seeding, resume, DDP under
``torchrun``). At every checkpoint and at the end the training record (dataset, steps, seed,
final loss, train config and the algorithm's own fields) and the latest evaluation go into the
agent's checkpoint config, which is saved to ``out_dir/checkpoint``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from seqagents.data import TrajectoryData
from seqagents.envs import check_env_id_from_file, describe_space, spaces_match
from seqagents.training.distributed import rank_and_world_size, resolve_train_device
from seqagents.training.run_folder import CHECKPOINT_DIR
from seqagents.training.train_config import TrainConfig
from seqagents.training.trainer import EvaluateFn, LossFn, SampleFn, Trainer

__all__ = [
    "RECORD_FIELDS",
    "Algorithm",
    "AlgorithmParts",
    "RunSetup",
    "check_spaces",
    "load_training_data",
    "run_recipe",
    "train_config_over",
]

logger = logging.getLogger(__name__)

# The training-record fields the recipe fills in; an algorithm adds its own (AlgorithmParts).
RECORD_FIELDS = (
    "trainer",  # the public function that trained it, e.g. seqagents.training.train_dt
    "dataset_id",  # Minari id (None for in-memory data)
    "n_episodes",
    "n_transitions",
    "steps",  # gradient steps done
    "seed",
    "final_loss",  # mean over the last logging interval
    "world_size",  # processes under torchrun (1 without)
    "train_config",  # TrainConfig.to_dict()
)


@dataclass(frozen=True)
class Algorithm:
    """What the recipe needs to know of an algorithm before it builds anything."""

    name: str  # "dt", "tt", "leap": the run folder runs/<name>/<dataset id>, log lines
    trainer: str  # the training record's "trainer" (the public entry point)
    defaults: Mapping[str, Any]  # TrainConfig fields that differ from TrainConfig's (the paper's)
    record_layout: tuple[str, ...]  # the training record's keys, in order (RECORD_FIELDS + own)
    check_data: Callable[[TrajectoryData], None] | None = None  # raises ValueError if unfit
    evaluates: bool = True  # whether build returns an evaluate callback (eval_every needs an env)
    # Where no env_kwargs are given: False = the dataset's when the env is the dataset's because
    # none was named (DT, LEAP); True = the dataset's whenever the env id is the dataset's (TT's
    # rule since its first version, kept so that a run resumed across the change records the same).
    kwargs_follow_env_id: bool = False


@dataclass
class RunSetup:
    """What the recipe prepared for ``build``: data, settings, env and device."""

    data: TrajectoryData
    config: TrainConfig  # with out_dir set
    env_id: str | None  # the env to evaluate in and record in the checkpoint
    env_kwargs: dict[str, Any]  # its gymnasium.make kwargs
    env: gym.Env | None  # that env, open (None: no env id, or it cannot be made and is not needed)
    device: torch.device


@dataclass
class AlgorithmParts:
    """What an algorithm's ``build(setup)`` returns: the agent and how to train it."""

    agent: Any  # a seqagents agent (network, spec, save_pretrained, reset)
    loss: LossFn  # (network, batch) -> scalar loss
    sample: SampleFn  # (batch_size, rng) -> batch
    evaluate: EvaluateFn | None = None  # (step) -> JSON-safe metrics, in the env
    record: dict[str, Any] = field(default_factory=dict)  # the algorithm's own record fields


def train_config_over(
    train_config: TrainConfig | Mapping[str, Any] | None, defaults: Mapping[str, Any]
) -> TrainConfig:
    """A :class:`TrainConfig` (copied) as is, or a dict of its fields over ``defaults``.

    Example:
        >>> train_config_over({"steps": 10}, {"batch_size": 256}).batch_size
        256
    """
    if train_config is None:
        train_config = {}
    if isinstance(train_config, TrainConfig):
        return dataclasses.replace(train_config)
    if isinstance(train_config, Mapping):
        return TrainConfig.from_dict({**defaults, **train_config})
    raise TypeError(f"train_config must be a TrainConfig or dict, got {type(train_config)}")


def load_training_data(
    dataset: str | TrajectoryData, download: bool = False
) -> tuple[TrajectoryData, str | None, dict[str, Any]]:
    """The data, plus the env id and kwargs recorded in its metadata (if any).

    ``dataset`` is a Minari id, :class:`TrajectoryData`, the folder of an Atari learning
    history (``seqagents collect --learn ppo``), or ``dqn-replay:PATH[?options]``, the DQN
    Replay Dataset sampled as the DT paper did (:func:`seqagents.data.load_dqn_replay`); the
    Atari RTGs use the clipped rewards.

    Raises:
        FileNotFoundError: a Minari id stored nowhere locally (with ``download=False``).
        ValueError: a dataset without transitions.
    """
    from seqagents.data import load_dataset, to_trajectory_data
    from seqagents.data.dqn_replay import DQN_REPLAY_PREFIX, load_dqn_replay

    if isinstance(dataset, TrajectoryData):
        return dataset, None, {}
    if not isinstance(dataset, str):
        raise TypeError(f"dataset must be a Minari id or TrajectoryData, got {type(dataset)}")
    if dataset.startswith(DQN_REPLAY_PREFIX):  # dopamine replay logs (DT paper's Atari data)
        data = load_dqn_replay(dataset)
        meta = data.metadata or {}
        return data, meta.get("env_id"), dict(meta.get("eval_env_kwargs") or {})
    if (Path(dataset) / "metadata.json").is_file():  # an Atari frames folder
        from seqagents.data.atari import load_atari_dataset

        data = load_atari_dataset(dataset, reward="clipped")
        meta = data.metadata or {}
        return data, meta.get("env_id"), dict(meta.get("eval_env_kwargs") or {})
    minari_dataset = load_dataset(dataset, download=download)  # FileNotFoundError if missing
    data = to_trajectory_data(minari_dataset)  # ValueError if it holds no transitions
    spec = minari_dataset.env_spec
    if spec is None:
        return data, None, {}
    kwargs = {}
    for key, value in (spec.kwargs or {}).items():
        try:
            json.dumps(value)
        except TypeError:
            logger.warning("env kwarg %s=%r is not JSON-serializable; not recorded", key, value)
            continue
        kwargs[key] = value
    return data, spec.id, kwargs


def check_spaces(data: TrajectoryData, env: gym.Env, env_id: str) -> None:
    """The data's observation and action spaces are the env's, or a ValueError naming both."""
    name = f"dataset '{data.dataset_id}'" if data.dataset_id else "the dataset"
    for what, ours, theirs in (
        ("observation", data.observation_space, env.observation_space),
        ("action", data.action_space, env.action_space),
    ):
        if not spaces_match(ours, theirs):
            raise ValueError(
                f"{what} spaces differ: {name} has {describe_space(ours)} but env '{env_id}' has "
                f"{describe_space(theirs)}; pass the env_id the data was collected in"
            )


def _resolve_env(
    algorithm: Algorithm,
    data: TrajectoryData,
    env_id: str | None,
    env_kwargs: Mapping[str, Any] | None,
    dataset_env: tuple[str | None, dict[str, Any]],
) -> tuple[str | None, dict[str, Any]]:
    """The env id and kwargs to train with: those given, else the dataset's (module doc)."""
    spec_env_id, spec_env_kwargs = dataset_env
    if not env_id:
        check_env_id_from_file(spec_env_id, f"the metadata of dataset {data.dataset_id!r}")
        env_id = spec_env_id
        if env_kwargs is None:
            env_kwargs = spec_env_kwargs
    elif algorithm.kwargs_follow_env_id and env_kwargs is None:
        env_kwargs = spec_env_kwargs if env_id == spec_env_id else None
    return env_id, dict(env_kwargs or {})


def _open_env(
    data: TrajectoryData, env_id: str, env_kwargs: dict[str, Any], needed: bool
) -> gym.Env | None:
    """The env, its spaces checked against the data's; None (a warning) when it cannot be made
    and nothing but the space check needs it (an env named only by the dataset's metadata)."""
    from seqagents.envs import make_env

    try:
        env = make_env(env_id, **env_kwargs)
    except (gym.error.Error, ImportError) as error:
        if needed:
            raise
        logger.warning("cannot make the dataset's env %r (%s); training anyway", env_id, error)
        return None
    try:
        check_spaces(data, env, env_id)
    except BaseException:
        env.close()
        raise
    return env


def _training_record(
    algorithm: Algorithm,
    parts: AlgorithmParts,
    data: TrajectoryData,
    config: TrainConfig,
    step: int,
    summary: dict[str, Any],
) -> dict[str, Any]:
    values = {
        "trainer": algorithm.trainer,
        "dataset_id": data.dataset_id,
        "n_episodes": data.n_episodes,
        "n_transitions": data.n_transitions,
        "steps": step,
        "seed": config.seed,
        "final_loss": summary.get("loss"),
        "world_size": rank_and_world_size()[1],
        "train_config": config.to_dict(),
        **parts.record,
    }
    return {key: values[key] for key in algorithm.record_layout}


def run_recipe(
    algorithm: Algorithm,
    dataset: str | TrajectoryData,
    build: Callable[[RunSetup], AlgorithmParts],
    *,
    env_id: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    train_config: TrainConfig | Mapping[str, Any] | None = None,
    resume: bool = False,
    progress_bar: bool = True,
    download: bool = False,
) -> Any:
    """Train ``algorithm`` on ``dataset`` with the recipe of the module docstring.

    Args:
        algorithm: the algorithm's defaults and record layout.
        dataset: what :func:`load_training_data` reads.
        build: ``build(setup) -> AlgorithmParts``: creates the agent (on ``setup.device``, seeded
            with ``setup.config.seed``) and its sampler, loss and evaluation.
        env_id: the env to evaluate in and record (default: the dataset's).
        env_kwargs: its ``gymnasium.make`` kwargs (default: see :class:`Algorithm`).
        train_config: a :class:`TrainConfig`, or a dict of its fields over the algorithm's
            defaults.
        resume: continue from ``out_dir/trainer_state.pt``.
        progress_bar: a tqdm bar on stderr.
        download: fetch a Minari id from the Minari remote if it is not stored locally.

    Returns:
        The trained agent (network in eval mode, context reset), also saved in
        ``out_dir/checkpoint``.
    """
    config = train_config_over(train_config, algorithm.defaults)
    data, spec_env_id, spec_env_kwargs = load_training_data(dataset, download)
    if algorithm.check_data is not None:
        algorithm.check_data(data)
    explicit_env = bool(env_id)
    dataset_env = (spec_env_id, spec_env_kwargs)
    env_id, env_kwargs = _resolve_env(algorithm, data, env_id, env_kwargs, dataset_env)
    if config.out_dir is None:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", data.dataset_id or "in-memory")
        config = dataclasses.replace(config, out_dir=str(Path("runs") / algorithm.name / slug))
    evaluating = bool(config.eval_every) and algorithm.evaluates
    if evaluating and env_id is None:
        raise ValueError(
            "eval_every > 0 needs an env to evaluate in, and the dataset's metadata names none: "
            "pass env_id='...' (e.g. 'HalfCheetah-v5') or set eval_every=0"
        )
    env = None
    if env_id is not None:
        env = _open_env(data, env_id, env_kwargs, needed=explicit_env or evaluating)
    try:
        setup = RunSetup(data, config, env_id, env_kwargs, env, resolve_train_device(config.device))
        parts = build(setup)
        agent = parts.agent
        logger.info(
            "training %s (%d parameters) on %s: %d episodes, %d transitions, device %s",
            algorithm.name.upper(),
            sum(p.numel() for p in agent.network.parameters()),
            data.dataset_id or "in-memory data",
            data.n_episodes,
            data.n_transitions,
            setup.device,
        )

        def record(step: int, summary: dict[str, Any]) -> None:
            training = _training_record(algorithm, parts, data, config, step, summary)
            evaluation = dict(summary["eval"]) if summary.get("eval") else agent.config.evaluation
            agent.config = agent.config.replace(training=training, evaluation=evaluation)

        checkpoint_dir = Path(config.out_dir) / CHECKPOINT_DIR

        def save(step: int, summary: dict[str, Any]) -> None:
            record(step, summary)
            agent.save_pretrained(checkpoint_dir)
            logger.info("step %d: saved the agent to %s", step, checkpoint_dir)

        trainer = Trainer(
            agent.network,
            parts.loss,
            parts.sample,
            config,
            evaluate=parts.evaluate if env_id is not None else None,
            on_checkpoint=save,
            progress_bar=progress_bar,
        )
        trainer.train(resume=resume)
        record(trainer.step, {"loss": trainer.last_loss, "eval": trainer.last_eval})
        agent.reset()
        return agent
    finally:
        if env is not None:
            env.close()
