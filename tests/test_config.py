"""The agent's typed config is the saved truth (issue 27, item 1): overrides go through one
validation, episode-level target returns never change it, and today's config.json layout reads
and writes back unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from seqagents import DecisionTransformerAgent, LEAPAgent, evaluate_policy, load_agent
from seqagents.config import AgentConfig, StatePreprocessing
from seqagents.errors import CheckpointError
from seqagents.planning import BeamSearchConfig

BUNDLED = sorted(Path(__file__).parents[1].glob("zoo/checkpoints/*/config.json"))


def _dt(**kwargs) -> DecisionTransformerAgent:
    env = gym.make("Pendulum-v1")
    return DecisionTransformerAgent.create(
        env.observation_space, env.action_space, env_id="Pendulum-v1", hidden_size=16,
        n_layer=1, context_len=4, target_return=-200.0, return_scale=100.0, device="cpu",
        seed=0, **kwargs,
    )  # fmt: skip


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.parent.name)
def test_todays_layout_reads_and_writes_back_unchanged(path):
    saved = json.loads(path.read_text())
    config = AgentConfig.from_dict(saved)
    written = json.loads(json.dumps(config.to_dict()))  # (tuples are saved as lists)
    model = written.pop("model")  # older checkpoints lack newer fields: written with defaults
    assert {k: model[k] for k in saved.pop("model")} == json.loads(path.read_text())["model"]
    assert written == saved
    assert AgentConfig.from_dict(config.to_dict()) == config


def test_a_bad_override_is_one_clear_error(tmp_path):
    _dt().save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="or the overrides: return_scale must be a finite"):
        DecisionTransformerAgent.from_pretrained(tmp_path, return_scale=-1.0, device="cpu")
    with pytest.raises(CheckpointError, match="target_return must be a finite number"):
        DecisionTransformerAgent.from_pretrained(tmp_path, target_return=float("nan"))
    with pytest.raises(TypeError, match=r"unknown options \['beam_width'\] for Decision"):
        DecisionTransformerAgent.from_pretrained(tmp_path, beam_width=4)
    with pytest.raises(CheckpointError, match="state_std is <= 0 at index"):
        DecisionTransformerAgent.from_pretrained(tmp_path, state_std=[1.0, 0.0, 1.0])
    with pytest.raises(CheckpointError, match="state_mean has 2 values"):  # against the model
        DecisionTransformerAgent.from_pretrained(tmp_path, state_mean=[0.0, 0.0])


def test_overrides_validate_each_section_once(monkeypatch):
    calls = {"planner": 0, "preprocessing": 0}
    planner_check, pre_check = BeamSearchConfig.__post_init__, StatePreprocessing.__post_init__

    def count(name, check):
        def counted(self):
            calls[name] += 1
            check(self)

        return counted

    monkeypatch.setattr(BeamSearchConfig, "__post_init__", count("planner", planner_check))
    monkeypatch.setattr(StatePreprocessing, "__post_init__", count("preprocessing", pre_check))
    env = gym.make("Pendulum-v1")
    rows = np.random.default_rng(0).normal(size=(200, 6))
    from seqagents import TrajectoryTransformerAgent

    tt = TrajectoryTransformerAgent.create(
        env.observation_space, env.action_space, rows, n_bins=10, n_layer=1, n_embd=16,
        n_head=1, device="cpu",
    )  # fmt: skip
    calls["planner"] = 0
    config = tt.config.replace(beam_width=8, horizon=3, k_act=2, seed=4)  # three settings
    assert calls["planner"] == 1  # one BeamSearchConfig built, validated once
    assert (config.inference.planner.beam_width, config.inference.seed) == (8, 4)
    dt = _dt()
    calls["preprocessing"] = 0
    dt.config.replace(return_scale=10.0, state_mean=[0.0] * 3, state_std=[2.0] * 3)
    assert calls["preprocessing"] == 1
    with pytest.raises(ValueError, match="beam_width"):
        tt.config.replace(beam_width=0)
    assert tt.config.inference.planner.beam_width != 0  # the agent's config is unchanged


def test_episode_target_return_leaves_the_saved_config_unchanged(tmp_path):
    agent = _dt()
    saved = agent.config
    env = gym.make("Pendulum-v1", max_episode_steps=5)
    agent.reset(target_return=-50.0)
    obs, _ = env.reset(seed=0)
    agent.predict(obs)
    assert agent.returns_to_go[0] == pytest.approx(-50.0)
    assert agent.target_return == -50.0  # this episode's
    assert agent.config is saved and agent.config.inference.target_return == -200.0
    agent.save_pretrained(tmp_path / "a")
    written = json.loads((tmp_path / "a/config.json").read_text())
    assert written["inference"]["target_return"] == -200
    agent.reset()  # back to the saved default
    assert agent.target_return == -200.0
    evaluate_policy(agent, env, 1, target_return=-10.0, seed=0)
    assert agent.config == saved and agent.target_return == -200.0
    agent.target_return = -120.0  # the saved default, set on purpose
    agent.save_pretrained(tmp_path / "b")
    assert load_agent(tmp_path / "b", device="cpu").target_return == -120.0


def test_target_return_of_agents_without_one_is_an_error():
    cart = gym.make("CartPole-v1")
    leap = LEAPAgent.create(
        cart.observation_space, cart.action_space, horizon=3, n_layer=1, hidden_size=16,
        device="cpu",
    )  # fmt: skip
    assert leap.target_return is None
    with pytest.raises(ValueError, match="not return-conditioned"):
        leap.reset(target_return=1.0)
    with pytest.raises(
        TypeError,
        match=r"unknown options \['beam_width'\] for LEAPAgent \(and unknown LEAP planner",
    ):
        leap.config.replace(beam_width=2)  # LEAP has no beam search


def test_docstring_examples():
    import doctest

    from seqagents import config
    from seqagents.agents import conditioning, spaces

    for module in (config, conditioning, spaces):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
