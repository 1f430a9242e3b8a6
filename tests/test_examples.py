"""Every script in examples/ runs, for every paradigm it claims (DT, TT, LEAP on continuous,
Atari and BabyAI envs), on the bundled zoo checkpoints for a few steps (cleanrl's habit: smoke
tests that run the real scripts)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from tests.test_tt_agent import _rows

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ZOO = Path(__file__).resolve().parents[1] / "zoo"

# every (algorithm, env kind) a bundled checkpoint covers; TT has none bundled (tiny one below)
ZOO_MODELS = [
    "dt/halfcheetah-medium",  # DT, continuous
    "dt/breakout",  # DT, Atari
    "dt/babyai-gotolocal-s7n5",  # DT, BabyAI
    "leap/breakout",  # LEAP, Atari (return-conditioned)
    "leap/babyai-gotolocal-s7n5",  # LEAP, BabyAI (goal-conditioned: no return-to-go)
]
AGENT_EXAMPLES = ["gym_loop", "sb3_evaluate"]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def zoo_dir(monkeypatch):
    monkeypatch.setenv("SEQAGENTS_ZOO_DIR", str(ZOO))


@pytest.fixture(scope="module")
def tt_folder(tmp_path_factory) -> str:
    """A tiny random-weight native TT checkpoint for Pendulum-v1 (continuous)."""
    from seqagents import TrajectoryTransformerAgent

    env = gym.make("Pendulum-v1")
    agent = TrajectoryTransformerAgent.create(
        env.observation_space,
        env.action_space,
        _rows(),
        n_bins=10,
        n_layer=1,
        n_head=1,
        n_embd=16,
        block_size=6 * 6,
        env_id="Pendulum-v1",
        planner={"horizon": 2, "beam_width": 2, "max_context_transitions": 2},
        device="cpu",
        seed=0,
    )
    folder = tmp_path_factory.mktemp("tt") / "tt-pendulum"
    agent.save_pretrained(folder)
    return str(folder)


def test_every_example_is_tested():
    scripts = {p.stem for p in EXAMPLES.glob("*.py")}
    tested = {*AGENT_EXAMPLES, "train_behavior_sac", "leap_planner_variants"}
    assert scripts == tested, "a new example: test it here"


@pytest.mark.parametrize("example", AGENT_EXAMPLES)
@pytest.mark.parametrize("model", [*ZOO_MODELS, "tt"])
def test_agent_examples_run_for_every_paradigm(example, model, zoo_dir, tt_folder, capsys):
    module = _load(example)
    module.main(tt_folder if model == "tt" else model, max_steps=3)
    out = capsys.readouterr().out
    numbers = [float(x) for x in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", out)]
    assert numbers and np.isfinite(numbers).all(), out
    if example == "gym_loop":
        assert "single env: return" in out and "evaluate_policy:" in out
        # a return-to-go is printed exactly for the agents that track one
        assert ("return-to-go" in out) == (
            model
            in ("dt/halfcheetah-medium", "dt/breakout", "dt/babyai-gotolocal-s7n5", "leap/breakout")
        )
    else:
        sb3, ours = re.findall(r"evaluate_policy: \[(.*)\]", out)
        # SB3's own loop and ours see the same episodes (same seeds): same returns
        np.testing.assert_allclose(
            np.array(sb3.split(", "), float), np.array(ours.split(", "), float), rtol=1e-5
        )


def test_example_runs_as_a_script():
    """The command line as the docstring shows it (the LEAP BabyAI case of issue 28)."""
    script = EXAMPLES / "gym_loop.py"
    args = [sys.executable, str(script), "leap/babyai-gotolocal-s7n5", "--max-steps", "2"]
    env = {**os.environ, "SEQAGENTS_ZOO_DIR": str(ZOO), "PYTHONPATH": str(EXAMPLES.parent)}
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "single env: return" in result.stdout


def test_train_behavior_sac_runs(tmp_path, monkeypatch):
    module = _load("train_behavior_sac")
    argv = ["x", "--env", "Pendulum-v1", "--steps", "200", "--save-every", "200"]
    monkeypatch.setattr(sys, "argv", [*argv, "--eval-episodes", "1", "--out", str(tmp_path)])
    module.main()
    rows = (tmp_path / "scores.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and rows[1].startswith("200,")
    assert (tmp_path / "sac_200.zip").stat().st_size > 0


def test_leap_planner_variants_runs(zoo_dir, monkeypatch, capsys):
    """Every variant option, one short episode each (LEAP BabyAI is the paradigm it claims)."""
    module = _load("leap_planner_variants")
    variants = "base,rh,rhpad+toff,it1+re1"
    argv = ["x", "leap/babyai-gotolocal-s7n5", variants, "--episodes", "1", "--seed", "3"]
    monkeypatch.setattr(sys, "argv", argv)
    module.main()
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["variant"] for r in rows] == variants.split(",")
    assert all(r["episodes"] == 1 and 0 <= r["success"] <= 100 for r in rows)
    with pytest.raises(SystemExit, match="unknown variant"):
        module.evaluate_variant("leap/babyai-gotolocal-s7n5", "nope", 1, 0)


def test_babyai_in_sb3_vec_envs_needs_mission_tokens(zoo_dir):
    """SB3's DummyVecEnv cannot hold BabyAI's mission text; with MissionTokens it can, and the
    agent's actions on word ids equal its actions on the text."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from seqagents import MissionTokens, SB3Adapter, load_agent

    agent = load_agent("leap/babyai-gotolocal-s7n5", device="cpu")
    with pytest.raises(TypeError):  # SB3's own failure, the one the README now avoids
        DummyVecEnv([agent.make_env])
    vocab = agent.mission_vocabulary
    venv = DummyVecEnv([lambda: MissionTokens(agent.make_env(), vocab) for _ in range(2)])
    venv.seed(3)
    token_obs = venv.reset()
    assert token_obs["mission"].shape == (2, vocab.max_len)
    agent.check_env(venv)  # spaces match: mission text vs its word ids
    envs = [agent.make_env() for _ in range(2)]
    text_obs = [env.reset(seed=3 + i)[0] for i, env in enumerate(envs)]
    text_actions, _ = agent.predict(
        {k: np.stack([o[k] for o in text_obs]) for k in ("image", "direction")}
        | {"mission": np.array([o["mission"] for o in text_obs])}
    )
    agent.reset()
    token_actions, _ = agent.predict(token_obs)
    np.testing.assert_array_equal(text_actions, token_actions)
    # one env's ids (L,) read like one env's text
    agent.reset()
    single, _ = agent.predict({k: v[0] for k, v in token_obs.items()})
    assert single.shape == () and single == token_actions[0]
    # SB3Adapter wraps a single BabyAI env itself
    assert SB3Adapter(agent, agent.make_env()).observation_space["mission"].shape == (
        vocab.max_len,
    )
    with pytest.raises(ValueError, match="MissionTokens"):
        agent.predict({**{k: v[0] for k, v in token_obs.items()}, "mission": np.zeros(3, int)})
    with pytest.raises(ValueError, match=r"\[0, "):
        agent.predict(
            {
                **{k: v[0] for k, v in token_obs.items()},
                "mission": np.full(vocab.max_len, vocab.size),
            }
        )


def test_mission_tokens_docstring_example(zoo_dir):
    import doctest

    from seqagents import envs

    tests = doctest.DocTestFinder().find(envs.MissionTokens, globs=vars(envs))
    assert tests and all(doctest.DocTestRunner().run(t).failed == 0 for t in tests)
