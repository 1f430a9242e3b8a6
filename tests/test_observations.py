"""Agents on observations beyond flat vectors: BabyAI Dict observations (DT and LEAP), Atari frames
(per-frame embedding cache, DT-Atari's position scheme)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from seqagents import DecisionTransformerAgent, LEAPAgent, load_agent, make_env
from seqagents.models.dt import DecisionTransformer, DTConfig
from seqagents.observations import BABYAI_WORDS, MissionVocabulary
from tests._dt import ReferenceWindows

LEVEL = "BabyAI-GoToLocalS7N5-v0"


def _vocab() -> MissionVocabulary:
    return MissionVocabulary.from_missions([], 12, extra_words=BABYAI_WORDS)


def _babyai_agent(cls, env, **kw):
    small = dict(n_layer=1, hidden_size=32, device="cpu", seed=0, mission_vocabulary=_vocab())
    if cls is LEAPAgent:
        small.update(horizon=3, n_head=2, n_actions=6, planner={"n_iterations": 3})
    else:
        small.update(context_len=4, target_return=1.0, return_scale=1.0)
    return cls.create(env.observation_space, env.action_space, env_id=LEVEL, **{**small, **kw})


@pytest.mark.parametrize("cls", [DecisionTransformerAgent, LEAPAgent])
def test_babyai_dict_observations_single_batched_and_round_trip(tmp_path, cls):
    env = make_env(LEVEL)
    agent = _babyai_agent(cls, env)
    assert agent.network.config.state_encoder == "babyai"
    obs, _ = env.reset(seed=1_000_000)
    actions = []
    reward = None
    for _ in range(6):
        action, _ = agent.predict(obs, reward=reward)
        assert action.shape == () and 0 <= int(action) < 7
        actions.append(int(action))
        obs, reward, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            break
    # The vocabulary travels with the checkpoint; the same seed gives the same actions.
    agent.save_pretrained(tmp_path / "ckpt")
    loaded = load_agent(tmp_path / "ckpt", device="cpu")
    assert loaded.mission_vocabulary == agent.mission_vocabulary
    obs, _ = env.reset(seed=1_000_000)
    reward = None
    for expected in actions:
        action, _ = loaded.predict(obs, reward=reward)
        assert int(action) == expected
        obs, reward, *_ = env.step(int(action))
    # Batched: a vector env's dict of arrays, rows equal to single-env calls.
    envs = gym.vector.SyncVectorEnv([lambda: make_env(LEVEL) for _ in range(3)])
    batch, _ = envs.reset(seed=[5, 6, 7])
    loaded.reset()
    loaded.seed()  # restart the planning streams the episode above drew from
    batched, _ = loaded.predict(batch)
    assert batched.shape == (3,)
    for i in range(3):
        single = load_agent(tmp_path / "ckpt", device="cpu")
        one = {k: v[i] for k, v in batch.items()}
        if cls is LEAPAgent:
            single.planning_seed = i  # env i of a batch plans with seed + i
        assert int(single.predict(one)[0]) == int(batched[i])


def test_unknown_mission_word_and_missing_privileged_keys():
    env = make_env(LEVEL)
    agent = _babyai_agent(LEAPAgent, env)
    obs, _ = env.reset(seed=3)
    with pytest.raises(ValueError, match="'teleport'"):
        agent.predict({**obs, "mission": "teleport to the red ball"})
    with pytest.raises(ValueError, match="image has shape"):
        agent.predict({**obs, "image": np.zeros((8, 8, 3), np.uint8)})
    privileged = make_env(LEVEL, privileged=True)
    oracle = _babyai_agent(LEAPAgent, privileged)
    assert oracle.network.config.state_encoder_kwargs["privileged"]
    with pytest.raises(ValueError, match="image has shape|privileged"):
        oracle.predict(obs)
    full, _ = privileged.reset(seed=3)
    assert oracle.predict(full)[0].shape == ()


def _atari_agent(**model) -> DecisionTransformerAgent:
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    return DecisionTransformerAgent.create(
        space,
        gym.spaces.Discrete(4),
        n_layer=1,
        hidden_size=32,
        context_len=5,
        target_return=5.0,
        return_scale=1.0,
        device="cpu",
        seed=0,
        **model,
    )


@pytest.mark.parametrize("scheme", ["timestep", "global"])
@torch.inference_mode()
def test_per_frame_cache_gives_the_actions_of_re_encoding_the_window(scheme):
    agent = _atari_agent(position_scheme=scheme, embedding_tanh=True, embed_layernorm=False)
    assert agent.network.config.state_encoder == "nature_cnn"
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (12, 4, 84, 84), dtype=np.uint8)
    net, ref = agent.network, ReferenceWindows(agent, 1)
    for t in range(12):
        action, _ = agent.predict(frames[t], reward=None if t == 0 else 1.0)
        # Re-encode the window from the raw frames, as an uncached agent would.
        ref.add(frames[t][None], np.array([t == 0]))
        logits = net.act(*ref.window(torch.tensor(0)))  # (1, n_actions)
        assert int(action) == int(logits.argmax(-1))
        ref.finish(np.asarray(action)[None])


@torch.inference_mode()
def test_babyai_dt_predicts_what_act_gives_on_the_recomputed_window():
    env = make_env(LEVEL)
    agent = _babyai_agent(DecisionTransformerAgent, env)
    net, ref = agent.network, ReferenceWindows(agent, 1)
    obs, _ = env.reset(seed=2)
    reward = None
    for t in range(10):  # past 2K = 8 steps: the context's buffer has wrapped
        action, _ = agent.predict(obs, reward=reward)
        ref.add(obs, np.array([t == 0]))
        logits = net.act(*ref.window(torch.tensor(0)))  # (1, n_actions)
        assert int(action) == int(logits.argmax(-1))
        ref.finish(np.asarray(action)[None])
        states, actions, rtg, timesteps, mask = ref.window(torch.tensor(0))
        tokens = net.step_tokens(net.embed_state(states), actions, rtg, timesteps)
        torch.testing.assert_close(agent._ctx["tokens"][mask], tokens[mask])  # (k, 3, H)
        obs, reward, terminated, truncated, _ = env.step(int(action))
        assert not (terminated or truncated)


def test_global_position_scheme_uses_only_the_first_real_timestep():
    torch.manual_seed(0)
    net = DecisionTransformer(
        DTConfig(
            state_shape=(3,), act_dim=2, discrete=True, hidden_size=16, context_len=4,
            position_scheme="global", dropout=0.0,
        )
    ).eval()  # fmt: skip
    s, a, r = torch.randn(1, 4, 3), torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, 1)
    mask = torch.tensor([[False, True, True, True]])
    base = net(s, a, r, torch.tensor([[0, 7, 8, 9]]), mask).action
    later = net(s, a, r, torch.tensor([[0, 7, 50, 60]]), mask).action
    torch.testing.assert_close(base[:, 1:], later[:, 1:])  # only the first real step counts
    first = net(s, a, r, torch.tensor([[0, 20, 21, 22]]), mask).action
    assert not torch.allclose(base[:, 1:], first[:, 1:])
    with pytest.raises(ValueError, match="position_scheme"):
        DTConfig(position_scheme="sinusoid")


def test_cli_evaluate_on_a_babyai_level_prints_only_the_table(tmp_path, capfd):
    from seqagents.cli import main

    level = "BabyAI-GoToObjMazeS4R2-v0"  # seed 4 makes minigrid print "Sampling rejected"
    env = make_env(level)
    agent = LEAPAgent.create(
        env.observation_space, env.action_space, env_id=level, mission_vocabulary=_vocab(),
        horizon=3, n_layer=1, hidden_size=32, n_head=2, n_actions=6,
        planner={"n_iterations": 2, "replan_every": 3}, device="cpu", seed=0,
    )  # fmt: skip
    agent.save_pretrained(tmp_path / "leap")
    capfd.readouterr()
    assert main(["evaluate", str(tmp_path / "leap"), "--episodes", "3", "--seed", "4",
                 "--no-progress"]) in (0, None)  # fmt: skip
    out = capfd.readouterr().out
    assert "Sampling rejected" not in out
    lines = [line for line in out.splitlines() if line.strip()]
    header = next(
        i for i, line in enumerate(lines) if line.split()[:3] == ["episode", "return", "length"]
    )
    rows = lines[header + 1 : header + 4]
    assert [row.split()[0] for row in rows] == ["1", "2", "3"]
    assert "success:" in lines[-1]
