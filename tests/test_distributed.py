"""Training under torchrun: 2 CPU processes (gloo) on a tiny zoo entry end with identical
weights, write one checkpoint from rank 0, lower the loss, and resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from seqagents import load_agent

ENTRY = """pendulum-random:
  algo: dt
  env_id: Pendulum-v1
  return_scale: 100.0
  model: {hidden_size: 16, n_layer: 1, context_len: 4, max_ep_len: 256}
  training: {batch_size: 16, learning_rate: 1.0e-3, warmup_steps: 2, log_every: 5}
  evaluation: {target_returns: [-150.0]}
  dataset:
    id: local/pendulum/random-v0
    collect: {policy: random, n_episodes: 4, n_envs: 2}
"""


def torchrun(*args: str, env: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", "-m", "seqagents", "train", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_two_cpu_processes_train_in_sync_and_resume(tmp_path, monkeypatch):
    pytest.importorskip("torch.distributed")
    from seqagents.cli import main

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "dt.yml").write_text(ENTRY)
    monkeypatch.setenv("SEQAGENTS_ZOO_DIR", str(zoo))
    assert main(["collect", "--zoo", "pendulum-random", "--no-progress"]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    common = ["pendulum-random", "--device", "cpu", "--out", str(run), "--no-progress"]
    out = torchrun(*common, "--steps", "40", env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("checkpoint:") == 1  # rank 0 alone reports

    report = json.loads((run / "distributed.json").read_text())
    assert report["world_size"] == 2 and report["step"] == 40
    assert len(report["weight_hashes"]) == 2 and len(set(report["weight_hashes"])) == 1
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 40 and records[-1]["loss"] < records[0]["loss"]
    agent = load_agent(run / "checkpoint")
    assert agent.spec.training["world_size"] == 2 and agent.spec.training["steps"] == 40
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint", "distributed.json", "metrics.jsonl", "trainer_state.pt"
    ]  # fmt: skip

    again = torchrun(*common, "--steps", "50", "--resume", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((run / "distributed.json").read_text())["step"] == 50
    assert load_agent(run / "checkpoint").spec.training["steps"] == 50


TT_ENTRY = """pendulum-random:
  algo: tt
  env_id: Pendulum-v1
  model: {n_layer: 1, n_head: 2, n_embd: 16}
  training: {batch_size: 8, learning_rate: 1.0e-3, warmup_steps: 2, log_every: 5,
             sequence_transitions: 3, n_bins: 10}
  inference:
    planner: {horizon: 2, beam_width: 4, max_context_transitions: 2}
  dataset:
    id: local/pendulum/random-v0
    collect: {policy: random, n_episodes: 4, n_envs: 2}
"""


def test_a_tiny_tt_trains_in_sync_under_torchrun(tmp_path, monkeypatch):
    """TT under torchrun as DT: both ranks end with identical weights, rank 0 writes one
    checkpoint (with its discretizer) that loads and plans."""
    pytest.importorskip("torch.distributed")
    import numpy as np

    from seqagents.cli import main

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "tt.yml").write_text(TT_ENTRY)
    monkeypatch.setenv("SEQAGENTS_ZOO_DIR", str(zoo))
    assert main(["collect", "--zoo", "pendulum-random", "--no-progress"]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    out = torchrun("tt/pendulum-random", "--device", "cpu", "--out", str(run), "--steps", "20",
                   "--no-progress", env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((run / "distributed.json").read_text())
    assert report["world_size"] == 2 and len(set(report["weight_hashes"])) == 1
    agent = load_agent(run / "checkpoint")
    assert agent.spec.training["world_size"] == 2 and agent.spec.training["steps"] == 20
    action, _ = agent.predict(np.zeros(3, np.float32))
    assert action.shape == (1,) and np.isfinite(action).all()
