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


# ------------------------------------------------------------------ 2. atomic checkpoint writes
SAVE_VERSION = """
import sys, torch
sys.path.insert(0, {root!r})
from tests.test_hardening_runtime import dt_agent

def version(agent, k):
    # one config field and one weight that change together
    agent.reset(target_return=float(k))
    with torch.no_grad():
        next(agent.network.parameters()).fill_(float(k))
    return agent
"""


def saved_version(folder: Path) -> tuple[float, float]:
    """(config's target return, the first weight) of the checkpoint in ``folder``."""
    from seqagents import load_agent

    agent = load_agent(folder, device="cpu")
    return agent.target_return, float(next(agent.network.parameters()).detach().flatten()[0])


def python(code: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, **kwargs
    )


def test_a_save_stopped_by_a_full_disk_leaves_the_old_checkpoint(tmp_path):
    folder = tmp_path / "ckpt"
    setup = SAVE_VERSION.format(root=str(ROOT))
    first = python(setup + f"version(dt_agent(), 1).save_pretrained({str(folder)!r})")
    assert first.returncode == 0, first.stderr
    before = snapshot(folder)
    # The new config fits under the limit, the weights do not (as a disk that fills up).
    limit = len(before["config.json"]) + 512
    assert len(before["model.safetensors"]) > limit
    second = python(
        setup
        + "import resource, signal\n"
        + "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill\n"
        + "agent = version(dt_agent(seed=1), 2)\n"
        + f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
        + f"agent.save_pretrained({str(folder)!r})\n"
    )
    assert second.returncode != 0 and "File too large" in second.stderr, second.stderr
    assert snapshot(folder) == before
    assert saved_version(folder) == (1.0, 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary folder left


def test_a_loader_racing_a_re_saver_never_sees_a_mix(tmp_path):
    folder = tmp_path / "ckpt"
    stop = tmp_path / "stop"
    writer_code = SAVE_VERSION.format(root=str(ROOT)) + (
        "import os\n"
        "agent, k = dt_agent(), 0\n"
        f"while not os.path.exists({str(stop)!r}):\n"
        f"    version(agent, k % 50).save_pretrained({str(folder)!r})\n"
        "    k += 1\n"
        "print(k)\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", writer_code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        import time

        while not (folder / "model.safetensors").exists():
            time.sleep(0.05)
        versions = [saved_version(folder) for _ in range(60)]
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert int(out) > 10  # the saves did overlap the loads
    mixed = [v for v in versions if v[0] != v[1]]
    assert not mixed, f"{len(mixed)} of {len(versions)} loads mixed two saves: {mixed[:3]}"
    assert len(set(versions)) > 1


def test_saving_never_writes_through_a_link_and_keeps_other_files(tmp_path):
    from tests.test_hardening_runtime import dt_agent

    folder = tmp_path / "ckpt"
    agent = dt_agent()
    agent.save_pretrained(folder)
    outside = tmp_path / "blob"
    outside.write_text("a file the link points to (a Hub cache blob)")
    (folder / "README.md").unlink()
    (folder / "README.md").symlink_to(outside)
    (folder / "metrics.jsonl").write_text("{}\n")  # a file save_pretrained does not write
    agent.save_pretrained(folder)
    assert outside.read_text() == "a file the link points to (a Hub cache blob)"
    assert not (folder / "README.md").is_symlink()
    assert "DecisionTransformerAgent" in (folder / "README.md").read_text()
    assert (folder / "metrics.jsonl").read_text() == "{}\n"
    # The checkpoint folder itself a link: replaced by a folder, its target left alone.
    (tmp_path / "link").symlink_to(folder)
    before = snapshot(folder)
    agent.save_pretrained(tmp_path / "link")
    assert snapshot(folder) == before and not (tmp_path / "link").is_symlink()
    assert saved_version(tmp_path / "link") == saved_version(folder)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_checkpoint_files_follow_the_umask(tmp_path, mask):
    from tests.test_hardening_runtime import dt_agent

    old = os.umask(mask)
    try:
        dt_agent().save_pretrained(tmp_path / "ckpt")
        dt_agent().save_pretrained(tmp_path / "ckpt")  # a re-save as well
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "ckpt").iterdir()}
    assert modes == dict.fromkeys(["README.md", "config.json", "model.safetensors"], 0o666 & ~mask)
    assert (tmp_path / "ckpt").stat().st_mode & 0o777 == 0o777 & ~mask


def test_saving_onto_a_file_is_an_error_and_keeps_it(tmp_path):
    from tests.test_hardening_runtime import dt_agent

    (tmp_path / "ckpt").write_text("mine")
    with pytest.raises(FileExistsError, match="is a file"):
        dt_agent().save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
