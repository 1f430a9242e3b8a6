"""``seqagents evaluate``, ``enjoy``, ``record`` and ``benchmark``: every result is an
:class:`~seqagents.report.EvaluationReport` (or a video), printed by :func:`emit`."""

from __future__ import annotations

import argparse
import platform
from pathlib import Path
from typing import Any

from seqagents.cli.common import UserError, emit, load_model

__all__ = [
    "cmd_benchmark",
    "cmd_evaluate",
    "cmd_record",
    "evaluate_model",
    "evaluation_text",
    "record_episodes",
]


def evaluate_model(
    args: argparse.Namespace, model: str, *, env_id: str | None, n_envs: int, all_targets: bool
) -> tuple[Any, Any, Any]:
    """``(report, agent, zoo entry or None)``: MODEL evaluated with the episode, seed and
    protocol options of ``args`` at its targets (--target-return, else with ``all_targets``
    the zoo entry's, else the checkpoint's own)."""
    from seqagents.report import evaluation_report

    agent, entry, location = load_model(args, model)
    env = _make_eval_env(agent, env_id, n_envs)
    targets: list[float | None] = [None]
    if args.target_return:
        targets = list(args.target_return)
    elif all_targets and entry is not None:
        targets = list(entry.evaluation.target_returns) or [None]
    try:
        report = evaluation_report(
            agent,
            env,
            env_id=env_id or agent.env_id,
            n_eval_episodes=args.episodes,
            target_returns=targets,
            seed=args.seed,
            deterministic=args.deterministic,
            max_episode_steps=args.max_steps,
            progress_bar=not args.no_progress,
            model=location,
        )
    finally:
        env.close()
    return report, agent, entry


def _env_id(agent: Any, env_id: str | None) -> str:
    """--env, else the checkpoint's env id (checked: it names an env this install can make)."""
    from seqagents.envs import check_env_id_from_file

    if not env_id:
        check_env_id_from_file(agent.env_id, "the checkpoint's config.json")
    env_id = env_id or agent.env_id
    if not env_id:
        raise UserError("the checkpoint names no env; pass --env ENV_ID")
    return env_id


def _make_eval_env(agent: Any, env_id: str | None, n_envs: int) -> Any:
    import gymnasium as gym

    from seqagents.envs import make_env

    env_id = _env_id(agent, env_id)
    env_kwargs = dict(agent.config.env_kwargs) if env_id == agent.env_id else {}
    if n_envs == 1:
        env = make_env(env_id, **env_kwargs)
    else:
        env = gym.vector.SyncVectorEnv([lambda: make_env(env_id, **env_kwargs)] * n_envs)
    agent.check_env(env)
    return env


def evaluation_text(report: Any) -> str:
    """An :class:`~seqagents.report.EvaluationReport` as ``seqagents evaluate`` prints it: the
    protocol, then per target a table of episodes and the aggregate line."""
    lines = [
        f"model: {report.model}  algorithm: {report.algorithm}  env: {report.env_id}  "
        f"device: {report.device}",
        f"protocol: {report.describe_protocol()}",
    ]
    for result in report.results:
        lines.append("")
        if result.target_return is not None:  # return-conditioned agents only
            lines.append(f"target return: {result.target_return}")
        successes = result.successes  # BabyAI/MiniGrid only
        success = "  success" if successes else ""
        lines.append(f"{'episode':>8s} {'return':>12s} {'length':>8s}{success}")
        for i, (ret, length) in enumerate(zip(result.episode_returns, result.episode_lengths)):
            cell = f"  {'yes' if successes[i] else 'no':>7s}" if successes else ""
            lines.append(f"{i + 1:8d} {ret:12.2f} {length:8d}{cell}")
        summary = result.summary()
        lines.append(
            _aggregate_line(summary)
            + f"   mean length: {summary['mean_length']:.0f}   wall time: {result.wall_time_s} s"
        )
    return "\n".join(lines)


def _aggregate_line(summary: dict[str, float]) -> str:
    """``mean ± std: ...   normalized: ...   success: ...%`` of a result's summary."""
    line = f"mean ± std: {summary['mean_return']:.2f} ± {summary['std_return']:.2f}"
    if "normalized_mean" in summary:
        line += f"   normalized: {summary['normalized_mean']:.1f} ± {summary['normalized_std']:.1f}"
    if "success_rate" in summary:
        line += f"   success: {100 * summary['success_rate']:.1f}%"
    return line


def record_episodes(
    agent: Any,
    entry: Any,
    args: argparse.Namespace,
    path: str,
    n_episodes: int | None,
    *,
    env_id: str | None,
    max_frames: int | None = None,
    return_episode_rewards: bool = False,
) -> Any:
    """:func:`seqagents.record_video` of MODEL in ``env_id`` (None: the checkpoint's) with the
    seed, target, protocol, camera and overlay options of ``args``."""
    from seqagents.video import record_video

    env_id = _env_id(agent, env_id)
    target = args.target_return[0] if args.target_return else None
    env_kwargs = dict(agent.config.env_kwargs) if env_id == agent.env_id else {}
    if entry is not None and env_id == entry.env_id:
        env_kwargs.update(entry.render_kwargs)  # e.g. a tracking camera
    if args.camera:
        env_kwargs["camera_name"] = args.camera
    return record_video(
        agent,
        env_id,
        path,
        n_episodes=n_episodes,
        max_frames=max_frames,
        seed=args.seed,
        target_return=target,
        deterministic=args.deterministic,  # None: the checkpoint's protocol
        env_kwargs=env_kwargs,
        progress_bar=not args.no_progress,
        overlay=getattr(args, "overlay", False),
        return_episode_rewards=return_episode_rewards,
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    """``evaluate`` (and ``enjoy``: evaluate + a replay video, default videos/<model>.mp4)."""
    from seqagents.video import check_video_path

    video = args.video
    if args.command == "enjoy" and not video:
        video = f"videos/{Path(args.model.rstrip('/')).name.replace('/', '-')}.mp4"
    if video:
        check_video_path(video)  # before the evaluation, not after it
    if args.output_dir:
        return _evaluate_to_folder(args)
    report, agent, entry = evaluate_model(
        args, args.model, env_id=args.env, n_envs=args.n_envs, all_targets=False
    )
    data = report.to_dict()
    if video:
        data["video"] = str(
            record_episodes(agent, entry, args, video, 1, env_id=args.env, max_frames=None)
        )
    text = evaluation_text(report) + (f"\n\nvideo: {data['video']}" if video else "")
    emit(args.json, data, text)


def _evaluate_to_folder(args: argparse.Namespace) -> None:
    """``evaluate --output-dir``: per-episode videos and eval_info.json (LeRobot's layout)."""
    from seqagents.eval_folder import evaluate_to_folder

    if args.n_envs != 1:
        raise UserError("--output-dir runs one env (episode i with seed + i); drop --n-envs")
    agent, entry, location = load_model(args, args.model)
    env_id = args.env or agent.env_id
    if not env_id:
        raise UserError("the checkpoint names no env; pass --env ENV_ID")
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
    text = (
        f"model: {location}  env: {env_id}\nprotocol: {info['protocol']}\n"
        f"{_aggregate_line(info['aggregated'])}\n"
        f"wrote {Path(args.output_dir) / 'eval_info.json'} and {args.videos} videos"
    )
    emit(args.json, {"model": location, **info}, text)


def cmd_record(args: argparse.Namespace) -> None:
    from seqagents.video import check_video_path

    check_video_path(args.video)
    agent, entry, _ = load_model(args, args.model)
    max_frames = args.max_frames
    if args.episodes is None:  # rl-zoo style: a clip of --steps frames across episodes
        max_frames = max_frames or args.steps
    path, returns, lengths = record_episodes(
        agent,
        entry,
        args,
        args.video,
        args.episodes,
        env_id=args.env,
        max_frames=max_frames,
        return_episode_rewards=True,
    )
    # A clip of --steps frames (one per reset and per step) ends inside its last episode.
    frames = sum(lengths) + len(lengths)
    cut = args.episodes is None and bool(returns) and frames >= (max_frames or 0)
    lines = [f"video: {path}"]
    for i, (ret, length) in enumerate(zip(returns, lengths)):
        note = "  (cut where the clip ends: --steps)" if cut and i == len(returns) - 1 else ""
        lines.append(f"episode {i + 1}: return {ret:.2f}, {length} steps{note}")
    data = {"video": str(path), "episode_returns": returns, "episode_lengths": lengths}
    emit(args.json, {**data, "last_episode_cut": cut}, "\n".join(lines), indent=None)


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
        report, agent, _ = evaluate_model(
            args, name, env_id=args.env, n_envs=args.n_envs, all_targets=not args.target_return
        )
        steps = agent.config.training.get("steps", "—")
        for result in report.results:
            summary = result.summary()
            norm = (
                f"{summary['normalized_mean']:.1f} ± {summary['normalized_std']:.1f}"
                if "normalized_mean" in summary
                else "—"
            )
            target = result.target_return
            success = summary.get("success_rate")
            rows.append(
                [
                    entry.algo,
                    name,
                    entry.env_id,
                    "—" if target is None else f"{target:.0f}",
                    f"{summary['mean_return']:.1f} ± {summary['std_return']:.1f}",
                    norm,
                    "—" if success is None else f"{100 * success:.1f}%",
                    "—" if entry.paper.score is None else f"{entry.paper.score}",
                    str(args.episodes),
                    str(steps),
                    str(result.wall_time_s),
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
