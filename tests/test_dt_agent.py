"""Decision Transformer agent: parity with transformers, round trips, batching, bad input."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from seqagents import CheckpointError, DecisionTransformerAgent, load_agent
from tests._dt import ReferenceWindows
from tests._hub import edbeeching_config, foreign_dt_state_dict, hf_dt_state_dict, seed_hub_cache

REPO = "edbeeching/decision-transformer-gym-halfcheetah-medium"


class CountingEnv(gym.Env):
    """obs = [t, env_index]; reward r_t = t + 1 + offset; episodes of fixed length."""

    def __init__(self, length: int = 50, offset: float = 0.0) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.length, self.offset, self.t = length, offset, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0, self.offset]), {}

    def step(self, action):
        reward = self.t + 1 + self.offset
        self.t += 1
        return np.array([self.t, self.offset]), reward, False, self.t >= self.length, {}


def tiny_agent(env: gym.Env, **kwargs) -> DecisionTransformerAgent:
    params = dict(
        hidden_size=16,
        n_layer=1,
        n_head=2,
        context_len=4,
        max_ep_len=64,
        dropout=0.0,
        target_return=100.0,
        return_scale=10.0,
        seed=0,
        device="cpu",
    )
    params.update(kwargs)
    return DecisionTransformerAgent.create(env.observation_space, env.action_space, **params)


def rollout(agent, env, steps, seed=0):
    obs, _ = env.reset(seed=seed)
    reward, actions = None, []
    for _ in range(steps):
        action, _ = agent.predict(obs, reward=reward)
        actions.append(action)
        obs, reward, terminated, truncated, _ = env.step(action)
    return np.array(actions)


# ---------------------------------------------------------------- transformers-format checkpoints
@pytest.fixture
def hf_dt_files(tmp_path):
    """The edbeeching repo in the (offline) Hub cache: its real config.json, random weights in
    transformers' layout (made without transformers)."""
    torch.save(foreign_dt_state_dict(edbeeching_config("halfcheetah-medium")), tmp_path / "w.bin")
    return seed_hub_cache(
        REPO,
        {
            "config.json": edbeeching_config("halfcheetah-medium"),
            "pytorch_model.bin": tmp_path / "w.bin",
        },
    )


@pytest.fixture
def hf_dt_repo(tmp_path):
    """The edbeeching repo made by transformers itself (parity tests: `make test-parity`)."""
    transformers = pytest.importorskip("transformers")
    config = edbeeching_config("halfcheetah-medium")
    hf_config = transformers.DecisionTransformerConfig(
        **{k: v for k, v in config.items() if not k.startswith("_")}
    )
    torch.manual_seed(0)
    model = transformers.DecisionTransformerModel(hf_config).eval()
    with torch.no_grad():  # random LayerNorm/bias values too, so no parameter is trivially 0/1
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    torch.save(hf_dt_state_dict(model), tmp_path / "pytorch_model.bin")
    seed_hub_cache(
        REPO, {"config.json": config, "pytorch_model.bin": tmp_path / "pytorch_model.bin"}
    )
    return model


def hf_reference_action(model, states, actions, rewards, rtg, timesteps, mean, std, K=20):
    """The transformers example recipe: last K steps, left padding with a 0/1 mask."""
    states = (states - mean) / std
    states, actions, rtg, timesteps = states[-K:], actions[-K:], rtg[-K:], timesteps[-K:]
    pad = K - states.shape[0]
    mask = torch.cat([torch.zeros(pad), torch.ones(states.shape[0])])[None].long()
    states = torch.cat([torch.zeros(pad, states.shape[1]), states])[None].float()
    actions = torch.cat([torch.zeros(pad, actions.shape[1]), actions])[None].float()
    rtg = torch.cat([torch.zeros(pad, 1), rtg])[None].float()
    timesteps = torch.cat([torch.zeros(pad, dtype=torch.long), timesteps])[None]
    with torch.no_grad():
        _, action_preds, _ = model(
            states=states,
            actions=actions,
            rewards=None,
            returns_to_go=rtg,
            timesteps=timesteps,
            attention_mask=mask,
            return_dict=False,
        )
    return action_preds[0, -1]


@pytest.mark.parity
def test_hub_checkpoint_matches_transformers(hf_dt_repo):
    agent = DecisionTransformerAgent.from_pretrained(REPO, target_return=6000, device="cpu")
    stats = agent.config.preprocessing
    mean, std = torch.tensor(stats.state_mean), torch.tensor(stats.state_std)
    assert agent.env_id == "HalfCheetah-v5" and agent.return_scale == 1000.0
    env = gym.make("HalfCheetah-v5")
    obs, _ = env.reset(seed=0)
    states = torch.tensor(obs, dtype=torch.float32)[None]
    actions = torch.zeros(0, 6)
    rtg = torch.tensor([[6000 / 1000]])
    timesteps = torch.tensor([0])
    reward, max_diff = None, 0.0
    for t in range(70):  # > K = 20, so the rolling window is exercised
        ours, _ = agent.predict(obs, reward=reward)
        actions = torch.cat([actions, torch.zeros(1, 6)])
        ref = hf_reference_action(hf_dt_repo, states, actions, None, rtg, timesteps, mean, std)
        actions[-1] = ref
        max_diff = max(max_diff, float(np.abs(ours - ref.numpy()).max()))
        obs, reward, *_ = env.step(ours)
        states = torch.cat([states, torch.tensor(obs, dtype=torch.float32)[None]])
        rtg = torch.cat([rtg, rtg[-1:] - reward / 1000])
        timesteps = torch.cat([timesteps, torch.tensor([t + 1])])
    assert max_diff <= 1e-5, max_diff


def test_hub_checkpoint_round_trips_to_native_format(hf_dt_files, tmp_path):
    agent = DecisionTransformerAgent.from_pretrained(REPO, device="cpu")
    agent.save_pretrained(tmp_path / "native")
    again = load_agent(tmp_path / "native", device="cpu")
    env = gym.make("HalfCheetah-v5")
    np.testing.assert_array_equal(rollout(agent, env, 25), rollout(again, env, 25))
    assert again.target_return == 6000.0  # the paper's first halfcheetah target


def test_unknown_hf_repo_needs_normalization_stats(hf_dt_files, tmp_path):
    import shutil

    folder = tmp_path / "unknown"  # not named like, nor a Hub cache snapshot of, a known repo
    shutil.copytree(seed_hub_cache(REPO, {}), folder)
    with pytest.raises(CheckpointError, match="state_mean"):
        DecisionTransformerAgent.from_pretrained(str(folder), device="cpu")
    agent = DecisionTransformerAgent.from_pretrained(
        str(folder),
        state_mean=[0.0] * 17,
        state_std=[1.0] * 17,
        env_id="HalfCheetah-v5",
        device="cpu",
    )
    assert agent.observation_space.shape == (17,)


# ---------------------------------------------------------------- round trips and batching
def test_save_load_gives_identical_actions(tmp_path):
    env = CountingEnv()
    agent = tiny_agent(env)
    agent.save_pretrained(tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} >= {
        "config.json",
        "model.safetensors",
        "README.md",
    }
    loaded = DecisionTransformerAgent.from_pretrained(tmp_path / "ckpt", device="cpu")
    np.testing.assert_array_equal(rollout(agent, env, 12), rollout(loaded, env, 12))
    card = (tmp_path / "ckpt" / "README.md").read_text()
    assert "library_name: seqagents" in card and "DecisionTransformerAgent" in card


def test_batched_predict_equals_single_env_agents():
    envs = [CountingEnv(offset=float(i)) for i in range(3)]
    batched = tiny_agent(envs[0])
    singles = [tiny_agent(envs[0]) for _ in envs]
    obs = np.stack([e.reset()[0] for e in envs])
    rewards = None
    for _ in range(10):
        actions, _ = batched.predict(obs, reward=rewards)
        for i, agent in enumerate(singles):
            single, _ = agent.predict(obs[i], reward=None if rewards is None else rewards[i])
            np.testing.assert_allclose(actions[i], single, atol=1e-6)
        steps = [e.step(a) for e, a in zip(envs, actions)]
        obs = np.stack([s[0] for s in steps])
        rewards = np.array([s[1] for s in steps])


def test_episode_start_resets_only_that_env():
    env = CountingEnv()
    agent, fresh = tiny_agent(env), tiny_agent(env)
    obs = np.stack([env.reset()[0]] * 2)
    for _ in range(6):
        agent.predict(obs, reward=np.ones(2) if agent._t.any() else None)
        obs = obs + 1
    before = agent.returns_to_go.copy()
    start_obs = np.stack([obs[0], np.zeros(2)])
    actions, _ = agent.predict(start_obs, reward=np.ones(2), episode_start=np.array([False, True]))
    expected_fresh, _ = fresh.predict(np.zeros(2))
    np.testing.assert_allclose(actions[1], expected_fresh, atol=1e-6)
    assert agent.returns_to_go[0] == pytest.approx(before[0] - 1.0)
    assert agent.returns_to_go[1] == pytest.approx(100.0)
    assert list(agent._t) == [7, 1]


def test_rtg_bookkeeping_on_known_rewards():
    env = CountingEnv()
    agent = tiny_agent(env, target_return=500.0, return_scale=10.0)
    obs, _ = env.reset()
    reward, seen = None, []
    for _ in range(8):
        agent.predict(obs, reward=reward)
        seen.append(float(agent.returns_to_go[0]))
        obs, reward, *_ = env.step(np.zeros(1))
    # rewards are 1, 2, 3, ...: rtg_t = 500 - sum_{k < t} (k + 1)
    assert seen == pytest.approx([500 - t * (t + 1) / 2 for t in range(8)])
    # The window's return tokens are those of the last K = 4 returns-to-go (scaled) and steps.
    net, ctx = agent.network, agent._ctx
    rtg = torch.tensor(seen[-4:], dtype=torch.float32)[:, None] / 10.0  # (4, 1)
    with torch.inference_mode():
        expected = net.embed_return(rtg) + net.embed_timestep(torch.arange(4, 8))  # (4, H)
    torch.testing.assert_close(ctx["tokens"][0, :, 0], expected)
    assert ctx["timesteps"][0].tolist() == [4, 5, 6, 7]


def _flat_dt(discrete: bool, **model) -> DecisionTransformerAgent:
    act_space = gym.spaces.Discrete(3) if discrete else gym.spaces.Box(-1, 1, (2,), np.float32)
    return DecisionTransformerAgent.create(
        gym.spaces.Box(-np.inf, np.inf, (5,), np.float64),
        act_space,
        state_mean=np.arange(5) * 0.1,
        state_std=np.full(5, 2.0),
        hidden_size=16,
        n_layer=2,
        n_head=2,
        context_len=4,
        max_ep_len=9,  # reached: clamped timesteps
        target_return=3.0,
        return_scale=2.0,
        seed=0,
        device="cpu",
        **model,
    )


@pytest.mark.parametrize(
    "model",
    [
        {"discrete": False},
        {"discrete": True},
        {"discrete": True, "position_scheme": "global", "embedding_tanh": True,
         "embed_layernorm": False},
        {"discrete": False, "position_scheme": "global"},
    ],
    ids=["continuous", "discrete", "dt-atari", "continuous-global"],
)  # fmt: skip
@torch.inference_mode()
def test_cached_tokens_and_predictions_equal_the_recomputed_window(model):
    """Past the buffer's wrap-around (> 2K steps), with left padding and a mid-batch reset:
    the cached tokens are the window's recomputed step_tokens and predict is act on it."""
    discrete = model.pop("discrete")
    agent, n = _flat_dt(discrete, **model), 3
    net, ref = agent.network, ReferenceWindows(agent, n)
    rng = np.random.default_rng(0)
    placeholder = torch.tensor(0) if discrete else torch.zeros(2)
    for step in range(14):
        obs = rng.normal(size=(n, 5))
        starts = np.zeros(n, bool) if step else np.ones(n, bool)
        if step in (6, 11):
            starts[1 if step == 6 else 2] = True  # one env starts a new episode
        reward = None if step == 0 else rng.normal(size=n)
        actions, _ = agent.predict(obs, reward=reward, episode_start=starts)
        ref.add(obs, starts)
        states, acts, rtg, timesteps, mask = ref.window(placeholder)
        expected = net.act(states, acts, rtg, timesteps, mask)  # (n, act_dim)
        if discrete:
            np.testing.assert_array_equal(actions, expected.argmax(-1).numpy())
        else:
            np.testing.assert_allclose(actions, expected.numpy(), atol=1e-5)
        ref.finish(actions)
        states, acts, rtg, timesteps, mask = ref.window(placeholder)
        ctx = agent._ctx
        assert torch.equal(ctx.mask, mask) and torch.equal(ctx["timesteps"][mask], timesteps[mask])
        tokens = net.step_tokens(net.embed_state(states), acts, rtg, timesteps)  # (n, K, 3, H)
        torch.testing.assert_close(ctx["tokens"][mask], tokens[mask], atol=1e-6, rtol=1e-6)


def test_observe_is_equivalent_to_passing_reward():
    env = CountingEnv()
    a, b = tiny_agent(env), tiny_agent(env)
    obs, _ = env.reset()
    reward = None
    for _ in range(7):
        act_a, _ = a.predict(obs, reward=reward)
        act_b, _ = b.predict(obs)
        np.testing.assert_array_equal(act_a, act_b)
        obs, reward, terminated, truncated, _ = env.step(act_a)
        b.observe(reward, terminated or truncated)


def test_timesteps_past_max_ep_len_are_clamped():
    env = CountingEnv(length=100)
    agent = tiny_agent(env, max_ep_len=8)
    actions = rollout(agent, env, 20)
    assert np.isfinite(actions).all()
    assert agent._ctx["timesteps"][0].tolist() == [7, 7, 7, 7]


def test_discrete_actions_and_sampling():
    env = gym.make("CartPole-v1")
    agent = DecisionTransformerAgent.create(
        env.observation_space, env.action_space, hidden_size=16, n_layer=1, device="cpu", seed=0
    )
    obs, _ = env.reset(seed=0)
    action, _ = agent.predict(obs)
    assert action.shape == () and env.action_space.contains(int(action))
    actions, _ = agent.predict(np.stack([obs] * 5), deterministic=False)
    assert actions.shape == (5,)


# ---------------------------------------------------------------- bad input
def test_bad_observations_are_rejected():
    env = CountingEnv()
    agent = tiny_agent(env)
    with pytest.raises(ValueError, match=r"shape \(3,\); expected \(2,\)"):
        agent.predict(np.zeros(3))
    with pytest.raises(ValueError, match="dtype"):
        agent.predict(np.array(["a", "b"]))
    with pytest.raises(ValueError, match="NaN or inf"):
        agent.predict(np.array([np.nan, 0.0]))


def test_missing_reward_after_first_step_is_an_error():
    env = CountingEnv()
    agent = tiny_agent(env)
    obs, _ = env.reset()
    agent.predict(obs)
    with pytest.raises(ValueError, match="reward"):
        agent.predict(obs)
    agent.predict(obs, episode_start=np.array([True]))  # a new episode needs no reward


def test_checkpoint_that_does_not_match_env(tmp_path):
    agent = tiny_agent(CountingEnv())
    with pytest.raises(CheckpointError, match=r"observation space mismatch.*shape=\(2,\).*\(17,\)"):
        agent.check_env(gym.make("HalfCheetah-v5"))
    agent.save_pretrained(tmp_path / "c")
    with pytest.raises(CheckpointError, match="mismatch"):
        DecisionTransformerAgent.from_pretrained(tmp_path / "c", env=gym.make("Pendulum-v1"))


def test_weights_that_do_not_match_config(tmp_path):
    tiny_agent(CountingEnv()).save_pretrained(tmp_path / "c")
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    config["model"]["act_dim"] = 3
    (tmp_path / "c" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"shape mismatches.*embed_action"):
        DecisionTransformerAgent.from_pretrained(tmp_path / "c")


def test_broken_checkpoint_folders(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        DecisionTransformerAgent.from_pretrained(tmp_path)
    tiny_agent(CountingEnv()).save_pretrained(tmp_path / "c")
    weights = tmp_path / "c" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        DecisionTransformerAgent.from_pretrained(tmp_path / "c")
    weights.unlink()
    with pytest.raises(CheckpointError, match="missing file model.safetensors"):
        DecisionTransformerAgent.from_pretrained(tmp_path / "c")
    (tmp_path / "c" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="model_type='bert'"):
        DecisionTransformerAgent.from_pretrained(tmp_path / "c")


def test_repo_missing_from_offline_cache_fails_fast():
    import time

    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE"):
        DecisionTransformerAgent.from_pretrained("someone/not-cached")
    assert time.perf_counter() - start < 5
    with pytest.raises(CheckpointError, match="neither an existing local folder"):
        DecisionTransformerAgent.from_pretrained("no/such/folder")


def test_pickle_with_objects_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("executed",))

    config = edbeeching_config("halfcheetah-medium")
    folder = tmp_path / "decision-transformer-gym-halfcheetah-medium"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    torch.save({"x": Payload()}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="refused to load"):
        DecisionTransformerAgent.from_pretrained(folder)


def test_push_to_hub_uploads_the_saved_folder(tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    uploaded = {}

    class Repo:
        repo_id = "me/dt"

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: Repo())
    monkeypatch.setattr(
        HfApi,
        "upload_folder",
        lambda self, repo_id, folder_path, **kw: uploaded.update(
            repo=repo_id,
            files=sorted(p.name for p in __import__("pathlib").Path(folder_path).iterdir()),
        ),
    )
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    tiny_agent(CountingEnv()).push_to_hub("me/dt", video=video)
    assert uploaded == {
        "repo": "me/dt",
        "files": ["README.md", "config.json", "model.safetensors", "replay.mp4"],
    }


def test_transformers_folder_with_model_safetensors_loads_like_the_bin(hf_dt_files, tmp_path):
    """Current transformers writes ``model.safetensors``; older folders ``pytorch_model.bin``."""
    from safetensors.torch import save_file

    bin_folder = seed_hub_cache(REPO, {})
    st_folder = tmp_path / "st"
    st_folder.mkdir()
    (st_folder / "config.json").write_text((bin_folder / "config.json").read_text())
    state = torch.load(bin_folder / "pytorch_model.bin", weights_only=True)
    save_file({k: v.clone() for k, v in state.items()}, str(st_folder / "model.safetensors"))
    stats = dict(
        state_mean=[0.1] * 17, state_std=[2.0] * 17, env_id="HalfCheetah-v5", target_return=6e3
    )
    a = DecisionTransformerAgent.from_pretrained(str(bin_folder), device="cpu", **stats)
    b = DecisionTransformerAgent.from_pretrained(str(st_folder), device="cpu", **stats)
    env = gym.make("HalfCheetah-v5")
    np.testing.assert_array_equal(rollout(a, env, 5), rollout(b, env, 5))
    (st_folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="neither model.safetensors nor pytorch_model.bin"):
        DecisionTransformerAgent.from_pretrained(str(st_folder), device="cpu", **stats)
