"""Trajectory Transformer agent: round trips, batching, foreign checkpoints, bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from seqagents import CheckpointError, TrajectoryTransformerAgent, load_agent
from seqagents.planning import trajectory_transitions
from tests._hub import foreign_tt_state_dict, save_foreign, seed_hub_cache, tt_tiny_config

PLANNER = {"horizon": 2, "beam_width": 4, "max_context_transitions": 2}


def _rows(n: int = 400, obs_dim: int = 3, act_dim: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    obs, act = rng.normal(size=(n, obs_dim)), rng.uniform(-2, 2, size=(n, act_dim))
    return trajectory_transitions(
        obs, act, rng.normal(size=n), np.zeros(n, bool), np.array([0, n // 2, n])
    )


def tiny_agent(**planner) -> TrajectoryTransformerAgent:
    env = gym.make("Pendulum-v1")
    return TrajectoryTransformerAgent.create(
        env.observation_space,
        env.action_space,
        _rows(),
        n_bins=10,
        n_layer=1,
        n_head=1,
        n_embd=16,
        block_size=6 * 6,
        env_id="Pendulum-v1",
        planner={**PLANNER, **planner},
        device="cpu",
        seed=0,
    )


def rollout(agent, steps=6, seed=0):
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=seed)
    agent.reset()  # a new episode
    reward, actions = None, []
    for _ in range(steps):
        action, _ = agent.predict(obs, reward=reward)
        actions.append(action)
        obs, reward, *_ = env.step(action)
    return np.array(actions)


def test_save_load_gives_identical_plans(tmp_path):
    agent = tiny_agent()
    agent.save_pretrained(tmp_path / "tt")
    loaded = load_agent(tmp_path / "tt", device="cpu")
    assert isinstance(loaded, TrajectoryTransformerAgent)
    torch.testing.assert_close(loaded.discretizer.thresholds, agent.discretizer.thresholds)
    np.testing.assert_array_equal(rollout(agent), rollout(loaded))
    assert loaded.planner == agent.planner


def test_same_seed_same_actions_and_seed_restarts_the_streams():
    agent = tiny_agent()
    first = rollout(agent)
    agent.reset()
    agent.seed()  # an episode start does not reseed the planning streams (issue 29): seed does
    np.testing.assert_array_equal(first, rollout(agent))
    # one beam, one sample: the plan is the sampled action sequence, so the seed shows
    one, other = tiny_agent(beam_width=1, n_expand=1), tiny_agent(beam_width=1, n_expand=1, seed=7)
    assert not np.array_equal(rollout(one, 8), rollout(other, 8))


def test_batched_predict_equals_per_env_agents():
    batched = tiny_agent(seed=10)
    singles = [tiny_agent(seed=10 + i) for i in range(3)]  # env i of a batch plans with seed + i
    envs = [gym.make("Pendulum-v1") for _ in range(3)]
    obs = np.stack([e.reset(seed=i)[0] for i, e in enumerate(envs)])
    rewards = None
    for _ in range(4):
        actions, _ = batched.predict(obs, reward=rewards)
        for i, agent in enumerate(singles):
            single, _ = agent.predict(obs[i], reward=None if rewards is None else rewards[i])
            np.testing.assert_allclose(actions[i], single, atol=1e-5)
        steps = [e.step(a) for e, a in zip(envs, actions)]
        obs = np.stack([s[0] for s in steps])
        rewards = np.array([s[1] for s in steps])


def test_context_holds_completed_transitions():
    agent = tiny_agent()
    obs = np.array([0.5, -0.5, 1.0])
    action0, _ = agent.predict(obs)
    agent.predict(obs, reward=-3.0)
    tokens = agent._ctx["tokens"][0, -1]  # (transition_dim,) the completed first transition
    expected = agent.discretizer.discretize(torch.tensor([[*obs, *action0, -3.0, 0.0]]))[0]
    assert tokens[:3].tolist() == expected[:3].tolist()  # s_0
    assert tokens[3] == expected[3]  # a_0, the action returned at t = 0
    assert tokens[4] == expected[4]  # r_0 = -3
    assert agent._ctx.mask[0].tolist() == [False, True]


def test_planner_settings_override_and_validation(tmp_path):
    agent = tiny_agent()
    agent.save_pretrained(tmp_path / "tt")
    loaded = TrajectoryTransformerAgent.from_pretrained(tmp_path / "tt", beam_width=8)
    assert loaded.planner.beam_width == 8 and loaded.planner.horizon == 2
    with pytest.raises(TypeError, match="unknown planner settings"):
        TrajectoryTransformerAgent.from_pretrained(tmp_path / "tt", beam=8)
    for setting, message in (
        ({"horizon": 0}, "horizon must be an int >= 1, got 0"),
        ({"beam_width": -1}, "beam_width"),
        ({"max_context_transitions": 1}, "max_context_transitions"),
    ):
        with pytest.raises(ValueError, match=message):
            TrajectoryTransformerAgent.from_pretrained(tmp_path / "tt", **setting)
    # None: the model's whole block_size (the agent keeps enough transitions to fill it)
    whole = TrajectoryTransformerAgent.from_pretrained(
        tmp_path / "tt", max_context_transitions=None
    )
    assert whole.predict(np.zeros(3, np.float32))[0].shape == (1,)
    assert whole._ctx is not None and whole._ctx.context_len == 6  # block_size 36 / 6 tokens


# ---------------------------------------------------------------- foreign (transformers) format
@pytest.fixture
def hf_tt_folder(tmp_path):
    """A transformers TrajectoryTransformerModel folder (real config.json of a tiny model,
    random weights in transformers' layout, made without transformers)."""
    config = tt_tiny_config("pendulum")
    folder = tmp_path / "trajectory-transformer-pendulum-random-v2"
    return save_foreign(folder, config, foreign_tt_state_dict(config))


def test_foreign_checkpoint_without_discretizer_says_what_to_pass(hf_tt_folder):
    with pytest.raises(CheckpointError, match="do not store their discretizer.*dataset="):
        TrajectoryTransformerAgent.from_pretrained(hf_tt_folder, env_id="Pendulum-v1")


def test_foreign_checkpoint_with_minari_dataset(hf_tt_folder, tmp_path):
    from seqagents.data import collect_dataset

    collect_dataset(
        "local/pendulum/random-v0", "Pendulum-v1", "random", n_steps=400, progress_bar=False
    )
    agent = TrajectoryTransformerAgent.from_pretrained(
        hf_tt_folder,
        dataset="local/pendulum/random-v0",
        env_id="Pendulum-v1",
        horizon=2,
        beam_width=4,
        max_context_transitions=2,
        device="cpu",
    )
    assert agent.discretizer.n_columns == 6 and agent.env_id == "Pendulum-v1"
    assert rollout(agent, 3).shape == (3, 1)
    agent.save_pretrained(tmp_path / "native")  # converted: now self-contained
    agent.seed()  # restart the planning streams the first rollout drew from
    np.testing.assert_array_equal(rollout(load_agent(tmp_path / "native"), 3), rollout(agent, 3))


def test_foreign_checkpoint_from_hub_cache_with_mismatched_dataset(hf_tt_folder):
    from seqagents.data import collect_dataset

    seed_hub_cache(
        "CarlCochet/trajectory-transformer-halfcheetah-medium-v2",
        {
            "config.json": hf_tt_folder / "config.json",
            "pytorch_model.bin": hf_tt_folder / "pytorch_model.bin",
        },
    )
    collect_dataset(
        "local/cartpole/random-v0",
        "MountainCarContinuous-v0",
        "random",
        n_steps=300,
        progress_bar=False,
    )
    with pytest.raises(CheckpointError, match="dims 2/1, the checkpoint needs 3/1"):
        TrajectoryTransformerAgent.from_pretrained(
            "CarlCochet/trajectory-transformer-halfcheetah-medium-v2",
            dataset="local/cartpole/random-v0",
        )
    with pytest.raises(CheckpointError, match="does not exist"):
        TrajectoryTransformerAgent.from_pretrained(
            "CarlCochet/trajectory-transformer-halfcheetah-medium-v2", dataset="nope.hdf5"
        )


def test_training_lowers_the_loss_and_writes_a_loadable_checkpoint(tmp_path):
    import json as _json

    from seqagents.data import TrajectoryData
    from seqagents.training import train_tt

    rng = np.random.default_rng(0)
    n = 1200
    obs = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
    actions = np.tanh(obs[:, :1] * 2).astype(np.float32)  # a learnable action column
    data = TrajectoryData(
        observations=obs,
        actions=actions,
        rewards=obs[:, 0],
        terminals=np.zeros(n, bool),
        episode_starts=np.arange(0, n + 1, 100),
        observation_space=gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
        action_space=gym.spaces.Box(-1, 1, (1,), np.float32),
        dataset_id="synthetic",
    )
    agent = train_tt(
        data,
        env_id="Pendulum-v1",
        model_config={"n_layer": 1, "n_head": 2, "n_embd": 32, "dropout": 0.0},
        train_config={
            "steps": 150,
            "batch_size": 32,
            "warmup_steps": 10,
            "log_every": 10,
            "device": "cpu",
            "out_dir": str(tmp_path / "run"),
        },
        planner=PLANNER,
        n_bins=10,
        sequence_transitions=4,
        progress_bar=False,
    )
    records = [
        _json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    losses = [r["loss"] for r in records if r.get("loss") is not None]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    loaded = load_agent(tmp_path / "run" / "checkpoint")
    assert loaded.spec.training["steps"] == 150 and loaded.planner.horizon == 2
    np.testing.assert_array_equal(rollout(loaded, 3), rollout(agent, 3))


def test_cli_loads_a_transformers_tt_checkpoint_with_its_dataset(hf_tt_folder, capsys):
    """TT from the command line: --dataset rebuilds the discretizer of a foreign checkpoint
    (converted checkpoints act in [-1, 1]; Pendulum's [-2, 2] is then refused by the env
    check, which shows the agent was built)."""
    from seqagents.cli import main
    from seqagents.data import collect_dataset

    collect_dataset(
        "local/pendulum/random-v0", "Pendulum-v1", "random", n_steps=400, progress_bar=False
    )
    args = ["evaluate", str(hf_tt_folder), "--env", "Pendulum-v1", "--no-progress"]
    assert main(args) == 2  # without the data: one clear line that says what to pass
    assert "do not store their discretizer" in capsys.readouterr().err
    assert main([*args, "--dataset", "local/pendulum/random-v0"]) == 2
    err = capsys.readouterr().err
    assert "action bounds mismatch" in err and len(err.strip().splitlines()) == 1
    assert main(["info", str(hf_tt_folder), "--dataset", "local/pendulum/random-v0"]) == 0
    assert "TrajectoryTransformerAgent, tt" in capsys.readouterr().out
