"""Zoo entries: typed, validated, unknown keys and names rejected."""

from __future__ import annotations

import pytest

from seqagents.models.dt import DTConfig
from seqagents.zoo import get_entry, list_entries


def test_dt_entries_parse_with_paper_values():
    entry = get_entry("halfcheetah-medium")
    assert entry.algo == "dt" and entry.env_id == "HalfCheetah-v5"
    assert entry.paper.score == 42.6 and entry.evaluation.target_returns == [6000, 12000]
    assert entry.training["warmup_steps"] == 10000 and entry.return_scale == 1000.0
    assert entry.dataset.collect.ref_max_score == 12135.0
    DTConfig.from_dict(entry.model)  # model hyperparameters are valid DTConfig fields
    assert get_entry("dt/halfcheetah-medium-replay").paper.score == 36.6
    assert {"dt/halfcheetah-medium", "dt/halfcheetah-expert"} <= set(list_entries())


def test_unknown_entry_lists_known_ones():
    with pytest.raises(KeyError, match="known entries: .*dt/halfcheetah-medium"):
        get_entry("no-such-thing")


def test_entry_typo_suggests_the_near_miss():
    with pytest.raises(KeyError, match="did you mean 'halfcheetah-medium'"):
        get_entry("halfcheetah-mediun")


def test_unknown_keys_are_rejected(tmp_path):
    (tmp_path / "dt.yml").write_text(
        "x:\n  algo: dt\n  env_id: E-v0\n  dataset: {id: a/b-v0, typo: 1}\n"
    )
    with pytest.raises(ValueError, match=r"dt.yml:x.dataset: unknown keys \['typo'\]"):
        list_entries(tmp_path)
    (tmp_path / "dt.yml").write_text(
        "x:\n  algo: dt\n  env_id: E-v0\n  dataset: {id: a/b-v0}\n  learning_rate: 3\n"
    )
    with pytest.raises(ValueError, match="unknown keys"):
        list_entries(tmp_path)


def test_resolve_model(tmp_path, monkeypatch):
    from seqagents.zoo import resolve_model

    location, entry = resolve_model("halfcheetah-expert")
    assert location == "edbeeching/decision-transformer-gym-halfcheetah-expert"
    assert entry.paper.score is None
    assert resolve_model("some/repo") == ("some/repo", None)  # not an entry: unchanged
    (tmp_path / "dt.yml").write_text("x:\n  algo: dt\n  env_id: E-v0\n  dataset: {id: a/b-v0}\n")
    monkeypatch.setenv("SEQAGENTS_ZOO_DIR", str(tmp_path))
    with pytest.raises(LookupError, match="no checkpoint yet; train one with `seqagents train x`"):
        resolve_model("x")


def test_known_repo_sources_are_public_pages():
    import json
    from pathlib import Path

    import seqagents.checkpoints

    path = Path(seqagents.checkpoints.__file__).parent / "known_repos.json"
    sources = json.loads(path.read_text())["_sources"]
    assert sources and all(s.startswith("https://") for s in sources.values()), sources
