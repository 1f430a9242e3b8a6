"""The wheel holds every subpackage and the zoo: an installed seqagents lists its zoo entries
and loads the bundled checkpoints without a checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_subpackage():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "seqagents").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert found <= listed, f"add to pyproject.toml [tool.setuptools] packages: {found - listed}"


def test_installed_wheel_has_the_zoo(tmp_path):
    """Build the wheel, install it without dependencies into a fresh venv that sees this
    venv's packages, and run the zoo from outside the checkout."""
    import importlib.util

    # Without setuptools in this venv (Python >= 3.12 venvs lack it) pip builds in isolation.
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, str(ROOT),
         "-w", str(tmp_path / "dist")],
        check=True,
    )  # fmt: skip
    wheel = next((tmp_path / "dist").glob("seqagents-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "seqagents/_zoo/dt.yml" in names and "seqagents/_zoo/benchmark.md" in names
    assert "seqagents/_zoo/checkpoints/dt-halfcheetah-medium/model.safetensors" in names
    shipped = {n.split("/")[3] for n in names if n.startswith("seqagents/_zoo/checkpoints/")}
    assert shipped == {"dt-halfcheetah-medium"}  # the demo's; the others come from the Hub
    assert wheel.stat().st_size <= 20 * 2**20, f"wheel is {wheel.stat().st_size / 2**20:.1f} MB"
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         str(wheel)],
        check=True,
    )  # fmt: skip
    # The Hub as a pre-seeded cache: the zoo's Breakout DT under its repo id.
    cache = tmp_path / "hf"
    snapshot = cache / "models--seqagents--dt-breakout" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (cache / "models--seqagents--dt-breakout" / "refs").mkdir()
    (cache / "models--seqagents--dt-breakout" / "refs" / "main").write_text("0" * 40)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(ROOT / "zoo" / "checkpoints" / "dt-breakout" / name, snapshot / name)
    code = (
        "import seqagents, sys; assert 'site' in seqagents.__file__, seqagents.__file__; "
        "from seqagents.zoo import zoo_dir; print(zoo_dir()); "
        "a = seqagents.load_agent('halfcheetah-medium', device='cpu'); print(a.env_id); "
        "b = seqagents.load_agent('dt/breakout', device='cpu'); print(b.env_id)"
    )
    env = {
        **os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache),
    }  # fmt: skip
    env.pop("SEQAGENTS_ZOO_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "_zoo" in out.stdout and "HalfCheetah-v5" in out.stdout
    assert "ALE/Breakout-v5" in out.stdout  # downloaded by its zoo name (from the cache)
    cli = subprocess.run(
        [sys.executable, "-m", "seqagents", "zoo"], cwd=tmp_path, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    assert cli.returncode == 0 and "dt/halfcheetah-medium" in cli.stdout, cli.stderr
