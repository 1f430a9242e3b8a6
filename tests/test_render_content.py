"""Rendered frames show the agent: checks on real frames, per env family.

These look at pixels, not at files: MuJoCo segmentation rendering from the tracking camera
(which geoms cover the image), the frames a recorded HalfCheetah video really holds, the Breakout
paddle and ball after FIRE, and the BabyAI agent's triangle.
"""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from seqagents import load_agent
from seqagents.video import _make_env, record_video


def _cheetah_and_floor_share(env, renderer) -> tuple[float, float]:
    """Shares of the tracking camera's pixels showing the cheetah's geoms and the floor."""
    import mujoco

    model, data = env.unwrapped.model, env.unwrapped.data
    renderer.update_scene(data, camera="track")
    seg = renderer.render()  # (H, W, 2): object id, object type (-1: background)
    geoms = np.where(seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM, seg[..., 0], -1)  # (H, W)
    floor = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    body_of = np.append(model.geom_bodyid, 0)  # index -1 (background) -> world body
    cheetah = (geoms >= 0) & (body_of[geoms] != 0)  # geoms of any body but the world's
    return float(cheetah.mean()), float((geoms == floor).mean())


def test_tracking_camera_sees_the_cheetah_and_the_floor_over_a_whole_episode():
    """The watched HalfCheetah env (long floor, tracking camera): the cheetah's geoms cover a
    visible share of the image at 0, 25, 50, 75 and 100 % of a 1000-step episode driven by the
    bundled DT (which runs ~230 m), and the floor is under it. The near clip plane of a model
    whose extent is 400 m (4 m away) hid the cheetah entirely."""
    import mujoco

    env = _make_env("HalfCheetah-v5", {})
    agent = load_agent("dt/halfcheetah-medium")
    renderer = mujoco.Renderer(env.unwrapped.model, 120, 160)
    renderer.enable_segmentation_rendering()
    try:
        obs, _ = env.reset(seed=0)
        agent.reset(target_return=6000)
        reward, shares = None, {}
        for step in range(1001):
            if step % 250 == 0:
                shares[step] = _cheetah_and_floor_share(env, renderer)
            if step == 1000:
                break
            action, _ = agent.predict(obs, reward=reward)
            obs, reward, *_ = env.step(action)
        x = float(env.unwrapped.data.qpos[0])
    finally:
        renderer.close()
        env.close()
    assert x > 100.0, f"the cheetah ran only {x:.0f} m: the episode does not test the far floor"
    for step, (cheetah, floor) in shares.items():
        assert cheetah > 0.03, f"step {step}: cheetah covers {cheetah:.1%} of the frame"
        assert floor > 0.2, f"step {step}: floor covers {floor:.1%} of the frame"


def _cheetah_pixels(frame: np.ndarray) -> float:
    """Share of pixels in the cheetah's colour (rgba 0.8 0.6 0.4: r > g > b, well apart);
    the checker floor and the sky are grey or green-grey."""
    rgb = frame[..., :3].astype(np.int16)  # (H, W, 3)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return float(((r - g > 20) & (g - b > 20)).mean())


def test_recorded_halfcheetah_video_frames_show_the_cheetah(tmp_path):
    """The frames record_video writes (the `make demo` path): the cheetah's colour is present
    at 0, 25, 50, 75 and 100 % of the clip."""
    agent = load_agent("dt/halfcheetah-medium")
    path = record_video(
        agent, "HalfCheetah-v5", tmp_path / "demo.mp4", max_frames=81, seed=0, target_return=6000
    )
    frames = np.stack([f[..., :3] for f in iio.imiter(path)])  # (n, H, W, 3)
    assert len(frames) == 81
    for i in np.linspace(0, len(frames) - 1, 5).astype(int):
        share = _cheetah_pixels(frames[i])
        assert share > 0.01, f"frame {i}: {share:.2%} cheetah-coloured pixels"


def test_breakout_frames_show_paddle_and_ball_after_fire():
    """ALE Breakout through make_env: after FIRE the paddle is drawn on its row and the ball
    appears between the bricks and the paddle."""
    pytest.importorskip("ale_py")
    from seqagents.envs import make_env

    env = make_env("ALE/Breakout-v5", render_mode="rgb_array", repeat_action_probability=0.0)
    try:
        env.reset(seed=0)
        fire = env.unwrapped.get_action_meanings().index("FIRE")
        env.step(fire)
        seen_ball = False
        for _ in range(20):
            env.step(0)  # NOOP: the ball falls towards the paddle
            frame = env.render()  # (210, 160, 3)
            red = np.abs(frame.astype(int) - (200, 72, 72)).sum(-1) < 30  # (210, 160)
            paddle = red[189:194].sum()
            ball = red[100:189].sum()
            assert paddle >= 16, f"paddle pixels {paddle}"
            seen_ball |= ball >= 2
    finally:
        env.close()
    assert seen_ball, "no ball between the bricks and the paddle after FIRE"


def test_babyai_frames_draw_the_agent():
    """BabyAI rgb frames: the agent's red triangle (255, 76, 76 inside the highlighted view) is
    drawn, covering part of one cell, in the frames the envs render."""
    pytest.importorskip("minigrid")
    from seqagents.envs import make_env

    env = make_env("BabyAI-GoToLocalS7N5-v0", render_mode="rgb_array")
    try:
        env.reset(seed=0)
        for _ in range(3):
            frame = env.render()  # (H, W, 3)
            red = (frame[..., 0] > 230) & (frame[..., 1] < 110) & (frame[..., 2] < 110)  # (H, W)
            tile = frame.shape[0] // env.unwrapped.height  # pixels per cell
            assert 0.1 * tile**2 < red.sum() < tile**2, f"agent pixels {red.sum()}"
            env.step(env.unwrapped.actions.left)
    finally:
        env.close()


def test_overlay_panel_carries_mission_and_plan_below_the_frame(tmp_path):
    """LEAP on BabyAI with --overlay: the panel under the (upscaled) frame holds the step line,
    the mission and the current plan with action names; the game's pixels are not covered."""
    pytest.importorskip("minigrid")
    from seqagents.envs import make_env
    from seqagents.video import _Panel, _StepCounter, upscale

    agent = load_agent("leap/babyai-gotolocal-s7n5")
    env = _StepCounter(make_env("BabyAI-GoToLocalS7N5-v0", render_mode="rgb_array"))
    obs, _ = env.reset(seed=5)
    frame = upscale(env.render())  # (448, 448, 3)
    panel = _Panel(agent, env, frame.shape[1])
    action, _ = agent.predict(obs)
    env.step(action)
    stats, mission, plan = panel.lines(env)
    assert stats.startswith("step 1") and mission == f"mission: {env.unwrapped.mission}"
    names = {"left", "right", "forward", "pickup", "drop", "toggle", "done"}
    assert plan.startswith("plan 1/") and set(plan.split(": ")[1].strip("[]").split()) & names
    shown = panel.under(frame, env)
    assert shown.shape == (448 + panel.height, 448, 3)
    assert (shown[:448] == frame).all() and shown[448:].max() > 150
    video = record_video(agent, "BabyAI-GoToLocalS7N5-v0", tmp_path / "b.mp4", n_episodes=None,
                         max_frames=4, seed=5, overlay=True)  # fmt: skip
    first = next(iter(iio.imiter(video)))
    assert first.shape[:2] == (448 + panel.height, 448)


def test_breakout_overlay_leaves_the_score_row_visible(tmp_path):
    """The Breakout overlay is a panel under the frame: the score row (top of the screen) is the
    same with and without it."""
    pytest.importorskip("ale_py")
    agent = load_agent("dt/breakout")
    frames = {}
    for overlay in (False, True):
        path = record_video(agent, "ALE/Breakout-v5", tmp_path / f"{overlay}.mp4", max_frames=3,
                            seed=0, overlay=overlay, deterministic=False)  # fmt: skip
        frames[overlay] = next(iter(iio.imiter(path)))[..., :3].astype(int)
    assert frames[False].shape == (630, 480, 3)  # 210x160 upscaled x3
    score_rows = slice(0, 60)  # the score and lives at the top, upscaled
    assert np.abs(frames[True][score_rows] - frames[False][score_rows]).mean() < 2
