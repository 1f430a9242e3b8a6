"""Helpers that lay out files exactly like a Hugging Face Hub cache, for offline tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from huggingface_hub import constants

DATA = Path(__file__).resolve().parent / "data"  # real config.json files of Hub repos


def edbeeching_config(name: str = "halfcheetah-medium") -> dict:
    """The real config.json of ``edbeeching/decision-transformer-gym-<name>``."""
    path = DATA / f"decision-transformer-gym-{name}.json"
    return json.loads(path.read_text())


def seed_hub_cache(
    repo_id: str, files: dict[str, Path | bytes | dict], commit: str = "0" * 40
) -> Path:
    """Put ``files`` into the HF cache as snapshot ``commit`` of ``repo_id`` (refs/main)."""
    root = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    for name, content in files.items():
        target = snapshot / name
        if isinstance(content, dict):
            target.write_text(json.dumps(content))
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            shutil.copy(content, target)
    return snapshot


def hf_dt_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A transformers DT state dict as the 4.18-era Hub files hold it (legacy buffers too)."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    n_pos = model.config.n_positions
    causal = torch.tril(torch.ones(n_pos, n_pos, dtype=torch.uint8)).view(1, 1, n_pos, n_pos)
    for i in range(model.config.n_layer):
        state[f"encoder.h.{i}.attn.bias"] = causal
        state[f"encoder.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return state
