"""Issue 29, reliability round 3: nothing lost, nothing trusted that should not be, every error
says what to do. One section per class of the issue; the data-loss and atomicity tests run real
processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
MINARI = "MINARI_DATASETS_PATH"  # set per test by conftest.py

TINY_ZOO = (
    "pendulum-random:\n"
    "  algo: dt\n"
    "  env_id: Pendulum-v1\n"
    "  return_scale: 100.0\n"
    "  model: {hidden_size: 16, n_layer: 1, n_head: 1, context_len: 4, max_ep_len: 256}\n"
    "  training: {batch_size: 8, warmup_steps: 2, log_every: 2, device: cpu}\n"
    "  evaluation: {target_returns: [-150.0]}\n"
    "  dataset:\n"
    "    id: local/pendulum/random-v0\n"
    "    collect: {policy: random, n_episodes: 2, n_envs: 2}\n"
)


def seqagents(*args: str, cwd: Path | None = None, env: dict | None = None, timeout=180):
    """``seqagents ARGS`` in a fresh process (this checkout's package)."""
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "MUJOCO_GL": "egl",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "seqagents.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=timeout,
    )


def one_error_line(result: subprocess.CompletedProcess, command: str, *parts: str) -> str:
    """Exit status 2 and one stderr line ``seqagents COMMAND: error: ...`` holding ``parts``."""
    err = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith(f"seqagents {command}: error: "), err
    for part in parts:
        assert part in err, err
    return err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# ------------------------------------------------------------------ 1. --force never loses data
@pytest.fixture
def tiny_zoo(tmp_path, monkeypatch):
    """A one-entry zoo (DT on random Pendulum data) and its collected dataset."""
    from seqagents.cli import main

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "dt.yml").write_text(TINY_ZOO)
    monkeypatch.setenv("SEQAGENTS_ZOO_DIR", str(zoo))
    assert main(["collect", "--zoo", "pendulum-random", "--no-progress"]) == 0
    return {"SEQAGENTS_ZOO_DIR": str(zoo), "MINARI_DATASETS_PATH": os.environ[MINARI]}


def test_force_with_a_misspelt_dataset_deletes_nothing_in_the_working_folder(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.tex").write_text("two years of work")
    (work / "data").mkdir()
    (work / "data" / "runs.csv").write_text("1,2,3")
    before = snapshot(work)
    result = seqagents(
        "train", "dt/halfcheetah-medium", "--dataset", "mujoco/halfcheetah/medum-v0",
        "--out", ".", "--force", cwd=work,
    )  # fmt: skip
    one_error_line(result, "train", "not a seqagents run folder", "thesis.tex")
    assert snapshot(work) == before


def test_force_refuses_a_folder_that_is_not_a_run_folder(tmp_path, tiny_zoo):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "metrics.jsonl").write_text("{}\n")  # looks like a run...
    (out / "notes.txt").write_text("...but holds a user's file")
    before = snapshot(out)
    result = seqagents(
        "train", "pendulum-random", "--steps", "2", "--out", str(out), "--force", env=tiny_zoo
    )
    one_error_line(result, "train", "not a seqagents run folder", "notes.txt")
    assert snapshot(out) == before


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--dataset", "local/pendulum/randm-v0"], "randm-v0"),
        (["--model", '{"n_layr": 2}'], "n_layr"),
        (["--model", '{"n_layer": "2"}'], "n_layer must be int"),
        (["--model", '{"n_layer": 0}'], "n_layer"),  # a range checked in the config itself
        (["--model", "{bad"], "--model is not valid JSON"),
    ],
)
def test_force_with_bad_input_keeps_the_previous_run(tmp_path, tiny_zoo, extra, message):
    from seqagents.cli import main

    out = tmp_path / "run"
    args = ["train", "pendulum-random", "--steps", "2", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    before = snapshot(out)
    result = seqagents(*args, "--force", *extra, env=tiny_zoo)
    one_error_line(result, "train", message)
    assert snapshot(out) == before


def test_force_replaces_a_previous_run_once_the_new_one_starts(tmp_path, tiny_zoo):
    from seqagents import load_agent
    from seqagents.cli import main

    out = tmp_path / "run"
    args = ["train", "pendulum-random", "--out", str(out), "--no-progress"]
    assert main([*args, "--steps", "4"]) == 0
    (out / "tensorboard").mkdir()
    (out / "tensorboard" / "events.out.tfevents.1.old").write_text("old")
    result = seqagents(*args, "--steps", "2", "--force", env=tiny_zoo)
    assert result.returncode == 0, result.stderr
    assert not (out / "tensorboard").exists()  # the old run is gone, not merged
    assert load_agent(out / "checkpoint").spec.training["steps"] == 2
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".run")] == []


def test_out_that_is_a_file_is_one_line(tmp_path, tiny_zoo):
    out = tmp_path / "file.txt"
    out.write_text("mine")
    result = seqagents("train", "pendulum-random", "--out", str(out), "--force", env=tiny_zoo)
    one_error_line(result, "train", "is not a folder")
    assert out.read_text() == "mine"
