"""Input errors (issue 12): every bad input gets one clear error that names what was
expected (library: a typed exception with the file or argument; CLI: one line, exit 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from seqagents import CheckpointError, DecisionTransformerAgent, load_agent
from tests.test_agent_safeguards import dt_agent, tt_agent


@pytest.fixture
def ckpt(tmp_path) -> Path:
    folder = tmp_path / "ckpt"
    dt_agent().save_pretrained(folder)
    return folder


def edit_config(folder: Path, edit) -> Path:
    config = json.loads((folder / "config.json").read_text())
    result = edit(config)
    text = result if isinstance(result, str) else json.dumps(config)
    (folder / "config.json").write_text(text)
    return folder


def test_invalid_json_names_the_file(ckpt):
    edit_config(ckpt, lambda c: "{bad")
    with pytest.raises(CheckpointError, match=r"ckpt/config.json is not valid JSON"):
        load_agent(ckpt)


def test_json_list_is_not_a_config(ckpt):
    edit_config(ckpt, lambda c: "[1, 2]")
    with pytest.raises(CheckpointError, match=r"config.json holds a JSON list; expected an object"):
        load_agent(ckpt)


@pytest.mark.parametrize(
    "section, key, value, match",
    [
        ("model", "hidden_size", "16", r"DTConfig.hidden_size must be int, got str"),
        ("model", "context_len", 0, r"DTConfig.context_len must be an int >= 1, got 0"),
        ("preprocessing", "return_scale", 0, r"return_scale must be a finite number > 0"),
        ("preprocessing", "state_mean", [0.0, 1.0], r"state_mean has 2 values"),
    ],
)
def test_bad_config_fields_name_the_file_and_the_field(ckpt, section, key, value, match):
    edit_config(ckpt, lambda c: c[section].__setitem__(key, value))
    with pytest.raises(CheckpointError, match=match) as info:
        load_agent(ckpt)
    assert "config.json" in str(info.value)


def test_wrong_section_type(ckpt):
    edit_config(ckpt, lambda c: c.__setitem__("preprocessing", "x"))
    with pytest.raises(CheckpointError, match=r"CheckpointConfig.preprocessing must be dict"):
        load_agent(ckpt)


def test_unknown_algorithm_lists_the_known_ones(ckpt):
    edit_config(ckpt, lambda c: c.__setitem__("algorithm", "ppo"))
    with pytest.raises(CheckpointError, match=r"names algorithm 'ppo'.*\['dt', 'leap', 'tt'\]"):
        load_agent(ckpt)


@pytest.mark.parametrize(
    "override, match",
    [({"context_len": 0}, "context_len must be an int >= 1"), ({"return_scale": 0.0}, "> 0")],
)
def test_impossible_overrides_fail_at_load_not_at_the_first_step(ckpt, override, match):
    with pytest.raises(CheckpointError, match=match):
        load_agent(ckpt, **override)


def test_tt_checkpoint_given_a_target_return_says_tt_has_none(tmp_path):
    tt_agent().save_pretrained(tmp_path / "tt")
    with pytest.raises(TypeError, match="takes no target_return"):
        load_agent(tmp_path / "tt", target_return=100.0)


def test_wrong_shape_episode_start_observe_and_empty_batches():
    agent = dt_agent()
    obs = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"episode_start has shape \(3,\); expected .*\(2,\)"):
        agent.predict(obs, episode_start=np.array([True, False, True]))
    agent.predict(obs)
    with pytest.raises(ValueError, match=r"observe: reward has shape \(3,\)"):
        agent.observe(np.zeros(3), np.zeros(3, bool))
    with pytest.raises(ValueError, match="empty batch"):
        agent.predict(np.zeros((0, 3), np.float32))


def test_create_with_a_non_babyai_dict_space_says_what_is_supported():
    space = gym.spaces.Dict({"a": gym.spaces.Box(0, 1, (3,))})
    with pytest.raises(ValueError, match=r"keys \['a'\] are not supported.*FlattenObservation"):
        DecisionTransformerAgent.create(space, gym.spaces.Discrete(3))


def test_zoo_names_load_in_python_and_typos_get_a_suggestion():
    agent = load_agent("halfcheetah-medium", device="cpu")
    assert agent.env_id == "HalfCheetah-v5"
    assert load_agent("dt/halfcheetah-medium", device="cpu").env_id == "HalfCheetah-v5"
    with pytest.raises(CheckpointError, match="did you mean 'halfcheetah-medium'"):
        load_agent("halfcheetah-medum")


def test_zoo_entry_without_a_checkpoint_says_how_to_make_one():
    with pytest.raises(CheckpointError, match="seqagents train dt/pong"):
        load_agent("dt/pong")


def test_copied_checkpoint_still_loads(ckpt, tmp_path):  # the checks do not reject good files
    shutil.copytree(ckpt, tmp_path / "copy")
    assert load_agent(tmp_path / "copy").spec.algorithm == "dt"


def test_unknown_mujoco_camera_lists_the_cameras():
    from seqagents.envs import make_env

    with pytest.raises(ValueError, match=r"no camera 'nosuch'; its cameras: \['track'\]"):
        make_env("HalfCheetah-v5", camera_name="nosuch", render_mode="rgb_array")


def test_mujoco_load_warnings_leave_no_log_file_and_no_stderr_noise(tmp_path):
    import os
    import subprocess
    import sys

    code = "from seqagents.envs import make_env; make_env('HalfCheetah-v5').close()"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "settotalmass" not in out.stderr
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_devices_are_checked_with_a_clear_message():
    from seqagents.agents.base import resolve_device

    assert str(resolve_device("cpu")) == "cpu"
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    if not __import__("torch").cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            load_agent("halfcheetah-medium", device="cuda")


@pytest.mark.parametrize(
    "content, match", [(b"[1, 2]", "holds a JSON list"), (b"{bad", "is not valid JSON")]
)
def test_bad_hub_config_names_the_cached_file(content, match):
    from tests._hub import seed_hub_cache

    seed_hub_cache("me/broken", {"config.json": content})
    with pytest.raises(CheckpointError, match=rf"models--me--broken.*config.json {match}"):
        load_agent("me/broken")
