"""Zoo names (issue 28 item 5): a prefixed typo gets a did-you-mean instead of a Hub lookup;
short names shared by several algorithms mean DT, with a one-time note listing the choices; a
local copy of a known foreign repo loads like its Hub id."""

from __future__ import annotations

import logging

import gymnasium as gym
import numpy as np
import pytest
import torch

from seqagents import CheckpointError, DecisionTransformerAgent, load_agent, zoo
from seqagents.cli import main
from tests._hub import edbeeching_config, foreign_dt_state_dict, seed_hub_cache

REPO = "edbeeching/decision-transformer-gym-halfcheetah-medium"


@pytest.fixture(autouse=True)
def _fresh_notes(monkeypatch):
    monkeypatch.setattr(zoo, "_NOTED", set())


def test_prefixed_typo_gets_a_did_you_mean_not_a_hub_lookup(monkeypatch):
    import huggingface_hub

    def no_hub(*args, **kwargs):
        raise AssertionError("the Hub was asked")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_hub)
    with pytest.raises(LookupError, match="did you mean 'dt/halfcheetah-medium'"):
        zoo.resolve_model("dt/halfchetah-medium")
    with pytest.raises(CheckpointError, match="did you mean 'dt/halfcheetah-medium'"):
        load_agent("dt/halfchetah-medium")
    with pytest.raises(CheckpointError, match="did you mean 'leap/babyai-gotolocal-s7n5'"):
        load_agent("leap/babyai-gotolocal-s7n")
    # far from every entry, or not a zoo algorithm: a Hub repo id, unchanged
    assert zoo.resolve_model("dt/my-own-model") == ("dt/my-own-model", None)
    assert zoo.resolve_model("edbeeching/halfchetah-medium")[1] is None


def test_cli_prefixed_typo_is_one_line_with_the_suggestion(capsys):
    assert main(["info", "dt/halfchetah-medium"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'dt/halfcheetah-medium'" in err and err.count("\n") == 1


def test_ambiguous_short_names_mean_dt_and_note_the_choices_once(caplog):
    assert zoo.short_name_choices("halfcheetah-medium") == [
        "dt/halfcheetah-medium",
        "tt/halfcheetah-medium",
    ]
    assert zoo.short_name_choices("babyai-gotolocal-s7n5") == [
        "dt/babyai-gotolocal-s7n5",
        "leap/babyai-gotolocal-s7n5",
    ]
    with caplog.at_level(logging.WARNING, logger="seqagents.zoo"):
        location, entry = zoo.resolve_model("halfcheetah-medium")
        zoo.resolve_model("halfcheetah-medium")
        zoo.get_entry("halfcheetah-medium")
        zoo.resolve_model("dt/halfcheetah-medium")  # explicit: no note
        assert entry.algo == "dt" and location.endswith("dt-halfcheetah-medium")
        assert zoo.get_entry("babyai-gotolocal-s7n5").algo == "dt"
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 2, notes  # one per ambiguous name
    assert "dt/halfcheetah-medium, tt/halfcheetah-medium" in notes[0]
    assert "using dt/halfcheetah-medium" in notes[0] and "'tt/halfcheetah-medium'" in notes[0]
    assert "leap/babyai-gotolocal-s7n5" in notes[1]
    # unambiguous short names say nothing
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="seqagents.zoo"):
        assert zoo.get_entry("halfcheetah-expert").algo == "dt"
    assert caplog.records == []


def test_short_name_order_in_a_zoo_of_three(tmp_path, caplog):
    """DT first, then LEAP, then TT, whatever the files' order; a name one algorithm has is
    that algorithm's, silently."""
    entry = "  env_id: E-v0\n  dataset: {id: a/b-v0}\n"
    (tmp_path / "tt.yml").write_text(f"both:\n  algo: tt\n{entry}all:\n  algo: tt\n{entry}")
    (tmp_path / "leap.yml").write_text(
        f"both:\n  algo: leap\n{entry}all:\n  algo: leap\n{entry}only:\n  algo: leap\n{entry}"
    )
    (tmp_path / "dt.yml").write_text(f"all:\n  algo: dt\n{entry}")
    entries = zoo.list_entries(tmp_path)
    assert zoo.short_name_choices("all", entries) == ["dt/all", "leap/all", "tt/all"]
    assert zoo.short_name_choices("only", entries) == ["leap/only"]
    with caplog.at_level(logging.WARNING, logger="seqagents.zoo"):
        assert zoo.get_entry("both", tmp_path).algo == "leap"
        assert zoo.get_entry("all", tmp_path).algo == "dt"
        assert zoo.get_entry("only", tmp_path).algo == "leap"
    notes = [r.getMessage() for r in caplog.records]
    assert (
        len(notes) == 2 and "using leap/both" in notes[0] and "dt/all, leap/all, tt/all" in notes[1]
    )


def test_make_demo_name_still_works_from_the_cli(capsys, caplog):
    """``make demo`` runs ``seqagents enjoy halfcheetah-medium``: the short name keeps working
    (DT), with the note (a logged warning: stderr from the command line)."""
    with caplog.at_level(logging.WARNING, logger="seqagents.zoo"):
        assert main(["info", "halfcheetah-medium"]) == 0
    assert "dt-halfcheetah-medium" in capsys.readouterr().out
    assert "tt/halfcheetah-medium" in caplog.text


# ------------------------------------------------------------------ local copies of known repos
@pytest.fixture
def edbeeching_files(tmp_path):
    """``config.json`` and ``pytorch_model.bin`` of the known repo (random weights)."""
    config = edbeeching_config("halfcheetah-medium")
    torch.save(foreign_dt_state_dict(config), tmp_path / "w.bin")
    return {"config.json": config, "pytorch_model.bin": tmp_path / "w.bin"}


def _copy(files: dict, folder):
    import json
    import shutil

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(files["config.json"]))
    shutil.copy(files["pytorch_model.bin"], folder / "pytorch_model.bin")
    return folder


def _actions(agent, steps: int = 5) -> np.ndarray:
    env = gym.make("HalfCheetah-v5")
    obs, _ = env.reset(seed=0)
    agent.reset()
    reward, actions = None, []
    for _ in range(steps):
        action, _ = agent.predict(obs, reward=reward)
        actions.append(action)
        obs, reward, *_ = env.step(action)
    return np.array(actions)


def test_local_copies_of_a_known_repo_load_like_the_hub_id(edbeeching_files, tmp_path):
    snapshot = seed_hub_cache(REPO, edbeeching_files)  # what snapshot_download returns
    hub = DecisionTransformerAgent.from_pretrained(REPO, device="cpu")
    reference = _actions(hub)
    clone = _copy(edbeeching_files, tmp_path / "clone")  # git clone, any folder name
    (clone / ".git").mkdir()
    (clone / ".git" / "config").write_text(
        f'[remote "origin"]\n\turl = https://huggingface.co/{REPO}\n'
    )
    named = _copy(edbeeching_files, tmp_path / "decision-transformer-gym-halfcheetah-medium")
    anywhere = _copy(edbeeching_files, tmp_path / "my-download")  # hf download --local-dir
    for folder, extra in [
        (snapshot, {}),
        (clone, {}),
        (named, {}),
        (anywhere, {"known_repo": REPO}),
    ]:
        agent = DecisionTransformerAgent.from_pretrained(str(folder), device="cpu", **extra)
        assert agent.env_id == "HalfCheetah-v5" and agent.target_return == 6000.0
        assert agent.spec.training["converted_from"] == REPO  # the Hub id, not a local path
        assert agent.config.preprocessing == hub.config.preprocessing
        np.testing.assert_array_equal(_actions(agent), reference)
    # an unnamed download: the error says how to name it, with the candidates
    with pytest.raises(CheckpointError, match=r"known_repo='edbeeching/decision-transformer-gym"):
        DecisionTransformerAgent.from_pretrained(str(anywhere), device="cpu")
    with pytest.raises(CheckpointError, match="not in seqagents' registry; known repos"):
        DecisionTransformerAgent.from_pretrained(str(anywhere), device="cpu", known_repo="a/b")
