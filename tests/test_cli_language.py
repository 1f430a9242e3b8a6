"""Issue 28 item 3: the CLI speaks the caller's language. No prefix matching (``--dataset``
never becomes ``--dataset-best``), ``analyze --dataset`` for transformers TT checkpoints, every
message a CLI user sees names options (not Python keywords), and every option it names exists
in that command's parser; ``from_pretrained(dataset=..., download=True)`` passes the download on.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from seqagents.cli import build_parser, cli_words, main
from seqagents.cli.common import CLI_OPTIONS
from tests.test_tt_agent import hf_tt_folder  # noqa: F401  (fixture: a transformers TT folder)

ROOT = Path(__file__).resolve().parents[1]
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
KEYWORD = re.compile(r"\b(dataset|discretizer|download|env_id)=")


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Every parser of the command: {"seqagents": top level, "evaluate": ..., ...}."""
    top = build_parser()
    found = {"seqagents": top}
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for action in parser._actions for o in action.option_strings}


def _check_flags(command: str, message: str) -> None:
    """Every --flag in ``message`` exists in ``command``'s parser; no Python keyword is named."""
    assert not KEYWORD.search(message), message
    missing = set(FLAG.findall(message)) - _options(_parsers()[command])
    assert not missing, f"{command} names options it does not have: {missing} in {message!r}"


def test_no_parser_prefix_matches_an_option():
    for name, parser in _parsers().items():
        assert parser.allow_abbrev is False, name
    with pytest.raises(SystemExit) as exit_info:  # was: silently --dataset-best
        build_parser().parse_args(["analyze", "m", "--out", "d", "--dataset-b", "1"])
    assert exit_info.value.code == 2


def test_analyze_takes_the_dataset_of_a_transformers_tt_checkpoint():
    args = build_parser().parse_args(
        ["analyze", "m", "--out", "d", "--dataset", "mujoco/halfcheetah/medium-v0", "--download"]
    )
    assert args.dataset == "mujoco/halfcheetah/medium-v0" and args.dataset_best is None
    assert args.download is True
    assert "--discretizer" in _options(_parsers()["analyze"])


def test_a_tt_checkpoint_without_discretizer_names_cli_options(hf_tt_folder, capsys):  # noqa: F811
    for command in ("evaluate", "info", "analyze"):
        args = [command, str(hf_tt_folder)] + (["--out", "x"] * (command == "analyze"))
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "do not store their discretizer" in err and "--dataset ID_OR_PATH" in err, err
        assert "--discretizer thresholds.safetensors" in err
        _check_flags(command, err)


def test_a_missing_dataset_names_download_as_an_option(capsys):
    assert main(["train", "dt", "--dataset", "local/not-there-v0", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "is not available locally" in err and "--download" in err
    _check_flags("train", err)
    assert main(["evaluate", "halfcheetah-medium", "--download"]) == 2  # without --dataset
    err = capsys.readouterr().err
    assert "pass --dataset" in err
    _check_flags("evaluate", err)


def test_from_pretrained_passes_download_to_the_dataset(hf_tt_folder, monkeypatch):  # noqa: F811
    import seqagents.data
    from seqagents import TrajectoryTransformerAgent

    calls = []

    def load_trajectories(dataset_id, *, download=False):
        calls.append((dataset_id, download))
        raise FileNotFoundError("recorded")

    monkeypatch.setattr(seqagents.data, "load_trajectories", load_trajectories)
    with pytest.raises(FileNotFoundError, match="recorded"):
        TrajectoryTransformerAgent.from_pretrained(
            hf_tt_folder, dataset="local/pendulum/random-v0", download=True
        )
    assert calls == [("local/pendulum/random-v0", True)]


def test_every_option_the_cli_names_exists():
    """The --flags written in the CLI sources and the translations of Python keywords exist."""
    everywhere = set().union(*(_options(p) for p in _parsers().values()))
    sources = [*(ROOT / "seqagents" / "cli").glob("*.py"), ROOT / "seqagents/analysis/cli.py"]
    for source in sources:
        named = set(FLAG.findall(source.read_text()))
        assert named <= everywhere, f"{source.name} names missing options: {named - everywhere}"
    assert set(CLI_OPTIONS.values()) <= everywhere
    assert cli_words("pass dataset=... or discretizer='t.safetensors' with download=True") == (
        "pass --dataset ID_OR_PATH or --discretizer t.safetensors with --download"
    )
    assert "force_download" not in cli_words("re-download it (force_download=True) or re-save")
