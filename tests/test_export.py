"""Exported policies (issue 28 item 9): a DT policy written to TorchScript and ONNX, with its
normalization inside, run over a short rollout by plain torch / onnxruntime and a numpy window
(no seqagents), chooses the agent's actions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seqagents import load_agent
from seqagents.export import export_policy, read_export_metadata


class Window:
    """The numpy rolling window a user keeps for an exported policy (module docstring)."""

    def __init__(self, meta: dict, n_envs: int) -> None:
        K = meta["context_len"]
        action_shape = () if meta["discrete"] else tuple(meta["action_shape"])
        self.inputs = {
            "states": np.zeros((n_envs, K, *meta["observation_shape"]), np.float32),
            "actions": np.zeros(
                (n_envs, K, *action_shape), np.int64 if meta["discrete"] else np.float32
            ),
            "returns_to_go": np.zeros((n_envs, K), np.float32),
            "timesteps": np.zeros((n_envs, K), np.int64),
            "attention_mask": np.zeros((n_envs, K), bool),
        }

    def push(self, obs, rtg, t) -> dict:
        for value in self.inputs.values():  # shift left by one step
            value[:, :-1] = value[:, 1:].copy()
        new = {"states": obs, "actions": 0, "returns_to_go": rtg, "timesteps": t}
        for key, value in new.items():
            self.inputs[key][:, -1] = value
        self.inputs["attention_mask"][:, -1] = True
        return self.inputs

    def chose(self, actions) -> None:
        self.inputs["actions"][:, -1] = actions


def _runner(path):
    if path.suffix == ".onnx":
        ort = pytest.importorskip("onnxruntime")
        session = ort.InferenceSession(str(path))
        return lambda inputs: session.run(None, inputs)[0]
    module = torch.jit.load(str(path))
    return lambda inputs: module(*(torch.as_tensor(v) for v in inputs.values())).numpy()


def _compare(agent, path, env_fn, steps, n_envs=2, atol=1e-5):
    """Step ``n_envs`` envs with the agent's actions; the exported policy, fed the same
    observations and rewards through its window, must choose the same actions."""
    meta = read_export_metadata(path)
    run = _runner(path)
    envs = [env_fn() for _ in range(n_envs)]
    obs = np.stack([env.reset(seed=10 + i)[0] for i, env in enumerate(envs)])
    window, rtg = Window(meta, n_envs), np.full(n_envs, meta["target_return"], np.float32)
    agent.reset()
    rewards, worst = None, 0.0
    for t in range(steps):
        ours, _ = agent.predict(obs, reward=rewards, deterministic=True)
        theirs = run(window.push(obs, rtg, t))
        if meta["discrete"]:
            np.testing.assert_array_equal(theirs, ours)
        else:
            worst = max(worst, float(np.abs(theirs - ours).max()))
        window.chose(ours)
        steps_out = [env.step(a) for env, a in zip(envs, ours)]
        obs = np.stack([s[0] for s in steps_out])
        rewards = np.array([s[1] for s in steps_out], np.float32)
        rtg = rtg - rewards  # the agents' rule: rtg_t = rtg_{t-1} - r_{t-1}
        assert not any(s[2] or s[3] for s in steps_out)
    assert worst <= atol, worst
    return meta


@pytest.mark.parametrize("suffix", [".pt", ".onnx"])
def test_exported_halfcheetah_dt_matches_the_agent(suffix, tmp_path):
    if suffix == ".onnx":
        pytest.importorskip("onnx")  # the optional exporter deps (dev extra)
    agent = load_agent("dt/halfcheetah-medium", device="cpu")
    path = tmp_path / f"policy{suffix}"
    written = agent.export(path)
    meta = _compare(agent, path, agent.make_env, steps=agent.model_config.context_len + 6)
    assert meta == written
    assert meta["context_len"] == 20 and meta["target_return"] == agent.target_return
    assert meta["observation_shape"] == [17] and meta["action_shape"] == [6]
    assert meta["env_id"] == "HalfCheetah-v5" and not meta["discrete"]


def test_exported_atari_dt_matches_the_agent(tmp_path):
    """Discrete actions (argmax), uint8 frames, DT-Atari's global positions, ONNX."""
    pytest.importorskip("onnx")
    agent = load_agent("dt/breakout", device="cpu")
    path = tmp_path / "breakout.onnx"
    export_policy(agent, path)
    meta = _compare(agent, path, agent.make_env, steps=8, n_envs=1)
    assert meta["discrete"] and meta["n_actions"] == agent.action_space.n


def test_export_refuses_what_it_cannot_export(tmp_path):
    with pytest.raises(ValueError, match="suffix"):
        load_agent("dt/halfcheetah-medium", device="cpu").export(tmp_path / "p.zip")
    with pytest.raises(ValueError, match="LEAP's iterative refinement"):
        load_agent("leap/breakout", device="cpu").export(tmp_path / "p.onnx")
    with pytest.raises(ValueError, match="Box observations"):
        load_agent("dt/babyai-gotolocal-s7n5", device="cpu").export(tmp_path / "p.pt")
    assert not list(tmp_path.iterdir())


def test_torchscript_file_holds_its_metadata(tmp_path):
    agent = load_agent("dt/halfcheetah-medium", device="cpu")
    export_policy(agent, tmp_path / "p.pt", target_return=3000)
    extra = {"seqagents.json": ""}
    torch.jit.load(str(tmp_path / "p.pt"), _extra_files=extra)
    assert json.loads(extra["seqagents.json"])["target_return"] == 3000.0


def test_token_mask_is_the_causal_padding_mask():
    """The ONNX-friendly token mask (index comparisons) is the tril/eye one, bit for bit."""
    from seqagents.models.dt import DecisionTransformer

    steps = torch.rand(4, 6) > 0.4  # (B, K) random padding
    steps[:, -1] = True
    T = 3 * steps.shape[1]
    valid = steps.repeat_interleave(3, dim=1)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    expected = (causal & (valid[:, None, :] | torch.eye(T, dtype=torch.bool)))[:, None]
    assert torch.equal(DecisionTransformer.token_mask(steps), expected)
