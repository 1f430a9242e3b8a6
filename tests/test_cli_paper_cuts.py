"""Issue 28 item 7, the CLI's paper cuts: a fast --help that names every command, one --device
default, --log-every, --tensorboard backfilled at resume, tensorboard in the [all] extra."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqagents.cli import build_parser, main

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
