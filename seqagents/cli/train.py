"""``seqagents train``: a zoo entry with its recipe, or dt/tt/leap on the user's own data."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from seqagents.cli.common import UserError as _UserError
from seqagents.cli.common import json_object as _json_object

__all__ = ["cmd_train"]


def cmd_train(args: argparse.Namespace) -> None:
    """Train a zoo entry; under torchrun every process runs this and joins the group."""
    import torch

    from seqagents.training import init_distributed

    train = _train_algorithm if args.entry in _ALGORITHMS else _train
    if not init_distributed(args.device or "auto"):
        return train(args, main_rank=True)
    try:
        train(args, main_rank=torch.distributed.get_rank() == 0)
    finally:
        torch.distributed.destroy_process_group()


def _check_model_fields(algo: str, model: dict) -> None:
    """Unknown or mistyped model config fields (the entry's with --model over them)."""
    from seqagents.errors import reject_unknown_keys
    from seqagents.models.dt import DTConfig
    from seqagents.models.leap import LEAPConfig
    from seqagents.models.tt import TTConfig

    config = {"dt": DTConfig, "tt": TTConfig, "leap": LEAPConfig}.get(algo)
    if config is not None:
        message = "unknown model fields (--model or the entry)"
        reject_unknown_keys(config, model, message, _UserError)


def _check_dataset(dataset: str) -> None:
    """The dataset exists: an Atari recording folder or a locally stored Minari id (other
    kinds, ``scheme:PATH``, are checked by their loader, before the run folder is touched)."""
    from seqagents.data import load_dataset

    if (Path(dataset) / "metadata.json").is_file() or ":" in dataset:
        return
    try:
        load_dataset(dataset)
    except (FileNotFoundError, ValueError) as e:
        raise _UserError(f"--dataset {dataset}: {e}") from e


# `train` flags that override TrainConfig fields (of the zoo entry, or of the trainer's defaults).
_TRAIN_FLAGS = (
    "steps",
    "batch_size",
    "seed",
    "device",
    "eval_every",
    "warmup_steps",
    "learning_rate",
    "checkpoint_every",
    "log_every",
)


def _check_run_folder(out: Path, args: argparse.Namespace) -> None:
    """``--out``: a new folder, an empty one, a run to --resume, or a run to replace (--force)."""
    from seqagents.training.trainer import foreign_run_entries

    if not os.path.lexists(out) or (args.resume and out.is_dir()):
        return
    if out.is_symlink() and args.force:
        raise _UserError(
            f"--out {out} is a symbolic link; --force replaces only a real run folder: pass "
            "the folder it points to, or another --out"
        )
    if not out.is_dir():
        raise _UserError(f"--out {out} is not a folder; pass --out DIR for the run folder")
    if not any(out.iterdir()):
        return
    if not args.force:
        raise _UserError(
            f"run folder {out} already exists; pass --resume to continue it, --force to "
            "overwrite it, or --out DIR for a new one"
        )
    foreign = foreign_run_entries(out)
    if foreign:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        shown = ", ".join(foreign[:5]) + more
        raise _UserError(
            f"--out {out} is not a seqagents run folder (it holds {shown}); --force replaces "
            "only a previous run: pass --out DIR for a new folder"
        )
    if Path.cwd().resolve().is_relative_to(out.resolve()):
        raise _UserError(f"--out {out} is the working folder (or holds it); run from elsewhere")


def _train(args: argparse.Namespace, main_rank: bool) -> None:
    from seqagents.protocol import EvaluationProtocol
    from seqagents.training import train_dt, train_leap, train_tt
    from seqagents.zoo import get_entry, zoo_dir

    entry = get_entry(args.entry)
    training = dict(entry.training)
    for key in _TRAIN_FLAGS:
        if getattr(args, key) is not None:
            training[key] = getattr(args, key)
    # Everything that can be checked is checked before the run folder is looked at; --force
    # then replaces it only when the new run starts (Trainer, TrainConfig.overwrite).
    model = {**entry.model, **_json_object(args.model, "--model")}
    _check_model_fields(entry.algo, model)
    out = Path(args.out or f"runs/{entry.algo}-{entry.name}")
    if main_rank:
        _check_run_folder(out, args)
    dataset = args.dataset or entry.dataset.id
    _check_dataset(dataset)
    training["out_dir"] = str(out)
    training["overwrite"] = bool(args.force and not args.resume)
    if args.tensorboard:
        training["tensorboard"] = True
    common = dict(
        env_id=entry.env_id,
        model_config=model,
        train_config=training,
        resume=args.resume,
        progress_bar=not args.no_progress,
    )
    if entry.algo == "dt":
        training["eval_targets"] = list(entry.evaluation.target_returns)
        training["eval_episodes"] = args.eval_episodes
        agent = train_dt(
            dataset,
            env_kwargs=entry.env_kwargs or None,
            return_scale=entry.return_scale,
            target_returns=list(entry.evaluation.target_returns),
            **common,
        )
    elif entry.algo == "tt":
        # TT's sequence and discretization settings sit beside the TrainConfig fields.
        tokens = {
            k: training.pop(k)
            for k in ("sequence_transitions", "n_bins", "discretizer_kind")
            if k in training
        }
        agent = train_tt(dataset, planner=entry.inference.get("planner"), **tokens, **common)
    elif entry.algo == "leap":
        # LEAP's objective settings sit beside the TrainConfig fields in the entry's training.
        objective = {k: training.pop(k) for k in ("objective", "mask_prob") if k in training}
        training["eval_episodes"] = args.eval_episodes
        agent = train_leap(
            dataset,
            env_kwargs=entry.env_kwargs,
            planner=entry.inference.get("planner"),
            return_scale=entry.return_scale,
            **objective,
            **common,
        )
    else:
        raise _UserError(f"training {entry.algo!r} entries is not available yet")
    if not main_rank:  # rank 0 alone writes files and reports
        return
    # The entry's evaluation protocol travels with the checkpoint (sampled on Atari).
    agent.spec.protocol = EvaluationProtocol(entry.evaluation.deterministic).to_dict()
    agent.save_pretrained(out / "checkpoint")
    if args.install:
        target = zoo_dir() / (entry.checkpoint.path or f"checkpoints/{entry.algo}-{entry.name}")
        agent.save_pretrained(target)
        print(f"installed checkpoint: {target}")
    print(f"checkpoint: {out / 'checkpoint'}")


# ``seqagents train ALGORITHM --dataset ...``: an algorithm name instead of a zoo entry trains on
# the user's own data with the trainer's defaults (DT: TrainConfig, the DT paper; TT:
# TT_TRAIN_DEFAULTS; LEAP: LEAP_TRAIN_DEFAULTS), as d3rlpy's ``fit`` on any dataset.
_ALGORITHMS = ("dt", "tt", "leap")


def _train_algorithm(args: argparse.Namespace, main_rank: bool) -> None:
    """``seqagents train dt|tt|leap --dataset ID_OR_PATH [--env ENV_ID]``."""
    from seqagents.training import train_dt, train_leap, train_tt
    from seqagents.training.dt import _load_data

    algo = args.entry
    if not args.dataset:
        raise _UserError(
            f"train {algo} needs --dataset ID_OR_PATH (a Minari dataset id, an Atari dataset "
            "folder or dqn-replay:PATH), or a zoo entry name instead of the algorithm "
            "(seqagents zoo lists them)"
        )
    if args.install:
        raise _UserError("--install needs a zoo entry; an algorithm name has no zoo checkpoint")
    data, spec_env_id, spec_env_kwargs = _load_data(args.dataset, args.download)
    env_id = args.env or spec_env_id
    if env_id is None:
        raise _UserError(
            f"the dataset {args.dataset} names no env (its metadata has no env spec); pass "
            "--env ENV_ID, the gymnasium id it was recorded in"
        )
    env_kwargs = dict(spec_env_kwargs) if env_id == spec_env_id else {}
    training = {key: getattr(args, key) for key in _TRAIN_FLAGS if getattr(args, key) is not None}
    slug = "".join(c if c.isalnum() or c in "._-" else "_" for c in data.dataset_id or algo)
    out = Path(args.out or f"runs/{algo}-{slug}")
    if main_rank:
        _check_run_folder(out, args)
    training["out_dir"] = str(out)
    training["overwrite"] = bool(args.force and not args.resume)  # replaced when the run starts
    if args.tensorboard:
        training["tensorboard"] = True
    if algo in ("dt", "leap"):  # TT's trainer does not evaluate
        training["eval_episodes"] = args.eval_episodes
    scale = {"return_scale": args.return_scale} if args.return_scale is not None else {}
    common = dict(
        env_id=env_id,
        model_config=_json_object(args.model, "--model"),
        train_config=training,
        resume=args.resume,
        progress_bar=not args.no_progress,
    )
    if algo == "tt" and scale:
        raise _UserError("--return-scale is for dt and leap; TT discretizes returns")
    try:
        if algo == "dt":
            agent = train_dt(data, env_kwargs=env_kwargs, **scale, **common)
        elif algo == "tt":
            agent = train_tt(data, **common)
        else:
            agent = train_leap(data, env_kwargs=env_kwargs, **scale, **common)
    except TypeError as e:  # a --model key the algorithm's config does not have
        raise _UserError(f"--model: {e}") from e
    if main_rank:
        print(f"checkpoint: {out / 'checkpoint'}")
        agent.reset()
