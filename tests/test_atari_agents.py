"""Tiny DT and LEAP Atari models train on a recorded PPO history and act in the real env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("ale_py")
pytest.importorskip("cv2")

from seqagents import DecisionTransformerAgent, LEAPAgent, load_agent  # noqa: E402
from seqagents.data import record_ppo_history  # noqa: E402
from seqagents.training import train_dt, train_leap  # noqa: E402

TINY = {"hidden_size": 32, "n_layer": 1, "n_head": 2}
TRAIN = {"steps": 3, "batch_size": 4, "warmup_steps": 1, "device": "cpu", "amp": "bf16"}


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    out = tmp_path_factory.mktemp("atari") / "ppo"
    record_ppo_history(
        "Breakout", 256, out, seed=0, n_envs=2, progress_bar=False,
        hyperparameters={"n_steps": 128, "batch_size": 64}, chunk_size=200,
    )  # fmt: skip
    return out


def _play(agent, steps: int = 40) -> list[int]:
    env = agent.make_env()
    assert isinstance(env, gym.wrappers.FrameStackObservation)  # the evaluation pipeline
    obs, _ = env.reset(seed=0)
    reward, actions = None, []
    for _ in range(steps):
        action, _ = agent.predict(obs, reward=reward, deterministic=False)  # sampled, as DT-Atari
        actions.append(int(action))
        obs, reward, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            break
    return actions


def test_tiny_dt_atari_trains_on_the_history_and_acts(history, tmp_path):
    agent = train_dt(
        str(history),
        model_config={**TINY, "context_len": 4, "max_ep_len": 2048, "position_scheme": "global",
                      "embedding_tanh": True, "embed_layernorm": False},
        train_config={**TRAIN, "out_dir": str(tmp_path)},
        return_scale=1.0,
        progress_bar=False,
    )  # fmt: skip
    assert agent.env_id == "ALE/Breakout-v5" and agent.spec.env_kwargs["atari_preprocessing"]
    assert agent.network.config.state_encoder == "nature_cnn"
    assert all(0 <= a < 4 for a in _play(agent))
    loaded = load_agent(tmp_path / "checkpoint", device="cpu")
    assert isinstance(loaded, DecisionTransformerAgent)
    # uniform frame bounds are stored once, not per pixel (28,224 numbers each), and load back
    assert (tmp_path / "checkpoint" / "config.json").stat().st_size < 10_000
    assert loaded.observation_space == agent.observation_space


def test_tiny_leap_atari_trains_on_the_history_and_acts(history, tmp_path):
    agent = train_leap(
        str(history),
        model_config={**TINY, "horizon": 3, "history_len": 2, "return_conditioned": True,
                      "max_ep_len": 2048},
        train_config={**TRAIN, "out_dir": str(tmp_path)},
        planner={"n_iterations": 2, "replan_every": 1},
        objective="random",
        progress_bar=False,
    )  # fmt: skip
    assert isinstance(agent, LEAPAgent) and agent.target_return is not None
    actions = _play(agent)
    assert all(0 <= a < 4 for a in actions)
    assert agent.requires_reward  # return-conditioned: needs r_{t-1}
    with pytest.raises(ValueError, match="reward"):
        obs = np.zeros((4, 84, 84), np.uint8)
        agent.reset()
        agent.predict(obs)
        agent.predict(obs)
