"""``seqagents train``: a zoo entry with its recipe, or dt/tt/leap on the user's own data."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from seqagents.cli.common import UserError as _UserError
from seqagents.cli.common import json_object as _json_object

__all__ = ["cmd_train"]


def cmd_train(args: argparse.Namespace) -> None:
    """``seqagents.train`` with the parsed options. Under torchrun every process runs this (and
    joins the group there); rank 0 alone checks the run folder, installs and reports."""
    from seqagents.training import train
    from seqagents.training.launch import ALGORITHMS, TrainingPlan

    if args.install and args.entry in ALGORITHMS:
        raise _UserError("--install needs a zoo entry; an algorithm name has no zoo checkpoint")
    overrides = {key: getattr(args, key) for key in _TRAIN_FLAGS if getattr(args, key) is not None}
    if args.tensorboard:
        overrides["tensorboard"] = True
    plans: list[TrainingPlan] = []  # rank 0's

    def before_start(plan: TrainingPlan) -> None:
        _check_run_folder(plan.out_dir, args)
        plans.append(plan)

    agent = train(
        args.entry,
        dataset=args.dataset,
        env_id=args.env,
        model=_json_object(args.model, "--model"),
        out_dir=args.out,
        resume=args.resume,
        overwrite=args.force,  # the old run is replaced when the new one starts
        return_scale=args.return_scale,
        download=args.download,
        progress_bar=not args.no_progress,
        before_start=before_start,
        eval_episodes=args.eval_episodes,
        **overrides,
    )
    if not plans:  # not rank 0
        return
    plan = plans[0]
    if args.install:
        from seqagents.zoo import zoo_dir

        entry = plan.entry
        target = zoo_dir() / (entry.checkpoint.path or f"checkpoints/{entry.algo}-{entry.name}")
        agent.save_pretrained(target)
        print(f"installed checkpoint: {target}")
    print(f"checkpoint: {plan.out_dir / 'checkpoint'}")


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
    from seqagents.training.run_folder import foreign_run_entries

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
