"""Env registration and quiet envs (issue 28 item 6): after ``import seqagents`` the envs its
agents are trained on are constructible with a plain ``gymnasium.make`` (ALE, BabyAI), plain
MuJoCo loops print no ``settotalmass`` warning and leave no ``MUJOCO_LOG.TXT``, and ``import
seqagents`` stays fast (no minigrid, pygame or mujoco import); ``record_video`` on a non-rendering
env suggests ``agent.make_env(render_mode="rgb_array")``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqagents import load_agent, record_video
from tests.test_video import decode

ROOT = Path(__file__).resolve().parents[1]

PLAIN_LOOPS = """
import json, sys, warnings
import seqagents
import gymnasium as gym

heavy = sorted(m for m in ("minigrid", "pygame", "mujoco") if m in sys.modules)
out = {"heavy_at_import": heavy}
babyai = gym.make("BabyAI-GoToLocalS7N5-v0")
obs, _ = babyai.reset(seed=0)
out["babyai"] = [type(babyai.unwrapped).__name__, obs["image"].shape[0]]
with warnings.catch_warnings():
    warnings.simplefilter("error")  # minigrid replaces the lazy ids: no "Overriding" warnings
    import minigrid  # noqa: F401
out["babyai_ids"] = sum(k.startswith("BabyAI-") for k in gym.registry)
out["pickup"] = type(gym.make("BabyAI-PickupLoc-v0").unwrapped).__name__
atari = gym.make("ALE/Breakout-v5")
out["atari"] = list(atari.reset(seed=0)[0].shape)
cheetah = gym.make("HalfCheetah-v5")
cheetah.reset(seed=0)
cheetah.step(cheetah.action_space.sample())
print("RESULT " + json.dumps(out))
"""


def test_plain_gymnasium_loops_after_import(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_LOOPS],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    assert out["heavy_at_import"] == []  # import seqagents stays fast
    assert out["babyai"] == ["GoToLocal", 7]
    assert out["babyai_ids"] > 50 and out["pickup"] == "PickupLoc"
    assert out["atari"] == [210, 160, 3]
    assert "settotalmass" not in result.stdout + result.stderr
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_register_known_envs_is_idempotent():
    import gymnasium as gym

    from seqagents.envs import _OnFirstImport, register_known_envs

    before = sum(isinstance(f, _OnFirstImport) for f in sys.meta_path)
    register_known_envs()
    register_known_envs()
    assert sum(isinstance(f, _OnFirstImport) for f in sys.meta_path) <= max(before, 2)
    assert "ALE/Breakout-v5" in gym.registry and "BabyAI-GoToLocalS7N5-v0" in gym.registry


def test_record_video_on_a_non_rendering_env_suggests_make_env(tmp_path):
    agent = load_agent("dt/halfcheetah-medium", device="cpu")
    with pytest.raises(ValueError, match=r"agent\.make_env\(render_mode='rgb_array'\)"):
        record_video(agent, agent.make_env(), tmp_path / "a.mp4", max_frames=2)
    # what the message says works, and its frames show the scene (not blank)
    env = agent.make_env(render_mode="rgb_array", width=96, height=96)
    path = record_video(agent, env, tmp_path / "b.mp4", max_frames=3)
    frames = decode(path)
    assert len(frames) == 3 and all(np.ptp(frame) > 50 for frame in frames)
