"""Record videos (mp4 or gif) of an agent's episodes, also on machines without a display.

MuJoCo renders off-screen through EGL when ``MUJOCO_GL=egl``; the variable must be set before
``mujoco`` is imported, so importing this module sets it (see :func:`ensure_headless_gl`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from seqagents.envs import ensure_headless_gl, make_env, render_kwargs
from seqagents.errors import require
from seqagents.evaluation import _run_episodes

__all__ = ["check_video_path", "ensure_headless_gl", "record_video"]

logger = logging.getLogger(__name__)

_SUFFIXES = (".mp4", ".gif")
_GL_HELP = (
    "OpenGL rendering failed ({error}). Headless MuJoCo rendering needs EGL: install the Debian/"
    "Ubuntu packages libegl1 libegl-mesa0 libgl1-mesa-dri and set MUJOCO_GL=egl before Python "
    "starts (seqagents sets it when no display is found and MUJOCO_GL is unset), or use software "
    "rendering with MUJOCO_GL=osmesa (package libosmesa6)."
)
# Words in GL-related error messages: EGL/OSMesa/GLFW/PyOpenGL names and gl* function names.
_GL_WORDS = re.compile(r"\b(egl\w*|opengl|osmesa|glfw|mesa|glad\w*|mujoco_gl)\b", re.IGNORECASE)
_GL_FUNCTION = re.compile(r"\bgl[A-Z]\w*")


MIN_FRAME_SIZE = 400
"""Shorter side, in pixels, below which video frames are upscaled (nearest neighbour)."""

ensure_headless_gl()  # before gymnasium's MuJoCo envs import mujoco


def record_video(
    agent: Any,
    env_id_or_env: str | gym.Env,
    path: str | os.PathLike[str],
    *,
    n_episodes: int | None = 1,
    max_frames: int | None = None,
    fps: float | None = None,
    seed: int | None = None,
    target_return: float | None = None,
    deterministic: bool | None = None,
    env_kwargs: dict[str, Any] | None = None,
    progress_bar: bool = False,
    overlay: bool = False,
    min_size: int = MIN_FRAME_SIZE,
    return_episode_rewards: bool = False,
) -> Path | tuple[Path, list[float], list[int]]:
    """Run ``n_episodes`` episodes of ``agent`` and write the rendered frames to ``path``.

    The episodes run through the same loop as :func:`seqagents.evaluate_policy`, so the agent
    is fed rewards and episode starts exactly as there. Frames are taken after each reset and
    each step. mp4 frames are streamed to ffmpeg (constant memory); gif frames are kept in
    memory until the end, so keep gifs short (``max_frames``).

    Args:
        agent: the agent (or anything with SB3's ``predict``).
        env_id_or_env: a gymnasium env id (made with ``render_mode="rgb_array"``) or an env
            made with ``render_mode="rgb_array"``. The env is closed only if made here.
        path: output file; the suffix picks the format: ``.mp4`` or ``.gif``.
        n_episodes: episodes to record, one after the other; None: as many as ``max_frames``
            needs (rl-zoo's clips of N steps across episodes; ``max_frames`` is then required).
        max_frames: stop after this many frames (None: when the episodes end).
        fps: frames per second; default ``env.metadata["render_fps"]`` (30 if absent).
        seed: seed of the first reset.
        target_return: passed to ``agent.reset(target_return=...)`` first (DT).
        deterministic: greedy (True) or sampled (False) actions; None (default) follows the
            agent's checkpoint protocol (``agent.protocol``), as :func:`evaluate_policy` does.
        env_kwargs: keyword arguments for making the env from an id, over the env's watching
            defaults (:func:`seqagents.envs.render_kwargs`: HalfCheetah's tracking camera) and,
            for the agent's own env id, the checkpoint's ``env_kwargs`` (e.g. Atari
            preprocessing).
        progress_bar: a tqdm bar over the episodes, with the step and return inside each.
        overlay: add a text panel under every frame (never over the game's own score area):
            the step, the last reward, the return so far and the agent's return-to-go (when it
            has one); the mission (BabyAI); the agent's current plan (LEAP: planned actions,
            TT: predicted reward and score; ``agent.plan_summary``).
        min_size: frames whose shorter side is smaller are upscaled by a whole factor, nearest
            neighbour (Atari's 210x160 becomes 630x480, BabyAI's 224 px 448 px); 0 keeps them.

        return_episode_rewards: also return the return and length of each recorded episode,
            as SB3's ``evaluate_policy`` does; the last one is cut short when ``max_frames``
            ends the video inside it (a clip), and then counts the steps recorded.

    Returns:
        ``path`` as a :class:`~pathlib.Path`; with ``return_episode_rewards``,
        ``(path, episode_returns, episode_lengths)``.

    The output path is checked before any episode runs, and so is the env against a seqagents
    agent's checkpoint (spaces, action bounds; see :meth:`SequenceAgent.check_env`). Frames are
    written to a temporary file next to ``path`` that replaces ``path`` only once the video is
    complete: a failed recording leaves an existing file at ``path`` untouched.

    Raises:
        ValueError: unsupported suffix, or an env whose ``render_mode`` is not ``"rgb_array"``.
        IsADirectoryError, PermissionError: ``path`` is a folder, or cannot be written.
        CheckpointError: the env does not match the agent's checkpoint.
        RuntimeError: OpenGL could not render (the message says which packages to install).
        ImportError: moviepy is missing (``pip install "seqagents[video]"``).

    Example:
        ``record_video(agent, "HalfCheetah-v5", "cheetah.mp4", target_return=6000, seed=0)``
    """
    path = check_video_path(path)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
    if n_episodes is None and max_frames is None:
        raise ValueError("n_episodes=None records until max_frames: pass max_frames too")
    ensure_headless_gl()

    if isinstance(env_id_or_env, str):
        spec = getattr(agent, "spec", None)  # a seqagents agent's env settings for its own env
        saved = dict(spec.env_kwargs) if spec and env_id_or_env == spec.env_id else {}
        env, owns_env = _make_env(env_id_or_env, {**saved, **(env_kwargs or {})}), True
    else:
        env, owns_env = env_id_or_env, False
        _check_env(env, env_kwargs)
    try:
        check_agent_env = getattr(agent, "check_env", None)
        if callable(check_agent_env):
            check_agent_env(env)  # spaces and bounds of the checkpoint, before rolling out
        # Frames go to a temporary file next to ``path``, renamed over it only on success:
        # a failed recording never destroys a file already at ``path``.
        tmp = _temporary_path(path)
    except BaseException:
        if owns_env:
            env.close()
        raise

    sink = _FrameSink(tmp, fps or env.metadata.get("render_fps") or 30)
    counter = _StepCounter(env)  # the overlay's numbers and the episode returns
    panel: _Panel | None = None

    def add_frame() -> bool:
        nonlocal panel
        frame = upscale(_render(env), min_size)  # (H', W', 3)
        if overlay:
            panel = panel or _Panel(agent, env, frame.shape[1])
            frame = panel.under(frame, counter)  # (H' + panel, W', 3)
        sink.add(frame)
        return max_frames is not None and sink.n_frames >= max_frames

    finished = False
    try:
        _run_episodes(
            agent,
            counter,
            n_episodes if n_episodes is not None else max_frames,  # >= 2 frames an episode
            deterministic=deterministic,
            seed=seed,
            target_return=target_return,
            frame_hook=add_frame,
            progress_bar=progress_bar,
        )
        sink.finish()
        sink.close()
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it private; a video is a normal file
        os.replace(tmp, path)
        finished = True
    finally:
        sink.close()
        if owns_env:
            env.close()
        if not finished:
            tmp.unlink(missing_ok=True)  # no truncated video left behind; ``path`` untouched
    logger.info("wrote %d frames to %s", sink.n_frames, path)
    if not return_episode_rewards:
        return path
    episodes = counter.episodes + ([(counter.episode_return, counter.t)] if counter.t else [])
    return path, [r for r, _ in episodes], [n for _, n in episodes]


class _StepCounter(gym.Wrapper):
    """Counts the steps of the current episode and sums its rewards (for the overlay); keeps
    ``(return, length)`` of the episodes before the current one in ``episodes``."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.t, self.last_reward, self.episode_return = 0, None, 0.0
        self.episodes: list[tuple[float, int]] = []

    def reset(self, **kwargs: Any) -> Any:
        if self.t:
            self.episodes.append((self.episode_return, self.t))
        self.t, self.last_reward, self.episode_return = 0, None, 0.0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        result = self.env.step(action)
        self.t += 1
        self.last_reward = float(result[1])
        self.episode_return += self.last_reward
        return result


def _overlay_lines(agent: Any, counter: _StepCounter) -> list[str]:
    """``step``, ``reward`` (of the step that led to this frame), ``return`` so far and the
    return-to-go the agent conditioned its last action on (its target before the first step)."""
    lines = [f"step {counter.t}"]
    if counter.last_reward is not None:
        lines.append(f"reward {counter.last_reward:.2f}")
    lines.append(f"return {counter.episode_return:.2f}")
    rtg: Any = None
    if counter.t == 0:
        rtg = getattr(agent, "target_return", None)
    else:
        with contextlib.suppress(Exception):  # agents without a return-to-go
            rtg = np.asarray(agent.returns_to_go).reshape(-1)[0]
    if rtg is not None and np.isfinite(rtg):
        lines.append(f"RTG {float(rtg):.2f}")
    return lines


def upscale(frame: np.ndarray, min_size: int = MIN_FRAME_SIZE) -> np.ndarray:
    """``frame (H, W, 3)`` repeated by the smallest whole factor that makes its shorter side at
    least ``min_size`` (nearest neighbour: pixels stay sharp); unchanged if already that big.

    Example:
        >>> upscale(np.zeros((210, 160, 3), np.uint8)).shape
        (630, 480, 3)
    """
    factor = -(-min_size // min(frame.shape[:2])) if min_size > 0 else 1
    if factor <= 1:
        return frame
    return frame.repeat(factor, axis=0).repeat(factor, axis=1)  # (H*f, W*f, 3)


def _action_names(env: gym.Env) -> list[str] | None:
    """Names of a discrete env's actions (ALE's meanings, MiniGrid's action enum), else None."""
    base = env.unwrapped
    if hasattr(base, "get_action_meanings"):
        return list(base.get_action_meanings())
    actions = getattr(base, "actions", None)
    if actions is not None and hasattr(actions, "__members__"):
        return [name for name in actions.__members__]
    return None


class _Panel:
    """A text panel drawn under each frame, so it never hides part of the game (e.g. Breakout's
    score row): the step statistics, the mission (envs with ``mission``, BabyAI) and the agent's
    plan (agents whose ``plan_summary`` returns a line). Its height is fixed per video."""

    def __init__(self, agent: Any, env: gym.Env, width: int) -> None:
        from PIL import ImageFont  # moviepy's own dependency

        self.agent, self.env, self.width = agent, env, width
        self.names = _action_names(env)
        self.has_mission = isinstance(getattr(env.unwrapped, "mission", None), str)
        summary = getattr(agent, "plan_summary", None)
        self.plans = callable(summary) and type(agent).plan_summary is not _no_plan(agent)
        self.size = max(12, width // 34)  # font pixels
        self.font = ImageFont.load_default(size=self.size)
        n_lines = 1 + self.has_mission + self.plans
        self.height = n_lines * (self.size + 4) + 8
        self.height += self.height % 2  # even frame sizes (yuv420p)

    def lines(self, counter: _StepCounter) -> list[str]:
        lines = ["   ".join(_overlay_lines(self.agent, counter))]
        if self.has_mission:
            lines.append(f"mission: {self.env.unwrapped.mission}")
        if self.plans:
            lines.append((counter.t and self.agent.plan_summary(0, self.names)) or "plan: -")
        return lines

    def under(self, frame: np.ndarray, counter: _StepCounter) -> np.ndarray:
        """``frame (H, W, 3)`` with the panel below it: ``(H + panel height, W, 3)``."""
        from PIL import Image, ImageDraw

        panel = Image.new("RGB", (frame.shape[1], self.height), (20, 20, 20))
        draw = ImageDraw.Draw(panel)
        for i, line in enumerate(self.lines(counter)):
            draw.text((6, 4 + i * (self.size + 4)), self._fit(draw, line), font=self.font)
        return np.concatenate([frame, np.asarray(panel)], axis=0)  # (H + h, W, 3)

    def _fit(self, draw: Any, line: str) -> str:
        """``line`` shortened with an ellipsis to the panel's width."""
        while line and draw.textlength(line, font=self.font) > self.width - 12:
            line = line[:-2] + "…"
        return line


def _no_plan(agent: Any) -> Any:
    """The base class's ``plan_summary`` (agents that do not override it have no plan)."""
    from seqagents.agents.base import SequenceAgent

    return SequenceAgent.plan_summary if isinstance(agent, SequenceAgent) else None


def check_video_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path if a video can be written there (``.mp4``/``.gif``, not a folder, a
    writable folder, moviepy installed); otherwise the error :func:`record_video` would raise,
    before any work.

    Example:
        >>> check_video_path("replay.gif").name
        'replay.gif'
    """
    path = Path(path)
    if path.suffix.lower() not in _SUFFIXES and not path.is_dir():
        raise ValueError(f"unsupported video format {path.suffix!r} for {path}; use .mp4 or .gif")
    _check_output_path(path)  # a folder, or an unwritable place
    require("moviepy", "video")
    return path


def _check_output_path(path: Path) -> None:
    """Raise before recording if ``path`` cannot be written (a folder, an unwritable one)."""
    if path.is_dir():
        raise IsADirectoryError(
            f"video path {path} is a folder; pass a file name ending in .mp4 or .gif"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PermissionError(
            f"cannot create the folder {path.parent} for the video: {e.strerror or e}; choose "
            "another output path"
        ) from e
    if not os.access(path.parent, os.W_OK | os.X_OK) or (
        path.exists() and not os.access(path, os.W_OK)
    ):
        raise PermissionError(
            f"cannot write the video to {path}: "
            f"{'the file' if path.exists() else 'its folder'} is not writable; choose another "
            "output path"
        )


def _temporary_path(path: Path) -> Path:
    """A new empty file next to ``path``, with its suffix (the writers pick the format by it)."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    except OSError as e:
        raise PermissionError(
            f"cannot write the video to {path}: {e.strerror or e}; choose another output path"
        ) from e
    os.close(fd)
    return Path(name)


def _make_env(env_id: str, env_kwargs: dict[str, Any]) -> gym.Env:
    if "render_mode" in env_kwargs and env_kwargs["render_mode"] != "rgb_array":
        raise ValueError(
            f"record_video renders with render_mode='rgb_array', not {env_kwargs['render_mode']!r}"
        )

    # the env's watching defaults (e.g. HalfCheetah's tracking camera) under the caller's
    kwargs = {**render_kwargs(env_id), **env_kwargs, "render_mode": "rgb_array"}
    with _gl_errors():
        return make_env(env_id, **kwargs)


def _check_env(env: Any, env_kwargs: dict[str, Any] | None) -> None:
    if env_kwargs:
        raise ValueError("env_kwargs only apply when record_video makes the env from an id")
    if not isinstance(env, gym.Env):
        raise TypeError(
            f"record_video records one gymnasium.Env, got {type(env).__name__}; pass "
            "agent.make_env(render_mode='rgb_array') (one env) or an env id"
        )
    if env.render_mode != "rgb_array":
        raise ValueError(
            f"record_video needs frames, but the env has render_mode={env.render_mode!r}: make "
            "it with agent.make_env(render_mode='rgb_array') (the checkpoint's env and kwargs), "
            "or pass the env id (record_video(agent, agent.env_id, ...)) and it is made here"
        )


@contextlib.contextmanager
def _gl_errors() -> Iterator[None]:
    """Turn OpenGL/EGL failures (at ``import mujoco`` or the first render) into a RuntimeError
    that says what to install."""
    try:
        yield
    except Exception as error:
        text = f"{type(error).__module__}.{type(error).__name__}: {error}"
        if _GL_WORDS.search(text) or _GL_FUNCTION.search(text):
            raise RuntimeError(_GL_HELP.format(error=text)) from error
        raise


def _render(env: gym.Env) -> np.ndarray:
    with _gl_errors():
        frame = env.render()
    frame = np.asarray(frame) if frame is not None else None
    if frame is None or frame.ndim != 3 or frame.shape[-1] not in (3, 4):
        raise ValueError(
            f"env.render() returned {None if frame is None else frame.shape}; expected an "
            "(height, width, 3) RGB array (render_mode='rgb_array')"
        )
    if frame.dtype != np.uint8:
        raise ValueError(f"env.render() returned dtype {frame.dtype}; expected uint8 RGB")
    return frame[..., :3]


class _FrameSink:
    """Collects frames: streams mp4 to ffmpeg through moviepy, buffers gif frames."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, float(fps)
        self.gif = path.suffix.lower() == ".gif"
        self.n_frames = 0
        self.brightest = 0  # to warn about all-black videos (a broken GL setup)
        self._frames: list[np.ndarray] = []
        self._writer: Any = None
        self._size: tuple[int, int] | None = None  # (height, width) of the first frame

    def add(self, frame: np.ndarray) -> None:
        if self._size is None:
            self._size = frame.shape[:2]
        elif frame.shape[:2] != self._size:
            raise ValueError(f"frame size changed from {self._size} to {frame.shape[:2]}")
        self.brightest = max(self.brightest, int(frame.max()))
        if self.gif:
            self._frames.append(frame.copy())
        else:
            self._write_mp4_frame(frame)
        self.n_frames += 1

    def _write_mp4_frame(self, frame: np.ndarray) -> None:
        # yuv420p needs even sizes: pad odd ones by one edge row/column.
        height, width = frame.shape[:2]
        if height % 2 or width % 2:
            frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        if self._writer is None:
            from moviepy.video.io.ffmpeg_writer import FFMPEG_VideoWriter

            self.path.parent.mkdir(parents=True, exist_ok=True)
            size = (frame.shape[1], frame.shape[0])  # (width, height)
            self._writer = FFMPEG_VideoWriter(str(self.path), size, self.fps, codec="libx264")
        self._writer.write_frame(np.ascontiguousarray(frame))

    def finish(self) -> None:
        if self.n_frames == 0:
            raise RuntimeError("no frames were rendered")
        if self.brightest == 0:
            warnings.warn(
                f"every frame of {self.path} is black; rendering is likely broken. "
                + _GL_HELP.format(error="all-black frames"),
                UserWarning,
                stacklevel=3,
            )
        if self.gif:
            from moviepy.video.io.ImageSequenceClip import ImageSequenceClip

            self.path.parent.mkdir(parents=True, exist_ok=True)
            clip = ImageSequenceClip(self._frames, fps=self.fps)
            try:
                clip.write_gif(str(self.path), fps=self.fps, logger=None)
            finally:
                clip.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._frames = []
