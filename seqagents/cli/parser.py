"""The ``seqagents`` argument parser: one sub-parser per command, each bound to its function."""

from __future__ import annotations

import argparse

from seqagents.cli.common import Parser, count

__all__ = ["build_parser"]


def _protocol_options(p: argparse.ArgumentParser) -> None:
    """--deterministic/--stochastic and --max-steps; unset, they follow the checkpoint's
    protocol (agent.protocol: sampled on Atari, greedy elsewhere)."""
    p.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="greedy actions, or --no-deterministic to sample (default: the checkpoint's "
        "protocol, printed with the results)",
    )
    p.add_argument(
        "--stochastic",
        dest="deterministic",
        action="store_false",
        help="sample actions (same as --no-deterministic)",
    )
    p.add_argument(
        "--max-steps",
        type=count(1),
        help="cut each episode after this many steps (default: the checkpoint's protocol, "
        "else the env's own limit)",
    )


# One --device default for every command (issue 28): auto = CUDA if available, else CPU.
_DEVICE_HELP = "auto (default: CUDA if available, else CPU), cpu, cuda, cuda:1, mps"


def _discretizer_options(p: argparse.ArgumentParser) -> None:
    """--dataset/--discretizer/--download: the discretizer of a transformers TT checkpoint."""
    p.add_argument(
        "--dataset",
        metavar="ID_OR_PATH",
        help="transformers Trajectory Transformer checkpoints only: the Minari id or D4RL .hdf5 "
        "its discretizer is rebuilt from (they do not store it)",
    )
    p.add_argument(
        "--discretizer",
        metavar="FILE",
        help="transformers TT checkpoints: a safetensors file holding the discretizer "
        "thresholds (instead of --dataset)",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="with --dataset: fetch the Minari id from the Minari remote if not stored locally",
    )


def _model_options(
    p: argparse.ArgumentParser, video: bool = True, episodes: int | None = 10
) -> None:
    p.add_argument("model", help="zoo entry name, local checkpoint folder or Hub repo id")
    p.add_argument("--env", help="gymnasium env id (default: the checkpoint's)")
    p.add_argument(
        "--episodes",
        type=count(1),
        default=episodes,
        help=f"episodes (default {episodes})"
        if episodes
        else "whole episodes to record (default: a clip of --steps frames across episodes)",
    )
    p.add_argument("--n-envs", type=count(1), default=1, help="parallel envs (default 1)")
    p.add_argument(
        "--target-return",
        type=float,
        nargs="+",
        help="target return(s) to condition on (DT, LEAP; default: the checkpoint's)",
    )
    p.add_argument("--seed", type=int, default=0, help="env reset seed (default 0)")
    p.add_argument("--device", default="auto", help=_DEVICE_HELP)
    _protocol_options(p)
    _discretizer_options(p)
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--camera", help="MuJoCo camera name for videos (default: the zoo entry's)")
    if video:
        p.add_argument(
            "--video", metavar="PATH", help="also record one episode to PATH (.mp4 or .gif)"
        )
        p.add_argument(
            "--output-dir",
            metavar="DIR",
            help="write DIR/eval_info.json (per episode: seed, return, length, success) and "
            "videos of the first --videos episodes (episode i uses seed + i)",
        )
        p.add_argument(
            "--videos",
            type=count(0),
            default=10,
            help="with --output-dir: episodes to record (default 10)",
        )


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (``args.func`` runs the command)."""
    # The command modules import the library lazily, inside their functions: --help stays fast.
    from seqagents.cli.collect import cmd_collect
    from seqagents.cli.evaluate import cmd_benchmark, cmd_evaluate, cmd_record
    from seqagents.cli.hub import cmd_push
    from seqagents.cli.train import cmd_train
    from seqagents.cli.zoo import cmd_info, cmd_zoo

    parser = Parser(prog="seqagents")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument(
        "--threads",
        type=count(1),
        default=1,
        help="torch CPU threads (default 1: these small models step fastest on one thread, "
        "and parallel jobs do not oversubscribe the cores; raise it for large-batch training "
        "on an idle machine)",
    )
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        help="seqagents COMMAND --help for its options",
    )

    p = sub.add_parser("zoo", help="list zoo entries (or --publish them to the Hub)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument(
        "--publish",
        metavar="ORG",
        help="push every bundled checkpoint with its card to ORG/<name> on the Hub "
        "(the zoo's home is seqagents)",
    )
    p.set_defaults(func=cmd_zoo)

    p = sub.add_parser("info", help="what a checkpoint is: algorithm, env, spaces, defaults")
    p.add_argument("model", help="zoo entry name, local checkpoint folder or Hub repo id")
    p.add_argument("--device", default="auto", help=_DEVICE_HELP)
    _discretizer_options(p)
    p.add_argument("--json", action="store_true", help="the full config as JSON on stdout")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("evaluate", help="evaluate an agent (SB3-style evaluate_policy)")
    _model_options(p)
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser(
        "enjoy", help="evaluate and record a replay (default videos/<model>.mp4; --video PATH)"
    )
    _model_options(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("record", help="record a rollout video")
    _model_options(p, video=False, episodes=None)
    p.add_argument("--video", metavar="PATH", required=True, help="output .mp4 or .gif")
    p.add_argument("--max-frames", type=count(1), help="stop after this many frames")
    p.add_argument(
        "--steps",
        type=count(1),
        default=1000,
        help="clip length in frames, across episodes (default 1000, as rl-zoo); --episodes N "
        "records N whole episodes instead",
    )
    p.add_argument(
        "--overlay", action="store_true", help="print step, reward and return-to-go on frames"
    )
    p.set_defaults(func=cmd_record)

    p = sub.add_parser(
        "push",
        help="evaluate a checkpoint, record a replay and upload it with a model card of the "
        "results to a Hub repo (as rl-zoo's push_to_hub)",
        usage="seqagents push [options] MODEL REPO\n       seqagents push --from-folder DIR REPO",
        description="The Hub login is checked first; the folder (--out, else runs/push/<repo "
        "name>) is written before the upload, so a failed upload loses nothing: retry it with "
        "--from-folder.",
    )
    _model_options(p, video=False)
    p.add_argument(
        "repo",
        nargs="?",
        help="Hub repo id to create or update, e.g. me/dt-halfcheetah (with --from-folder the "
        "only positional)",
    )
    p.add_argument(
        "--video",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="record one replay episode into the repo (default) or --no-video",
    )
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="write the folder that would be uploaded to DIR and do not upload it",
    )
    p.add_argument(
        "--from-folder",
        metavar="DIR",
        help="upload DIR, a folder an earlier push wrote (--out, or the one a failed upload "
        "named), without evaluating again",
    )
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("collect", help="write a local Minari dataset from a behaviour policy")
    p.add_argument("dataset_id", nargs="?", help="e.g. local/halfcheetah/medium-v0")
    p.add_argument("--zoo", metavar="ENTRY", help="use the zoo entry's collection recipe")
    p.add_argument("--env", help="gymnasium env id (default: the zoo entry's)")
    p.add_argument(
        "--policy",
        help="random (default) | babyai-bot[:noise=0.4,full_view=1,unique_goal=1] | "
        "<sb3 algo>:<model.zip> (needs --trust-policy-file unless it ships with the zoo)",
    )
    p.add_argument(
        "--trust-policy-file",
        action="store_true",
        help="load the --policy .zip: stable-baselines3 zips hold pickled Python objects that "
        "run code when loaded, so only a file you made or trust",
    )
    p.add_argument(
        "--env-kwargs",
        metavar="JSON",
        help="env kwargs (over the zoo entry's), e.g. '{\"privileged\": true}' for LEAP's "
        "privileged BabyAI observations or '{\"doors_open\": true}'",
    )
    p.add_argument(
        "--steps",
        dest="n_steps",
        type=count(1),
        help="record at least N transitions: no episode starts after N, and the running ones "
        "finish (episodes are kept whole, so up to --n-envs whole episodes more; --n-envs 1 "
        "comes closest, --episodes gives an exact count)",
    )
    p.add_argument("--episodes", dest="n_episodes", type=count(1), help="episodes to record")
    p.add_argument("--n-envs", type=count(1), help="parallel envs (default: the recipe's, 8)")
    p.add_argument("--seed", type=int, help="first env seed (default: the recipe's, 0)")
    p.add_argument("--deterministic", action="store_true", help="greedy behaviour policy")
    p.add_argument("--ref-min-score", type=float, help="return of a random policy (metadata)")
    p.add_argument("--ref-max-score", type=float, help="return of an expert (metadata)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    # Atari learning history (seqagents.data.atari_collect): PPO learns, every step is recorded.
    p.add_argument(
        "--learn",
        metavar="ALGO",
        help="train ALGO (ppo) on --env ALE/<Game>-v5 for --steps PPO timesteps with the rl-zoo "
        "Atari settings and record its whole learning history (full games, FIRE presses, raw and "
        "clipped rewards, 84x84 uint8 frames) to --out, with the final policy and the curve",
    )
    p.add_argument("--out", metavar="DIR", help="dataset folder for --learn")
    p.add_argument(
        "--resume",
        action="store_true",
        help="--learn: continue the recording in --out from its last stage (saved every 50k "
        "PPO steps); --steps is the new total",
    )
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser(
        "train",
        help="train a zoo entry on its dataset, or dt/tt/leap on --dataset",
        description="seqagents train ENTRY trains a zoo entry with its recipe; seqagents train "
        "dt|tt|leap --dataset ID_OR_PATH [--env ENV_ID] trains that algorithm on your own data "
        "with the trainer's defaults (DT: the DT paper's; TT, LEAP: the original code's), "
        "which the options below override.",
    )
    p.add_argument(
        "entry",
        metavar="ENTRY_OR_ALGO",
        help="zoo entry name (seqagents zoo lists them), or dt, tt or leap with --dataset",
    )
    p.add_argument(
        "--dataset",
        help="Minari dataset id, Atari dataset folder, or dqn-replay:PATH[?num_buffers=N&"
        "num_steps=N] for the DQN Replay Dataset (default: the entry's; needed with dt/tt/leap)",
    )
    p.add_argument(
        "--env",
        metavar="ENV_ID",
        help="gymnasium id to evaluate in and record in the checkpoint (default: the entry's, "
        "else the dataset's env spec)",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="fetch a Minari dataset id from the Minari remote if it is not stored locally",
    )
    p.add_argument(
        "--return-scale",
        type=float,
        help="dt/leap: returns-to-go are divided by this (default: the entry's, else DT 1000, "
        "LEAP 1)",
    )
    p.add_argument(
        "--steps", type=count(1), help="gradient steps (default: the entry's, else the trainer's)"
    )
    p.add_argument(
        "--batch-size",
        type=count(1),
        help="windows per step (default: the entry's, else the trainer's)",
    )
    p.add_argument(
        "--learning-rate",
        type=float,
        help="peak learning rate (default: the entry's, else the trainer's)",
    )
    p.add_argument(
        "--warmup-steps",
        type=count(0),
        help="linear warmup (default: the entry's, else the trainer's)",
    )
    p.add_argument(
        "--seed", type=int, help="training seed (default: the entry's, else the trainer's)"
    )
    p.add_argument(
        "--device", help="auto, cpu, cuda, cuda:1 (default: the entry's, else auto, as everywhere)"
    )
    p.add_argument(
        "--eval-every",
        type=count(0),
        help="evaluate every N steps (default: the entry's, else the trainer's)",
    )
    p.add_argument(
        "--eval-episodes", type=count(1), default=5, help="episodes per evaluation (default 5)"
    )
    p.add_argument(
        "--log-every",
        type=count(1),
        help="write a metrics.jsonl record (and TensorBoard scalars) every N steps (default: "
        "the entry's, else 100)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=count(0),
        help="save every N steps (default: the entry's, else 10000; 0: end)",
    )
    p.add_argument(
        "--model", metavar="JSON", help="model config overrides, e.g. '{\"n_layer\": 2}'"
    )
    p.add_argument(
        "--out", help="run folder (default runs/<algo>-<entry>, runs/<algo>-<dataset id>)"
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--force", action="store_true", help="overwrite an existing run folder")
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also log loss, lr and evaluations to <out>/tensorboard (pip install tensorboard); "
        "at --resume the earlier records of metrics.jsonl are written too",
    )
    p.add_argument(
        "--install",
        action="store_true",
        help="also save the result as the entry's bundled checkpoint in zoo/",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("benchmark", help="evaluate zoo entries and print benchmark.md rows")
    p.add_argument("entries", nargs="+", help="zoo entry names")
    p.add_argument("--episodes", type=count(1), default=10, help="episodes (default 10)")
    p.add_argument("--n-envs", type=count(1), default=1, help="parallel envs (default 1)")
    p.add_argument("--target-return", type=float, nargs="+", help="targets (default: the entry's)")
    p.add_argument("--seed", type=int, default=0, help="env reset seed (default 0)")
    p.add_argument("--device", default="auto", help=_DEVICE_HELP)
    p.add_argument("--env", default=None, help="gymnasium env id (default: the entry's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _protocol_options(p)
    p.set_defaults(func=cmd_benchmark)
    from seqagents.analysis.cli import add_subcommands  # analyze, plot

    add_subcommands(sub)
    # The description names every command, read from the parser itself (issue 28: 8 of 11).
    parser.description = (
        f"Pretrained sequence-model agents (DT, TT, LEAP) for gymnasium. Commands: "
        f"{', '.join(sub.choices)}. Every --device defaults to auto (CUDA if available, else "
        "CPU)."
    )
    return parser
