"""``seqagents analyze`` and ``seqagents plot``: the analysis figures from the command line.

``seqagents analyze MODEL --out DIR`` runs ``--episodes`` recorded rollouts of MODEL (a zoo
entry, a checkpoint folder or a Hub id) and writes each figure that applies to its algorithm
(or those named by ``--figures``) as ``DIR/<figure>.png`` with ``DIR/<figure>.json``; ``--compare
MODEL ...`` adds other agents' rollouts to the comparisons (sparsity, error propagation, compute
cost). ``seqagents plot RUN_DIR`` draws a training run's ``metrics.jsonl``. Bad input raises
``ValueError``, which the main command reports as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqagents.analysis.catalog import FIGURES

if TYPE_CHECKING:
    from seqagents.analysis.rollouts import Episode

__all__ = ["add_subcommands", "cmd_analyze", "cmd_plot"]

_NAMES = {"dt": "DT", "tt": "TT", "leap": "LEAP"}


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_subcommands(sub: Any) -> None:
    """Register ``analyze`` and ``plot`` on the ``seqagents`` subparsers ``sub``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_subcommands(parser.add_subparsers(dest="command"))
        >>> parser.parse_args(["plot", "runs/x"]).run_dir
        'runs/x'
    """
    p = sub.add_parser(
        "analyze", help="attention maps and the seed's analyses of an agent", allow_abbrev=False
    )
    p.add_argument("model", help="zoo entry name, local checkpoint folder or Hub repo id")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs and JSON")
    p.add_argument(
        "--figures",
        nargs="+",
        metavar="NAME",
        help="figures to draw (default: all that apply): "
        + "; ".join(f"{k} = {v[0]}" for k, v in FIGURES.items()),
    )
    p.add_argument("--episodes", type=_positive, default=2, help="recorded episodes (default 2)")
    p.add_argument("--max-steps", type=_positive, help="cut each episode after N steps")
    p.add_argument("--seed", type=int, default=0, help="first env reset seed (default 0)")
    p.add_argument(
        "--device", default="auto", help="auto (default: CUDA if available, else CPU), cpu, cuda"
    )
    p.add_argument(
        "--compare",
        nargs="+",
        default=[],
        metavar="MODEL",
        help="other agents (one episode each) for sparsity, errors (DT) and cost (DT, LEAP)",
    )
    p.add_argument(
        "--targets",
        type=float,
        nargs="+",
        metavar="R",
        help="targets figure: target returns to sweep (default: 0.25 to 1.5 x the checkpoint's)",
    )
    p.add_argument(
        "--beam-widths",
        type=_positive,
        nargs="+",
        default=[1, 4, 16],
        metavar="K",
        help="cost figure: TT beam widths to time (default: 1 4 16)",
    )
    p.add_argument(
        "--iterations",
        type=_positive,
        nargs="+",
        default=[1, 2, 5, 10],
        metavar="N",
        help="iterations figure: LEAP refinement iterations to sweep (default: 1 2 5 10)",
    )
    p.add_argument(
        "--dataset-best", type=float, metavar="R", help="targets figure: best return in the data"
    )
    p.add_argument(
        "--dataset",
        metavar="ID_OR_PATH",
        help="transformers Trajectory Transformer checkpoints only: the Minari id or D4RL .hdf5 "
        "its discretizer is rebuilt from (see seqagents evaluate --help)",
    )
    p.add_argument(
        "--discretizer",
        metavar="FILE",
        help="transformers TT checkpoints: a safetensors file holding the discretizer thresholds",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="with --dataset: fetch the Minari id from the Minari remote if not stored locally",
    )
    p.add_argument("--json", action="store_true", help="list the files written as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser(
        "plot", help="training curves of a run folder (metrics.jsonl)", allow_abbrev=False
    )
    p.add_argument(
        "run_dir",
        help="a folder holding metrics.jsonl (e.g. runs/dt-halfcheetah), or a folder of such "
        "runs (e.g. runs): each is listed and plotted",
    )
    p.add_argument(
        "--out", metavar="DIR", help="output folder (default: the run folder; several: DIR/<run>)"
    )
    p.add_argument("--json", action="store_true", help="list the files written as JSON")
    p.set_defaults(func=cmd_plot)


def _load(model: str, device: str, args: argparse.Namespace | None = None) -> Any:
    """The agent of MODEL; ``args``: the --dataset/--discretizer/--download of a transformers
    TT checkpoint (see :func:`seqagents.cli.checkpoint_overrides`)."""
    from seqagents import load_agent
    from seqagents.cli import checkpoint_overrides
    from seqagents.zoo import resolve_model

    try:
        location, _ = resolve_model(model)
    except LookupError as e:
        raise ValueError(str(e)) from e
    overrides = checkpoint_overrides(args) if args is not None else {}
    try:
        return load_agent(location, device=device, **overrides)
    except TypeError as e:  # an option the checkpoint's agent does not take
        raise ValueError(str(e)) from e


def _chosen(names: list[str] | None, algorithm: str) -> list[str]:
    if not names:
        return [k for k, (_, algos) in FIGURES.items() if algorithm in algos]
    for name in names:
        if name not in FIGURES:
            raise ValueError(f"unknown figure {name!r}; expected some of {list(FIGURES)}")
        if algorithm not in FIGURES[name][1]:
            kinds = "/".join(_NAMES[a] for a in FIGURES[name][1])
            raise ValueError(
                f"figure {name!r} is for {kinds} checkpoints, this one is {_NAMES[algorithm]}"
            )
    return list(dict.fromkeys(names))


def _report(written: list[Path], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"files": [str(p) for p in written]}))
    else:
        print("\n".join(str(p) for p in written))


def cmd_analyze(args: argparse.Namespace) -> list[Path]:
    """Run ``seqagents analyze``; returns the PNGs written."""
    from seqagents.errors import require

    require("matplotlib", "analysis")  # before any episode runs
    from seqagents.analysis import figures as F
    from seqagents.analysis.rollouts import run_rollouts

    agent = _load(args.model, args.device, args)
    algorithm = agent.config.algorithm
    names = _chosen(args.figures, algorithm)
    if algorithm == "dt" or (algorithm == "leap" and agent.model_config.return_conditioned):
        pass
    elif "rtg" in names or "targets" in names:
        if args.figures:
            raise ValueError("rtg/targets need a return-conditioned agent (DT, LEAP Atari)")
        names = [n for n in names if n not in ("rtg", "targets")]
    others = [_load(m, args.device) for m in args.compare]
    env = agent.make_env()
    common = dict(max_steps=args.max_steps, progress_bar=not args.no_progress)
    episodes = run_rollouts(agent, env, args.episodes, seed=args.seed, desc="rollouts", **common)
    compared: dict[str, list[Episode]] = {_NAMES[algorithm]: episodes}
    for other in others:
        name = _NAMES[other.config.algorithm]
        compared.setdefault(name, run_rollouts(other, other.make_env(), 1, desc=name, **common))
    out = Path(args.out)
    written = []
    for name in names:
        fig, data = _draw(name, agent, env, episodes, compared, args, common)
        written.append(F.save_figure(fig, data, out, name))
    env.close()
    _report(written, args.json)
    return written


def _draw(
    name: str,
    agent: Any,
    env: Any,
    episodes: list[Episode],
    compared: dict[str, list[Episode]],
    args: argparse.Namespace,
    common: dict,
) -> tuple:
    from seqagents.analysis import figures as F
    from seqagents.analysis.rollouts import sweep

    seed, n = args.seed, args.episodes
    if name == "heatmaps":
        return F.attention_heatmaps(episodes)
    if name == "allocation":
        return F.attention_allocation(episodes[0])
    if name == "rtg":
        return F.rtg_tracking(episodes)
    if name == "targets":
        target = float(agent.target_return)
        targets = args.targets or [target * f for f in (0.25, 0.5, 0.75, 1.0, 1.5)]
        results = sweep(agent, env, "target_return", targets, n, seed=seed, **common)
        return F.target_return_sweep(results, args.dataset_best)
    if name == "distance":
        return F.attention_distance(episodes)
    if name == "entropy":
        return F.head_entropy(episodes)
    if name == "errors":
        return F.error_propagation(episodes, compared.get("DT"))
    if name == "sparsity":
        return F.attention_sparsity(compared)
    if name == "cost":
        timing = {**common, "max_steps": min(args.max_steps or 30, 30)}  # enough to time a step
        results = sweep(agent, env, "beam_width", args.beam_widths, 1, seed=seed, **timing)
        references = {k: v for k, v in compared.items() if k != "TT"}
        return F.compute_cost(results, references)
    if name == "energy":
        return F.leap_energy(episodes)
    if name == "iterations":
        results = sweep(agent, env, "n_iterations", args.iterations, n, seed=seed, **common)
        return F.leap_iterations(results)
    raise AssertionError(name)


def _runs(run_dir: str) -> list[Path]:
    """RUN_DIR itself when it holds metrics.jsonl (or is the file), else the run folders in it
    (a folder of runs such as ``runs/``); a one-line error when there are none."""
    root = Path(run_dir)
    if root.is_file() or (root / "metrics.jsonl").is_file():
        return [root]
    runs = sorted(p.parent for p in root.glob("*/metrics.jsonl")) if root.is_dir() else []
    if not runs:
        raise FileNotFoundError(
            f"{root} holds no metrics.jsonl, nor does any folder in it: pass a run folder "
            "(seqagents train writes runs/<algo>-<name>/metrics.jsonl) or a folder of runs"
        )
    return runs


def cmd_plot(args: argparse.Namespace) -> list[Path]:
    """Run ``seqagents plot``; returns the PNGs written: one for RUN_DIR, or one per run when
    RUN_DIR is a folder of runs (each into its run folder, or ``--out``/<run name>)."""
    from seqagents.errors import require

    require("matplotlib", "analysis")
    from seqagents.analysis import figures as F

    runs = _runs(args.run_dir)
    several = runs != [Path(args.run_dir)]
    written = []
    for run in runs:
        folder = run if run.is_dir() else run.parent  # RUN_DIR may name metrics.jsonl itself
        if args.out:
            folder = Path(args.out) / run.name if several else Path(args.out)
        fig, data = F.training_curves(F.read_metrics(run))
        written.append(F.save_figure(fig, data, folder, "training_curves"))
    if several and not args.json:  # issue 28: a folder of runs lists them
        print(f"{len(runs)} runs in {args.run_dir}: {', '.join(run.name for run in runs)}")
    _report(written, args.json)
    return written
