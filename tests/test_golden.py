"""Golden outputs around refactors: the greedy actions of every bundled checkpoint (a few steps,
one env and a batch of two) and one TT plan, compared with ``tests/data/golden.json``.

A refactor must leave these unchanged. A deliberate behaviour change regenerates the file
(``python -m tests.test_golden``) in the same commit and says why.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from seqagents import TrajectoryTransformerAgent, load_agent
from seqagents.zoo import list_entries, zoo_dir

GOLDEN = Path(__file__).resolve().parent / "data" / "golden.json"
STEPS = 4


def _bundled() -> list[str]:
    return sorted(
        k
        for k, e in list_entries().items()
        if "/" in k and e.checkpoint.path and (zoo_dir() / e.checkpoint.path).is_dir()
    )


def _actions(agent, envs: list[gym.Env], seeds: list[int]) -> list:
    """Greedy actions of ``agent`` over ``STEPS`` steps of ``envs`` fed as one batch."""
    obs = [env.reset(seed=s)[0] for env, s in zip(envs, seeds)]
    agent.reset()
    rewards, out = None, []
    for _ in range(STEPS):
        batch = (
            {k: np.stack([o[k] for o in obs]) for k in obs[0]}
            if isinstance(obs[0], dict)
            else np.stack(obs)
        )  # (n, ...) per key
        actions, _ = agent.predict(batch, reward=rewards, deterministic=True)
        out.append(np.asarray(actions).tolist())
        steps = [env.step(a) for env, a in zip(envs, actions)]
        obs = [s[0] for s in steps]
        rewards = np.array([s[1] for s in steps], dtype=np.float64)
    return out


def _checkpoint_outputs(name: str) -> dict:
    agent = load_agent(name, device="cpu")
    envs = [agent.make_env() for _ in range(2)]
    try:
        single = _actions(agent, envs[:1], [0])
        batched = _actions(agent, envs, [1, 2])
    finally:
        for env in envs:
            env.close()
    return {"single": single, "batched": batched}


def _tt_plan() -> dict:
    """A random-weight HalfCheetah TT (fixed seed) planning 3 steps at beam 4, horizon 2."""
    env = gym.make("HalfCheetah-v5")
    rows = np.random.default_rng(0).normal(size=(500, 25))  # (N, transition_dim)
    agent = TrajectoryTransformerAgent.create(
        env.observation_space, env.action_space, rows, n_bins=20, env_id="HalfCheetah-v5",
        planner={"beam_width": 4, "horizon": 2, "seed": 0}, device="cpu", seed=0, n_layer=1,
        n_head=2, n_embd=16, block_size=49,
    )  # fmt: skip
    out = _actions(agent, [env], [0])
    plan = agent.last_plan
    env.close()
    return {"actions": out, "tokens": plan.tokens.tolist(), "value": float(plan.value)}


def _all_outputs() -> dict:
    return {
        "checkpoints": {name: _checkpoint_outputs(name) for name in _bundled()},
        "tt_plan": _tt_plan(),
    }


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("name", _bundled())
def test_bundled_checkpoint_actions_are_unchanged(golden, name):
    expected = golden["checkpoints"][name]
    got = _checkpoint_outputs(name)
    for key in ("single", "batched"):
        np.testing.assert_allclose(
            np.asarray(got[key], dtype=np.float64),
            np.asarray(expected[key], dtype=np.float64),
            rtol=0,
            atol=1e-6,
            err_msg=f"{name} {key}",
        )


def test_tt_plan_is_unchanged(golden):
    got = _tt_plan()
    assert got["tokens"] == golden["tt_plan"]["tokens"]
    np.testing.assert_allclose(got["actions"], golden["tt_plan"]["actions"], atol=1e-6)
    assert got["value"] == pytest.approx(golden["tt_plan"]["value"], abs=1e-5)


if __name__ == "__main__":  # regenerate: python -m tests.test_golden
    GOLDEN.write_text(json.dumps(_all_outputs(), indent=1))
    print(f"wrote {GOLDEN}", file=sys.stderr)
