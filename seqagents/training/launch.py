"""``seqagents.train``: from a zoo entry name (or an algorithm and a dataset) to the algorithm's
trainer, with the entry's recipe and the caller's overrides. ``seqagents train`` parses its
arguments into the same call.

:func:`train` first checks what can be checked before the data is read (the entry, the
model fields; for an algorithm on a dataset, the data and its env) into a
:class:`TrainingPlan` that names the run folder, hands it to ``before_start`` (the CLI checks
the run folder there), then :meth:`TrainingPlan.run` checks the entry's dataset and trains.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqagents.data import TrajectoryData

__all__ = ["ALGORITHMS", "TrainingPlan", "train"]

ALGORITHMS = ("dt", "tt", "leap")
# Entry training fields that are not TrainConfig fields but the algorithm's own arguments.
_ALGORITHM_FIELDS = {
    "tt": ("sequence_transitions", "n_bins", "discretizer_kind"),  # tokens
    "leap": ("objective", "mask_prob"),  # the masked-action objective
}


@dataclass
class TrainingPlan:
    """A checked training run, ready to start: which trainer, on what, into which folder."""

    algo: str  # "dt", "tt" or "leap"
    out_dir: Path  # the run folder (metrics, trainer state, checkpoint/)
    trainer: Callable[..., Any]  # train_dt, train_tt or train_leap
    dataset: str | TrajectoryData
    kwargs: dict[str, Any]  # the trainer's keyword arguments
    entry: Any = None  # the ZooEntry trained, None for an algorithm on a dataset
    download: bool = False  # fetch the entry's Minari dataset if it is not stored locally

    def run(self) -> Any:
        """Train; returns the agent, also saved in ``out_dir/checkpoint`` (with the entry's
        evaluation protocol for a zoo entry).

        Raises:
            ValueError: the entry's dataset is stored nowhere (checked first, before the run
                folder is touched).
        """
        from seqagents.training.distributed import rank_and_world_size

        if self.entry is not None and isinstance(self.dataset, str):
            _check_dataset(self.dataset, self.download)
        agent = self.trainer(self.dataset, **self.kwargs)
        if self.entry is not None and rank_and_world_size()[0] == 0:
            from seqagents.protocol import EvaluationProtocol

            # The entry's evaluation protocol travels with the checkpoint (sampled on Atari).
            deterministic = self.entry.evaluation.deterministic
            protocol = EvaluationProtocol(deterministic).to_dict()
            agent.config = agent.config.replace(protocol=protocol)
            agent.save_pretrained(self.out_dir / "checkpoint")
        return agent


def _check_model_fields(algo: str, model: Mapping[str, Any], message: str) -> None:
    """Unknown or mistyped model config fields (the entry's with ``model`` over them)."""
    from seqagents.errors import reject_unknown_keys
    from seqagents.models.dt import DTConfig
    from seqagents.models.leap import LEAPConfig
    from seqagents.models.tt import TTConfig

    config = {"dt": DTConfig, "tt": TTConfig, "leap": LEAPConfig}[algo]
    reject_unknown_keys(config, dict(model), message)


def _check_dataset(dataset: str, download: bool) -> None:
    """The dataset exists: an Atari recording folder or a Minari id (other kinds,
    ``scheme:PATH``, are checked by their loader, before the run folder is touched)."""
    from seqagents.data import load_dataset

    if (Path(dataset) / "metadata.json").is_file() or ":" in dataset:
        return
    try:
        load_dataset(dataset, download=download)
    except (FileNotFoundError, ValueError) as e:
        raise ValueError(f"dataset={dataset!r}: {e}") from e


def _trainer(algo: str) -> Callable[..., Any]:
    from seqagents.training import train_dt, train_leap, train_tt

    return {"dt": train_dt, "tt": train_tt, "leap": train_leap}[algo]


def _algorithm_and_source(
    entry_or_dataset: str | TrajectoryData, algo: str | None, dataset: str | TrajectoryData | None
) -> tuple[str | None, str | TrajectoryData]:
    """``(algo, the entry or the data)``: ``algo`` None for a zoo entry."""
    if isinstance(entry_or_dataset, str) and entry_or_dataset in ALGORITHMS and algo is None:
        if dataset is None:  # train("dt", dataset=...)
            raise ValueError(
                f"train {entry_or_dataset} needs dataset=... (a Minari dataset id, an Atari "
                "dataset folder or dqn-replay:PATH), or a zoo entry name instead of the "
                "algorithm (seqagents zoo lists them)"
            )
        return entry_or_dataset, dataset
    if algo is not None and dataset is not None:
        raise ValueError("pass the dataset once: train(dataset, algo=...) or train(algo, dataset=)")
    if algo is None and isinstance(entry_or_dataset, TrajectoryData):
        raise ValueError(f"training on a dataset needs algo= (one of {', '.join(ALGORITHMS)})")
    if algo is not None and algo not in ALGORITHMS:
        raise ValueError(f"algo must be one of {ALGORITHMS}, got {algo!r}")
    return algo, entry_or_dataset


def _entry_plan(
    name: str,
    dataset: str | TrajectoryData | None,
    env_id: str | None,
    model: Mapping[str, Any] | None,
    out_dir: str | Path | None,
    return_scale: float | None,
) -> TrainingPlan:
    """A zoo entry's recipe, with the caller's dataset, env, model fields and return scale."""
    from seqagents.zoo import get_entry

    entry = get_entry(name)
    algo = entry.algo
    if algo not in ALGORITHMS:
        raise ValueError(f"training {algo!r} entries is not available yet")
    model = {**entry.model, **(model or {})}
    _check_model_fields(algo, model, "unknown model fields (the model overrides or the entry)")
    out = Path(out_dir or f"runs/{algo}-{entry.name}")
    kwargs: dict[str, Any] = {"env_id": env_id or entry.env_id, "model_config": model}
    scale = entry.return_scale if return_scale is None else return_scale
    if algo == "dt":
        kwargs["env_kwargs"] = entry.env_kwargs or None
        kwargs.update(return_scale=scale, target_returns=list(entry.evaluation.target_returns))
    elif algo == "tt":
        kwargs["planner"] = entry.inference.get("planner")
    else:
        kwargs.update(
            env_kwargs=entry.env_kwargs, planner=entry.inference.get("planner"), return_scale=scale
        )
    data = dataset if dataset is not None else entry.dataset.id
    return TrainingPlan(algo, out, _trainer(algo), data, kwargs, entry)


def _dataset_plan(
    algo: str,
    dataset: str | TrajectoryData,
    env_id: str | None,
    model: Mapping[str, Any] | None,
    out_dir: str | Path | None,
    return_scale: float | None,
    download: bool,
) -> TrainingPlan:
    """An algorithm on the caller's data, with the trainer's defaults."""
    from seqagents.training.recipe import load_training_data

    model = dict(model or {})
    _check_model_fields(algo, model, "unknown model fields (the model overrides)")
    data, spec_env_id, spec_env_kwargs = load_training_data(dataset, download)
    env_id = env_id or spec_env_id
    if env_id is None:
        raise ValueError(
            f"the dataset {data.dataset_id or 'given'} names no env (its metadata has no env "
            "spec); pass env_id=..., the gymnasium id it was recorded in"
        )
    slug = "".join(c if c.isalnum() or c in "._-" else "_" for c in data.dataset_id or algo)
    out = Path(out_dir or f"runs/{algo}-{slug}")
    kwargs: dict[str, Any] = {"env_id": env_id, "model_config": model}
    if algo != "tt":
        kwargs["env_kwargs"] = dict(spec_env_kwargs) if env_id == spec_env_id else {}
        if return_scale is not None:
            kwargs["return_scale"] = return_scale
    return TrainingPlan(algo, out, _trainer(algo), data, kwargs)


def _train_config(plan: TrainingPlan, overrides: dict[str, Any], overwrite: bool) -> dict:
    """The TrainConfig fields of the run (the entry's, the overrides over them); the
    algorithm's own training arguments move from them into ``plan.kwargs``."""
    if plan.algo == "tt":  # TT does not evaluate while training
        overrides.pop("eval_episodes", None)
    entry = plan.entry
    training = {**(entry.training if entry is not None else {}), **overrides}
    if plan.algo == "dt" and entry is not None and "eval_targets" not in overrides:
        training["eval_targets"] = list(entry.evaluation.target_returns)
    for name in _ALGORITHM_FIELDS.get(plan.algo, ()):  # the algorithm's own arguments
        if name in training:
            plan.kwargs[name] = training.pop(name)
    return {**training, "out_dir": str(plan.out_dir), "overwrite": overwrite}


def train(
    entry_or_dataset: str | TrajectoryData,
    *,
    algo: str | None = None,
    dataset: str | TrajectoryData | None = None,
    env_id: str | None = None,
    model: Mapping[str, Any] | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    return_scale: float | None = None,
    download: bool = False,
    progress_bar: bool = True,
    before_start: Callable[[TrainingPlan], None] | None = None,
    **overrides: Any,
) -> Any:
    """Train a zoo entry with its recipe, or an algorithm on a dataset with its defaults.

    ``train("halfcheetah-medium")`` runs the entry's recipe (model, TrainConfig fields, dataset,
    env, return scale, planner settings, evaluation targets and protocol from
    ``zoo/<algo>.yml``); ``train(dataset, algo="dt")`` (or ``train("dt", dataset=...)``) trains
    DT, TT or LEAP on a Minari id, an Atari dataset folder, ``dqn-replay:PATH`` or
    :class:`~seqagents.data.TrajectoryData` with the trainer's defaults (DT: the DT paper's;
    TT, LEAP: the original code's). The agent is saved in ``out_dir/checkpoint``. Under
    ``torchrun`` every process calls it and trains one share of each batch (DDP).

    Args:
        entry_or_dataset: a zoo entry name (``seqagents zoo`` lists them), a dataset (with
            ``algo``), or an algorithm name (with ``dataset``).
        algo: ``"dt"``, ``"tt"`` or ``"leap"``: train it on ``entry_or_dataset``.
        dataset: a zoo entry's dataset instead of its own (or the data of an algorithm name).
        env_id: the env to evaluate in and record (default: the entry's, else the dataset's).
        model: model config fields over the entry's (or the algorithm's defaults).
        out_dir: the run folder (default ``runs/<algo>-<entry>`` or ``runs/<algo>-<dataset id>``).
        resume: continue the run in ``out_dir`` from its ``trainer_state.pt``.
        overwrite: replace a previous run in ``out_dir`` when the new one starts.
        return_scale: DT and LEAP: returns-to-go are divided by this (default: the entry's, else
            DT 1000, LEAP 1).
        download: fetch a Minari dataset from the Minari remote if it is not stored locally.
        progress_bar: a tqdm bar on stderr.
        before_start: called (on rank 0) with the checked :class:`TrainingPlan` (its
            ``out_dir``, ``algo``, ``entry``) before anything is read or written; raise to stop.
            ``seqagents train`` refuses an existing run folder there unless ``--resume`` or
            ``--force``.
        **overrides: :class:`~seqagents.training.TrainConfig` fields (``steps``, ``batch_size``,
            ``learning_rate``, ``seed``, ``device``, ``eval_every``, ``eval_episodes``, ...)
            over the entry's, and the algorithm's own training arguments (TT:
            ``sequence_transitions``, ``n_bins``, ``discretizer_kind``; LEAP: ``objective``,
            ``mask_prob``).

    Returns:
        The trained agent (DecisionTransformerAgent, TrajectoryTransformerAgent or LEAPAgent).

    Raises:
        KeyError: an unknown zoo entry.
        ValueError: unknown model or TrainConfig fields, a missing dataset or env.

    Example:
        >>> import numpy as np, gymnasium as gym, tempfile, seqagents
        >>> env = gym.make("Pendulum-v1")
        >>> obs = np.random.default_rng(0).uniform(-1, 1, (400, 3)).astype(np.float32)
        >>> data = TrajectoryData(
        ...     observations=obs, actions=np.tanh(obs[:, :1]), rewards=-np.abs(obs[:, 0]),
        ...     terminals=np.zeros(400, bool), episode_starts=np.arange(0, 401, 100),
        ...     observation_space=env.observation_space, action_space=env.action_space)
        >>> run = tempfile.TemporaryDirectory()
        >>> agent = seqagents.train(
        ...     data, algo="dt", env_id="Pendulum-v1", out_dir=run.name,
        ...     model={"n_layer": 1, "hidden_size": 32, "context_len": 5},
        ...     steps=20, batch_size=8, warmup_steps=5, device="cpu", progress_bar=False)
        >>> agent.config.training["trainer"], agent.config.training["steps"]
        ('seqagents.training.train_dt', 20)
        >>> run.cleanup()

        A zoo entry, with its dataset stored locally (``seqagents collect`` or ``download``):

        >>> agent = seqagents.train("dt/halfcheetah-medium", steps=1000)  # doctest: +SKIP
    """
    import torch

    from seqagents.training.distributed import (
        init_distributed,
        is_distributed,
        rank_and_world_size,
    )

    algo, source = _algorithm_and_source(entry_or_dataset, algo, dataset)
    if algo is None:
        plan = _entry_plan(str(source), dataset, env_id, model, out_dir, return_scale)
        plan.download = download
    else:
        plan = _dataset_plan(algo, source, env_id, model, out_dir, return_scale, download)
    if plan.algo == "tt" and return_scale is not None:
        raise ValueError("return_scale is for dt and leap; TT discretizes returns")
    # A resumed run continues its folder, never replaces it.
    training = _train_config(plan, overrides, overwrite=overwrite and not resume)
    plan.kwargs.update(resume=resume, progress_bar=progress_bar, train_config=training)
    joined = not is_distributed() and init_distributed(overrides.get("device") or "auto")
    try:
        if before_start is not None and rank_and_world_size()[0] == 0:
            before_start(plan)
        return plan.run()
    finally:
        if joined:
            torch.distributed.destroy_process_group()
