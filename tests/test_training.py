"""Training loop and DT training: loss goes down, checkpoints load, seeds and resume reproduce."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqagents import DecisionTransformerAgent
from seqagents.data import TrajectoryData, collect_dataset
from seqagents.models.dt import DecisionTransformer, DTConfig
from seqagents.training import TrainConfig, Trainer, dt_loss, train_dt

TINY = {"hidden_size": 32, "n_layer": 1, "n_head": 1, "context_len": 5, "max_ep_len": 64}
PENDULUM_OBS = gym.spaces.Box(np.array([-1, -1, -8], np.float32), np.array([1, 1, 8], np.float32))
PENDULUM_ACT = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)


def synthetic_data(
    n_episodes: int = 8, length: int = 50, obs_dim: int = 3, seed: int = 0
) -> TrajectoryData:
    """Pendulum-shaped data whose action is a fixed function of the state (learnable)."""
    rng = np.random.default_rng(seed)
    n = n_episodes * length
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)  # (N, obs_dim)
    actions = np.tanh(1.5 * obs[:, :1] - obs[:, 2:3])  # (N, 1)
    obs_space = PENDULUM_OBS if obs_dim == 3 else gym.spaces.Box(-np.inf, np.inf, (obs_dim,))
    return TrajectoryData(
        observations=obs,
        actions=actions,
        rewards=-np.abs(actions[:, 0]),
        terminals=np.zeros(n, bool),
        episode_starts=np.arange(0, n + 1, length),
        observation_space=obs_space,
        action_space=PENDULUM_ACT,
    )


def config(tmp_path: Path, **overrides) -> dict:
    base = {
        "steps": 30,
        "batch_size": 16,
        "learning_rate": 1e-3,
        "warmup_steps": 10,
        "log_every": 1,
        "checkpoint_every": 0,
        "device": "cpu",
        "out_dir": str(tmp_path),
    }
    return {**base, **overrides}


def losses(out_dir: Path) -> list[float]:
    lines = (Path(out_dir) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines]


# ---------------------------------------------------------------------------- end to end
def test_train_dt_lowers_loss_saves_loadable_evaluable_checkpoint(tmp_path):
    from seqagents.evaluation import evaluate_policy

    steps = 300
    agent = train_dt(
        synthetic_data(),
        env_id="Pendulum-v1",
        model_config=TINY,
        train_config=config(
            tmp_path, steps=steps, eval_every=steps, eval_episodes=1, eval_targets=[-100.0]
        ),
        return_scale=100.0,
        target_returns=[-50.0, -100.0],
        progress_bar=False,
    )
    curve = losses(tmp_path)
    assert len(curve) == steps
    assert np.mean(curve[-20:]) < 0.2 * np.mean(curve[:20]), (curve[:20], curve[-20:])

    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"step", "loss", "lr", "grad_norm", "samples_per_s"} <= set(records[0])
    last_eval = records[-1]["eval"]
    assert last_eval["target_return"] == -100.0 and last_eval["n_episodes"] == 1
    assert last_eval["normalized_score"] is None  # Pendulum has no D4RL reference

    loaded = DecisionTransformerAgent.from_pretrained(tmp_path / "checkpoint", device="cpu")
    training, evaluation = loaded.spec.training, loaded.spec.evaluation
    assert training["steps"] == steps and training["seed"] == 0
    assert training["final_loss"] == pytest.approx(curve[-1])
    assert training["train_config"]["batch_size"] == 16
    assert evaluation["mean_return"] == last_eval["mean_return"]
    assert loaded.target_return == -50.0  # evaluation's targets did not leak into the checkpoint
    assert loaded.config.inference.target_returns == (-50.0, -100.0)
    assert loaded.env_id == "Pendulum-v1"
    for key, value in agent.network.state_dict().items():
        torch.testing.assert_close(loaded.network.state_dict()[key], value.cpu())

    env = gym.make("Pendulum-v1", max_episode_steps=20)
    returns, lengths = evaluate_policy(
        loaded, env, n_eval_episodes=2, seed=0, return_episode_rewards=True
    )
    assert lengths == [20, 20] and all(np.isfinite(returns))

    state = torch.load(tmp_path / "trainer_state.pt", weights_only=True)
    assert state["step"] == steps


def test_collected_dataset_gives_env_id_from_metadata(tmp_path):
    collect_dataset(
        "local/pendulum/tiny-v0", "Pendulum-v1", "random", n_steps=400, progress_bar=False
    )
    agent = train_dt(
        "local/pendulum/tiny-v0",
        model_config=TINY,
        train_config=config(tmp_path, steps=5),
        progress_bar=False,
    )
    assert agent.env_id == "Pendulum-v1"
    assert agent.spec.training["dataset_id"] == "local/pendulum/tiny-v0"
    assert agent.spec.training["n_transitions"] >= 400
    # default target: the best episode return of the data
    assert agent.target_return <= 0.0


# ---------------------------------------------------------------------------- reproducibility
def test_same_seed_same_losses_other_seed_differs(tmp_path):
    def run(name: str, seed: int) -> list[float]:
        train_dt(
            synthetic_data(),
            model_config=TINY,
            train_config=config(tmp_path / name, seed=seed),
            progress_bar=False,
        )
        return losses(tmp_path / name)

    first, again, other = run("a", 0), run("b", 0), run("c", 1)
    assert first == again
    assert first != other


def test_resume_gives_the_uninterrupted_run(tmp_path):
    full = train_dt(
        synthetic_data(),
        model_config=TINY,
        train_config=config(tmp_path / "full", steps=40),
        progress_bar=False,
    )
    train_dt(
        synthetic_data(),
        model_config=TINY,
        train_config=config(tmp_path / "split", steps=20),
        progress_bar=False,
    )
    resumed = train_dt(
        synthetic_data(),
        model_config=TINY,
        train_config=config(tmp_path / "split", steps=40),
        resume=True,
        progress_bar=False,
    )
    assert losses(tmp_path / "split") == pytest.approx(losses(tmp_path / "full"))
    for key, value in full.network.state_dict().items():
        torch.testing.assert_close(resumed.network.state_dict()[key], value)
    assert resumed.spec.training["steps"] == 40


def _toy_problem():
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Dropout(0.1), torch.nn.Linear(8, 1))

    def sample(batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        x = torch.as_tensor(rng.normal(size=(batch_size, 2)), dtype=torch.float32)
        return {"x": x, "y": x.sum(-1, keepdim=True)}

    def loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.mse_loss(model(batch["x"]), batch["y"])

    return net, loss, sample


def test_trainer_resumes_after_a_crash_and_cuts_the_log(tmp_path):
    torch.manual_seed(0)
    net, loss, sample = _toy_problem()
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    settings = TrainConfig(
        steps=40,
        batch_size=8,
        learning_rate=1e-2,
        warmup_steps=20,
        log_every=1,
        checkpoint_every=10,
        device="cpu",
        out_dir=str(tmp_path / "full"),
    )
    Trainer(net, loss, sample, settings, progress_bar=False).train()
    reference = losses(tmp_path / "full")
    final = {k: v.clone() for k, v in net.state_dict().items()}

    def crash(step: int) -> dict:
        raise KeyboardInterrupt  # killed during the evaluation at step 25

    net.load_state_dict(initial)
    crashing = TrainConfig(
        **{**settings.to_dict(), "out_dir": str(tmp_path / "crash"), "eval_every": 25}
    )
    with pytest.raises(KeyboardInterrupt):
        Trainer(net, loss, sample, crashing, evaluate=crash, progress_bar=False).train()
    assert len(losses(tmp_path / "crash")) == 24  # logged past the last save (step 20)

    net.load_state_dict(initial)  # the state file must bring the step-20 weights back
    resumed = TrainConfig(**{**crashing.to_dict(), "eval_every": 0})
    trainer = Trainer(net, loss, sample, resumed, progress_bar=False)
    trainer.train(resume=True)
    assert losses(tmp_path / "crash") == reference
    for key, value in final.items():
        torch.testing.assert_close(net.state_dict()[key], value)


def test_warmup_schedule_and_clipping(tmp_path):
    torch.manual_seed(0)
    net, loss, sample = _toy_problem()
    settings = TrainConfig(
        steps=12,
        batch_size=4,
        learning_rate=1e-2,
        warmup_steps=10,
        grad_clip=1e-3,
        log_every=1,
        device="cpu",
    )
    history = Trainer(net, loss, sample, settings, progress_bar=False).train()
    # LambdaLR min(1, (i + 1) / warmup) as the DT code: step i (0-based) uses lr * (i + 1) / 10.
    lrs = [record["lr"] for record in history]
    assert lrs == pytest.approx([1e-2 * min(1.0, (i + 1) / 10) for i in range(12)])
    assert all(record["grad_norm"] > 0 for record in history)
    assert not (tmp_path / "metrics.jsonl").exists()  # out_dir=None writes nothing


# ---------------------------------------------------------------------------- losses
@torch.no_grad()
def test_dt_loss_ignores_padding_and_handles_discrete():
    torch.manual_seed(0)
    net = DecisionTransformer(DTConfig(state_shape=(3,), act_dim=2, dropout=0.0, **TINY))
    mask = torch.tensor([[False, False, True, True, True]] * 4)  # (B, K): 2 padded slots
    batch = {
        "states": torch.randn(4, 5, 3),
        "actions": torch.rand(4, 5, 2),
        "returns_to_go": torch.randn(4, 5, 1),
        "timesteps": torch.arange(5).repeat(4, 1),
        "mask": mask,
    }
    loss = float(dt_loss(net, batch))
    pred = net(
        batch["states"], batch["actions"], batch["returns_to_go"], batch["timesteps"], mask
    ).action  # (B, K, 2)
    assert loss == pytest.approx(float(F.mse_loss(pred[:, 2:], batch["actions"][:, 2:])))
    batch["actions"][~mask] = 100.0  # padding values must not matter (hidden from attention)
    assert float(dt_loss(net, batch)) == pytest.approx(loss, rel=1e-5)

    batch["timesteps"][:, -1] = 10_000  # beyond max_ep_len=64: clamped, not an index error
    clamped = net(
        batch["states"],
        batch["actions"],
        batch["returns_to_go"],
        batch["timesteps"].clamp(max=63),
        mask,
    ).action
    expected = F.mse_loss(clamped[:, 2:], batch["actions"][:, 2:])
    assert float(dt_loss(net, batch)) == pytest.approx(float(expected), rel=1e-5)

    discrete = DecisionTransformer(
        DTConfig(state_shape=(3,), act_dim=4, discrete=True, dropout=0.0, **TINY)
    )
    batch["actions"] = torch.randint(0, 4, (4, 5))
    logits = discrete(
        batch["states"],
        batch["actions"],
        batch["returns_to_go"],
        batch["timesteps"].clamp(max=63),
        mask,
    ).action  # (B, K, 4)
    expected = F.cross_entropy(logits[mask], batch["actions"][mask])
    assert float(dt_loss(discrete, batch)) == pytest.approx(float(expected), rel=1e-5)


def test_bf16_autocast_runs(tmp_path):
    agent = train_dt(
        synthetic_data(n_episodes=2),
        model_config=TINY,
        train_config=config(tmp_path, steps=3, amp="bf16"),
        progress_bar=False,
    )
    assert np.isfinite(agent.spec.training["final_loss"])


def test_single_process_ddp(tmp_path):
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        agent = train_dt(
            synthetic_data(n_episodes=2),
            model_config=TINY,
            train_config=config(tmp_path / "run", steps=3),
            progress_bar=False,
        )
    finally:
        dist.destroy_process_group()
    assert agent.spec.training["world_size"] == 1
    assert len(losses(tmp_path / "run")) == 3


def test_docstring_examples():
    import seqagents.training.dt as dt_module
    import seqagents.training.launch as launch_module
    import seqagents.training.recipe as recipe_module
    import seqagents.training.run_folder as run_folder_module
    import seqagents.training.train_config as train_config_module
    import seqagents.training.trainer as trainer_module

    modules = (trainer_module, dt_module, train_config_module, run_folder_module, recipe_module)
    for module in (*modules, launch_module):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__


# ---------------------------------------------------------------------------- errors
def test_mismatched_spaces_name_both(tmp_path):
    with pytest.raises(ValueError, match=r"observation spaces differ.*shape=\(4,\).*Pendulum-v1"):
        train_dt(
            synthetic_data(obs_dim=4),
            env_id="Pendulum-v1",
            model_config=TINY,
            train_config=config(tmp_path),
            progress_bar=False,
        )
    with pytest.raises(ValueError, match=r"state_shape=\(7,\).*dataset has state_shape=\(3,\)"):
        train_dt(
            synthetic_data(),
            model_config={**TINY, "state_shape": [7]},
            train_config=config(tmp_path),
            progress_bar=False,
        )


def test_bad_configs_and_missing_data(tmp_path):
    with pytest.raises(ValueError, match=r"unknown TrainConfig keys \['stepz'\]"):
        train_dt(synthetic_data(), train_config={"stepz": 3}, progress_bar=False)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        TrainConfig(steps=0)
    assert TrainConfig.from_dict({"learning_rate": "1e-4"}).learning_rate == 1e-4  # YAML 1.1
    with pytest.raises(ValueError, match="amp must be one of"):
        TrainConfig(amp="fp16")
    with pytest.raises(ValueError, match="eval_every > 0 needs an env"):
        train_dt(
            synthetic_data(),
            model_config=TINY,
            train_config=config(tmp_path, eval_every=5),
            progress_bar=False,
        )
    with pytest.raises(FileNotFoundError, match="local/nothing-v0"):
        train_dt("local/nothing-v0", progress_bar=False)
    assert TrainConfig.from_dict(TrainConfig(eval_targets=[1, 2]).to_dict()) == TrainConfig(
        eval_targets=[1.0, 2.0]
    )


def test_tensorboard_logs_the_metrics_records(tmp_path):
    pytest.importorskip("tensorboard")
    import json

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_dt(
        synthetic_data(),
        model_config=TINY,
        train_config=config(tmp_path, steps=6, log_every=2, tensorboard=True),
        progress_bar=False,
    )
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [r["step"] for r in records] == [2, 4, 6]
    np.testing.assert_allclose([e.value for e in losses], [r["loss"] for r in records], rtol=1e-6)
    net, loss, sample = _toy_problem()
    with pytest.raises(ValueError, match="tensorboard needs an out_dir"):
        Trainer(net, loss, sample, TrainConfig(steps=2, tensorboard=True, device="cpu"))


def test_warmup_not_shorter_than_the_run_warns(caplog):
    import logging

    net, loss, sample = _toy_problem()
    with caplog.at_level(logging.WARNING, logger="seqagents.training.trainer"):
        Trainer(net, loss, sample, TrainConfig(steps=5, warmup_steps=5, device="cpu"))
    assert "warmup_steps 5 >= steps 5" in caplog.text
