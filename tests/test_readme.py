"""Every Python block of README.md runs verbatim, offline: the Hub repos it names are seeded
into the (temporary) HF cache with random weights and real configs, the Minari dataset it
names is collected locally, the bundled checkpoints are used as they are."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from tests._hub import foreign_tt_state_dict, seed_hub_cache, tt_tiny_config
from tests.test_dt_agent import hf_dt_files  # noqa: F401  (fixture: the edbeeching repo)

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


@pytest.fixture
def tt_halfcheetah_repo(tmp_path):
    """``CarlCochet/trajectory-transformer-halfcheetah-medium-v2`` (tiny, random weights in
    transformers' layout) and the Minari dataset ``mujoco/halfcheetah/medium-v0`` (random
    policy, 300 steps)."""
    from seqagents.data import collect_dataset

    config = tt_tiny_config("halfcheetah")
    torch.save(foreign_tt_state_dict(config), tmp_path / "pytorch_model.bin")
    seed_hub_cache(
        "CarlCochet/trajectory-transformer-halfcheetah-medium-v2",
        {"config.json": config, "pytorch_model.bin": tmp_path / "pytorch_model.bin"},
    )
    collect_dataset(
        "mujoco/halfcheetah/medium-v0", "HalfCheetah-v5", "random", n_steps=300, progress_bar=False
    )


def test_readme_has_the_blocks_this_test_knows():
    assert len(BLOCKS) == 6, "a README Python block was added or removed: update this test"


def test_every_readme_python_block_runs_verbatim(
    hf_dt_files,  # noqa: F811
    tt_halfcheetah_repo,
    tmp_path,
    monkeypatch,  # noqa: F811
):
    monkeypatch.chdir(tmp_path)  # videos land here
    monkeypatch.setenv("SEQAGENTS_ZOO_DIR", str(README.parent / "zoo"))
    for i, block in enumerate(BLOCKS):
        block = block.replace('"zoo/checkpoints/', f'"{README.parent}/zoo/checkpoints/')
        namespace: dict = {}
        exec(compile(block, f"README.md block {i + 1}", "exec"), namespace)  # noqa: S102
        assert "agent" in namespace
    assert (tmp_path / "cheetah.mp4").stat().st_size > 0
    assert (tmp_path / "runs" / "my-dt" / "checkpoint" / "config.json").is_file()  # train_dt
