"""Each checkpoint carries its evaluation protocol and every entry point follows it."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from seqagents import DecisionTransformerAgent, evaluate_policy, load_agent
from seqagents.errors import CheckpointError
from seqagents.protocol import EvaluationProtocol
from tests.test_cli import run


@pytest.fixture
def sampled_checkpoint(tmp_path):
    """A tiny discrete DT on CartPole whose protocol samples actions."""
    env = gym.make("CartPole-v1")
    agent = DecisionTransformerAgent.create(
        env.observation_space,
        env.action_space,
        env_id="CartPole-v1",
        hidden_size=16,
        n_layer=1,
        context_len=4,
        max_ep_len=600,
        target_return=100.0,
        return_scale=100.0,
        device="cpu",
        seed=0,
    )
    agent.config = agent.config.replace(protocol={"deterministic": False, "max_episode_steps": 7})
    agent.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt"


class _Spy:
    """Records the ``deterministic`` flag of every predict call of an agent."""

    def __init__(self, agent, monkeypatch):
        self.flags: list[bool] = []
        predict = agent.predict

        def spy(*args, deterministic=True, **kwargs):
            self.flags.append(deterministic)
            return predict(*args, deterministic=deterministic, **kwargs)

        monkeypatch.setattr(agent, "predict", spy)


def test_protocol_round_trips_and_bad_values_are_refused(sampled_checkpoint):
    agent = load_agent(sampled_checkpoint)
    assert agent.protocol == EvaluationProtocol(deterministic=False, max_episode_steps=7)
    config = json.loads((sampled_checkpoint / "config.json").read_text())
    config["protocol"] = {"deterministic": "no"}
    (sampled_checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="deterministic must be bool"):
        load_agent(sampled_checkpoint)
    config["protocol"] = {"greedy": True}
    (sampled_checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unknown protocol keys"):
        load_agent(sampled_checkpoint)


def test_older_configs_take_the_sampling_mode_their_evaluation_was_measured_with():
    assert not EvaluationProtocol.of_checkpoint({}, {"deterministic": False}).deterministic
    assert EvaluationProtocol.of_checkpoint({}, {}).deterministic


def test_evaluate_policy_and_record_video_follow_the_checkpoint(
    sampled_checkpoint, monkeypatch, tmp_path
):
    from seqagents import record_video

    agent = load_agent(sampled_checkpoint)
    spy = _Spy(agent, monkeypatch)
    returns, lengths = evaluate_policy(
        agent, gym.make("CartPole-v1"), n_eval_episodes=2, seed=0, return_episode_rewards=True
    )
    assert set(spy.flags) == {False} and max(lengths) <= 7  # sampled, capped by the protocol
    spy.flags.clear()
    evaluate_policy(agent, gym.make("CartPole-v1"), n_eval_episodes=1, deterministic=True)
    assert set(spy.flags) == {True}  # the caller's choice wins
    spy.flags.clear()
    record_video(agent, gym.make("CartPole-v1", render_mode="rgb_array"), tmp_path / "a.gif")
    assert set(spy.flags) == {False}
    spy.flags.clear()
    agent.predict(np.zeros(4, np.float32))
    assert spy.flags == [True]  # predict keeps its documented default (greedy)


def test_cli_follows_the_checkpoint_and_says_which_protocol_ran(sampled_checkpoint):
    out = run("evaluate", str(sampled_checkpoint), "--episodes", "2", "--no-progress", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["deterministic"] is False and report["max_episode_steps"] == 7
    assert report["protocol"].startswith("sampled actions")
    assert "the checkpoint's protocol" in report["protocol"]
    assert max(report["results"][0]["episode_lengths"]) <= 7
    out = run("evaluate", str(sampled_checkpoint), "--episodes", "1", "--no-progress",
              "--deterministic", "--max-steps", "3")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "protocol: greedy actions, at most 3 steps per episode, 1 episodes" in out.stdout


@pytest.mark.parametrize("name", ["dt/breakout", "leap/breakout"])
def test_bundled_atari_agents_sample_by_default(name):
    """Greedy Breakout play never presses FIRE after a lost ball: the bundled Atari agents
    are evaluated with sampled actions, as their published numbers were."""
    assert load_agent(name).protocol.deterministic is False


@pytest.mark.slow
def test_evaluate_dt_breakout_with_no_flags_scores_the_stored_number():
    out = run("evaluate", "dt/breakout", "--no-progress", "--json", timeout=3000)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    stored = load_agent("dt/breakout").spec.evaluation
    assert report["results"][0]["episode_returns"] == stored["episode_returns"]


def test_model_card_snippet_uses_the_protocol():
    card = str(load_agent("dt/breakout").generate_model_card())
    assert "Evaluation protocol: sampled actions, target return 17" in card
    assert "agent.predict(obs, deterministic=False, reward=reward)" in card
