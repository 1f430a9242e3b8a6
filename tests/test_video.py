"""record_video: frame counts, formats, headless MuJoCo, and its errors."""

from __future__ import annotations

import sys

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest

import seqagents._gl
import seqagents.envs
import seqagents.video
from seqagents.video import ensure_headless_gl, record_video
from tests._toy import RewardAgent, ToyEnv, check_feeding


def decode(path) -> np.ndarray:
    """All frames of a video file, (n_frames, height, width, 3)."""
    return np.stack([frame[..., :3] for frame in iio.imiter(path)])


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_toy_video_has_one_frame_per_reset_and_step(tmp_path, suffix):
    env, agent = ToyEnv(render_mode="rgb_array"), RewardAgent()
    path = record_video(agent, env, tmp_path / "sub" / f"toy{suffix}", n_episodes=3, seed=0)
    assert path == tmp_path / "sub" / f"toy{suffix}"
    frames = decode(path)
    assert len(frames) == sum(len(rewards) + 1 for rewards in env.log)
    assert frames.shape[1:] == (416, 416, 3) and frames.max() > 0  # 32 px x13 (>= 400)
    check_feeding(agent, [env], [3])  # fed exactly like evaluate_policy


def test_max_frames_and_target_return(tmp_path):
    env, agent = ToyEnv(max_length=50, render_mode="rgb_array"), RewardAgent()
    path = record_video(
        agent, env, tmp_path / "toy.gif", n_episodes=5, max_frames=4, target_return=7.0
    )
    assert len(decode(path)) == 4
    assert agent.reset_calls == [7.0]


def test_halfcheetah_video_renders_headless(tmp_path):
    pytest.importorskip("mujoco")

    class Agent:  # tiny fake agent: a fixed periodic action
        def predict(self, observation, state=None, episode_start=None, deterministic=True):
            return np.tile(np.sin(np.arange(6, dtype=np.float32)), (len(observation), 1)), None

    path = record_video(
        Agent(),
        "HalfCheetah-v5",
        tmp_path / "cheetah.mp4",
        n_episodes=2,
        seed=0,
        env_kwargs={"width": 64, "height": 48, "max_episode_steps": 10},
        min_size=0,  # the rendered size itself
    )
    frames = decode(path)
    assert len(frames) == 2 * (10 + 1)
    assert frames.shape[1:] == (48, 64, 3)
    assert frames.mean() > 10  # not black
    assert np.abs(frames[1:].astype(int) - frames[:-1]).max() > 0  # the scene changes


def test_env_must_render_rgb_arrays(tmp_path):
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        record_video(RewardAgent(), ToyEnv(render_mode=None), tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="render_mode"):
        record_video(
            RewardAgent(), "CartPole-v1", tmp_path / "x.mp4", env_kwargs={"render_mode": "human"}
        )
    with pytest.raises(ValueError, match=".mp4 or .gif"):
        record_video(RewardAgent(), ToyEnv(render_mode="rgb_array"), tmp_path / "x.avi")
    with pytest.raises(TypeError, match="one gymnasium.Env"):
        record_video(RewardAgent(), gym.vector.SyncVectorEnv([ToyEnv]), tmp_path / "x.mp4")
    assert not list(tmp_path.iterdir())


def test_gl_failure_says_what_to_install(tmp_path, monkeypatch):
    env = ToyEnv(render_mode="rgb_array")

    def broken_render():
        raise AttributeError("'NoneType' object has no attribute 'eglQueryString'")

    monkeypatch.setattr(env, "render", broken_render)
    with pytest.raises(RuntimeError, match="libegl1 libegl-mesa0 libgl1-mesa-dri"):
        record_video(RewardAgent(), env, tmp_path / "x.mp4")
    monkeypatch.setattr(env, "render", lambda: 1 / 0)  # other errors pass through unchanged
    with pytest.raises(ZeroDivisionError):
        record_video(RewardAgent(), env, tmp_path / "x.mp4")


def test_missing_moviepy_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "moviepy", None)
    with pytest.raises(ImportError, match=r'pip install "seqagents\[video\]"'):
        record_video(RewardAgent(), ToyEnv(render_mode="rgb_array"), tmp_path / "x.mp4")


def test_ensure_headless_gl(monkeypatch):
    monkeypatch.setattr(seqagents._gl.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    assert ensure_headless_gl() == "egl"
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert ensure_headless_gl() == "osmesa"  # an explicit choice is kept
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setenv("DISPLAY", ":0")
    assert ensure_headless_gl() is None  # a display: MuJoCo's default (GLFW) works


def test_docstring_examples():
    import doctest

    import seqagents._gl
    import seqagents.envs
    from seqagents.envs import atari, babyai, base, mujoco, registry

    modules = (seqagents.envs, base, babyai, atari, mujoco, registry, seqagents._gl)
    for module in modules:  # the env factories; ensure_headless_gl
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0


def test_halfcheetah_videos_track_the_cheetah_on_a_long_floor_with_the_same_dynamics():
    """record_video's HalfCheetah env: tracking camera, a floor drawn 2 km each way, and
    exactly the observations of the standard env under the same actions."""
    import mujoco

    from seqagents.envs import make_env, render_kwargs
    from seqagents.video import _make_env

    watched = _make_env("HalfCheetah-v5", {})
    assert watched.unwrapped.camera_name == "track"
    model = watched.unwrapped.model
    floor = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    assert model.geom_size[floor][0] == 2000.0
    plain = make_env("HalfCheetah-v5")
    rng = np.random.default_rng(0)
    a, _ = watched.reset(seed=3)
    b, _ = plain.reset(seed=3)
    for _ in range(100):
        action = rng.uniform(-1, 1, 6).astype(np.float32)
        a, ra, *_ = watched.step(action)
        b, rb, *_ = plain.step(action)
    np.testing.assert_array_equal(a, b)
    assert ra == rb
    assert render_kwargs("Pendulum-v1") == {}


def test_clips_run_across_episodes_and_small_frames_are_upscaled(tmp_path):
    """rl-zoo-style clips: n_episodes=None records max_frames frames across episodes; frames
    smaller than 400 px are repeated by a whole factor (nearest neighbour: pixels stay sharp)."""
    env, agent = ToyEnv(max_length=4, render_mode="rgb_array"), RewardAgent()
    path = record_video(agent, env, tmp_path / "clip.mp4", n_episodes=None, max_frames=23)
    frames = decode(path)
    assert len(frames) == 23 and len(env.log) >= 4  # several episodes in one clip
    assert frames.shape[1:] == (416, 416, 3)
    gif = decode(record_video(agent, env, tmp_path / "c.gif", n_episodes=None, max_frames=3))
    block = gif[0, :13, :13]  # one source pixel became a 13x13 block of one colour
    assert (block == block[0, 0]).all()
    with pytest.raises(ValueError, match="pass max_frames"):
        record_video(agent, env, tmp_path / "x.mp4", n_episodes=None)
