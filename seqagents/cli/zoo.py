"""``seqagents zoo`` (the entries, or --publish them) and ``seqagents info`` (a checkpoint)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from seqagents.cli.common import UserError, emit, load_model, shown

__all__ = ["cmd_info", "cmd_zoo"]


def cmd_zoo(args: argparse.Namespace) -> None:
    from seqagents.zoo import list_entries, publish_zoo

    if args.publish:
        from seqagents.checkpoints.native import hub_errors
        from seqagents.errors import HubError

        try:
            published = publish_zoo(args.publish)
        except HubError as e:
            raise UserError(str(e)) from e
        except (*hub_errors(), OSError) as e:  # an upload failed half-way: safe to rerun
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(
                f"publishing to {args.publish} failed ({type(e).__name__}: {first}); rerun "
                f"`seqagents zoo --publish {args.publish}` (uploads are idempotent)"
            ) from e
        print(f"published {len(published)} checkpoints to {args.publish}")
        return
    entries = {k: v for k, v in list_entries().items() if "/" in k}
    table = {
        k: {
            "algo": e.algo,
            "env_id": e.env_id,
            "dataset": e.dataset.id,
            "paper_score": e.paper.score,
            "paper_source": e.paper.source,
            "measured": _measured_score(e.checkpoint_location()),
            "checkpoint": e.checkpoint_location(),
        }
        for k, e in entries.items()
    }
    emit(args.json, table, lambda: _zoo_text(entries))


def _zoo_text(entries: dict[str, Any]) -> str:
    """The zoo table: columns padded to their widest cell, numbers right-aligned, then units."""
    rows = [("entry", "env", "paper", "measured", "checkpoint")]
    for key, e in entries.items():
        location = e.checkpoint_location()
        rows.append(
            (
                key,
                e.env_id,
                _paper_score(e),
                _measured_score(location),
                shown(location) if location else "(none)",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [row[2].rjust(widths[2]), row[3].rjust(widths[3]), row[4]]
        lines.append("  ".join(cells))
    return "\n".join(lines) + "\n" + _ZOO_UNITS


_ZOO_UNITS = """
paper:    the score its paper reports. norm: D4RL normalized (0 = random, 100 = expert);
          % success: BabyAI success rate; gamer-norm: DT paper Table 1 (100 = a pro gamer)
measured: the bundled checkpoint's stored evaluation: norm, % success, or return (mean
          episode return, raw game score on Atari); seqagents info ENTRY says how it ran"""


def _paper_score(entry: Any) -> str:
    """The paper's score with its unit (a zoo table cell)."""
    from seqagents.envs import is_babyai_env
    from seqagents.scores import has_normalized_score

    if entry.paper.score is None:
        return "—"
    if entry.env_id.startswith("ALE/"):
        unit = "gamer-norm"
    elif has_normalized_score(entry.env_id):
        unit = "norm"
    elif is_babyai_env(entry.env_id):
        unit = "% success"
    else:
        unit = ""
    return f"{entry.paper.score:.1f} {unit}".strip()


def _measured_score(location: str | None) -> str:
    """The stored evaluation of a bundled checkpoint, with its unit and episodes (a zoo table
    cell); "—" for a Hub checkpoint or one never evaluated. Reads config.json only: no torch."""
    if not location or not (Path(location) / "config.json").is_file():
        return "—"
    from seqagents.report import read_record

    stored = json.loads((Path(location) / "config.json").read_text()).get("evaluation")
    evaluation = read_record(stored)
    episodes = f" ({evaluation['n_episodes']} ep)" if evaluation.get("n_episodes") else ""
    if evaluation.get("normalized_score") is not None:
        return f"{evaluation['normalized_score']:.1f} norm{episodes}"
    if evaluation.get("success_rate") is not None:
        return f"{100 * evaluation['success_rate']:.1f} % success{episodes}"
    if evaluation.get("mean_return") is not None:
        return f"{evaluation['mean_return']:.1f} return{episodes}"
    return "—"


def cmd_info(args: argparse.Namespace) -> None:
    agent, _, location = load_model(args, args.model)
    spec = agent.config.to_checkpoint()  # the saved layout
    parameters = sum(p.numel() for p in agent.network.parameters())
    info = {"model": location, "class": type(agent).__name__, **spec.to_dict()}
    emit(
        args.json,
        {**info, "parameters": parameters},
        lambda: _info_text(agent, location, parameters),
    )


def _info_text(agent: Any, location: str, parameters: int) -> str:
    """What ``seqagents info`` prints: one line per section of the checkpoint."""
    from seqagents.envs import describe_space

    spec = agent.config.to_checkpoint()  # the saved layout
    rows = [
        ("checkpoint", f"{location}  ({type(agent).__name__}, {spec.algorithm})"),
        ("env", (spec.env_id or "—") + (f"  {_pairs(spec.env_kwargs)}" if spec.env_kwargs else "")),
        ("observations", describe_space(agent.observation_space)),
        ("actions", describe_space(agent.action_space)),
        ("network", f"{_pairs(spec.model, skip=_LONG_FIELDS)}; {parameters:,} parameters"),
        ("preprocessing", _pairs(spec.preprocessing)),
        ("inference", _pairs(spec.inference)),
        ("trained", _pairs(spec.training, keep=_TRAINING_FIELDS)),
        ("evaluated", _evaluation_line(spec.evaluation)),
        ("library", f"seqagents {spec.library_version or '?'}"),
    ]
    return "\n".join(f"{key:14s} {value}" for key, value in rows if value)


_LONG_FIELDS = ("state_encoder_kwargs",)
_TRAINING_FIELDS = ("dataset_id", "n_episodes", "n_transitions", "steps", "seed", "note")


def _pairs(section: dict, skip: tuple = (), keep: tuple | None = None) -> str:
    """``{"n_layer": 3, "state_mean": [17 floats]}`` -> ``n_layer=3, state_mean=[17 values]``."""
    parts = []
    for key, value in section.items():
        if key in skip or (keep is not None and key not in keep):
            continue
        if isinstance(value, list) and len(value) > 4:
            value = f"[{len(value)} values]"
        elif isinstance(value, dict):
            value = "{" + _pairs(value) + "}"
        elif isinstance(value, float):
            value = f"{value:g}"
        parts.append(f"{key}={value}")
    return ", ".join(parts)


def _evaluation_line(evaluation: dict) -> str:
    """The measured result stored in the checkpoint, in one line (empty when none is)."""
    from seqagents.checkpoints.card import describe_evaluation

    line = describe_evaluation(evaluation)
    command = evaluation.get("command")
    return f"{line}  ({command})" if line and command else line
