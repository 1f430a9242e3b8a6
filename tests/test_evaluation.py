"""evaluate_policy over every env kind, the SB3 adapter, and normalized scores."""

from __future__ import annotations

import doctest
import warnings
from functools import partial

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics
from stable_baselines3.common.evaluation import evaluate_policy as sb3_evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import seqagents.evaluation
import seqagents.report
import seqagents.scores
from seqagents.evaluation import SB3Adapter, evaluate_policy
from seqagents.report import EvaluationReport, TargetResult, evaluation_report, read_record
from seqagents.scores import has_normalized_score, normalized_score
from tests._toy import ObserveAgent, RewardAgent, ToyEnv, check_feeding, expected_episodes


def sync_env(n_envs: int, mode: AutoresetMode) -> SyncVectorEnv:
    return SyncVectorEnv([partial(ToyEnv, uid=i) for i in range(n_envs)], autoreset_mode=mode)


def dummy_env(n_envs: int) -> DummyVecEnv:
    return DummyVecEnv([partial(ToyEnv, uid=i) for i in range(n_envs)])


def targets(n_episodes: int, n_envs: int) -> list[int]:
    return [(n_episodes + i) // n_envs for i in range(n_envs)]


def run(agent, env, n_episodes, seed=0, **kwargs):
    returns, lengths = evaluate_policy(
        agent, env, n_eval_episodes=n_episodes, seed=seed, return_episode_rewards=True, **kwargs
    )
    assert all(type(r) is float for r in returns) and all(type(n) is int for n in lengths)
    return returns, lengths


# ------------------------------------------------------------------------------ episode loop
@pytest.mark.parametrize("agent_cls", [RewardAgent, ObserveAgent])
def test_single_env(agent_cls):
    env, agent = ToyEnv(), agent_cls()
    returns, lengths = run(agent, env, 5)
    assert len(returns) == 5
    assert list(zip(returns, lengths, strict=True)) == [(sum(r), len(r)) for r in env.log[:5]]
    check_feeding(agent, [env], [5])
    assert agent.reset_calls == [None]  # contexts cleared, target kept


@pytest.mark.parametrize("mode", list(AutoresetMode))
@pytest.mark.parametrize("n_envs,n_episodes", [(2, 5), (4, 7), (4, 3)])
@pytest.mark.parametrize("agent_cls", [RewardAgent, ObserveAgent])
def test_gymnasium_vector_env(mode, n_envs, n_episodes, agent_cls):
    venv, agent = sync_env(n_envs, mode), agent_cls()
    returns, lengths = run(agent, venv, n_episodes)
    share = targets(n_episodes, n_envs)
    assert len(returns) == n_episodes
    assert sorted(zip(returns, lengths, strict=True)) == expected_episodes(venv.envs, share)
    check_feeding(agent, venv.envs, share)


@pytest.mark.parametrize("agent_cls", [RewardAgent, ObserveAgent])
def test_sb3_vec_env(agent_cls):
    venv, agent = dummy_env(3), agent_cls()
    returns, lengths = run(agent, venv, 8)
    assert sorted(zip(returns, lengths, strict=True)) == expected_episodes(venv.envs, targets(8, 3))
    check_feeding(agent, venv.envs, targets(8, 3))


def test_same_seed_same_episodes_across_env_kinds():
    """Sub-env i is seeded seed + i by every env kind, so all give the same episodes."""
    results = [
        sorted(zip(*run(RewardAgent(), sync_env(2, mode), 6, seed=3), strict=True))
        for mode in AutoresetMode
    ]
    results.append(sorted(zip(*run(RewardAgent(), dummy_env(2), 6, seed=3), strict=True)))
    assert all(result == results[0] for result in results)
    again = sorted(
        zip(*run(RewardAgent(), sync_env(2, AutoresetMode.NEXT_STEP), 6, seed=3), strict=True)
    )
    assert again == results[0]
    other = sorted(
        zip(*run(RewardAgent(), sync_env(2, AutoresetMode.NEXT_STEP), 6, seed=4), strict=True)
    )
    assert other != results[0]
    single = [run(RewardAgent(), ToyEnv(), 4, seed=s) for s in (7, 7)]
    assert single[0] == single[1]


def test_mean_std_threshold_target_and_callback(capsys):
    env, agent = ToyEnv(), RewardAgent()
    seen = []

    def callback(local_vars, global_vars):
        seen.append((local_vars["i"], local_vars["done"], dict(local_vars["info"])))

    mean, std = evaluate_policy(
        agent,
        env,
        n_eval_episodes=3,
        seed=1,
        target_return=42.0,
        callback=callback,
        progress_bar=True,
    )
    returns = [sum(r) for r in env.log[:3]]
    assert (mean, std) == pytest.approx((np.mean(returns), np.std(returns)))
    assert agent.reset_calls == [42.0]
    assert len(seen) == sum(len(r) for r in env.log[:3]) and sum(d for _, d, _ in seen) == 3
    assert all("step_info" in info for _, _, info in seen)
    assert "evaluate" in capsys.readouterr().err
    with pytest.raises(AssertionError, match="below threshold"):
        evaluate_policy(agent, ToyEnv(), n_eval_episodes=2, reward_threshold=1e9)


def test_same_step_callback_gets_the_done_steps_info():
    infos = []
    evaluate_policy(
        RewardAgent(),
        sync_env(2, AutoresetMode.SAME_STEP),
        n_eval_episodes=4,
        callback=lambda loc, _: infos.append((loc["done"], loc["info"])),
    )
    assert all("step_info" in info for _, info in infos)
    assert any(done and "final_obs" in info for done, info in infos)


def test_sb3_model_without_observe_or_reset_matches_sb3():
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64, seed=0, device="cpu")
    venv = DummyVecEnv([lambda: gym.make("CartPole-v1")] * 2)
    ours = run(model, venv, 3, seed=5)
    venv.seed(5)
    theirs = sb3_evaluate_policy(
        model, venv, n_eval_episodes=3, return_episode_rewards=True, warn=False
    )
    assert ours == ([float(r) for r in theirs[0]], [int(n) for n in theirs[1]])


@pytest.mark.parametrize("as_model", ["adapter", "agent"])
def test_sb3_evaluate_policy_through_adapter_matches_ours(as_model):
    ours = run(RewardAgent(), dummy_env(3), 7, seed=11)
    agent = ObserveAgent()
    adapter = SB3Adapter(agent, dummy_env(3))
    adapter.seed(11)
    model = adapter if as_model == "adapter" else agent
    theirs = sb3_evaluate_policy(
        model, adapter, n_eval_episodes=7, return_episode_rewards=True, warn=False
    )
    assert ours == ([float(r) for r in theirs[0]], [int(n) for n in theirs[1]])
    # The agent got every reward of the counted episodes through observe().
    share = targets(7, 3)
    for i, env in enumerate(adapter.venv.envs):
        for e in range(share[i]):
            rows = [k for k, call in enumerate(agent.calls) if tuple(call[0][i][:2]) == (i, e)]
            assert [float(agent.calls[k][2][i]) for k in rows[1:]] == env.log[e][:-1]


def test_adapter_rejects_agents_without_observe():
    with pytest.raises(TypeError, match="observe"):
        SB3Adapter(RewardAgent(), dummy_env(1))


def test_monitor_mismatch_warns_once():
    scaled = gym.wrappers.TransformReward(Monitor(ToyEnv()), lambda r: 2 * r)
    with pytest.warns(UserWarning, match="wrapper between the Monitor and the agent"):
        returns, _ = run(RewardAgent(), scaled, 3)
    assert returns == [2 * sum(r) for r in scaled.unwrapped.log[:3]]  # what the agent got
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(RewardAgent(), Monitor(ToyEnv()), 3)  # Monitor outermost: same numbers, no warning
        run(RewardAgent(), DummyVecEnv([lambda: Monitor(ToyEnv())]), 3)
        for mode in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            run(RewardAgent(), RecordEpisodeStatistics(sync_env(3, mode)), 7)


def test_bad_arguments():
    with pytest.raises(TypeError, match="gymnasium.Env"):
        evaluate_policy(RewardAgent(), object())
    with pytest.raises(ValueError, match=">= 1"):
        evaluate_policy(RewardAgent(), ToyEnv(), n_eval_episodes=0)

    class NoReset:
        def predict(self, observation, state=None, episode_start=None, deterministic=True):
            return np.zeros((len(observation), 1), np.float32), None

    with pytest.raises(TypeError, match="reset"):
        evaluate_policy(NoReset(), ToyEnv(), target_return=1.0)


# ------------------------------------------------------------------------------------- scores
@pytest.mark.parametrize(
    "env_id,task",
    [
        ("HalfCheetah-v5", "halfcheetah"),
        ("halfcheetah", "halfcheetah"),
        ("halfcheetah-medium", "halfcheetah"),
        ("halfcheetah-medium-replay-v2", "halfcheetah"),
        ("mujoco/hopper/medium-v0", "hopper"),
        ("Walker2d-v5", "walker2d"),
        ("ALE/Breakout-v5", "breakout"),
        ("BreakoutNoFrameskip-v4", "breakout"),
        ("breakout", "breakout"),
        ("QbertNoFrameskip-v4", "qbert"),
        ("ALE/Pong-v5", "pong"),
        ("atari/seaquest/expert-v0", "seaquest"),
    ],
)
def test_normalized_score_accepts_ids(env_id, task):
    ref = seqagents.scores.REFERENCE_SCORES[task]
    assert has_normalized_score(env_id)
    assert normalized_score(ref.low, env_id) == pytest.approx(0.0)
    assert normalized_score(ref.high, env_id) == pytest.approx(100.0)


def test_normalized_score_values_and_errors():
    # docs/references.md section 4: score = 100 (R - min) / (max - min)
    assert normalized_score(12135.0 / 2, "halfcheetah") == pytest.approx(
        100 * (6067.5 + 280.178953) / (12135.0 + 280.178953)
    )
    assert isinstance(normalized_score(3.0, "pong"), float)
    scores = normalized_score(np.array([-20.7, 14.6]), "Pong")
    assert isinstance(scores, np.ndarray) and scores.tolist() == pytest.approx([0.0, 100.0])
    assert not has_normalized_score("CartPole-v1")
    with pytest.raises(KeyError, match="known tasks: breakout, halfcheetah, hopper"):
        normalized_score(1.0, "CartPole-v1")


@pytest.mark.parametrize("module", [seqagents.scores, seqagents.evaluation, seqagents.report])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


# ---------------------------------------------------------------------------- one report
def test_evaluation_report_is_evaluate_policy_per_target():
    """The report holds what evaluate_policy returns, per target, in one vocabulary."""
    env = ToyEnv()
    report = evaluation_report(
        RewardAgent(), env, env_id="Toy-v0", n_eval_episodes=3, target_returns=[None, None], seed=0
    )
    returns, lengths = run(RewardAgent(), ToyEnv(), 3)
    assert isinstance(report, EvaluationReport) and len(report.results) == 2
    for result in report.results:
        assert (result.episode_returns, result.episode_lengths) == (returns, lengths)
        assert result.summary() == {
            "mean_return": pytest.approx(np.mean(returns)),
            "std_return": pytest.approx(np.std(returns)),
            "mean_length": pytest.approx(np.mean(lengths)),
        }  # no normalized score or success for an env that defines neither
    data = report.to_dict()
    assert data["results"][0]["mean_return"] == report.results[0].mean_return
    assert data["deterministic"] is True and data["protocol"].startswith("greedy actions")
    record = report.to_record(command="seqagents evaluate x")
    assert record["mean_return"] == report.results[0].mean_return
    assert record["n_episodes"] == 3 and record["command"] == "seqagents evaluate x"


def test_report_measures_normalized_scores_and_successes():
    cheetah = TargetResult.measure("HalfCheetah-v5", 6000.0, [-280.18, 12135.0], [1000, 1000], 1)
    assert cheetah.summary()["normalized_mean"] == pytest.approx(50.0, abs=0.01)
    assert cheetah.successes is None
    level = TargetResult.measure("BabyAI-GoToLocalS7N5-v0", None, [0.9, 0.0], [3, 49], 1)
    assert level.successes == [True, False] and level.summary()["success_rate"] == 0.5
    assert "normalized_mean" not in level.summary()


def test_stored_records_of_both_vocabularies_read_the_same():
    """Checkpoints saved before one vocabulary (mean_reward/std_reward) still load."""
    old = {"mean_reward": 5.0, "std_reward": 1.0, "per_target": [{"mean_reward": 5.0}]}
    new = {"mean_return": 5.0, "std_return": 1.0, "per_target": [{"mean_return": 5.0}]}
    assert read_record(old) == read_record(new) == new
    assert read_record(None) == {}
    from seqagents.checkpoints.card import describe_evaluation

    assert describe_evaluation(old) == describe_evaluation(new) == "mean return 5.00 ± 1.00"
