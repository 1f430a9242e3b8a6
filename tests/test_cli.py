"""The `seqagents` command, run in a subprocess on checkpoints made in the test."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from seqagents import DecisionTransformerAgent


@pytest.fixture
def checkpoint(tmp_path):
    env = gym.make("Pendulum-v1")
    agent = DecisionTransformerAgent.create(
        env.observation_space,
        env.action_space,
        env_id="Pendulum-v1",
        hidden_size=16,
        n_layer=1,
        context_len=4,
        max_ep_len=256,
        target_return=-200.0,
        return_scale=100.0,
        device="cpu",
        seed=0,
    )
    agent.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt"


def run(*args: str, cwd=None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MUJOCO_GL": "egl"}
    return subprocess.run(
        [sys.executable, "-m", "seqagents.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=cwd,
    )


def test_evaluate_prints_a_table_and_json(checkpoint):
    out = run("evaluate", str(checkpoint), "--episodes", "3", "--n-envs", "2", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "mean ± std" in out.stdout and "target return: -200.0" in out.stdout
    lines = out.stdout.splitlines()
    rows = [line for line in lines if line.strip()[:2] in ("1 ", "2 ", "3 ")]
    assert len(rows) == 3
    js = run(
        "evaluate",
        str(checkpoint),
        "--episodes",
        "2",
        "--json",
        "--seed",
        "3",
        "--target-return",
        "-100",
        "--no-progress",
    )
    assert js.returncode == 0, js.stderr
    report = json.loads(js.stdout)
    (result,) = report["results"]
    assert result["target_return"] == -100.0 and len(result["episode_returns"]) == 2
    assert result["episode_lengths"] == [200, 200]  # Pendulum's time limit
    assert np.isclose(result["mean_return"], np.mean(result["episode_returns"]))
    again = json.loads(
        run(
            "evaluate",
            str(checkpoint),
            "--episodes",
            "2",
            "--json",
            "--seed",
            "3",
            "--target-return",
            "-100",
            "--no-progress",
        ).stdout
    )
    assert again["results"][0]["episode_returns"] == result["episode_returns"]


def test_info_describes_the_checkpoint(checkpoint):
    out = run("info", str(checkpoint), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["algorithm"] == "dt" and info["env_id"] == "Pendulum-v1"
    assert info["preprocessing"]["return_scale"] == 100.0
    text = run("info", str(checkpoint)).stdout  # readable: one line per topic, no dict reprs
    assert "env            Pendulum-v1" in text and "return_scale=100" in text
    assert "{'" not in text and "parameters" in text


def test_agent_repr_is_a_summary(checkpoint):
    agent = DecisionTransformerAgent.from_pretrained(checkpoint, device="cpu")
    assert repr(agent).startswith("DecisionTransformerAgent(env_id='Pendulum-v1', ")
    assert "parameters=" in repr(agent) and "object at" not in repr(agent)


def test_record_writes_a_gif(checkpoint, tmp_path):
    out = run("record", str(checkpoint), "--video", str(tmp_path / "v.gif"), "--max-frames", "8")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "v.gif").stat().st_size > 0


def test_record_makes_a_clip_across_episodes_by_default(checkpoint, tmp_path):
    """rl-zoo style: `record` writes --steps frames across episodes unless --episodes is given."""
    import imageio.v3 as iio

    path = tmp_path / "clip.mp4"
    out = run("record", str(checkpoint), "--video", str(path), "--steps", "30",
              "--env", "Pendulum-v1", "--no-progress")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert sum(1 for _ in iio.imiter(path)) == 30


def test_evaluate_output_dir_writes_eval_info_and_episode_videos(checkpoint, tmp_path):
    """LeRobot-style: eval_info.json with one record per episode (seed, return, length, video)
    and the aggregate; the first --videos episodes recorded, each with its own frames."""
    import imageio.v3 as iio

    out_dir = tmp_path / "eval"
    out = run("evaluate", str(checkpoint), "--episodes", "3", "--videos", "2", "--output-dir",
              str(out_dir), "--max-steps", "5", "--no-progress")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "protocol: greedy actions" in out.stdout
    info = json.loads((out_dir / "eval_info.json").read_text())
    episodes = info["per_episode"]
    assert [e["seed"] for e in episodes] == [0, 1, 2]
    assert [e["video"] for e in episodes] == [
        "videos/eval_episode_0.mp4", "videos/eval_episode_1.mp4", None,
    ]  # fmt: skip
    returns = [e["return"] for e in episodes]
    assert info["aggregated"]["mean_return"] == pytest.approx(np.mean(returns))
    for e in episodes[:2]:  # a video holds its episode: the reset frame and one per step
        assert sum(1 for _ in iio.imiter(out_dir / e["video"])) == e["length"] + 1


def test_zoo_lists_entries():
    out = run("zoo", "--json")
    assert out.returncode == 0, out.stderr
    entries = json.loads(out.stdout)
    assert entries["dt/halfcheetah-medium"]["paper_score"] == 42.6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "someone/not-cached"], "HF_HUB_OFFLINE"),
        (["evaluate", "no/such/folder"], "neither an existing local folder"),
        (["evaluate", "{ckpt}", "--env", "NoSuchEnv-v0"], "NoSuchEnv"),
        (["evaluate", "{ckpt}", "--env", "CartPole-v1"], "space mismatch"),
        (["train", "no-such-entry"], "unknown zoo entry"),
        (["evaluate", "{ckpt}", "--episodes", "many"], "expected an integer, got 'many'"),
        (["evaluate", "{ckpt}", "--no-such-option"], "unrecognized arguments"),
        (["evaluate", "{ckpt}", "--device", "cuda"], "CUDA is not available"),
        (["evaluate", "{ckpt}", "--device", "gpu"], "unknown device 'gpu'"),
        (["evaluate", "{ckpt}", "--n-envs", "0"], "--n-envs: must be >= 1, got 0"),
        (["evaluate", "{ckpt}", "--video", "{tmp}"], "is a folder"),
        (["evaluate", "{ckpt}", "--video", "/proc/no/x.gif"], "cannot create the folder"),
        (["evaluate", "{ckpt}", "--video", "x.avi"], "unsupported video format"),
        (["record", "{ckpt}", "--video", "{tmp}/x.gif", "--camera", "c"], "camera"),
        (["train", "dt/halfcheetah-medum"], "did you mean 'dt/halfcheetah-medium'"),
        (["evaluate", "halfcheetah-mediun"], "did you mean 'halfcheetah-medium'"),
        (["train", "dt/halfcheetah-medium", "--model", "{bad"], "--model is not valid JSON"),
        (["train", "dt/halfcheetah-medium", "--model", "[1]"], "must be a JSON object"),
        (["evaluate", "{ckpt}", "--dataset", "x/y-v0"], "unknown options ['dataset']"),
    ],
)
def test_bad_input_exits_non_zero_with_one_clear_line(checkpoint, args, message, capsys):
    from seqagents.cli import main

    tmp = checkpoint.parent
    try:
        status = main(
            [a.replace("{ckpt}", str(checkpoint)).replace("{tmp}", str(tmp)) for a in args]
        )
    except SystemExit as e:  # argparse's own usage errors
        status = e.code
    err = capsys.readouterr().err
    assert status == 2 and message in err, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err  # one line, nothing else


def test_every_option_has_help_and_the_help_defaults_are_true():
    from seqagents.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # {name: subparser}
    for name, sub in {"": parser, **commands}.items():
        for action in sub._actions:
            assert action.help, f"seqagents {name} {action.option_strings or action.dest}"
            match = re.search(r"\(default (-?\d+)\)", action.help)
            if match:  # a number stated as the default is the default
                assert action.default == int(match.group(1)), (name, action.dest)
    assert commands["record"].get_default("episodes") is None  # a --steps clip
    assert commands["record"].get_default("steps") == 1000


def test_ctrl_c_is_one_line_and_status_130(monkeypatch, capsys):
    import seqagents.cli as cli
    import seqagents.cli.zoo

    def interrupt(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(seqagents.cli.zoo, "cmd_zoo", interrupt)
    assert cli.main(["zoo"]) == 130
    assert capsys.readouterr().err.strip() == "seqagents zoo: interrupted"


def test_train_never_overwrites_a_run_folder_silently(tmp_path, capsys):
    from seqagents.cli import main

    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text("{}\n")
    assert main(["train", "dt/halfcheetah-medium", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already exists; pass --resume" in err and "--force" in err
    assert (out / "metrics.jsonl").exists()


def test_bad_input_in_a_real_process(tmp_path):
    out = run("evaluate", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("seqagents evaluate: error: ")
    assert "no config.json" in out.stderr and "Traceback" not in out.stderr


def test_collect_and_train_a_zoo_entry_end_to_end(tmp_path, monkeypatch, capsys):
    """`seqagents collect --zoo` then `seqagents train` on a tiny zoo entry; options reach
    the run (checkpoint_every, model overrides) and the result installs into the zoo."""
    from seqagents import load_agent
    from seqagents.cli import main

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "dt.yml").write_text(
        "pendulum-random:\n"
        "  algo: dt\n"
        "  env_id: Pendulum-v1\n"
        "  return_scale: 100.0\n"
        "  model: {hidden_size: 16, n_layer: 1, context_len: 4, max_ep_len: 256}\n"
        "  training: {batch_size: 8, warmup_steps: 2, log_every: 2}\n"
        "  evaluation: {target_returns: [-150.0], deterministic: false}\n"
        "  dataset:\n"
        "    id: local/pendulum/random-v0\n"
        "    collect: {policy: random, n_episodes: 2, n_envs: 2}\n"
        "  checkpoint: {path: checkpoints/dt-pendulum-random}\n"
    )
    monkeypatch.setenv("SEQAGENTS_ZOO_DIR", str(zoo))
    assert main(["collect", "--zoo", "pendulum-random", "--no-progress", "--json"]) == 0
    assert '"episodes": 2' in capsys.readouterr().out
    run = tmp_path / "run"
    status = main(
        [
            "train",
            "pendulum-random",
            "--steps",
            "6",
            "--checkpoint-every",
            "3",
            "--device",
            "cpu",
            "--model",
            '{"n_head": 2}',
            "--out",
            str(run),
            "--install",
            "--no-progress",
        ]
    )
    assert status == 0
    agent = load_agent(zoo / "checkpoints" / "dt-pendulum-random")
    assert agent.model_config.n_head == 2 and agent.spec.training["steps"] == 6
    assert agent.spec.training["train_config"]["checkpoint_every"] == 3
    assert (run / "trainer_state.pt").exists() and agent.target_return == -150.0
    assert agent.protocol.deterministic is False  # the entry's protocol travels with it
    assert "installed checkpoint" in capsys.readouterr().out
    assert main(["zoo", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert entries["dt/pendulum-random"]["checkpoint"] == str(
        zoo / "checkpoints" / "dt-pendulum-random"
    )


def test_push_evaluates_records_and_writes_a_card_without_placeholders(
    checkpoint, tmp_path, monkeypatch, capsys
):
    import huggingface_hub

    from seqagents.cli import main

    out = tmp_path / "push"
    args = ["push", str(checkpoint), "me/dt-pendulum", "--episodes", "2", "--no-progress"]
    assert main([*args, "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    card = (out / "README.md").read_text()
    assert {p.name for p in out.iterdir()} == {
        "README.md", "config.json", "model.safetensors", "replay.mp4"
    }  # fmt: skip
    assert f"{summary['mean_return']:.2f}" in card and "/resolve/main/replay.mp4" in card
    assert 'from_pretrained("me/dt-pendulum")' in card and "<repo" not in card
    again = DecisionTransformerAgent.from_pretrained(out, device="cpu")
    assert again.spec.evaluation["n_episodes"] == 2

    uploads = []

    class FakeApi:  # the Hub is offline here: check what would be uploaded
        def __init__(self, token=None):
            pass

        def whoami(self):
            return {"name": "me", "orgs": []}

        def create_repo(self, repo_id, private=None, exist_ok=False):
            return type("Repo", (), {"repo_id": repo_id})()

        def upload_folder(self, repo_id, folder_path, revision=None, commit_message=""):
            uploads.append((repo_id, sorted(p.name for p in Path(folder_path).iterdir())))
            return type("Info", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/1"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_fake")
    monkeypatch.chdir(tmp_path)  # push writes runs/push/<name> before uploading it
    assert main([*args, "--no-video"]) == 0
    assert uploads == [("me/dt-pendulum", ["README.md", "config.json", "model.safetensors"])]
    assert "commit/1" in capsys.readouterr().out
