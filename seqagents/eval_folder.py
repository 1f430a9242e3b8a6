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

import numpy as np

from seqagents.envs import is_babyai_env
from seqagents.evaluation import _run_episodes, episode_successes
from seqagents.protocol import EvaluationProtocol, resolve_protocol
from seqagents.scores import has_normalized_score, normalized_score

__all__ = ["evaluate_to_folder"]


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
    episodes: list[dict[str, Any]] = []
    start = time.perf_counter()
    env = _StepCounter(_make_env(env_id, kwargs))  # counts each episode's return and length
    try:
        for i in tqdm(range(n_episodes), desc="episodes", disable=not progress_bar):
            episode_seed = seed + i
            video = out / "videos" / f"eval_episode_{i}.mp4" if i < n_videos else None
            if video is not None:
                record_video(
                    agent, env, video, n_episodes=1, seed=episode_seed,
                    deterministic=deterministic, target_return=target_return, overlay=overlay,
                )  # fmt: skip
                episode_return, length = env.episode_return, env.t
            else:
                returns, lengths = _run_episodes(
                    agent, env, 1, deterministic=deterministic, seed=episode_seed,
                    target_return=target_return,
                )  # fmt: skip
                episode_return, length = returns[0], lengths[0]
            record = {
                "episode_ix": i,
                "seed": episode_seed,
                "return": float(episode_return),
                "length": int(length),
                "video": None if video is None else str(video.relative_to(out)),
            }
            if is_babyai_env(env_id):
                record["success"] = bool(episode_successes([episode_return])[0])
            episodes.append(record)
    finally:
        env.close()
    elapsed = time.perf_counter() - start
    returns = np.array([e["return"] for e in episodes])  # (n_episodes,)
    aggregated: dict[str, Any] = {
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "mean_length": float(np.mean([e["length"] for e in episodes])),
        "eval_s": round(elapsed, 2),
        "eval_ep_s": round(elapsed / n_episodes, 2),
    }
    if has_normalized_score(env_id):
        scores = np.asarray(normalized_score(returns, env_id))
        aggregated["normalized_mean"] = float(scores.mean())
        aggregated["normalized_std"] = float(scores.std())
    if is_babyai_env(env_id):
        aggregated["success_rate"] = float(np.mean([e["success"] for e in episodes]))
    target = target_return if target_return is not None else getattr(agent, "target_return", None)
    info = {
        "env_id": env_id,
        "protocol": EvaluationProtocol(deterministic).describe(target),
        "deterministic": deterministic,
        "target_return": target,
        "seed": seed,
        "per_episode": episodes,
        "aggregated": aggregated,
    }
    tmp = out / "eval_info.json.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, out / "eval_info.json")
    return info
