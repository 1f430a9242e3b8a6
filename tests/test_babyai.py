"""BabyAI env/data half: quiet levels, the privileged wrapper, bot demos, Dict loader and sampler,
success rates, videos."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("minigrid")

from minigrid.utils.baby_ai_bot import BabyAIBot  # noqa: E402

from seqagents.data import WindowSampler, collect_dataset, compute_stats, to_trajectory_data  # noqa: E402
from seqagents.envs import BabyAIPrivileged, QuietStdout, make_env  # noqa: E402
from seqagents.evaluation import episode_successes, evaluate_policy  # noqa: E402
from seqagents.observations import MissionVocabulary  # noqa: E402

LEVEL = "BabyAI-GoToLocalS7N5-v0"
N_DEMOS = 20


@pytest.fixture(scope="module", autouse=True)
def minari_root(tmp_path_factory):
    """Every dataset of this module lives under a temporary MINARI_DATASETS_PATH."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.mktemp("minari")))
        yield


@pytest.fixture(scope="module")
def demos():
    """20 privileged bot demos of GoToLocalS7N5 (LEAP's setting)."""
    return collect_dataset(
        "local/babyai-gotolocal/bot-v0",
        LEVEL,
        "babyai-bot:full_view=1",
        n_episodes=N_DEMOS,
        env_kwargs={"privileged": True},
        progress_bar=False,
    )


@pytest.fixture(scope="module")
def data(demos):
    return to_trajectory_data(demos)


class RandomAgent:
    """Stands in for an agent: uniformly random left/right/forward."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return self.rng.integers(0, 3, size=len(observation["image"])), state


# ---------------------------------------------------------------------------- quiet levels
def test_babyai_levels_print_nothing_to_stdout(capfd):
    # Seed 4 of these levels makes minigrid print "Sampling rejected: ..." while generating.
    raw = gym.make("BabyAI-GoToObjMazeS4R2-v0")
    raw.reset(seed=4)
    assert "Sampling rejected" in capfd.readouterr().out  # the problem is real

    for level in ("BabyAI-GoToObjMazeS4R2-v0", "BabyAI-PickupLoc-v0"):
        env = make_env(level)
        for seed in range(4, 12):
            env.reset(seed=seed)
            env.step(2)
        make_env(level, privileged=True).reset(seed=4)
    vector = gym.vector.SyncVectorEnv([lambda: make_env("BabyAI-GoToObjMazeS4R2-v0")] * 2)
    vector.reset(seed=4)
    made = gym.make_vec(
        "BabyAI-GoToObjMazeS4R2-v0", 2, vectorization_mode="sync", wrappers=[QuietStdout]
    )
    made.reset(seed=4)
    assert capfd.readouterr().out == ""


def test_levels_and_doors_open_kwarg():
    for level in ("BabyAI-GoToLocalS8N7-v0", "BabyAI-PickupLoc-v0"):
        assert make_env(level).reset(seed=0)[0]["image"].shape == (7, 7, 3)
    maze = make_env("BabyAI-GoToObjMazeS4-v0", doors_open=True)
    maze.reset(seed=0)
    doors = [c for c in maze.unwrapped.grid.grid if c is not None and c.type == "door"]
    assert doors and all(door.is_open for door in doors)


# ---------------------------------------------------------------------------- privileged wrapper
def test_privileged_wrapper_observation_and_goal():
    env = make_env("BabyAI-GoToLocalS8N7-v0", privileged=True)
    assert isinstance(env, BabyAIPrivileged) and isinstance(env.observation_space, gym.spaces.Dict)
    assert set(env.observation_space.spaces) == {
        "image", "direction", "mission", "agent_pos", "goal_pos",
    }  # fmt: skip
    for seed in range(15):
        obs, info = env.reset(seed=seed)
        assert env.observation_space.contains(obs)
        base = env.unwrapped
        image = obs["image"]
        assert image.shape == (8, 8, 3) and image.dtype == np.uint8
        assert image[..., 0].max() <= 10 and image[..., 1].max() < 6 and image[..., 2].max() < 4
        x, y = obs["agent_pos"]
        assert obs["agent_pos"].dtype == np.int64 and (x, y) == tuple(base.agent_pos)
        assert image[x, y].tolist() == [10, 0, base.agent_dir]  # FullyObsWrapper's agent cell
        # The goal is an object the mission refers to, and the nearest such one.
        goal = base.grid.get(*obs["goal_pos"])
        desc = base.instrs.desc
        assert any(goal is obj for obj in desc.obj_set), (obs["mission"], goal)
        distances = [np.hypot(*(np.asarray(p) - base.agent_pos)) for p in desc.obj_poss]
        assert np.hypot(*(obs["goal_pos"] - base.agent_pos)) == min(distances)
        assert info["goal_candidates"] == len(desc.obj_poss)
        goal_pos = obs["goal_pos"].copy()
        for _ in range(3):  # fixed for the episode
            obs, *_ = env.step(env.action_space.sample())
            assert (obs["goal_pos"] == goal_pos).all()


def test_privileged_wrapper_from_env_kwargs_and_spec():
    kwargs = {"doors_open": True, "privileged": True}  # as a zoo entry / checkpoint stores them
    env = make_env("BabyAI-GoToObjMazeS4-v0", **kwargs)
    obs, _ = env.reset(seed=1)
    assert obs["image"].shape == (10, 10, 3) and obs["goal_pos"].shape == (2,)
    rebuilt = gym.make(env.spec)  # the wrappers are recorded in the spec (Minari keeps it)
    assert isinstance(rebuilt, BabyAIPrivileged)
    assert (rebuilt.reset(seed=1)[0]["goal_pos"] == obs["goal_pos"]).all()


# ---------------------------------------------------------------------------- collection
def test_bot_demos_are_successful_and_seeded(demos):
    assert demos.total_episodes == N_DEMOS
    episodes = list(demos.iterate_episodes())
    assert all(ep.rewards.sum() > 0 for ep in episodes)
    seeds = [_episode_seed(demos, ep) for ep in episodes]  # seed + k, k increasing
    assert seeds == sorted(set(seeds)) and seeds[0] == 0
    assert set(demos.observation_space.spaces) >= {"agent_pos", "goal_pos"}


def test_noisy_collection_records_bot_actions():
    dataset = collect_dataset(
        "local/babyai-gotolocal/noisy-v0",
        LEVEL,
        "babyai-bot:noise=0.4",
        n_episodes=6,
        seed=3,
        progress_bar=False,
    )
    env = make_env(LEVEL)
    perturbed = 0
    for episode in dataset.iterate_episodes():
        assert episode.rewards.sum() > 0
        executed = episode.infos["executed_action"]  # entry t + 1: executed at step t
        assert executed[0] == -1 and len(executed) == len(episode.actions) + 1
        env.reset(seed=_episode_seed(dataset, episode))
        bot = BabyAIBot(env.unwrapped)
        taken = None
        for t, label in enumerate(episode.actions):
            assert int(bot.replan(taken)) == int(label)  # the label is the bot's action
            env.step(int(executed[t + 1]))
            taken = None if executed[t + 1] == label else int(executed[t + 1])
            perturbed += taken is not None
    assert perturbed > 0


def _episode_seed(dataset, episode) -> int:
    return int(next(iter(dataset.storage.get_episode_metadata([episode.id])))["seed"])


def test_cli_collect_privileged_keeps_stdout_clean(capfd):
    from seqagents.cli import main

    argv = [
        "collect", "local/babyai-maze/cli-v0", "--env", "BabyAI-GoToObjMazeS4R2-v0",
        "--policy", "babyai-bot", "--episodes", "8", "--seed", "4",
        "--env-kwargs", '{"privileged": true}', "--json", "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capfd.readouterr().out
    assert json.loads(out) == {"dataset_id": "local/babyai-maze/cli-v0", "episodes": 8,
                               "steps": json.loads(out)["steps"], "min_steps": None}  # fmt: skip


# ---------------------------------------------------------------------------- loader and sampler
def test_loader_gives_dict_arrays_without_float_copies(demos, data):
    obs = data.observations
    n = demos.total_steps
    assert data.is_dict_obs and data.n_transitions == n and data.n_episodes == N_DEMOS
    assert obs["image"].shape == (n, 7, 7, 3) and obs["image"].dtype == np.uint8
    assert obs["direction"].shape == (n,) and obs["direction"].dtype == np.int64
    assert obs["agent_pos"].shape == (n, 2) and obs["goal_pos"].dtype == np.int64
    vocab = data.mission_vocabulary
    assert (
        isinstance(vocab, MissionVocabulary) and vocab.max_len == 12
    )  # MIN_MISSION_LEN; GoTo missions have 5 words
    assert obs["mission"].shape == (n, 12) and obs["mission"].dtype == np.int64
    assert data.obs_shape == (7, 7, 3) and data.is_discrete
    first = next(demos.iterate_episodes())
    T = len(first.actions)
    np.testing.assert_array_equal(
        obs["mission"][:T], vocab.encode(first.observations["mission"][:T])
    )
    np.testing.assert_array_equal(obs["image"][:T], first.observations["image"][:T])
    with pytest.raises(TypeError, match="Dict observations"):
        compute_stats(data)


def test_window_sampler_dict_states(data):
    with pytest.raises(ValueError, match="normalize_states=False"):
        WindowSampler(data, context_len=4, return_scale=1.0)
    sampler = WindowSampler(data, context_len=4, return_scale=1.0, normalize_states=False, seed=0)
    stored = sampler._states
    assert stored["image"].dtype == torch.uint8 and stored["mission"].dtype == torch.int64
    assert stored["image"].data_ptr() == data.observations["image"].ctypes.data  # no copy
    batch = sampler.sample(8)
    states = batch["states"]
    assert states["image"].shape == (8, 4, 7, 7, 3) and states["image"].dtype == torch.uint8
    assert states["direction"].shape == (8, 4) and states["direction"].dtype == torch.long
    assert states["mission"].shape == (8, 4, 12) and states["goal_pos"].shape == (8, 4, 2)
    # A window starting at an episode's last step: 3 padded slots, zero in every key.
    last = int(data.episode_starts[1]) - 1
    window = sampler.windows_at(np.array([last]))
    assert window["mask"].tolist() == [[False, False, False, True]]
    for key, value in window["states"].items():
        assert not value[0, :3].any(), key
        expected = torch.as_tensor(data.observations[key][last])
        assert torch.equal(value[0, 3], expected), key


# ---------------------------------------------------------------------------- success and video
def test_success_rate():
    env = make_env(LEVEL)
    returns, lengths = evaluate_policy(
        RandomAgent(), env, n_eval_episodes=6, seed=1_000_000, return_episode_rewards=True
    )
    again = evaluate_policy(
        RandomAgent(), env, 6, seed=1_000_000, return_episode_rewards=True, return_success=True
    )
    assert again == (returns, lengths, [r > 0 for r in returns])
    mean, std, rate = evaluate_policy(RandomAgent(), env, 6, seed=1_000_000, return_success=True)
    assert rate == pytest.approx(np.mean([r > 0 for r in returns])) and mean == np.mean(returns)
    assert episode_successes([0.0, 0.5]).tolist() == [False, True]


def test_cli_tables_show_success():
    from seqagents.cli.evaluate import evaluation_text
    from seqagents.protocol import EvaluationProtocol
    from seqagents.report import EvaluationReport, TargetResult

    result = TargetResult.measure(LEVEL, None, [0.9, 0.0], [3, 49], 0.1)
    report = EvaluationReport(
        LEVEL, EvaluationProtocol(), 2, 0, [result], model="m", algorithm="leap", device="cpu"
    )
    text = evaluation_text(report)
    header = next(line for line in text.splitlines() if line.strip().startswith("episode"))
    assert header.split() == ["episode", "return", "length", "success"]
    assert "success: 50.0%" in text and "yes" in text


def test_record_video_of_a_babyai_level(tmp_path):
    pytest.importorskip("moviepy")
    from seqagents.video import record_video

    path = record_video(
        RandomAgent(), LEVEL, tmp_path / "babyai.gif", max_frames=4, seed=0,
        env_kwargs={"privileged": True},
    )  # fmt: skip
    assert path.exists() and path.stat().st_size > 0


# ------------------------------------------------------------------- the LEAP table's levels
# The four levels added after GoToLocalS7N5 / PickupLoc / GoToObjMazeS4R2: (level, env kwargs,
# grid side of the privileged image, the LEAP planner's (horizon, iterations)).
NEW_LEVELS = {
    "babyai-gotolocal-s8n7": ("BabyAI-GoToLocalS8N7-v0", {}, 8, (5, 10)),
    "babyai-gotoobjmaze-s4": ("BabyAI-GoToObjMazeS4-v0", {"doors_open": True}, 10, (10, 30)),
    "babyai-gotoobjmaze-s7": ("BabyAI-GoToObjMazeS7-v0", {"doors_open": True}, 19, (10, 30)),
    "babyai-gotoseq-s5r2": ("BabyAI-GoToSeqS5R2-v0", {}, 9, (5, 10)),
}
NEW_ENTRIES = [f"{name}{tail}" for name in NEW_LEVELS for tail in ("", "-privileged")]


@pytest.mark.parametrize("privileged", [False, True], ids=["default", "privileged"])
@pytest.mark.parametrize("name", list(NEW_LEVELS))
def test_new_level_builds_and_plays_offline(name, privileged):
    level, kwargs, side, _ = NEW_LEVELS[name]
    env = make_env(level, **kwargs, privileged=privileged)
    assert env.observation_space.contains(env.reset(seed=0)[0])
    base = env.unwrapped
    doors = [c for c in base.grid.grid if c is not None and c.type == "door"]
    if kwargs.get("doors_open"):  # LEAP's mazes: every door open
        assert doors and all(door.is_open for door in doors)
    rng = np.random.default_rng(0)
    for seed in (1, 2):
        obs, _ = env.reset(seed=seed)
        shape = (side, side, 3) if privileged else (7, 7, 3)
        assert obs["image"].shape == shape and obs["image"].dtype == np.uint8
        if privileged:  # the goal is an object the bot's first subgoal refers to
            goal = base.grid.get(*obs["goal_pos"])
            assert goal is not None and goal.type in ("ball", "box", "key", "door")
        for _ in range(5):
            obs, reward, terminated, truncated, _ = env.step(int(rng.integers(0, 3)))
            assert env.observation_space.contains(obs)
            if terminated or truncated:
                break
    env.close()


@pytest.mark.parametrize("name", NEW_ENTRIES)
def test_new_level_zoo_entries_collect_their_demos_at_tiny_size(name, capfd):
    from seqagents.cli import main
    from seqagents.zoo import get_entry

    level, kwargs, side, (horizon, iterations) = NEW_LEVELS[name.removesuffix("-privileged")]
    privileged = name.endswith("-privileged")
    leap, dt = get_entry(f"leap/{name}"), get_entry(f"dt/{name}")
    for entry in (leap, dt):  # both algorithms: same level, kwargs and demos
        assert entry.env_id == level
        assert entry.env_kwargs == ({**kwargs, "privileged": True} if privileged else kwargs)
        assert entry.dataset.id == leap.dataset.id and entry.dataset.collect == leap.dataset.collect
        assert entry.evaluation.n_episodes == 200 and entry.evaluation.seed == 1_000_000
        assert entry.checkpoint.path == f"checkpoints/{entry.algo}-{name}"
    assert leap.dataset.collect.n_episodes == 500 and leap.dataset.collect.seed == 0
    assert leap.model["horizon"] == horizon  # the paper's planner settings (test_run.sh)
    assert leap.inference["planner"]["n_iterations"] == iterations
    assert leap.inference["planner"]["replan_every"] == horizon
    dataset_id = leap.dataset.id.replace("-v0", "-tiny-v0")
    argv = ["collect", dataset_id, "--zoo", f"leap/{name}", "--episodes", "3", "--json",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads(capfd.readouterr().out)["episodes"] == 3
    from seqagents.data import load_trajectories

    data = load_trajectories(dataset_id)
    assert data.n_episodes == 3 and data.is_discrete
    assert data.observations["image"].shape[1:] == ((side, side, 3) if privileged else (7, 7, 3))
    assert set(np.unique(data.actions)) <= {0, 1, 2, 5}  # left, right, forward (toggle: doors)
