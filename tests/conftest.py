"""Test-wide settings: no network, headless GL, temporary dataset storage."""

from __future__ import annotations

import os

# Before huggingface_hub / mujoco are imported anywhere.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("MUJOCO_GL", "egl")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_storage(tmp_path_factory, monkeypatch):
    """Minari datasets and the HF cache live in temporary folders for every test."""
    from huggingface_hub import constants

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.mktemp("minari")))
    cache = tmp_path_factory.mktemp("hf-cache")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield
