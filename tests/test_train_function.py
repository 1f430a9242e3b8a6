"""``seqagents.train``: the zoo entry -> algorithm dispatch that the CLI's ``train`` calls (its
plans are checked here without training; tests/test_training_golden.py trains)."""

from __future__ import annotations

import pytest

import seqagents
from seqagents.training.launch import TrainingPlan
from seqagents.zoo import get_entry


class _Planned(Exception):
    pass


def plan_training(entry_or_dataset, **options) -> TrainingPlan:
    """The plan ``seqagents.train`` hands to ``before_start``; nothing is trained."""

    def stop(plan: TrainingPlan) -> None:
        raise _Planned(plan)

    with pytest.raises(_Planned) as planned:
        seqagents.train(entry_or_dataset, before_start=stop, **options)
    return planned.value.args[0]


def test_a_dt_entry_plans_its_recipe_with_the_overrides_over_it():
    entry = get_entry("dt/halfcheetah-medium")
    plan = plan_training("dt/halfcheetah-medium", steps=5, eval_episodes=3, model={"n_layer": 1})
    assert plan.algo == "dt" and plan.trainer is seqagents.training.train_dt
    assert str(plan.out_dir) == "runs/dt-halfcheetah-medium" and plan.dataset == entry.dataset.id
    training = plan.kwargs["train_config"]
    assert training["steps"] == 5 and training["eval_episodes"] == 3
    assert training["learning_rate"] == entry.training["learning_rate"]
    assert training["eval_targets"] == list(entry.evaluation.target_returns)
    assert plan.kwargs["model_config"] == {**entry.model, "n_layer": 1}
    assert plan.kwargs["env_id"] == entry.env_id
    assert plan.kwargs["return_scale"] == entry.return_scale


def test_tt_entries_keep_their_token_settings_apart_and_do_not_evaluate():
    plan = plan_training("tt/halfcheetah-medium", eval_episodes=3, n_bins=50)
    assert plan.kwargs["n_bins"] == 50 and "n_bins" not in plan.kwargs["train_config"]
    assert "eval_episodes" not in plan.kwargs["train_config"]  # TT does not evaluate
    with pytest.raises(ValueError, match="return_scale is for dt and leap"):
        plan_training("tt/halfcheetah-medium", return_scale=10.0)


def test_wrong_calls_say_what_to_pass():
    with pytest.raises(ValueError, match=r"train dt needs dataset=\.\.\."):
        seqagents.train("dt")
    with pytest.raises(KeyError, match="unknown zoo entry"):
        seqagents.train("no-such-entry")
    with pytest.raises(ValueError, match="unknown model fields"):
        seqagents.train("dt/halfcheetah-medium", model={"n_layers": 2})
    with pytest.raises(ValueError, match="algo must be one of"):
        seqagents.train("local/x-v0", algo="ppo")


def test_an_algorithm_on_in_memory_data_plans_its_defaults(tmp_path):
    from tests.test_training import synthetic_data

    with pytest.raises(ValueError, match="needs algo="):
        plan_training(synthetic_data())
    with pytest.raises(ValueError, match=r"names no env.*env_id=\.\.\."):
        plan_training(synthetic_data(), algo="leap")
    plan = plan_training(synthetic_data(), algo="dt", env_id="Pendulum-v1", out_dir=tmp_path)
    assert plan.out_dir == tmp_path and plan.kwargs["env_kwargs"] == {}
    assert plan.kwargs["train_config"] == {"out_dir": str(tmp_path), "overwrite": False}
