"""CLI options and output (issue 28 item 7): a fast --help that names every command, one --device
default, --log-every, --tensorboard backfilled at resume, tensorboard in the [all] extra."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqagents.cli import build_parser, main
from tests.test_cli import checkpoint  # noqa: F401  (fixture: a tiny Pendulum DT)

ROOT = Path(__file__).resolve().parents[1]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    top = build_parser()
    (action,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_help_imports_no_torch_and_names_every_command():
    probe = (
        "import sys\nfrom seqagents.cli import main\ntry:\n    main(['--help'])\n"
        "except SystemExit:\n    pass\nprint('torch' in sys.modules)"
    )
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    wall = time.perf_counter() - start
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False", "--help imported torch"
    print(f"--help: {wall:.2f} s")  # was 3-8 s (torch at import); ~0.3 s on a quiet machine
    help_text = " ".join(out.stdout.split())
    for command in _subparsers():
        assert f"{command}," in help_text or f"{command}." in help_text, command


def test_every_device_option_defaults_to_auto():
    for name, parser in _subparsers().items():
        for action in parser._actions:
            if "--device" in action.option_strings:
                assert "auto" in action.help, name
                # train: None = the zoo entry's device, else auto (TrainConfig.device)
                assert action.default == ("auto" if name != "train" else None), name


def test_all_extra_installs_tensorboard():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert "tensorboard" in extras["all"][0]


def test_log_every_and_tensorboard_backfilled_at_resume(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = ["collect", "local/pendulum/random-v0", "--env", "Pendulum-v1", "--episodes", "1"]
    assert main([*args, "--no-progress"]) == 0
    out = tmp_path / "run"
    train = ["train", "dt", "--dataset", "local/pendulum/random-v0", "--batch-size", "4"]
    train += ["--device", "cpu", "--out", str(out), "--no-progress", "--log-every", "2"]
    train += ["--model", '{"hidden_size": 16, "n_layer": 1, "context_len": 4}']
    assert main([*train, "--steps", "4"]) == 0, capsys.readouterr().err
    assert not (out / "tensorboard").exists()
    assert main([*train, "--steps", "6", "--resume", "--tensorboard"]) == 0
    records = [line for line in (out / "metrics.jsonl").read_text().splitlines() if line]
    assert len(records) == 3  # steps 2, 4, 6: --log-every reached the trainer
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert [s.step for s in events.Scalars("train/loss")] == [2, 4, 6]  # 2 and 4 backfilled


def test_record_prints_the_return_evaluate_measures(checkpoint, tmp_path, capsys):  # noqa: F811
    """`record` says what the recorded episodes scored: the same return as `evaluate` on the
    same seed and episode length (a clip's last episode is marked as cut)."""
    ckpt = str(checkpoint)
    video = str(tmp_path / "v.gif")
    assert main(["record", ckpt, "--video", video, "--steps", "30", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"video: {video}"
    assert re.fullmatch(r"episode 1: return -?\d+\.\d\d, 29 steps  \(cut .*--steps\)", lines[1])
    args = ["record", ckpt, "--video", video, "--steps", "30", "--json", "--no-progress"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["episode_lengths"] == [29] and report["last_episode_cut"] is True
    evaluate = ["evaluate", ckpt, "--episodes", "1", "--max-steps", "29", "--json"]
    assert main([*evaluate, "--no-progress"]) == 0
    measured = json.loads(capsys.readouterr().out)["results"][0]["episode_returns"][0]
    assert abs(report["episode_returns"][0] - measured) < 1e-6


def test_collect_says_at_least_when_it_finishes_the_running_episodes(capsys):
    """Decision (issue 28): episodes stay whole, so --steps is a minimum, and both the help and
    the result say so (Pendulum: 2 envs x 200-step episodes for --steps 250 -> 400)."""
    help_text = " ".join(_subparsers()["collect"].format_help().split())
    assert "at least N transitions" in help_text
    args = ["collect", "local/pendulum/random-v0", "--env", "Pendulum-v1", "--steps", "250"]
    assert main([*args, "--n-envs", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "400 steps (at least 250 asked; the running episodes were finished" in out


def test_zoo_table_is_aligned_with_units_and_measured_scores(capsys):
    assert main(["zoo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0]
    assert header.split() == ["entry", "env", "paper", "measured", "checkpoint"]
    rows = [line for line in lines[1:] if "/" in line.split(" ")[0]]
    # Aligned: every row's checkpoint column starts where the header's does.
    column = header.index("checkpoint")
    assert all(row[column - 2 : column] == "  " and row[column] != " " for row in rows)
    cheetah = next(row for row in rows if row.startswith("dt/halfcheetah-medium "))
    stored = json.loads((ROOT / "zoo/checkpoints/dt-halfcheetah-medium/config.json").read_text())[
        "evaluation"
    ]
    assert "42.6 norm" in cheetah
    assert f"{stored['normalized_score']:.1f} norm ({stored['n_episodes']} ep)" in cheetah
    assert "gamer-norm" in next(row for row in rows if row.startswith("dt/breakout "))
    assert "% success" in next(row for row in rows if row.startswith("dt/babyai-pickuploc "))
    assert any(line.startswith("measured:") for line in lines)  # the units, stated


def test_plot_on_a_folder_of_runs_lists_and_plots_each(tmp_path, capsys):
    for name in ("dt-a", "tt-b"):
        (tmp_path / name).mkdir()
        records = [{"step": s, "loss": 1.0 / s, "lr": 1e-4} for s in (1, 2)]
        (tmp_path / name / "metrics.jsonl").write_text("\n".join(map(json.dumps, records)))
    assert main(["plot", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"2 runs in {tmp_path}: dt-a, tt-b"
    for name in ("dt-a", "tt-b"):
        assert (tmp_path / name / "training_curves.png").is_file()
        data = json.loads((tmp_path / name / "training_curves.json").read_text())
        assert data["loss"] == [1.0, 0.5]
    assert main(["plot", str(tmp_path / "dt-a" / "missing")]) == 2
    assert "holds no metrics.jsonl" in capsys.readouterr().err


def test_commands_leave_their_arguments_alone(checkpoint, tmp_path, monkeypatch, capsys):  # noqa: F811
    """Issue 27: a command reads its parsed options and never writes them back (enjoy's
    default video, record's clip length and push's fixed env were once set on ``args``)."""
    pytest.importorskip("moviepy")
    monkeypatch.chdir(tmp_path)
    ckpt, quick = str(checkpoint), ["--episodes", "1", "--max-steps", "5", "--no-progress"]
    for argv in (
        ["evaluate", ckpt, *quick, "--json"],
        ["enjoy", ckpt, *quick],
        ["record", ckpt, "--video", "clip.gif", "--steps", "8", "--no-progress"],
        ["push", ckpt, "me/dt-pendulum", *quick, "--no-video", "--out", "push"],
    ):
        args = build_parser().parse_args(argv)
        before = dict(vars(args))
        args.func(args)
        assert vars(args) == before, argv[0]
    assert (tmp_path / "videos" / "ckpt.mp4").is_file() and (tmp_path / "clip.gif").is_file()
