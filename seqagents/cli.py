"""The ``seqagents`` command: zoo, info, evaluate, enjoy, record, push, collect, train, benchmark,
analyze, plot.

Every command that takes a MODEL accepts a zoo entry name (``halfcheetah-medium``), a local
checkpoint folder or a Hugging Face Hub repo id. Results go to stdout (a table, or JSON with
``--json``); progress bars and errors go to stderr; bad input exits with status 2 and one line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main", "build_parser", "checkpoint_overrides", "cli_words"]


class _UserError(Exception):
    """Bad input: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line (``seqagents evaluate: error: ...``) and no
    prefix matching (``--dataset`` must never silently become ``--dataset-best``; issue 28)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(low: int) -> Callable[[str], int]:
    """argparse type: an int >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"int>={low}"
    return parse


def _json_object(text: str | None, option: str) -> dict:
    """``--model '{"n_layer": 2}'`` as a dict, or a one-line error naming the option."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise _UserError(f"{option} is not valid JSON ({e}): {text}") from e
    if not isinstance(value, dict):
        raise _UserError(f"{option} must be a JSON object like '{{\"key\": 1}}', got {text}")
    return value


# ---------------------------------------------------------------------------- helpers
def _load(args: argparse.Namespace) -> tuple[Any, Any, str]:
    from seqagents import load_agent
    from seqagents.zoo import resolve_model

    try:
        location, entry = resolve_model(args.model)
    except LookupError as e:
        raise _UserError(str(e)) from e
    try:
        agent = load_agent(location, device=args.device, **checkpoint_overrides(args))
    except TypeError as e:  # an option the checkpoint's agent does not take
        raise _UserError(str(e)) from e
    return agent, entry, _shown(location)


def checkpoint_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``from_pretrained`` keywords of the --dataset, --discretizer and --download options (a
    transformers Trajectory Transformer checkpoint's discretizer source)."""
    dataset, discretizer = getattr(args, "dataset", None), getattr(args, "discretizer", None)
    if getattr(args, "download", False) and not dataset:
        raise _UserError("--download fetches the Minari dataset of --dataset; pass --dataset ID")
    overrides: dict[str, Any] = {"dataset": dataset} if dataset else {}
    if discretizer:
        overrides["discretizer"] = discretizer
    if getattr(args, "download", False):
        overrides["download"] = True
    return overrides


# Library messages name Python keywords; a CLI user is told the option instead (issue 28:
# "every message speaks the language of the caller"). Keyword -> option of every command that
# can raise it; tests/test_cli_language.py checks each option exists.
_CLI_OPTIONS = {
    "dataset": "--dataset",
    "discretizer": "--discretizer",
    "download": "--download",
    "env_id": "--env",
    "eval_every": "--eval-every",
    "target_return": "--target-return",
}
_CLI_METAVARS = {"--dataset": "ID_OR_PATH", "--env": "ENV_ID"}
_PYTHON_KEYWORD = re.compile(
    r"(?<![\w.-])(" + "|".join(_CLI_OPTIONS) + r")=(True|False|\.\.\.|'[^']*'|\d[\d.]*|)"
)


def cli_words(message: str) -> str:
    """A library message as a CLI user reads it: ``dataset=...`` -> ``--dataset ...``,
    ``download=True`` -> ``--download``, ``discretizer='f.safetensors'`` -> ``--discretizer
    f.safetensors``; ``force_download=True`` (no option: the HF cache) -> how to do it.

    Example:
        >>> cli_words("rebuild it with dataset=... or load it with download=True")
        'rebuild it with --dataset ID_OR_PATH or load it with --download'
    """

    def option(match: re.Match) -> str:
        flag, value = _CLI_OPTIONS[match.group(1)], match.group(2)
        if value in ("True", ""):
            return flag
        if value == "False":
            return f"without {flag}"
        if value == "...":  # a placeholder: the option's metavar
            return f"{flag} {_CLI_METAVARS.get(flag, '...')}"
        return f"{flag} {value.strip(chr(39))}"

    message = message.replace(
        "(force_download=True)", "(delete its folder in the Hugging Face cache)"
    )
    return _PYTHON_KEYWORD.sub(option, message)


def _shown(location: str) -> str:
    """A local path relative to the working folder where it is inside it; else unchanged."""
    path = Path(location)
    try:
        return str(path.resolve().relative_to(Path.cwd())) if path.exists() else location
    except ValueError:
        return location


def _make_eval_env(agent: Any, env_id: str | None, n_envs: int, **kwargs: Any) -> Any:
    import gymnasium as gym

    from seqagents.envs import check_env_id_from_file, make_env

    if not env_id:
        check_env_id_from_file(agent.env_id, "the checkpoint's config.json")
    env_id = env_id or agent.env_id
    if not env_id:
        raise _UserError("the checkpoint names no env; pass --env ENV_ID")
    env_kwargs = {**(agent.spec.env_kwargs if env_id == agent.env_id else {}), **kwargs}
    if n_envs == 1:
        env = make_env(env_id, **env_kwargs)
    else:
        env = gym.vector.SyncVectorEnv([lambda: make_env(env_id, **env_kwargs)] * n_envs)
    agent.check_env(env)
    return env


def _targets(args: argparse.Namespace, agent: Any, entry: Any) -> list[float | None]:
    if args.target_return:
        return list(args.target_return)
    if getattr(args, "all_targets", False) and entry is not None:
        return list(entry.evaluation.target_returns) or [None]
    return [None]


def _evaluate(args: argparse.Namespace) -> dict:
    import numpy as np

    from seqagents.envs import is_babyai_env
    from seqagents.evaluation import episode_successes, evaluate_policy
    from seqagents.protocol import EvaluationProtocol, resolve_protocol
    from seqagents.scores import has_normalized_score, normalized_score

    agent, entry, location = _load(args)
    env = _make_eval_env(agent, args.env, args.n_envs)
    env_id = args.env or agent.env_id
    deterministic, max_steps = resolve_protocol(agent, args.deterministic, args.max_steps)
    results = []
    for target in _targets(args, agent, entry):
        start = time.perf_counter()
        returns, lengths = evaluate_policy(
            agent,
            env,
            n_eval_episodes=args.episodes,
            deterministic=deterministic,
            return_episode_rewards=True,
            target_return=target,
            seed=args.seed,
            progress_bar=not args.no_progress,
            max_episode_steps=max_steps,
        )
        row = {
            "target_return": target
            if target is not None
            else getattr(agent, "target_return", None),
            "episode_returns": [float(r) for r in returns],
            "episode_lengths": [int(n) for n in lengths],
            "mean_return": float(np.mean(returns)),
            "std_return": float(np.std(returns)),
            "mean_length": float(np.mean(lengths)),
            "wall_time_s": round(time.perf_counter() - start, 2),
        }
        if has_normalized_score(env_id):
            scores = np.asarray(normalized_score(np.asarray(returns), env_id))
            row["normalized_mean"] = float(scores.mean())
            row["normalized_std"] = float(scores.std())
        if is_babyai_env(env_id):  # BabyAI/MiniGrid pay only on success: success = return > 0
            successes = episode_successes(returns)
            row["episode_successes"] = [bool(x) for x in successes]
            row["success_rate"] = float(successes.mean())
        results.append(row)
    env.close()
    return {
        "model": location,
        "algorithm": agent.spec.algorithm,
        "env": env_id,
        "episodes": args.episodes,
        "n_envs": args.n_envs,
        "seed": args.seed,
        "deterministic": deterministic,
        "max_episode_steps": max_steps,
        "protocol": EvaluationProtocol(deterministic, max_steps).describe()
        + ("" if args.deterministic is not None else " (the checkpoint's protocol)"),
        "device": str(agent.device),
        "results": results,
        "_agent": agent,
        "_entry": entry,
    }


def _print_evaluation(report: dict) -> None:
    print(
        f"model: {report['model']}  algorithm: {report['algorithm']}  env: {report['env']}  "
        f"device: {report['device']}"
    )
    if "protocol" in report:
        episodes = f"{report['episodes']} episodes from seed {report['seed']}"
        print(f"protocol: {report['protocol']}, {episodes}")
    for row in report["results"]:
        print()
        if row["target_return"] is not None:  # return-conditioned agents only
            print(f"target return: {row['target_return']}")
        successes = row.get("episode_successes")  # BabyAI/MiniGrid only
        print(f"{'episode':>8s} {'return':>12s} {'length':>8s}" + ("  success" * bool(successes)))
        for i, (ret, length) in enumerate(zip(row["episode_returns"], row["episode_lengths"])):
            success = f"  {'yes' if successes[i] else 'no':>7s}" if successes else ""
            print(f"{i + 1:8d} {ret:12.2f} {length:8d}{success}")
        line = f"mean ± std: {row['mean_return']:.2f} ± {row['std_return']:.2f}"
        if "normalized_mean" in row:
            line += f"   normalized: {row['normalized_mean']:.1f} ± {row['normalized_std']:.1f}"
        if "success_rate" in row:
            line += f"   success: {100 * row['success_rate']:.1f}%"
        line += f"   mean length: {row['mean_length']:.0f}   wall time: {row['wall_time_s']} s"
        print(line)


def _record(
    agent: Any,
    entry: Any,
    args: argparse.Namespace,
    path: str,
    n_episodes: int | None,
    return_episode_rewards: bool = False,
) -> Any:
    from seqagents.envs import check_env_id_from_file
    from seqagents.video import record_video

    if not args.env:
        check_env_id_from_file(agent.env_id, "the checkpoint's config.json")
    env_id = args.env or agent.env_id
    if not env_id:
        raise _UserError("the checkpoint names no env; pass --env ENV_ID")
    target = args.target_return[0] if args.target_return else None
    env_kwargs = dict(agent.spec.env_kwargs) if env_id == agent.env_id else {}
    if entry is not None and env_id == entry.env_id:
        env_kwargs.update(entry.render_kwargs)  # e.g. a tracking camera
    if args.camera:
        env_kwargs["camera_name"] = args.camera
    return record_video(
        agent,
        env_id,
        path,
        n_episodes=n_episodes,
        max_frames=getattr(args, "max_frames", None),
        seed=args.seed,
        target_return=target,
        deterministic=args.deterministic,  # None: the checkpoint's protocol
        env_kwargs=env_kwargs,
        progress_bar=not args.no_progress,
        overlay=getattr(args, "overlay", False),
        return_episode_rewards=return_episode_rewards,
    )


# ---------------------------------------------------------------------------- commands
def cmd_zoo(args: argparse.Namespace) -> None:
    from seqagents.zoo import list_entries, publish_zoo

    if args.publish:
        from seqagents.checkpoints.native import hub_errors
        from seqagents.errors import HubError

        try:
            published = publish_zoo(args.publish)
        except HubError as e:
            raise _UserError(str(e)) from e
        except (*hub_errors(), OSError) as e:  # an upload failed half-way: safe to rerun
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise _UserError(
                f"publishing to {args.publish} failed ({type(e).__name__}: {first}); rerun "
                f"`seqagents zoo --publish {args.publish}` (uploads are idempotent)"
            ) from e
        print(f"published {len(published)} checkpoints to {args.publish}")
        return
    entries = {k: v for k, v in list_entries().items() if "/" in k}
    if args.json:
        print(
            json.dumps(
                {
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
                },
                indent=2,
            )
        )
        return
    rows = [("entry", "env", "paper", "measured", "checkpoint")]
    for key, e in entries.items():
        location = e.checkpoint_location()
        rows.append(
            (
                key,
                e.env_id,
                _paper_score(e),
                _measured_score(location),
                _shown(location) if location else "(none)",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:  # columns padded to their widest cell; numbers right-aligned
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [row[2].rjust(widths[2]), row[3].rjust(widths[3]), row[4]]
        print("  ".join(cells))
    print(_ZOO_UNITS)


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
    evaluation = json.loads((Path(location) / "config.json").read_text()).get("evaluation") or {}
    episodes = f" ({evaluation['n_episodes']} ep)" if evaluation.get("n_episodes") else ""
    if evaluation.get("normalized_score") is not None:
        return f"{evaluation['normalized_score']:.1f} norm{episodes}"
    if evaluation.get("success_rate") is not None:
        return f"{100 * evaluation['success_rate']:.1f} % success{episodes}"
    if evaluation.get("mean_reward") is not None:
        return f"{evaluation['mean_reward']:.1f} return{episodes}"
    return "—"


def cmd_info(args: argparse.Namespace) -> None:
    agent, entry, location = _load(args)
    spec = agent.config.to_checkpoint()  # the saved layout
    parameters = sum(p.numel() for p in agent.network.parameters())
    if args.json:
        info = {"model": location, "class": type(agent).__name__, **spec.to_dict()}
        print(json.dumps({**info, "parameters": parameters}, indent=2, default=str))
        return
    from seqagents.envs import describe_space

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
    for key, value in rows:
        if value:
            print(f"{key:14s} {value}")


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
    from seqagents.checkpoints.native import describe_evaluation

    line = describe_evaluation(evaluation)
    command = evaluation.get("command")
    return f"{line}  ({command})" if line and command else line


def cmd_evaluate(args: argparse.Namespace) -> dict:
    from seqagents.video import check_video_path

    if args.command == "enjoy" and not args.video:  # enjoy = evaluate + a replay video
        args.video = f"videos/{Path(args.model.rstrip('/')).name.replace('/', '-')}.mp4"
    if getattr(args, "video", None):
        check_video_path(args.video)  # before the evaluation, not after it
    if getattr(args, "output_dir", None):
        return _evaluate_to_folder(args)
    report = _evaluate(args)
    agent, entry = report.pop("_agent"), report.pop("_entry")
    if getattr(args, "video", None):
        report["video"] = str(_record(agent, entry, args, args.video, 1))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_evaluation(report)
        if "video" in report:
            print(f"\nvideo: {report['video']}")
    return report


def _evaluate_to_folder(args: argparse.Namespace) -> dict:
    """``evaluate --output-dir``: per-episode videos and eval_info.json (LeRobot's layout)."""
    from seqagents.eval_folder import evaluate_to_folder

    if args.n_envs != 1:
        raise _UserError("--output-dir runs one env (episode i with seed + i); drop --n-envs")
    agent, entry, location = _load(args)
    env_id = args.env or agent.env_id
    if not env_id:
        raise _UserError("the checkpoint names no env; pass --env ENV_ID")
    kwargs = dict(entry.render_kwargs) if entry is not None and env_id == entry.env_id else {}
    if args.camera:
        kwargs["camera_name"] = args.camera
    info = evaluate_to_folder(
        agent,
        env_id,
        args.output_dir,
        n_episodes=args.episodes,
        n_videos=min(args.videos, args.episodes),
        seed=args.seed,
        deterministic=args.deterministic,
        target_return=args.target_return[0] if args.target_return else None,
        env_kwargs=kwargs,
        progress_bar=not args.no_progress,
    )
    if args.json:
        print(json.dumps({"model": location, **info}, indent=2))
    else:
        agg = info["aggregated"]
        line = f"mean ± std: {agg['mean_return']:.2f} ± {agg['std_return']:.2f}"
        if "normalized_mean" in agg:
            line += f"   normalized: {agg['normalized_mean']:.1f}"
        if "success_rate" in agg:
            line += f"   success: {100 * agg['success_rate']:.1f}%"
        print(f"model: {location}  env: {env_id}\nprotocol: {info['protocol']}\n{line}")
        print(f"wrote {Path(args.output_dir) / 'eval_info.json'} and {args.videos} videos")
    return info


def cmd_record(args: argparse.Namespace) -> None:
    from seqagents.video import check_video_path

    check_video_path(args.video)
    agent, entry, _ = _load(args)
    if args.episodes is None:  # rl-zoo style: a clip of --steps frames across episodes
        args.max_frames = args.max_frames or args.steps
    path, returns, lengths = _record(agent, entry, args, args.video, args.episodes, True)
    # A clip of --steps frames (one per reset and per step) ends inside its last episode.
    frames = sum(lengths) + len(lengths)
    cut = args.episodes is None and bool(returns) and frames >= (args.max_frames or 0)
    if args.json:
        report = {"video": str(path), "episode_returns": returns, "episode_lengths": lengths}
        print(json.dumps({**report, "last_episode_cut": cut}))
        return
    print(f"video: {path}")
    for i, (ret, length) in enumerate(zip(returns, lengths)):
        note = "  (cut where the clip ends: --steps)" if cut and i == len(returns) - 1 else ""
        print(f"episode {i + 1}: return {ret:.2f}, {length} steps{note}")


def cmd_push(args: argparse.Namespace) -> None:
    """Evaluate, record a replay, write the folder with the model card, then upload it.

    Nothing is lost to the network (issue 23): the Hub login is checked before the evaluation
    runs, the folder (``--out``, else ``runs/push/<repo name>``) is written before the upload,
    and a failed upload names the folder and the command that retries it
    (``seqagents push --from-folder DIR REPO``). With ``--out`` nothing is uploaded.
    """
    import tempfile

    from seqagents.errors import require

    if args.from_folder:
        return _push_prepared_folder(args)
    if args.repo is None:
        raise _UserError("push needs MODEL and REPO (or --from-folder DIR REPO)")
    if args.video:
        require("moviepy", "video")
    without_hub = "or pass --out DIR to write the folder without uploading"
    repo = _hub_access(args.repo, without_hub, login=not args.out)
    folder = Path(args.out or Path("runs") / "push" / repo.rpartition("/")[2])
    try:
        folder.mkdir(parents=True, exist_ok=True)  # a folder we cannot write fails here, first
    except OSError as e:
        raise _UserError(f"cannot create the push folder {folder}: {e.strerror or e}") from e
    args.env, args.n_envs, args.all_targets = None, 1, False
    report = _evaluate(args)
    agent, entry = report.pop("_agent"), report.pop("_entry")
    agent.config = agent.config.replace(evaluation=_push_evaluation(args, report, repo))
    with tempfile.TemporaryDirectory() as tmp:
        video = _record(agent, entry, args, f"{tmp}/replay.mp4", 1) if args.video else None
        for stale in folder.glob("replay.*"):  # an earlier push's replay is not this card's
            stale.unlink()
        agent._write_folder(folder, location=repo, video=video, public=True)
    shown = _shown(str(folder))
    url = None if args.out else _upload_prepared(folder, repo, args.private)
    summary = {"repo": repo, "uploaded": url is not None, "folder": shown, "at": url or shown}
    if args.json:
        print(json.dumps({**summary, **agent.spec.evaluation}))
    elif url is None:
        print(f"{repo}: wrote {shown}; upload it with: seqagents push --from-folder {shown} {repo}")
    else:
        print(f"{repo}: {url} (mean return {agent.spec.evaluation['mean_reward']:.2f})")


def _push_evaluation(args: argparse.Namespace, report: dict, repo: str) -> dict:
    """The push's measured results as stored in the checkpoint (the card's model-index), with
    the ``seqagents evaluate`` command that measures them again from the Hub repo."""
    row = report["results"][0]
    command = f"seqagents evaluate {repo} --episodes {args.episodes} --seed {args.seed}"
    if args.target_return:
        command += f" --target-return {args.target_return[0]:g}"
    command += {None: "", True: " --deterministic", False: " --stochastic"}[args.deterministic]
    if args.max_steps:
        command += f" --max-steps {args.max_steps}"
    measured = {
        "normalized_score": row.get("normalized_mean"),
        "normalized_score_std": row.get("normalized_std"),
        "success_rate": row.get("success_rate"),
        "max_episode_steps": report["max_episode_steps"],
    }
    return {
        "env_id": report["env"],
        "target_return": row["target_return"],
        "mean_reward": row["mean_return"],
        "std_reward": row["std_return"],
        **{key: value for key, value in measured.items() if value is not None},
        "mean_length": row["mean_length"],
        "n_episodes": args.episodes,
        "seed": args.seed,
        "deterministic": report["deterministic"],
        "command": command,
    }


def _hub_access(repo: str, otherwise: str, login: bool = True) -> str:
    """The full repo id once the Hub login is known to work (``login=False``: once the id is
    well formed), else a one-line error (exit 2) that says how to log in and, ``otherwise``,
    what to do without the Hub."""
    from seqagents.checkpoints.hub import check_hub_access, check_repo_id
    from seqagents.errors import HubError

    try:
        if not login:
            check_repo_id(repo)
            return repo
        return check_hub_access(repo)
    except HubError as e:
        raise _UserError(f"{e}; {otherwise}" if login else str(e)) from e


def _upload_prepared(folder: Path, repo: str, private: bool) -> str:
    """Upload ``folder`` to ``repo``; any failure is one line naming the folder to retry with."""
    from seqagents.checkpoints.hub import upload_folder
    from seqagents.checkpoints.native import quiet_hub_retries

    shown = _shown(str(folder))
    try:
        with quiet_hub_retries():
            return upload_folder(folder, repo, private=private or None)
    except Exception as e:  # whatever failed, the work is on disk: say how to upload it later
        logging.getLogger(__name__).info("upload of %s failed", shown, exc_info=True)
        reason = (str(e).strip().splitlines() or [""])[0][:200]
        raise _UserError(
            f"upload to {repo} failed ({type(e).__name__}: {reason}); the prepared folder is "
            f"kept in {shown}; retry with: seqagents push --from-folder {shown} {repo}"
        ) from e


def _push_prepared_folder(args: argparse.Namespace) -> None:
    """``seqagents push --from-folder DIR REPO``: upload a folder an earlier push prepared."""
    from seqagents.checkpoints.native import CONFIG_NAME, WEIGHTS_NAME

    if args.repo is not None or args.out:
        raise _UserError("--from-folder takes only REPO: seqagents push --from-folder DIR REPO")
    folder = Path(args.from_folder)
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME, "README.md") if not (folder / n).is_file()]
    if missing:
        raise _UserError(
            f"{folder} is not a folder prepared by seqagents push (no {', '.join(missing)}); "
            "prepare one with: seqagents push MODEL REPO --out DIR"
        )
    repo = _hub_access(args.model, "nothing was uploaded")  # the one positional is REPO
    if repo not in (folder / "README.md").read_text():
        raise _UserError(
            f"{folder} was prepared for another repo (its card does not name {repo}); prepare "
            f"it again with: seqagents push MODEL {repo} --out {folder}"
        )
    url = _upload_prepared(folder, repo, args.private)
    shown = _shown(str(folder))
    summary = {"repo": repo, "uploaded": True, "folder": shown, "at": url}
    print(json.dumps(summary) if args.json else f"{repo}: {url} (uploaded {shown})")


def _collect_learning_history(args: argparse.Namespace) -> None:
    """``collect --learn ppo``: train PPO on an Atari game and record its learning history."""
    from seqagents.data.atari_collect import record_ppo_history

    if args.learn.lower() != "ppo":
        raise _UserError(f"--learn supports only 'ppo', got {args.learn!r}")
    if not args.env or not args.env.startswith("ALE/"):
        raise _UserError("--learn ppo needs --env ALE/<Game>-v5 (e.g. ALE/Breakout-v5)")
    if not args.out or not args.n_steps:
        raise _UserError("--learn ppo needs --out DIR and --steps N (PPO timesteps)")
    if args.dataset_id or args.zoo or args.policy:
        raise _UserError("--learn ppo takes no DATASET_ID, --zoo or --policy (use --out)")
    try:
        result = record_ppo_history(
            args.env,
            args.n_steps,
            args.out,
            seed=0 if args.seed is None else args.seed,
            n_envs=args.n_envs or 8,
            progress_bar=not args.no_progress,
            overwrite=args.overwrite,
            resume=args.resume,
        )
    except (FileExistsError, FileNotFoundError, ValueError) as e:
        raise _UserError(str(e)) from e
    summary = {
        "out": str(result.out_dir),
        "policy": str(result.policy_path),
        "transitions": result.n_steps,
        "games": result.n_episodes,
        "policy_steps": result.policy_steps,
        "return_mean": result.return_mean,
        "return_max": result.return_max,
    }
    print(
        json.dumps(summary)
        if args.json
        else f"{result.out_dir}: {result.n_episodes} games, {result.n_steps} transitions "
        f"({result.policy_steps} PPO steps), game return mean {result.return_mean:.1f} "
        f"max {result.return_max:.1f}; policy {result.policy_path}"
    )


def cmd_collect(args: argparse.Namespace) -> None:
    import torch

    from seqagents.data import collect_dataset
    from seqagents.zoo import get_entry, zoo_dir

    if getattr(args, "learn", None):
        return _collect_learning_history(args)
    # Behaviour policies are small MLPs: one thread is fastest (measured 250 vs 1,440 steps/s
    # for SB3 SAC on HalfCheetah with 8 envs on a busy 2-core machine).
    torch.set_num_threads(1)
    options: dict[str, Any] = {}
    dataset_id, env_id, policy = args.dataset_id, args.env, args.policy
    if args.zoo:
        entry = get_entry(args.zoo)
        recipe = entry.dataset.collect
        if recipe is None:
            raise _UserError(f"zoo entry {args.zoo!r} has no local collection recipe")
        dataset_id, env_id = dataset_id or entry.dataset.id, env_id or entry.env_id
        policy = policy or recipe.policy
        options = dict(
            n_steps=recipe.n_steps,
            n_episodes=recipe.n_episodes,
            n_envs=recipe.n_envs,
            seed=recipe.seed,
            deterministic=recipe.deterministic,
            ref_min_score=recipe.ref_min_score,
            ref_max_score=recipe.ref_max_score,
            env_kwargs=entry.env_kwargs,
        )
    if not dataset_id or not env_id:
        raise _UserError("collect needs DATASET_ID and --env (or --zoo ENTRY)")
    policy = policy or "random"
    if ":" in policy and policy.split(":", 1)[0].lower() not in ("", "random"):
        algo, path = policy.split(":", 1)
        bundled = zoo_dir() / Path(path).relative_to("zoo") if path.startswith("zoo/") else None
        if not Path(path).exists() and bundled is not None and bundled.exists():
            policy = f"{algo}:{bundled}"  # a zoo recipe's policy, from a checkout or a wheel
    for key in ("n_steps", "n_episodes", "n_envs", "seed", "ref_min_score", "ref_max_score"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    if args.deterministic:
        options["deterministic"] = True
    if getattr(args, "env_kwargs", None):
        try:
            extra = json.loads(args.env_kwargs)
        except json.JSONDecodeError as e:
            raise _UserError(f"--env-kwargs is not JSON: {e}") from e
        if not isinstance(extra, dict):
            raise _UserError(f"--env-kwargs must be a JSON object, got {args.env_kwargs}")
        options["env_kwargs"] = {**(options.get("env_kwargs") or {}), **extra}
    dataset = collect_dataset(
        dataset_id,
        env_id,
        policy,
        overwrite=args.overwrite,
        progress_bar=not args.no_progress,
        trust_policy_file=args.trust_policy_file,
        **options,
    )
    summary = {
        "dataset_id": dataset_id,
        "episodes": dataset.total_episodes,
        "steps": dataset.total_steps,
    }
    if args.json:
        print(json.dumps({**summary, "min_steps": args.n_steps or options.get("n_steps")}))
        return
    line = f"{dataset_id}: {summary['episodes']} episodes, {summary['steps']} steps"
    asked = options.get("n_steps")
    if asked and summary["steps"] > asked:  # issue 28: say why it is more than --steps
        line += f" (at least {asked} asked; the running episodes were finished, not cut)"
    print(line)


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
    protocol = EvaluationProtocol(entry.evaluation.deterministic).to_dict()
    agent.config = agent.config.replace(protocol=protocol)
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


def cmd_benchmark(args: argparse.Namespace) -> None:
    """Evaluate zoo entries at their targets and print benchmark.md rows (measured now)."""
    from seqagents.zoo import get_entry

    header = [
        "algo", "entry", "env", "target", "return", "normalized", "success", "paper",
        "episodes", "train steps", "eval wall s",
    ]  # fmt: skip
    rows: list[list[str]] = []
    for name in args.entries:
        entry = get_entry(name)
        args.model, args.all_targets = name, not args.target_return
        report = _evaluate(args)
        agent = report.pop("_agent")
        report.pop("_entry")
        steps = agent.spec.training.get("steps", "—")
        for row in report["results"]:
            norm = (
                f"{row['normalized_mean']:.1f} ± {row['normalized_std']:.1f}"
                if "normalized_mean" in row
                else "—"
            )
            target = row["target_return"]
            rows.append(
                [
                    entry.algo,
                    name,
                    entry.env_id,
                    "—" if target is None else f"{target:.0f}",
                    f"{row['mean_return']:.1f} ± {row['std_return']:.1f}",
                    norm,
                    f"{100 * row['success_rate']:.1f}%" if "success_rate" in row else "—",
                    "—" if entry.paper.score is None else f"{entry.paper.score}",
                    str(args.episodes),
                    str(steps),
                    str(row["wall_time_s"]),
                ]
            )
    # The success column (BabyAI/MiniGrid: return > 0) shows when any row has a success rate.
    column = header.index("success")
    if all(row[column] == "—" for row in rows):
        header.pop(column)
        rows = [row[:column] + row[column + 1 :] for row in rows]
    print("| " + " | ".join(header) + " |")
    print("|---" * len(header) + "|")
    print("\n".join("| " + " | ".join(row) + " |" for row in rows))
    print(
        f"\nmeasured with: seqagents benchmark {' '.join(args.entries)} --episodes "
        f"{args.episodes} --n-envs {args.n_envs} --seed {args.seed} on {platform.machine()} "
        f"({platform.processor() or 'cpu'}), device {args.device}"
    )


# ---------------------------------------------------------------------------- parser
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
        type=_count(1),
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
        type=_count(1),
        default=episodes,
        help=f"episodes (default {episodes})"
        if episodes
        else "whole episodes to record (default: a clip of --steps frames across episodes)",
    )
    p.add_argument("--n-envs", type=_count(1), default=1, help="parallel envs (default 1)")
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
            type=_count(0),
            default=10,
            help="with --output-dir: episodes to record (default 10)",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="seqagents")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument(
        "--threads",
        type=_count(1),
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
    p.add_argument("--max-frames", type=_count(1), help="stop after this many frames")
    p.add_argument(
        "--steps",
        type=_count(1),
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
        type=_count(1),
        help="record at least N transitions: no episode starts after N, and the running ones "
        "finish (episodes are kept whole, so up to --n-envs whole episodes more; --n-envs 1 "
        "comes closest, --episodes gives an exact count)",
    )
    p.add_argument("--episodes", dest="n_episodes", type=_count(1), help="episodes to record")
    p.add_argument("--n-envs", type=_count(1), help="parallel envs (default: the recipe's, 8)")
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
        help="dt/tt/leap: gymnasium id to evaluate in and record in the checkpoint (default: "
        "the dataset's env spec)",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="fetch a Minari dataset id from the Minari remote if it is not stored locally",
    )
    p.add_argument(
        "--return-scale",
        type=float,
        help="dt/leap: returns-to-go are divided by this (default: DT 1000, LEAP 1)",
    )
    p.add_argument(
        "--steps", type=_count(1), help="gradient steps (default: the entry's, else the trainer's)"
    )
    p.add_argument(
        "--batch-size",
        type=_count(1),
        help="windows per step (default: the entry's, else the trainer's)",
    )
    p.add_argument(
        "--learning-rate",
        type=float,
        help="peak learning rate (default: the entry's, else the trainer's)",
    )
    p.add_argument(
        "--warmup-steps",
        type=_count(0),
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
        type=_count(0),
        help="evaluate every N steps (default: the entry's, else the trainer's)",
    )
    p.add_argument(
        "--eval-episodes", type=_count(1), default=5, help="episodes per evaluation (default 5)"
    )
    p.add_argument(
        "--log-every",
        type=_count(1),
        help="write a metrics.jsonl record (and TensorBoard scalars) every N steps (default: "
        "the entry's, else 100)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=_count(0),
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
    p.add_argument("--episodes", type=_count(1), default=10, help="episodes (default 10)")
    p.add_argument("--n-envs", type=_count(1), default=1, help="parallel envs (default 1)")
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``seqagents`` command; returns the exit status."""
    from seqagents._gl import ensure_headless_gl  # not seqagents.envs: --help stays fast

    ensure_headless_gl()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    import gymnasium as gym
    import torch

    from seqagents.errors import CheckpointError, MissingDependencyError

    torch.set_num_threads(args.threads)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print(f"seqagents {args.command}: interrupted", file=sys.stderr)
        return 130
    except (
        _UserError,
        CheckpointError,
        MissingDependencyError,
        OSError,  # files and folders: missing, unreadable, not a folder, disk full, ...
        zipfile.BadZipFile,
        KeyError,
        ValueError,
        gym.error.Error,
    ) as e:
        print(f"seqagents {args.command}: error: {cli_words(_one_line(e))}", file=sys.stderr)
        return 2
    return 0


def _one_line(error: BaseException) -> str:
    """The message of a user-caused error on one line; an ``OSError`` names its file."""
    if isinstance(error, KeyError) and error.args:
        message = str(error.args[0])
    elif isinstance(error, OSError) and error.filename is not None:
        where = str(error.filename)
        if error.filename2 is not None:
            where += f" -> {error.filename2}"
        message = f"{where}: {error.strerror or error}; check the path and its permissions"
    else:
        message = str(error) or type(error).__name__
    return " ".join(message.split())


if __name__ == "__main__":
    sys.exit(main())
