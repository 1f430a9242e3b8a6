"""`seqagents train dt|tt|leap --dataset ...`: training on the user's own data from the CLI
(issue 28 item 1), with the trainers' defaults and the dataset's env unless --env says."""

from __future__ import annotations

import json

import pytest

from seqagents import load_agent
from seqagents.cli import main

TINY = {
    "dt": '{"hidden_size": 16, "n_layer": 1, "context_len": 4, "max_ep_len": 256}',
    "tt": '{"n_layer": 1, "n_head": 1, "n_embd": 16}',
    "leap": '{"hidden_size": 16, "n_layer": 1, "n_head": 1, "horizon": 2}',
}


@pytest.fixture
def pendulum_data(capsys):
    args = ["collect", "local/pendulum/random-v0", "--env", "Pendulum-v1", "--episodes", "2"]
    assert main([*args, "--no-progress", "--json"]) == 0
    capsys.readouterr()
    return "local/pendulum/random-v0"


@pytest.mark.parametrize("algo", ["dt", "tt"])
def test_train_an_algorithm_on_a_minari_dataset(algo, pendulum_data, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", algo, "--dataset", pendulum_data, "--steps", "3", "--batch-size", "4"]
    args += ["--device", "cpu", "--model", TINY[algo], "--out", str(out), "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    assert f"checkpoint: {out / 'checkpoint'}" in capsys.readouterr().out
    agent = load_agent(out / "checkpoint", device="cpu")
    assert agent.spec.algorithm == algo and agent.env_id == "Pendulum-v1"  # the dataset's env
    assert agent.spec.training["steps"] == 3
    config = json.loads((out / "checkpoint" / "config.json").read_text())
    train_config = config["training"]["train_config"]
    if algo == "tt":  # the trainer's own defaults where the command says nothing
        from seqagents.training.tt import TT_TRAIN_DEFAULTS

        assert train_config["learning_rate"] == TT_TRAIN_DEFAULTS["learning_rate"]
    else:
        from seqagents.training import TrainConfig

        assert train_config["learning_rate"] == TrainConfig().learning_rate
        assert agent.config.preprocessing.return_scale == 1000.0  # DT's default
    assert main(args) == 2  # the run folder exists: --resume or --force
    assert "--force" in capsys.readouterr().err


def test_train_leap_on_a_discrete_dataset_with_env_flag(tmp_path, capsys):
    args = ["collect", "local/cartpole/random-v0", "--env", "CartPole-v1", "--episodes", "3"]
    assert main([*args, "--no-progress"]) == 0
    out = tmp_path / "leap"
    args = ["train", "leap", "--dataset", "local/cartpole/random-v0", "--env", "CartPole-v1"]
    args += ["--steps", "2", "--batch-size", "4", "--device", "cpu", "--model", TINY["leap"]]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0, capsys.readouterr().err
    agent = load_agent(out / "checkpoint", device="cpu")
    assert agent.spec.algorithm == "leap" and agent.env_id == "CartPole-v1"


def test_train_an_algorithm_without_dataset_names_the_flag(capsys):
    assert main(["train", "dt", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "--dataset ID_OR_PATH" in err and "Traceback" not in err


def test_train_on_data_without_env_spec_names_env_flag(tmp_path, capsys, monkeypatch):
    """A dataset whose metadata names no env (here: one whose env spec is dropped) needs --env."""
    from seqagents.training import recipe

    real = recipe.load_training_data
    monkeypatch.setattr(recipe, "load_training_data", lambda *a: (real(*a)[0], None, {}))
    args = ["collect", "local/pendulum/random-v0", "--env", "Pendulum-v1", "--episodes", "1"]
    assert main([*args, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["train", "dt", "--dataset", "local/pendulum/random-v0", "--steps", "1"]) == 2
    assert "pass --env ENV_ID" in capsys.readouterr().err


def test_train_an_algorithm_with_a_wrong_model_key_is_one_line(pendulum_data, tmp_path, capsys):
    args = ["train", "dt", "--dataset", pendulum_data, "--model", '{"n_layers": 1}']
    assert main([*args, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seqagents train: error: ") and "n_layers" in err
    assert len(err.strip().splitlines()) == 1
