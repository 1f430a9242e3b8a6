"""Evaluation with per-episode videos and an ``eval_info.json``, as LeRobot's eval writes them.

``out_dir/eval_info.json`` holds one record per episode (index, seed, return, length, success
where the env pays only on success, video file) and the aggregate (mean and spread of the
return, normalized score where one is defined, success rate, wall time); the first
``n_videos`` episodes are recorded to ``out_dir/videos/eval_episode_<i>.mp4``.

Episode ``i`` resets the env with seed ``seed + i`` and seeds the agent's sampling generator
with ``seed + i``, so each episode can be replayed on its own from its record (a plain
``evaluate_policy(seed=seed)`` seeds the first reset only; the two runs are different samples).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from seqagents.evaluation import _run_episodes
from seqagents.protocol import EvaluationProtocol, resolve_protocol
from seqagents.report import EvaluationReport, TargetResult

__all__ = ["eval_info", "evaluate_to_folder"]


def evaluate_to_folder(
    agent: Any,
    env_id: str,
    out_dir: str | os.PathLike[str],
    *,
    n_episodes: int = 10,
    n_videos: int = 10,
    seed: int = 0,
    deterministic: bool | None = None,
    target_return: float | None = None,
    env_kwargs: dict[str, Any] | None = None,
    overlay: bool = False,
    progress_bar: bool = False,
) -> dict[str, Any]:
    """Evaluate ``agent`` for ``n_episodes`` episodes of ``env_id``; write the videos of the
    first ``n_videos`` and ``eval_info.json`` to ``out_dir``.

    Args:
        agent: a seqagents agent (or anything with SB3's ``predict``).
        env_id: the env to make (with the agent's own ``env_kwargs`` for its env id, and the
            watching defaults of :func:`seqagents.envs.render_kwargs`).
        out_dir: the output folder (created; an existing ``eval_info.json`` is replaced).
        n_episodes: episodes to run.
        n_videos: how many of the first episodes to record (0: none; LeRobot's default 10).
        seed: episode ``i`` uses seed ``seed + i`` for the env and the agent.
        deterministic: greedy or sampled; None follows ``agent.protocol``.
        target_return: condition return-conditioned agents on this target (DT, LEAP).
        env_kwargs: extra ``make_env`` keyword arguments.
        overlay: the text panel of :func:`seqagents.record_video` under each frame.
        progress_bar: a tqdm bar over the episodes.

    Returns:
        The contents written to ``eval_info.json``.

    Example:
        ``evaluate_to_folder(load_agent("dt/breakout"), "ALE/Breakout-v5", "runs/eval",
        n_episodes=10, n_videos=2)``
    """
    from tqdm.auto import tqdm

    from seqagents.video import _make_env, _StepCounter, check_video_path, record_video

    if n_episodes < 1 or n_videos < 0:
        raise ValueError(f"need n_episodes >= 1 and n_videos >= 0, got {n_episodes}, {n_videos}")
    out = Path(out_dir)
    if n_videos:
        check_video_path(out / "videos" / "eval_episode_0.mp4")  # writable, moviepy present
    out.mkdir(parents=True, exist_ok=True)
    deterministic, _ = resolve_protocol(agent, deterministic)
    spec = getattr(agent, "spec", None)
    saved = dict(spec.env_kwargs) if spec and env_id == spec.env_id else {}
    kwargs = {**saved, **(env_kwargs or {})}
    returns, lengths, videos = [], [], []
    start = time.perf_counter()
    env = _StepCounter(_make_env(env_id, kwargs))  # counts each episode's return and length
    try:
        for i in tqdm(range(n_episodes), desc="episodes", disable=not progress_bar):
            video = out / "videos" / f"eval_episode_{i}.mp4" if i < n_videos else None
            if video is not None:
                record_video(
                    agent, env, video, n_episodes=1, seed=seed + i,
                    deterministic=deterministic, target_return=target_return, overlay=overlay,
                )  # fmt: skip
                returns.append(env.episode_return)
                lengths.append(env.t)
            else:
                episode_returns, episode_lengths = _run_episodes(
                    agent, env, 1, deterministic=deterministic, seed=seed + i,
                    target_return=target_return,
                )  # fmt: skip
                returns += episode_returns
                lengths += episode_lengths
            videos.append(None if video is None else str(video.relative_to(out)))
    finally:
        env.close()
    target = target_return if target_return is not None else getattr(agent, "target_return", None)
    seeds = [seed + i for i in range(n_episodes)]
    result = TargetResult.measure(
        env_id, target, returns, lengths, time.perf_counter() - start, episode_seeds=seeds
    )
    protocol = EvaluationProtocol(deterministic)
    info = eval_info(EvaluationReport(env_id, protocol, n_episodes, seed, [result]), videos)
    tmp = out / "eval_info.json.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, out / "eval_info.json")
    return info


def eval_info(report: EvaluationReport, videos: list[str | None]) -> dict[str, Any]:
    """The contents of ``eval_info.json`` (LeRobot's layout) of a one-target ``report``:
    per episode its index, seed, return, length, video file (``videos[i]``) and success (where
    the env pays only on success); the aggregate in the report's vocabulary, with
    ``eval_s``/``eval_ep_s`` (LeRobot's wall-time words)."""
    (result,) = report.results
    seeds = result.episode_seeds or [None] * len(result.episode_returns)
    per_episode = []
    for i, (episode_return, length) in enumerate(
        zip(result.episode_returns, result.episode_lengths, strict=True)
    ):
        record = {
            "episode_ix": i,
            "seed": seeds[i],
            "return": episode_return,
            "length": length,
            "video": videos[i],
        }
        if result.successes is not None:
            record["success"] = result.successes[i]
        per_episode.append(record)
    aggregated = {
        **result.summary(),
        "eval_s": result.wall_time_s,
        "eval_ep_s": round(result.wall_time_s / len(per_episode), 2),
    }
    return {
        "env_id": report.env_id,
        "protocol": report.protocol.describe(result.target_return),
        "deterministic": report.protocol.deterministic,
        "target_return": result.target_return,
        "seed": report.seed,
        "per_episode": per_episode,
        "aggregated": aggregated,
    }
