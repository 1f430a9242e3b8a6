"""Files and faults (issue 29): nothing lost, nothing trusted that should not be, every error says
what to do. One section per class of the issue; the data-loss and atomicity tests run real
processes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    """``seqagents ARGS`` through ``seqagents.cli.main`` in this process (faster than a new
    one where the process itself is not what is tested)."""
    from seqagents.cli import main

    capsys.readouterr()
    status = main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, status, captured.out, captured.err)


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


def test_force_refuses_a_folder_that_is_not_a_run_folder(tmp_path, tiny_zoo, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "metrics.jsonl").write_text("{}\n")  # looks like a run...
    (out / "notes.txt").write_text("...but holds a user's file")
    before = snapshot(out)
    result = in_process(
        capsys, "train", "pendulum-random", "--steps", "2", "--out", str(out), "--force"
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
def test_force_with_bad_input_keeps_the_previous_run(tmp_path, tiny_zoo, extra, message, capsys):
    from seqagents.cli import main

    out = tmp_path / "run"
    args = ["train", "pendulum-random", "--steps", "2", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    before = snapshot(out)
    result = in_process(capsys, *args, "--force", *extra)
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


def test_out_that_is_a_file_is_one_line(tmp_path, tiny_zoo, capsys):
    out = tmp_path / "file.txt"
    out.write_text("mine")
    result = in_process(capsys, "train", "pendulum-random", "--out", str(out), "--force")
    one_error_line(result, "train", "is not a folder")
    assert out.read_text() == "mine"


# ------------------------------------------------------------------ 2. atomic checkpoint writes
SAVE_VERSION = """
import sys, torch
sys.path.insert(0, {root!r})
from tests.test_agent_safeguards import dt_agent

def version(agent, k):
    # one config field and one weight that change together
    agent.target_return = float(k)  # the saved default (reset's target is the episode's)
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
    from tests.test_agent_safeguards import dt_agent

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
    from tests.test_agent_safeguards import dt_agent

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
    from tests.test_agent_safeguards import dt_agent

    (tmp_path / "ckpt").write_text("mine")
    with pytest.raises(FileExistsError, match="is a file"):
        dt_agent().save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


# ------------------------------------------------------------------ 3. partial or poisoned data
def atari_folder(folder: Path, games: int = 4, steps: int = 30) -> Path:
    """A small Atari dataset in the recorded format (no emulator): ``games`` games of ``steps``
    steps, one chunk per game."""
    import numpy as np

    from seqagents.data.atari_collect import AtariDatasetWriter

    rng = np.random.default_rng(0)
    writer = AtariDatasetWriter(folder, chunk_size=1, metadata={"n_actions": 4})
    for _ in range(games):
        rewards = rng.integers(0, 3, steps).astype(np.float32)
        writer.add_episode(
            rng.integers(0, 256, (steps, 84, 84), dtype=np.uint8),
            rng.integers(0, 4, steps),
            rewards,
            np.sign(rewards),
            terminated=True,
            truncated=False,
        )
    writer.close()
    return folder


def rewrite_chunk(chunk: Path, **changes) -> None:
    import numpy as np

    with np.load(chunk) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays.update(changes)
    np.savez_compressed(chunk, **arrays)


def test_atari_history_with_a_missing_chunk_names_it(tmp_path):
    from seqagents.data import load_atari_dataset

    folder = atari_folder(tmp_path / "breakout")
    assert load_atari_dataset(folder).n_episodes == 4
    (folder / "chunk_00002.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of its 4 chunks are missing \(chunk_00002"):
        load_atari_dataset(folder)


def test_atari_history_in_the_cli_missing_chunk_is_one_line(tmp_path, tiny_zoo, capsys):
    folder = atari_folder(tmp_path / "breakout")
    (folder / "chunk_00003.npz").unlink()  # the last one: nothing else tells it is gone
    result = in_process(
        capsys, "train", "pendulum-random", "--dataset", str(folder), "--out",
        str(tmp_path / "run"),
    )  # fmt: skip
    one_error_line(result, "train", "chunk_00003.npz")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "case, match",
    [
        ("nan reward", r"chunk_00001.npz: rewards hold NaN or inf \(game 1"),
        ("inf clipped", r"chunk_00002.npz: clipped_rewards hold NaN or inf \(game 2"),
        ("float frames", r"chunk_00001.npz: frames are float32"),
        ("truncated file", r"chunk_00001.npz is not a readable .npz chunk"),
        ("no metadata", r"metadata.json is missing: the recording did not finish"),
        ("extra chunk", r"chunk_00007.npz are not among the 4 chunks"),
        ("count mismatch", r"hold 4 episodes but metadata.json says 5"),
        ("action range", r"actions range over \[0, 9\] but the game has 4 actions"),
        ("metadata fifo", r"metadata.json is a FIFO"),
    ],
)
def test_atari_history_faults_name_the_file(tmp_path, case, match):
    import numpy as np

    from seqagents.data import load_atari_dataset

    folder = atari_folder(tmp_path / "game")
    chunk = {i: folder / f"chunk_{i:05d}.npz" for i in range(4)}
    if case == "nan reward":
        rewrite_chunk(chunk[1], rewards=np.full(30, np.nan, np.float32))
    elif case == "inf clipped":
        rewrite_chunk(chunk[2], clipped_rewards=np.full(30, np.inf, np.float32))
    elif case == "float frames":
        rewrite_chunk(chunk[1], frames=np.full((30, 84, 84), 0.5, np.float32))
    elif case == "truncated file":
        chunk[1].write_bytes(chunk[1].read_bytes()[:1000])
    elif case == "no metadata":
        (folder / "metadata.json").unlink()
    elif case == "extra chunk":
        (folder / "chunk_00007.npz").write_bytes(chunk[0].read_bytes())
    elif case == "count mismatch":
        meta = json.loads((folder / "metadata.json").read_text())
        (folder / "metadata.json").write_text(json.dumps({**meta, "n_episodes": 5}))
    elif case == "action range":
        rewrite_chunk(chunk[3], actions=np.full(30, 9, np.int16))
    elif case == "metadata fifo":
        (folder / "metadata.json").unlink()
        os.mkfifo(folder / "metadata.json")
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        load_atari_dataset(folder)


def minari_with(tmp_path, monkeypatch, poison) -> str:
    """A local 3-episode Minari dataset on Pendulum spaces; ``poison(episode_arrays)`` edits
    episode 1."""
    import gymnasium as gym
    import minari
    import numpy as np
    from minari.data_collector import EpisodeBuffer

    monkeypatch.setenv(MINARI, str(tmp_path / "minari"))
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(0)
    episodes = []
    for i in range(3):
        arrays = {
            "observations": rng.normal(size=(11, 3)).astype(np.float32),
            "actions": rng.uniform(-2, 2, size=(10, 1)).astype(np.float32),
            "rewards": rng.normal(size=10),
        }
        if i == 1:
            poison(arrays)
        episodes.append(
            EpisodeBuffer(
                id=i, **{k: list(v) for k, v in arrays.items()},
                terminations=[False] * 10, truncations=[False] * 9 + [True],
            )
        )  # fmt: skip
    minari.create_dataset_from_buffers(
        "local/poisoned-v0", episodes, observation_space=env.observation_space,
        action_space=env.action_space, algorithm_name="none", author="test",
        code_permalink="none", author_email="none", description="test",
    )  # fmt: skip
    return "local/poisoned-v0"


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    "name, value",
    [("observations", float("nan")), ("actions", float("inf")), ("rewards", float("-inf"))],
)
def test_minari_dataset_with_nan_or_inf_names_the_episode(tmp_path, monkeypatch, name, value):
    from seqagents.data import load_trajectories

    def poison(arrays):
        arrays[name][4] = value

    dataset = minari_with(tmp_path, monkeypatch, poison)
    with pytest.raises(ValueError, match=rf"'local/poisoned-v0', episode 1: {name} hold NaN"):
        load_trajectories(dataset)


def test_in_memory_data_with_nan_or_overflow_names_the_episode():
    import gymnasium as gym
    import numpy as np

    from seqagents.data import TrajectoryData

    space = gym.spaces.Box(-np.inf, np.inf, (2,))
    observations = np.zeros((6, 2))
    observations[4, 1] = 1e39  # inf once cast to float32
    with pytest.raises(ValueError, match=r"observations hold NaN or inf .* episode 1 \(its step 1"):
        TrajectoryData(
            observations, np.zeros((6, 2)), np.zeros(6), np.zeros(6, bool), np.array([0, 3, 6]),
            space, space,
        )  # fmt: skip


@pytest.mark.parametrize(
    "image, match", [(0.5, "non-integer values"), (300, r"range over \[0, 300\]")]
)
def test_babyai_data_with_float_or_out_of_range_codes_is_an_error(image, match):
    import gymnasium as gym
    import numpy as np

    from seqagents.data import TrajectoryData

    codes = np.zeros((4, 7, 7, 3))
    codes[2, 0, 0, 0] = image
    observations = {"image": codes, "direction": np.zeros(4), "mission": ["go to the key"] * 4}
    space = gym.spaces.Dict(
        image=gym.spaces.Box(0, 255, (7, 7, 3), np.uint8),
        direction=gym.spaces.Discrete(4),
        mission=gym.spaces.Text(100),
    )
    with pytest.raises(ValueError, match=match):
        TrajectoryData(
            observations, np.zeros(4, int), np.zeros(4), np.zeros(4, bool), np.array([0, 4]),
            space, gym.spaces.Discrete(3),
        )  # fmt: skip


# ------------------------------------------------------------------ 4. untrusted files
PAYLOAD = "payload_ran"


def evil_sb3_zip(tmp_path: Path) -> Path:
    """A SAC zip whose pickled policy kwargs run code when loaded (writes a marker file)."""
    import base64
    import zipfile

    import gymnasium as gym
    from stable_baselines3 import SAC

    path = tmp_path / "sac.zip"
    SAC("MlpPolicy", gym.make("Pendulum-v1"), policy_kwargs={"net_arch": [8]}).save(path)
    marker = tmp_path / PAYLOAD

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    import cloudpickle

    evil = base64.b64encode(cloudpickle.dumps(Payload())).decode()
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"])
    data["policy_kwargs"][":serialized:"] = evil
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def test_collect_refuses_an_sb3_zip_without_the_trust_flag(tmp_path):
    from seqagents.data import collect_dataset

    policy = evil_sb3_zip(tmp_path)
    result = seqagents(
        "collect", "local/pendulum/sac-v0", "--env", "Pendulum-v1", "--policy", f"sac:{policy}",
        "--episodes", "1", "--no-progress", env={MINARI: str(tmp_path / "minari")},
    )  # fmt: skip
    one_error_line(result, "collect", "pickled Python objects", "--trust-policy-file")
    assert not (tmp_path / PAYLOAD).exists()
    with pytest.raises(PermissionError, match="trust_policy_file=True"):
        collect_dataset("local/x-v0", "Pendulum-v1", str(policy), n_episodes=1)
    assert not (tmp_path / PAYLOAD).exists()
    # With the flag the file is loaded: the user vouched for it (and here its payload runs).
    with contextlib.suppress(Exception):
        collect_dataset(
            "local/x-v0", "Pendulum-v1", f"sac:{policy}", n_episodes=1, max_episode_steps=2,
            trust_policy_file=True, progress_bar=False,
        )  # fmt: skip
    assert (tmp_path / PAYLOAD).exists()


def test_a_checkpoint_env_id_never_imports_a_module(tmp_path, monkeypatch, capsys):
    from seqagents import load_agent
    from tests.test_agent_safeguards import dt_agent
    from tests.test_input_errors import edit_config

    (tmp_path / "evil_module.py").write_text(f"open({str(tmp_path / PAYLOAD)!r}, 'w')\n")
    folder = tmp_path / "ckpt"
    dt_agent().save_pretrained(folder)
    edit_config(folder, lambda c: c.__setitem__("env_id", "evil_module:Pendulum-v1"))
    agent = load_agent(folder)
    with pytest.raises(ValueError, match="would make gymnasium import the module 'evil_module'"):
        agent.make_env()
    monkeypatch.syspath_prepend(str(tmp_path))  # importable: it would run if imported
    for command in ("evaluate", "record"):
        extra = ["--video", str(tmp_path / "x.gif")] if command == "record" else []
        result = in_process(capsys, command, str(folder), "--episodes", "1", *extra)
        one_error_line(result, command, "never imports a module named in a file")
    assert not (tmp_path / PAYLOAD).exists()


@pytest.mark.parametrize(
    "section, key, value, match",
    [
        ("model", "n_layer", 1_000_000, r"DTConfig.n_layer is 1,000,000, above the limit 256"),
        ("model", "hidden_size", 10**6, r"hidden_size is 1,000,000, above the limit"),
        ("model", "context_len", 10**7, r"context_len is 10,000,000, above the limit"),
        ("model", "max_ep_len", 10**9, r"max_ep_len is 1,000,000,000, above the limit"),
        # Each size within its bound, the network too large: counted before allocation.
        ("model", "state_shape", [10**8], r"network of [\d,]+ parameters, above the limit"),
        ("model", "hidden_size", 65_536, r"network of [\d,]+ parameters, above the limit"),
    ],
)
def test_oversized_configs_fail_before_allocation(tmp_path, section, key, value, match):
    import resource

    from seqagents import CheckpointError, load_agent
    from tests.test_agent_safeguards import dt_agent
    from tests.test_input_errors import edit_config

    folder = tmp_path / "ckpt"
    dt_agent().save_pretrained(folder)
    edit_config(folder, lambda c: c[section].__setitem__(key, value))
    if key == "state_shape":
        edit_config(folder, lambda c: c["observation_space"].__setitem__("shape", value))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match=match):
        load_agent(folder)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000  # KiB


def test_a_fifo_as_config_does_not_hang_load_agent_or_info(tmp_path):
    from seqagents import CheckpointError, load_agent
    from tests.test_agent_safeguards import dt_agent

    folder = tmp_path / "ckpt"
    dt_agent().save_pretrained(folder)
    (folder / "config.json").unlink()
    os.mkfifo(folder / "config.json")
    with pytest.raises(CheckpointError, match=r"config.json is a FIFO \(named pipe\)"):
        load_agent(folder)
    result = seqagents("info", str(folder), timeout=60)
    one_error_line(result, "info", "config.json is a FIFO")


@pytest.mark.parametrize("dtype", ["int8", "bool", "int64"])
def test_integer_weights_are_a_checkpoint_error(tmp_path, dtype):
    import torch
    from safetensors.torch import load_file, save_file

    from seqagents import CheckpointError, load_agent
    from tests.test_agent_safeguards import dt_agent

    folder = tmp_path / "ckpt"
    dt_agent().save_pretrained(folder)
    state = load_file(folder / "model.safetensors")
    name = sorted(state)[0]
    state[name] = state[name].to(getattr(torch, dtype))
    save_file(state, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match=rf"{name}: torch.{dtype} \(expected torch.float32"):
        load_agent(folder)


def test_half_precision_weights_still_load(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from seqagents import load_agent
    from tests.test_agent_safeguards import dt_agent

    folder = tmp_path / "ckpt"
    dt_agent().save_pretrained(folder)
    state = load_file(folder / "model.safetensors")
    save_file({k: v.half() for k, v in state.items()}, folder / "model.safetensors")
    assert next(load_agent(folder).network.parameters()).dtype == torch.float32


# ------------------------------------------------------------------ 5. inputs outside the space
@pytest.mark.parametrize(
    "frames, match",
    [
        ("scaled", r"dtype float32; this agent expects uint8 values in \[0, 255\]"),
        ("float64 pixels", r"dtype float64; this agent expects uint8 values in \[0, 255\]"),
        ("int 300", r"values range over \[0, 300\]; this agent expects uint8 values in \[0, 255"),
        ("int -1", r"values range over \[-1, 2\]"),
    ],
)
def test_atari_frames_outside_uint8_0_255_are_an_error(frames, match):
    import numpy as np

    from tests.test_observations import _atari_agent

    agent = _atari_agent()
    pixels = np.random.default_rng(0).integers(0, 255, (4, 84, 84), dtype=np.uint8)
    given = {
        "scaled": (pixels / 255.0).astype(np.float32),
        "float64 pixels": pixels.astype(np.float64),
        "int 300": np.where(pixels > 250, 300, pixels.astype(np.int64)),
        "int -1": np.minimum(pixels, 3).astype(np.int16) - 1,
    }[frames]
    with pytest.raises(ValueError, match=match):
        agent.predict(given)
    assert agent.n_envs == 0  # nothing stored
    # Integer frames within the bounds act exactly as their uint8 copy.
    same = _atari_agent()
    assert agent.predict(pixels.astype(np.int64))[0] == same.predict(pixels)[0]


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda o: o.update(image=o["image"] / 10.0), r"image has dtype float64; expected"),
        (lambda o: o.update(image=o["image"].astype(np.float32)), r"image has dtype float32"),
        (lambda o: o["image"].__setitem__((0, 0, 0), 11), r"object code 11; object codes are 0-10"),
        (lambda o: o["image"].__setitem__((0, 0, 1), 6), r"colour code 6; colour codes are 0-5"),
        (lambda o: o["image"].__setitem__((0, 0, 2), 4), r"state code 4; state codes are 0-3"),
        (lambda o: o.update(direction=1.5), r"direction has dtype float64"),
        (lambda o: o.update(direction=4), r"direction \[4\] is out of range; expected 0-3"),
    ],
)
@pytest.mark.parametrize("algo", ["dt", "leap"])
def test_babyai_observations_outside_the_codes_are_an_error(algo, edit, match):
    from seqagents import DecisionTransformerAgent, LEAPAgent, make_env
    from tests.test_observations import LEVEL, _babyai_agent

    env = make_env(LEVEL)
    agent = _babyai_agent({"dt": DecisionTransformerAgent, "leap": LEAPAgent}[algo], env)
    obs, _ = env.reset(seed=0)
    obs = {**obs, "image": obs["image"].copy()}
    edit(obs)
    with pytest.raises(ValueError, match=match):
        agent.predict(obs)


@pytest.mark.parametrize("target", [float("nan"), float("inf"), -float("inf"), "many"])
def test_non_finite_target_return_is_a_clear_error(tmp_path, target):
    import gymnasium as gym

    from seqagents import CheckpointError, evaluate_policy, load_agent
    from tests.test_agent_safeguards import dt_agent
    from tests.test_input_errors import edit_config

    agent = dt_agent()
    with pytest.raises(ValueError, match="target_return must be a finite number"):
        agent.reset(target_return=target)
    with pytest.raises(ValueError, match="target_return must be a finite number"):
        evaluate_policy(agent, gym.make("Pendulum-v1"), n_eval_episodes=1, target_return=target)
    assert agent.target_return == -300.0  # unchanged
    agent.save_pretrained(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="target_return must be a finite number"):
        load_agent(tmp_path / "ckpt", target_return=target)
    if isinstance(target, float) and target != target:  # NaN in the file (JSON writes NaN)
        edit_config(
            tmp_path / "ckpt", lambda c: c["inference"].__setitem__("target_return", target)
        )
        with pytest.raises(CheckpointError, match="inference.target_return must be a finite"):
            load_agent(tmp_path / "ckpt")


# ------------------------------------------------------------------ 6. one agent, two threads
def in_thread(function, *args):
    """``function(*args)`` in a new thread: its result, or the exception it raised."""
    import threading

    out: list = []

    def run():
        try:
            out.append(function(*args))
        except Exception as e:  # noqa: BLE001 - handed back to the test
            out.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    return out[0]


@pytest.mark.parametrize("algo", ["dt", "tt", "leap"])
def test_a_second_thread_on_live_contexts_is_a_clear_error(algo):
    import copy

    import gymnasium as gym

    from tests.test_agent_safeguards import dt_agent, leap_agent, tt_agent

    agent = {"dt": dt_agent, "tt": tt_agent, "leap": leap_agent}[algo]()
    env = gym.make("CartPole-v1" if algo == "leap" else "Pendulum-v1")
    obs, _ = env.reset(seed=0)
    agent.predict(obs)  # this thread's episode is in the contexts
    error = in_thread(agent.predict, obs)
    assert isinstance(error, RuntimeError), error
    assert "another thread" in str(error) and "copy.deepcopy(agent)" in str(error)
    assert isinstance(in_thread(agent.observe, 0.0, False), RuntimeError)
    # This thread's episode goes on untouched.
    agent.predict(obs, reward=0.0)
    assert agent._t.tolist() == [2]
    # A copy per thread works; after reset() another thread may take the agent over.
    twin = copy.deepcopy(agent)
    result = in_thread(lambda: twin.predict(obs, reward=0.0))
    assert not isinstance(result, Exception), result
    agent.reset()
    assert not isinstance(in_thread(agent.predict, obs), Exception)
    with pytest.raises(RuntimeError, match="another thread"):  # now the other thread's
        agent.predict(obs)


def test_two_threads_looping_on_one_agent_fail_instead_of_mixing():
    import threading

    import gymnasium as gym

    from tests.test_agent_safeguards import dt_agent

    agent = dt_agent()
    errors: list[Exception] = []
    start = threading.Barrier(2)

    def loop(seed: int) -> None:
        env = gym.make("Pendulum-v1")
        obs, _ = env.reset(seed=seed)
        reward = None
        start.wait()
        try:
            for _ in range(50):
                action, _ = agent.predict(obs, reward=reward)
                obs, reward, *_ = env.step(action)
        except RuntimeError as e:
            errors.append(e)

    threads = [threading.Thread(target=loop, args=(seed,)) for seed in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(errors) == 1 and "another thread" in str(errors[0])


# ------------------------------------------------------------------ 7. one line, not a traceback
def corrupt(path: Path, keep: int = 100) -> None:
    """Truncate a file to its first ``keep`` bytes, as a transfer cut short."""
    path.write_bytes(path.read_bytes()[:keep])


def test_corrupt_files_are_one_line_in_a_real_process(tmp_path, tiny_zoo):
    import shutil

    from seqagents.cli import main

    run = tmp_path / "run"
    assert main(["train", "pendulum-random", "--steps", "2", "--out", str(run)]) == 0
    # A Minari dataset whose HDF5 file is cut short.
    minari = Path(tiny_zoo[MINARI]) / "local" / "pendulum"
    shutil.copytree(minari / "random-v0", minari / "cut-v0")
    corrupt(next((minari / "cut-v0" / "data").glob("*.hdf5")))
    result = seqagents(
        "train", "pendulum-random", "--dataset", "local/pendulum/cut-v0", "--out",
        str(tmp_path / "other"), env=tiny_zoo,
    )  # fmt: skip
    one_error_line(result, "train", "cut-v0", "corrupt or truncated")
    # A trainer state cut short, on --resume.
    corrupt(run / "trainer_state.pt", 500)
    result = seqagents("train", "pendulum-random", "--out", str(run), "--resume", env=tiny_zoo)
    one_error_line(result, "train", "trainer_state.pt cannot be read", "corrupt or truncated")
    # A zoo file that is not YAML.
    zoo = Path(tiny_zoo["SEQAGENTS_ZOO_DIR"])
    (zoo / "dt.yml").write_text(TINY_ZOO + "broken: [\n")
    one_error_line(seqagents("zoo", env=tiny_zoo), "zoo", "dt.yml is not valid YAML", "line")


def test_user_caused_errors_are_one_line(tmp_path, tiny_zoo, capsys):
    from seqagents.cli import main

    def error_of(*argv: str) -> str:
        status = main(list(argv))
        err = capsys.readouterr().err.strip()
        assert status == 2 and "Traceback" not in err, err
        line = err.splitlines()[-1]  # after warnings, if any
        assert line.startswith(f"seqagents {argv[0]}: error: "), err
        return line

    run = tmp_path / "run"
    assert main(["train", "pendulum-random", "--steps", "2", "--out", str(run)]) == 0
    capsys.readouterr()
    # An --out under a file: the OSError names the path.
    assert "/dev/null/x: Not a directory" in error_of(
        "train", "pendulum-random", "--steps", "2", "--out", "/dev/null/x"
    )
    # An existing dataset id (FileExistsError with a message of its own).
    assert "already exists" in error_of(
        "collect", "local/pendulum/random-v0", "--env", "Pendulum-v1", "--episodes", "1"
    )
    # A metrics log that is not JSON lines, on --resume.
    (run / "metrics.jsonl").write_text("garbage\n")
    assert "metrics.jsonl is not a metrics log" in error_of(
        "train", "pendulum-random", "--steps", "3", "--out", str(run), "--resume"
    )
    # Not a zip at all, given as a trusted policy.
    (tmp_path / "bad.zip").write_text("not a zip")
    assert "bad.zip" in error_of(
        "collect", "local/x-v0", "--env", "Pendulum-v1", "--policy", f"sac:{tmp_path}/bad.zip",
        "--trust-policy-file", "--episodes", "1",
    )  # fmt: skip
    # A checkpoint whose config.json is a folder.
    (tmp_path / "ckpt" / "config.json").mkdir(parents=True)
    assert "config.json is a folder" in error_of("info", str(tmp_path / "ckpt"))


@pytest.mark.parametrize("case", ["default float64", "half", "bfloat16", "double"])
@pytest.mark.parametrize("algo", ["dt", "tt", "leap"])
def test_float_dtypes_act_or_say_what_to_do(tmp_path, algo, case):
    import gymnasium as gym
    import torch

    from seqagents import evaluate_policy, load_agent
    from tests.test_agent_safeguards import dt_agent, leap_agent, tt_agent

    make = {"dt": dt_agent, "tt": tt_agent, "leap": leap_agent}[algo]
    env = gym.make("CartPole-v1" if algo == "leap" else "Pendulum-v1")
    make().save_pretrained(tmp_path / "ckpt")
    if case == "default float64":  # built, loaded and run under another default dtype
        try:
            torch.set_default_dtype(torch.float64)
            for agent in (make(), load_agent(tmp_path / "ckpt")):
                evaluate_policy(agent, env, n_eval_episodes=1, max_episode_steps=3)
        finally:
            torch.set_default_dtype(torch.float32)
        return
    agent = load_agent(tmp_path / "ckpt")
    agent.network.to({"half": torch.float16, "bfloat16": torch.bfloat16}.get(case, torch.float64))
    with pytest.raises(ValueError, match=r"compute in torch.float32.*agent.network.float\(\)"):
        evaluate_policy(agent, env, n_eval_episodes=1, max_episode_steps=3)
    agent.network.float()
    evaluate_policy(agent, env, n_eval_episodes=1, max_episode_steps=3)


# ------------------------------------------------------------------ 8. a resumed run's record
@pytest.mark.parametrize("algo", ["dt", "leap"])
def test_an_interrupted_and_resumed_run_records_what_the_whole_run_does(tmp_path, algo):
    """Killed right after the step-6 save (between two records: log_every 4), resumed: the same
    metrics records and the same training.final_loss in the checkpoint as the run without a
    break, not averages that restart at the resumption."""
    import torch

    from seqagents import load_agent
    from seqagents.training import train_dt, train_leap
    from seqagents.training.trainer import Trainer
    from tests.test_training import TINY, config, synthetic_data

    def train(name: str, **kwargs):
        settings = config(tmp_path / name, steps=10, log_every=4, checkpoint_every=3)
        if algo == "dt":
            return train_dt(
                synthetic_data(), model_config=TINY, train_config=settings, progress_bar=False,
                **kwargs,
            )  # fmt: skip
        import gymnasium as gym

        from tests.test_training import synthetic_data as make

        data = make()
        data.action_space = gym.spaces.Discrete(3)
        data.actions = (np.abs(data.observations[:, 0]) * 3).astype(np.int64).clip(0, 2)
        leap_model = {"hidden_size": 32, "n_layer": 1, "n_head": 2, "horizon": 2}
        return train_leap(
            data, model_config=leap_model, train_config=settings, progress_bar=False, **kwargs
        )

    whole = train("whole")
    save = Trainer._save

    def save_then_die(self):
        save(self)
        if self.step == 6:
            raise KeyboardInterrupt  # the process is killed once the step-6 state is on disk

    Trainer._save = save_then_die
    try:
        with pytest.raises(KeyboardInterrupt):
            train("broken")
    finally:
        Trainer._save = save
    resumed = train("broken", resume=True)

    def records(name: str) -> list[dict]:
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [
            {k: json.loads(line)[k] for k in ("step", "loss", "lr", "grad_norm")} for line in lines
        ]

    assert records("broken") == records("whole")
    assert [r["step"] for r in records("whole")] == [4, 8, 10]
    final = [
        load_agent(tmp_path / name / "checkpoint").spec.training["final_loss"]
        for name in ("whole", "broken")
    ]
    assert final[0] == final[1] == records("whole")[-1]["loss"]
    for key, value in whole.network.state_dict().items():
        torch.testing.assert_close(resumed.network.state_dict()[key], value, rtol=0, atol=0)


# ------------------------------------------------------------------ 9. samples, not replicas
class SameEpisodeEnv:
    """Every episode the same: observations depend on the step only (whatever the seed), so
    differences between episodes come from the agent. Logs each episode's actions."""

    def __new__(cls, discrete: bool, length: int = 12):
        import gymnasium as gym

        class Env(gym.Env):
            def __init__(self):
                like = gym.make("CartPole-v1" if discrete else "Pendulum-v1")  # its spaces
                self.observation_space, self.action_space = (
                    like.observation_space,
                    like.action_space,
                )
                self.episodes: list[list[float]] = []

            def reset(self, *, seed=None, options=None):
                super().reset(seed=seed)
                self.t = 0
                self.episodes.append([])
                return self._obs(), {}

            def step(self, action):
                self.episodes[-1].append(float(np.asarray(action).reshape(-1)[0]))
                self.t += 1
                return self._obs(), float(np.asarray(action).sum()), False, self.t >= length, {}

            def _obs(self):
                values = [np.sin(self.t), np.cos(self.t), self.t / 10, 0.0]
                return np.array(values[: self.observation_space.shape[0]], np.float32)

        return Env()


@pytest.mark.parametrize("algo", ["leap", "leap-gibbs", "tt", "dt"])
def test_sampled_episodes_are_samples_and_a_seed_repeats_them(algo):
    from seqagents import evaluate_policy
    from tests.test_agent_safeguards import leap_agent, tt_agent

    def agent_for(env):
        if algo.startswith("leap"):
            agent = leap_agent()
            if algo == "leap-gibbs":
                agent.planner = agent.planner.replace(mode="gibbs")
            return agent
        if algo == "tt":
            return tt_agent()
        import gymnasium as gym

        from seqagents import DecisionTransformerAgent

        return DecisionTransformerAgent.create(
            env.observation_space, gym.spaces.Discrete(2), hidden_size=16, n_layer=1,
            context_len=4, max_ep_len=64, target_return=5.0, return_scale=10.0, seed=0,
            device="cpu",
        )  # fmt: skip

    def episodes(seed: int | None, agent=None) -> list[list[float]]:
        env = SameEpisodeEnv(discrete=algo != "tt")
        agent = agent or agent_for(env)
        evaluate_policy(agent, env, n_eval_episodes=3, deterministic=False, seed=seed)
        return env.episodes[:3]

    first = episodes(seed=0)
    assert not first[0] == first[1] == first[2], first  # three samples, not one replicated
    assert episodes(seed=0) == first  # the same seed repeats the whole evaluation
    assert episodes(seed=1) != first
    # Without a seed the streams run on from one evaluation to the next.
    env = SameEpisodeEnv(discrete=algo != "tt")
    agent = agent_for(env)
    evaluate_policy(agent, env, n_eval_episodes=1, deterministic=False, seed=0)
    assert episodes(seed=None, agent=agent)[0] != first[0]
