"""Agent safeguards (issue 12): each case that was silently wrong gives the right answer or one
clear error.

1 saved settings = acting settings; 2 evaluation leaves agents clean; 3 seeded sampling;
4 env/checkpoint mismatch; 5 non-finite numbers; 6 record_video never destroys; 7 normalizing
wrappers and envs without a time limit; 8 vector loops with NEXT_STEP autoreset.
"""

from __future__ import annotations

import json
import os
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from safetensors.torch import load_file, save_file
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

import seqagents.evaluation
from seqagents import (
    CheckpointError,
    DecisionTransformerAgent,
    EpisodeStarts,
    LEAPAgent,
    TrajectoryTransformerAgent,
    evaluate_policy,
    load_agent,
    record_video,
)
from seqagents.planning import trajectory_transitions
from tests._toy import RewardAgent, ToyEnv, segments


def dt_agent(env_id: str = "Pendulum-v1", **kwargs) -> DecisionTransformerAgent:
    env = gym.make(env_id)
    params = dict(
        hidden_size=16,
        n_layer=1,
        n_head=2,
        context_len=4,
        max_ep_len=256,
        target_return=-300.0,
        return_scale=100.0,
        env_id=env_id,
        seed=0,
        device="cpu",
    )
    params.update(kwargs)
    return DecisionTransformerAgent.create(env.observation_space, env.action_space, **params)


def tt_agent(**planner) -> TrajectoryTransformerAgent:
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(0)
    n = 200
    rows = trajectory_transitions(
        rng.normal(size=(n, 3)),
        rng.uniform(-2, 2, size=(n, 1)),
        rng.normal(size=n),
        np.zeros(n, bool),
        np.array([0, n // 2, n]),
    )
    return TrajectoryTransformerAgent.create(
        env.observation_space,
        env.action_space,
        rows,
        n_bins=10,
        n_layer=1,
        n_head=1,
        n_embd=16,
        block_size=36,
        env_id="Pendulum-v1",
        planner={"horizon": 2, "beam_width": 4, "max_context_transitions": 2, **planner},
        device="cpu",
        seed=0,
    )


def leap_agent() -> LEAPAgent:
    env = gym.make("CartPole-v1")
    return LEAPAgent.create(
        env.observation_space,
        env.action_space,
        env_id="CartPole-v1",
        horizon=4,
        n_layer=1,
        hidden_size=32,
        n_head=2,
        planner={"n_iterations": 3},
        device="cpu",
        seed=0,
    )


def rollout(agent, env, steps: int, seed: int = 0) -> np.ndarray:
    obs, _ = env.reset(seed=seed)
    reward, actions = None, []
    agent.reset()
    for _ in range(steps):
        action, _ = agent.predict(obs, reward=reward)
        actions.append(np.array(action, dtype=np.float64))
        obs, reward, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    return np.stack(actions)


# ------------------------------------------------------------------ 1. what is saved acts
def test_dt_overrides_are_saved_and_act(tmp_path):
    dt_agent().save_pretrained(tmp_path / "base")
    agent = DecisionTransformerAgent.from_pretrained(
        tmp_path / "base", context_len=2, target_return=-150.0, return_scale=50.0, device="cpu"
    )
    agent.save_pretrained(tmp_path / "again")
    again = DecisionTransformerAgent.from_pretrained(tmp_path / "again", device="cpu")
    assert again.model_config.context_len == 2
    assert again.target_return == -150.0 and again.return_scale == 50.0
    env = gym.make("Pendulum-v1")
    np.testing.assert_array_equal(rollout(agent, env, 8), rollout(again, env, 8))
    default = DecisionTransformerAgent.from_pretrained(tmp_path / "base", device="cpu")
    assert not np.array_equal(rollout(default, env, 8), rollout(again, env, 8))


def test_dt_attributes_set_on_the_agent_are_saved(tmp_path):
    agent = dt_agent()
    agent.target_return = -42.0
    agent.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["inference"]["target_return"] == -42
    assert load_agent(tmp_path, device="cpu").target_return == -42.0


def test_tt_and_leap_planner_overrides_are_saved(tmp_path):
    tt_agent().save_pretrained(tmp_path / "tt")
    tt = TrajectoryTransformerAgent.from_pretrained(tmp_path / "tt", beam_width=3, seed=5)
    tt.save_pretrained(tmp_path / "tt2")
    loaded = load_agent(tmp_path / "tt2")
    assert (loaded.planner.beam_width, loaded.planning_seed) == (3, 5)
    leap_agent().save_pretrained(tmp_path / "leap")
    leap = LEAPAgent.from_pretrained(tmp_path / "leap", n_iterations=2, replan_every=2)
    leap.planner = leap.planner.replace(temperature=0.5)  # changed on the agent: saved too
    leap.save_pretrained(tmp_path / "leap2")
    loaded = load_agent(tmp_path / "leap2")
    assert (loaded.planner.n_iterations, loaded.replan_every) == (2, 2)
    assert loaded.planner.temperature == 0.5


def test_evaluate_target_return_is_used_then_given_back(tmp_path):
    agent, env = dt_agent(), gym.make("Pendulum-v1")
    seen: list[float] = []

    def first_rtg(local, _globals):
        if local["current_lengths"][0] == 1:
            seen.append(float(local["model"].returns_to_go[0]))

    evaluate_policy(agent, env, 2, target_return=-77.0, seed=0, callback=first_rtg)
    assert seen == [pytest.approx(-77.0)] * 2  # rtg_0 of each episode = the given target
    assert agent.target_return == -300.0  # the agent's own target is back
    agent.save_pretrained(tmp_path)
    assert load_agent(tmp_path).target_return == -300.0


# ------------------------------------------------------------------ 2. left clean
def test_evaluation_leaves_the_agent_clean():
    agent, env = dt_agent(), gym.make("Pendulum-v1")
    evaluate_policy(agent, env, 1, seed=0)
    assert agent.n_envs == 0
    obs, _ = env.reset(seed=1)
    action, _ = agent.predict(obs)  # a new loop's first predict: no reward needed
    np.testing.assert_array_equal(action, dt_agent().predict(obs)[0])


def test_evaluation_leaves_the_agent_clean_after_an_error():
    agent, env = dt_agent(), gym.make("Pendulum-v1")

    def boom(local, _globals):
        if local["current_lengths"][0] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate_policy(agent, env, 1, seed=0, target_return=5.0, callback=boom)
    assert agent.n_envs == 0 and agent.target_return == -300.0


# ------------------------------------------------------------------ 3. seeds
def test_seed_repeats_stochastic_evaluation_without_the_global_rng():
    agent = dt_agent("CartPole-v1", target_return=50.0, return_scale=10.0)
    env = gym.make("CartPole-v1")
    runs = []
    for _ in range(2):
        torch.manual_seed(int(torch.randint(1000, ())))  # a different global RNG each time
        state = torch.get_rng_state()
        runs.append(evaluate_policy(agent, env, 3, deterministic=False, seed=7, warn=False))
        assert torch.equal(torch.get_rng_state(), state)  # sampling never touches it
    assert runs[0] == runs[1]
    other = [evaluate_policy(agent, env, 3, deterministic=False, seed=s)[0] for s in range(8, 12)]
    assert any(r != runs[0][0] for r in other)  # the seed does drive the sampling


def test_deterministic_false_on_continuous_agents_says_it_changes_nothing():
    agent, env = dt_agent(), gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    with pytest.warns(UserWarning, match="deterministic=False has no effect"):
        sampled, _ = agent.predict(obs, deterministic=False)
    agent.reset()
    np.testing.assert_array_equal(sampled, agent.predict(obs)[0])
    with pytest.warns(UserWarning, match="deterministic=False has no effect"):
        tt_agent().predict(obs, deterministic=False)


# ------------------------------------------------------------------ 4. env mismatch
def test_equal_shapes_but_other_bounds_or_kinds_are_errors(tmp_path):
    agent = dt_agent()  # Pendulum: obs (3,), actions in [-2, 2]
    with pytest.raises(CheckpointError, match=r"action bounds mismatch.*\[-2, 2\].*\[-1, 1\]"):
        evaluate_policy(agent, ToyEnv(), 1)  # obs (3,), actions in [-1, 1]
    with pytest.raises(CheckpointError, match="action bounds"):
        record_video(agent, ToyEnv(render_mode="rgb_array"), tmp_path / "v.gif")
    assert not list(tmp_path.iterdir())  # failed before writing anything
    six = gym.Wrapper(gym.make("Pendulum-v1"))
    six.action_space = gym.spaces.Discrete(6)  # same observations, Discrete(6) actions
    with pytest.raises(CheckpointError, match=r"action space mismatch.*Discrete\(6\)"):
        evaluate_policy(agent, DummyVecEnv([lambda: six]), 1)
    cart = dt_agent("CartPole-v1")
    with pytest.raises(CheckpointError, match="observation space mismatch"):
        evaluate_policy(cart, gym.make("Acrobot-v1"), 1)


def test_other_env_id_with_matching_spaces_warns_once():
    agent = dt_agent(env_id="Pendulum-v1")
    agent.config = agent.config.replace(env_id="InvertedPendulumSwing-v0")  # trained elsewhere
    env = gym.make("Pendulum-v1", max_episode_steps=3)
    with pytest.warns(UserWarning, match="env is Pendulum-v1 but this checkpoint was trained on"):
        evaluate_policy(agent, env, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate_policy(agent, SyncVectorEnv([lambda: env]), 1)  # warned once per env id
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate_policy(dt_agent(), env, 1)  # the checkpoint's own env: silent


# ------------------------------------------------------------------ 5. non-finite numbers
def test_nan_weights_and_bad_state_stats_fail_at_load(tmp_path):
    agent = dt_agent(state_mean=np.zeros(3), state_std=np.ones(3))
    agent.save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    good = dict(weights)
    name = sorted(weights)[0]
    weights[name] = weights[name].clone().fill_(float("nan"))
    save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=f"weight '{name}' holds .* NaN/inf"):
        load_agent(tmp_path)
    save_file(good, str(tmp_path / "model.safetensors"))
    config = json.loads((tmp_path / "config.json").read_text())
    for key, values, match in (
        ("state_std", [1.0, 0.0, 1.0], r"state_std is <= 0 at index \[1\]"),
        ("state_mean", [0.0, 0.0, float("nan")], r"state_mean holds NaN/inf at index \[2\]"),
    ):
        bad = {**config, "preprocessing": {**config["preprocessing"], key: values}}
        (tmp_path / "config.json").write_text(json.dumps(bad))
        with pytest.raises(CheckpointError, match=match):
            load_agent(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="state_std is <= 0"):
        load_agent(tmp_path, state_std=[1.0, 1.0, 0.0])  # an override is checked too


def test_overflowing_observation_is_an_error_and_nothing_is_stored():
    agent, ref = dt_agent(), dt_agent()
    env = gym.make("Pendulum-v1")
    obs0, _ = env.reset(seed=0)
    obs1, reward, *_ = env.step(agent.predict(obs0)[0])
    ref.predict(obs0)
    with pytest.raises(ValueError, match="overflows float32"):
        agent.predict(np.array([1e39, 0.0, 0.0]), reward=reward)  # finite in float64
    with pytest.raises(ValueError, match="observation contains NaN"):
        agent.predict(np.array([np.nan, 0.0, 0.0]), reward=reward)
    np.testing.assert_array_equal(
        agent.predict(obs1, reward=reward)[0], ref.predict(obs1, reward=reward)[0]
    )
    np.testing.assert_array_equal(agent.returns_to_go, ref.returns_to_go)


def test_non_finite_prediction_is_an_error_and_the_step_is_undone(monkeypatch):
    agent, ref = dt_agent(context_len=2), dt_agent(context_len=2)
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    rewards, observations = [None], [obs]
    for _ in range(4):  # past the window size: the context's buffer shifts in between
        obs, reward, *_ = env.step(ref.predict(obs, reward=rewards[-1])[0])
        rewards.append(reward)
        observations.append(obs)
    real = agent.network.act_tokens
    for o, r in zip(observations[:-1], rewards[:-1], strict=True):
        monkeypatch.setattr(agent.network, "act_tokens", lambda *a: real(*a) * float("nan"))
        with pytest.raises(ValueError, match="prediction is NaN/inf.*not stored"):
            agent.predict(o, reward=r)
        monkeypatch.setattr(agent.network, "act_tokens", real)
        agent.predict(o, reward=r)
    ref_rtg = ref.returns_to_go
    np.testing.assert_allclose(agent.returns_to_go, ref_rtg)
    final = observations[-1], rewards[-1]
    np.testing.assert_array_equal(
        agent.predict(*final[:1], reward=final[1])[0], ref.predict(*final[:1], reward=final[1])[0]
    )


# ------------------------------------------------------------------ 6. record_video
class Failing(RewardAgent):
    def predict(
        self, observation, state=None, episode_start=None, deterministic=True, *, reward=None
    ):
        if len(self.calls) == 2:
            raise RuntimeError("agent failed")
        return super().predict(observation, state, episode_start, deterministic, reward=reward)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_failed_recording_keeps_the_existing_file(tmp_path, suffix):
    path = tmp_path / f"old{suffix}"
    path.write_bytes(b"precious")
    with pytest.raises(RuntimeError, match="agent failed"):
        record_video(Failing(), ToyEnv(max_length=9, render_mode="rgb_array"), path, seed=0)
    assert path.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left
    record_video(RewardAgent(), ToyEnv(render_mode="rgb_array"), path, seed=0)
    assert path.stat().st_size > 100 and path.read_bytes() != b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    assert path.stat().st_mode & 0o044  # readable like any file, not mkstemp's 0600


def test_unwritable_paths_fail_before_the_rollout(tmp_path, monkeypatch):
    agent, env = RewardAgent(), ToyEnv(render_mode="rgb_array")
    (tmp_path / "dir.gif").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        record_video(agent, env, tmp_path / "dir.gif")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="cannot create the folder"):
        record_video(agent, env, tmp_path / "file" / "v.gif")
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # as a non-root user would see
    with pytest.raises(PermissionError, match="not writable"):
        record_video(agent, env, tmp_path / "v.gif")
    assert agent.calls == []  # no episode was run


# ------------------------------------------------------------------ 7. wrappers, time limits
@pytest.mark.parametrize(
    "wrap, match",
    [
        (gym.wrappers.NormalizeObservation, r"NormalizeObservation \(observations\)"),
        (gym.wrappers.NormalizeReward, r"NormalizeReward \(rewards\)"),
        (lambda e: VecNormalize(DummyVecEnv([lambda: e])), "VecNormalize"),
        (
            lambda e: gym.wrappers.vector.NormalizeObservation(SyncVectorEnv([lambda: e])),
            "NormalizeObservation",
        ),
    ],
)
def test_normalizing_wrappers_warn(wrap, match):
    env = wrap(gym.make("Pendulum-v1", max_episode_steps=3))
    with pytest.warns(UserWarning, match=match + ".*normalizes states itself"):
        evaluate_policy(dt_agent(), env, 1)


class Endless(gym.Env):
    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, np.float32), {}

    def step(self, action):
        return np.zeros(3, np.float32), 1.0, False, False, {}


class EndsAt30(Endless):
    """Ends by itself, in a way evaluate_policy cannot see beforehand."""

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return super().reset(seed=seed)

    def step(self, action):
        self.t += 1
        return np.zeros(3, np.float32), 1.0, False, self.t >= 30, {}


def test_env_without_time_limit_is_cut_with_a_warning(monkeypatch):
    monkeypatch.setattr(seqagents.evaluation, "DEFAULT_MAX_EPISODE_STEPS", 25)
    with pytest.warns(UserWarning, match="no time limit.*max_episode_steps=25"):
        returns, lengths = evaluate_policy(RewardAgent(), Endless(), 2, return_episode_rewards=True)
    assert lengths == [25, 25] and returns == [25.0, 25.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, lengths = evaluate_policy(
            RewardAgent(), Endless(), 1, max_episode_steps=7, return_episode_rewards=True
        )
        assert lengths == [7]
        evaluate_policy(RewardAgent(), gym.make("Pendulum-v1"), 1)  # has its own limit
    with pytest.warns(UserWarning, match="may have no time limit"):  # cannot cut sub-envs
        _, lengths = evaluate_policy(
            RewardAgent(), SyncVectorEnv([EndsAt30]), 1, return_episode_rewards=True
        )
    assert lengths == [30]
    with pytest.raises(ValueError, match="single gymnasium.Env"):
        evaluate_policy(RewardAgent(), SyncVectorEnv([Endless]), 1, max_episode_steps=5)


# ------------------------------------------------------------------ 8. vector loops
def _hand_loop(envs, agent, steps: int, helper: bool) -> None:
    starts = EpisodeStarts(envs)
    obs, _ = envs.reset(seed=0)
    episode_start, rewards = starts.reset(), None
    for _ in range(steps):
        actions, _ = agent.predict(obs, episode_start=episode_start, reward=rewards)
        obs, rewards, terminated, truncated, _ = envs.step(actions)
        episode_start = starts.update(terminated, truncated) if helper else terminated | truncated


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_episode_starts_keep_each_context_in_one_episode(mode):
    envs = SyncVectorEnv(
        [lambda i=i: ToyEnv(uid=i, max_length=4) for i in range(3)], autoreset_mode=mode
    )
    agent = RewardAgent()
    _hand_loop(envs, agent, 40, helper=True)
    for i in range(3):
        for context in segments(agent, i):
            rows = np.stack([agent.calls[k][0][i] for k in context])  # [uid, episode, t]
            if len(rows) == 1 and rows[0][2] > 0:
                continue  # a NEXT_STEP junk row (last obs of an episode), cleared at once
            assert rows[0][2] == 0 and len(set(rows[:, 1])) == 1  # starts at t=0, one episode
            np.testing.assert_array_equal(rows[:, 2], np.arange(len(rows)))


def test_sb3_habit_with_next_step_autoreset_mixes_episodes_and_the_helper_does_not():
    def mixed(helper: bool) -> bool:
        envs = SyncVectorEnv([lambda: ToyEnv(max_length=4)])
        agent = RewardAgent()
        _hand_loop(envs, agent, 30, helper=helper)
        return any(
            len({agent.calls[k][0][0][1] for k in context}) > 1 for context in segments(agent, 0)
        )

    assert mixed(helper=False) and not mixed(helper=True)


def test_episode_starts_with_a_dt_agent_matches_evaluate_policy():
    agent = dt_agent("CartPole-v1", target_return=50.0, return_scale=10.0)
    n = 2
    envs = gym.make_vec("CartPole-v1", num_envs=n)  # default NEXT_STEP autoreset
    starts = EpisodeStarts(envs)
    obs, _ = envs.reset(seed=0)
    episode_start, rewards = starts.reset(), None
    returns, current, done_once = np.zeros(n), np.zeros(n), np.zeros(n, bool)
    while not done_once.all():
        actions, _ = agent.predict(obs, episode_start=episode_start, reward=rewards)
        obs, rewards, terminated, truncated, _ = envs.step(actions)
        current += np.where(done_once, 0.0, rewards)
        ended = (terminated | truncated) & ~done_once
        returns[ended] = current[ended]
        done_once |= ended
        episode_start = starts.update(terminated, truncated)
    ours = evaluate_policy(
        agent, gym.make_vec("CartPole-v1", num_envs=n), n, seed=0, return_episode_rewards=True
    )[0]
    assert sorted(returns.tolist()) == sorted(ours)
