"""seqagents.analysis: exact attention capture, recorded rollouts, figures and their CLI.

Tiny random-weight DT/TT (Pendulum) and LEAP (CartPole) agents; no network, a few seconds.
"""

from __future__ import annotations

import doctest
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from seqagents import DecisionTransformerAgent, LEAPAgent, TrajectoryTransformerAgent
from seqagents.analysis import capture, capture_attention, key_steps, token_roles
from seqagents.analysis import figures as F
from seqagents.analysis.rollouts import run_rollouts, sweep
from seqagents.cli import main
from seqagents.models.kv_cache import ConcatKV, KVBuffer
from seqagents.models.transformer import SelfAttention, TransformerConfig
from seqagents.planning import trajectory_transitions

pytest.importorskip("matplotlib")


def _dt() -> DecisionTransformerAgent:
    env = gym.make("Pendulum-v1")
    return DecisionTransformerAgent.create(
        env.observation_space, env.action_space, env_id="Pendulum-v1", target_return=-100.0,
        return_scale=100.0, n_layer=2, hidden_size=16, context_len=4, seed=0, device="cpu",
    )  # fmt: skip


def _tt() -> TrajectoryTransformerAgent:
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(200, 3)).astype(np.float32)
    act = rng.uniform(-2, 2, (200, 1)).astype(np.float32)
    rew = -rng.uniform(0, 10, 200)
    rows = trajectory_transitions(obs, act, rew, np.zeros(200, bool), np.array([0, 100, 200]))
    return TrajectoryTransformerAgent.create(
        env.observation_space, env.action_space, rows, n_bins=10, env_id="Pendulum-v1",
        planner={"horizon": 2, "beam_width": 4, "max_context_transitions": 3},
        n_layer=2, n_head=2, n_embd=16, seed=0, device="cpu",
    )  # fmt: skip


def _leap() -> LEAPAgent:
    env = gym.make("CartPole-v1")
    return LEAPAgent.create(
        env.observation_space, env.action_space, env_id="CartPole-v1", horizon=3, n_layer=2,
        hidden_size=32, planner={"n_iterations": 4}, seed=0, device="cpu",
    )  # fmt: skip


MAKERS = {"dt": (_dt, "Pendulum-v1"), "tt": (_tt, "Pendulum-v1"), "leap": (_leap, "CartPole-v1")}


@pytest.fixture(scope="module")
def recorded() -> dict:
    """Two short recorded episodes of each agent."""
    out = {}
    for name, (make, env_id) in MAKERS.items():
        agent = make()
        out[name] = run_rollouts(agent, gym.make(env_id), 2, max_steps=8)
    return out


def test_doctests() -> None:
    from seqagents.analysis import (
        attention_figures,
        cli,
        plotting,
        rollout_figures,
        rollouts,
        training_figures,
    )

    figures = (plotting, attention_figures, rollout_figures, training_figures)
    for module in (capture, rollouts, *figures, cli):
        assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0


@pytest.mark.parametrize("name", ["dt", "tt", "leap"])
def test_weights_are_distributions_and_masks_hold(recorded: dict, name: str) -> None:
    future_mass = 0.0
    for episode in recorded[name]:
        for step in episode.attention:
            for call in step:
                for weights in call:  # (n_head, T, S)
                    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
                    _, T, S = weights.shape
                    future = np.arange(S)[None, :] > np.arange(T)[:, None] + (S - T)  # (T, S)
                    future_mass += float(weights[:, future].sum())
                    if name == "tt":  # value tokens are hidden from every query
                        D = episode.config.transition_dim
                        assert weights[..., D - 1 :: D].max(initial=0.0) == 0.0
    if name == "leap":
        assert future_mass > 0.1  # bidirectional: queries attend to later tokens
    else:
        assert future_mass == 0.0  # causal: never a future token


def test_weights_are_the_ones_the_layer_used() -> None:
    """Output rebuilt from the captured weights equals the layer's, with a KV cache (ConcatKV and
    KVBuffer) and a boolean mask."""
    torch.manual_seed(0)
    layer = SelfAttention(TransformerConfig(n_embd=8, n_head=2, attn_pdrop=0.0)).eval()
    B, T_past, T, H = 2, 3, 2, 8
    x_past, x = torch.randn(B, T_past, H), torch.randn(B, T, H)

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.view(B, -1, 2, 4).transpose(1, 2)  # (B, nh, T, hd)

    _, k_past, v_past = (heads(t) for t in layer.c_attn(x_past).split(H, dim=2))
    _, k_new, v_new = (heads(t) for t in layer.c_attn(x).split(H, dim=2))
    values = torch.cat([v_past, v_new], dim=2)  # (B, nh, T_past + T, hd)
    mask = torch.rand(B, 1, T, T_past + T) > 0.3
    mask[..., -1] = True
    buffer = KVBuffer.from_cache(ConcatKV(k_past, v_past), T_past + T)
    for past, attn_mask in ((ConcatKV(k_past, v_past), mask), (buffer, None)):
        with torch.no_grad(), capture_attention(layer) as rec:
            out, _ = layer(x, attn_mask=attn_mask, past=past)
        weights = rec.records[0].weights  # (B, nh, T, S)
        assert rec.records[0].query_offset == T_past
        y = (weights @ values).transpose(1, 2).reshape(B, T, H)  # (B, T, H)
        torch.testing.assert_close(layer.c_proj(y), out, atol=1e-5, rtol=1e-5)
    assert "forward" not in vars(layer)  # restored


@pytest.mark.parametrize("name", ["dt", "tt", "leap"])
def test_capture_does_not_change_actions(name: str) -> None:
    make, env_id = MAKERS[name]
    plain, captured = make(), make()
    env = gym.make(env_id)
    obs, _ = env.reset(seed=1)
    reward = None
    with capture_attention(captured) as rec:
        for _ in range(5):
            a, _ = plain.predict(obs, reward=reward)
            b, _ = captured.predict(obs, reward=reward)
            np.testing.assert_array_equal(a, b)
            obs, reward, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                break
    assert rec.steps == 5 and rec.records
    for record in rec.records:  # every call, KV-cached beam-search steps included
        torch.testing.assert_close(
            record.weights.sum(-1), torch.ones(record.weights.shape[:-1]), atol=1e-5, rtol=0
        )
        if name == "tt":  # value keys hidden wherever a cache kept or dropped them
            D = captured.model_config.transition_dim
            assert not record.weights[..., D - 1 :: D].any()
    assert "predict" not in vars(captured)
    assert not any("forward" in vars(m) for m in captured.network.modules())


def test_token_layouts() -> None:
    tt = _tt().model_config  # O = 3, A = 1, transition_dim = 6
    assert token_roles("tt", tt, 9) == ["state"] * 3 + ["action", "reward", "value"] + ["state"] * 3
    assert key_steps("tt", tt, 9).tolist() == [-1] * 6 + [0] * 3
    leap = _leap().model_config  # [s, a] per step, history_len 0
    assert token_roles("leap", leap, 4) == ["state", "action"] * 2
    assert key_steps("leap", leap, 6).tolist() == [0, 0, 1, 1, 2, 2]


def _files(tmp_path, fig, data, name: str) -> dict:
    png = F.save_figure(fig, data, tmp_path, name)
    assert png.stat().st_size > 1000
    return json.loads(png.with_suffix(".json").read_text())


def test_rtg_figure_is_the_agents_returns_to_go(recorded: dict, tmp_path) -> None:
    agent, env = _dt(), gym.make("Pendulum-v1")
    [episode] = run_rollouts(agent, env, 1, seed=3, max_steps=6)
    data = _files(tmp_path, *F.rtg_tracking([episode]), "rtg")
    # The same steps by hand: agent.returns_to_go after each predict.
    fresh = _dt()
    obs, _ = env.reset(seed=3)
    reward, expected = None, []
    for _ in range(6):
        action, _ = fresh.predict(obs, reward=reward)
        expected.append(float(fresh.returns_to_go[0]))
        obs, reward, *_ = env.step(action)
    np.testing.assert_allclose(data["episodes"][0]["commanded"], expected, rtol=1e-6)
    rewards = np.asarray(episode.rewards)
    np.testing.assert_allclose(data["episodes"][0]["collected_after"][0], rewards.sum())
    # R_t = target - r_0 - ... - r_{t-1}
    np.testing.assert_allclose(expected, -100.0 - np.r_[0, np.cumsum(rewards)[:-1]], rtol=1e-4)


def test_attention_figures(recorded: dict, tmp_path) -> None:
    for name in ("dt", "tt", "leap"):
        data = _files(tmp_path, *F.attention_heatmaps(recorded[name]), f"heat_{name}")
        assert len(data["layers"]) == 2 and data["n_steps"] >= 1
        np.testing.assert_allclose(np.sum(data["layers"][0], -1), 1.0, atol=1e-5)
        data = _files(tmp_path, *F.attention_allocation(recorded[name][0]), f"alloc_{name}")
        skip = ("step", "recent_steps", "window", "smoothed")
        parts = np.array([v for k, v in data.items() if k not in skip])
        np.testing.assert_allclose(parts.sum(0), 1.0, atol=1e-5)
    data = _files(tmp_path, *F.attention_distance(recorded["tt"]), "distance")
    assert len(data["mean_tokens"]) == 2 and min(data["mean_tokens"]) >= 0
    data = _files(tmp_path, *F.head_entropy(recorded["tt"]), "entropy")
    assert np.asarray(data["entropy"]).shape == (2, 2)
    data = _files(tmp_path, *F.attention_sparsity(recorded), "sparsity")
    assert set(data) == {"dt", "tt", "leap"} and 0 <= data["tt"]["sparsity_mean"] <= 1
    with pytest.raises(ValueError, match="Trajectory Transformer"):
        F.attention_distance(recorded["dt"])


def test_error_propagation_uses_the_plans(recorded: dict, tmp_path) -> None:
    data = _files(tmp_path, *F.error_propagation(recorded["tt"], recorded["dt"]), "errors")
    tt = recorded["tt"][0]
    obs_dim = tt.config.observation_dim
    states = np.concatenate([np.asarray(e.observations) for e in recorded["tt"]])
    first = (tt.plans[0][1, :obs_dim] - np.asarray(tt.observations[1])) / (states.std(0) + 1e-8)
    np.testing.assert_allclose(data["tt"]["state_error"][0], np.sqrt((first**2).mean()))
    assert len(data["dt"]["cumulative"]) == recorded["dt"][0].length


def test_sweep_figures(tmp_path) -> None:
    dt, tt, leap = _dt(), _tt(), _leap()
    targets = sweep(dt, gym.make("Pendulum-v1"), "target_return", [-200.0, 0.0], max_steps=4)
    data = _files(tmp_path, *F.target_return_sweep(targets, dataset_best=-50.0), "targets")
    assert data["target"] == [-200.0, 0.0] and data["dataset_best"] == -50.0
    assert data["mean"][1] == targets[0.0][0].episode_return
    beams = sweep(tt, gym.make("Pendulum-v1"), "beam_width", [1, 4], max_steps=3)
    assert tt.planner.beam_width == 4  # restored
    refs = {"DT": targets[0.0], "LEAP": run_rollouts(leap, gym.make("CartPole-v1"), max_steps=3)}
    data = _files(tmp_path, *F.compute_cost(beams, refs), "cost")
    assert data["beam_width"] == [1, 4] and set(data["references"]) == {"DT", "LEAP"}
    env = gym.make("CartPole-v1")
    [episode] = run_rollouts(leap, env, 1, max_steps=5)
    data = _files(tmp_path, *F.leap_energy([episode]), "energy")
    np.testing.assert_allclose(data["mean"], np.mean(episode.energies, axis=0), rtol=1e-6)
    assert len(data["mean"]) == 4 and not leap.planner.track_energy  # restored
    results = sweep(leap, env, "n_iterations", [1, 3], n_episodes=2, max_steps=5)
    data = _files(tmp_path, *F.leap_iterations(results), "iterations")
    assert data["n_iterations"] == [1, 3] and leap.planner.n_iterations == 4


def test_training_curves(tmp_path) -> None:
    lines = [{"step": s, "loss": 1.0 / s, "lr": 1e-4} for s in (1, 2, 3)]
    lines.append({"step": 3, "loss": 0.3, "lr": 1e-4, "eval": {"step": 3, "success_rate": 0.5}})
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    data = _files(tmp_path, *F.training_curves(F.read_metrics(tmp_path)), "curves")
    assert data["loss"] == [1.0, 0.5, 1.0 / 3, 0.3] and data["eval_score"] == [0.5]


def test_cli(tmp_path, capsys) -> None:
    dt_dir, tt_dir = tmp_path / "dt", tmp_path / "tt"
    _dt().save_pretrained(dt_dir)
    _tt().save_pretrained(tt_dir)
    out = tmp_path / "out"
    common = ["--episodes", "1", "--max-steps", "5", "--no-progress", "--out", str(out)]
    assert main(["analyze", str(dt_dir), *common, "--targets", "-100", "0"]) == 0
    for name in ("heatmaps", "allocation", "rtg", "targets", "sparsity"):
        assert (out / f"{name}.png").stat().st_size > 1000 and (out / f"{name}.json").exists()
    figures = ["--figures", "distance", "errors", "cost", "--compare", str(dt_dir)]
    assert main(["analyze", str(tt_dir), *common, *figures, "--beam-widths", "1", "2"]) == 0
    assert json.loads((out / "errors.json").read_text())["dt"] is not None
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0, "lr": 0.1}\n')
    assert main(["plot", str(tmp_path / "run"), "--out", str(out)]) == 0
    assert (out / "training_curves.png").exists()
    capsys.readouterr()
    bad = [
        ["analyze", str(dt_dir), *common, "--figures", "nope"],
        ["analyze", str(dt_dir), *common, "--figures", "entropy"],
        ["plot", str(tmp_path / "missing")],
    ]
    for argv in bad:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "error" in err


def test_video_overlay_prints_step_reward_and_rtg(tmp_path) -> None:
    from PIL import Image

    from seqagents.video import _overlay_lines, _StepCounter, record_video
    from tests._toy import ToyEnv

    class BigToy(ToyEnv):
        def render(self) -> np.ndarray:
            return np.full((96, 128, 3), 40 + 20 * self.t, dtype=np.uint8)

    env = BigToy(max_length=3, render_mode="rgb_array")
    agent = DecisionTransformerAgent.create(
        env.observation_space, env.action_space, target_return=50.0, n_layer=1, hidden_size=8,
        context_len=2, device="cpu",
    )  # fmt: skip
    frames = {}
    for overlay in (False, True):
        path = record_video(agent, env, tmp_path / f"{overlay}.gif", seed=0, overlay=overlay)
        with Image.open(path) as gif:
            frames[overlay] = np.asarray(gif.convert("RGB"))
    plain, shown = frames[False].astype(int), frames[True].astype(int)
    assert plain.shape == (480, 640, 3)  # 96x128 upscaled x5 (nearest neighbour) to >= 400 px
    assert shown.shape[0] > plain.shape[0] and shown.shape[1] == plain.shape[1]
    assert np.abs(shown[: plain.shape[0]] - plain).max() <= 8  # the game's pixels untouched
    assert shown[plain.shape[0] :].max() > 150  # the text is in the panel under the frame
    counter = _StepCounter(env)
    counter.reset(seed=0)
    assert _overlay_lines(agent, counter) == ["step 0", "return 0.00", "RTG 50.00"]
    obs, _ = env.reset(seed=0)
    action, _ = agent.predict(obs)
    counter.step(action)
    lines = _overlay_lines(agent, counter)
    assert lines[:2] == ["step 1", f"reward {counter.last_reward:.2f}"]
    assert lines[-1] == f"RTG {float(agent.returns_to_go[0]):.2f}"


def test_return_conditioned_leap_reports_its_returns_to_go() -> None:
    env = gym.make("CartPole-v1")
    agent = LEAPAgent.create(
        env.observation_space, env.action_space, horizon=2, n_layer=1, hidden_size=16,
        return_conditioned=True, target_return=20.0, planner={"n_iterations": 2}, device="cpu",
    )  # fmt: skip
    [episode] = run_rollouts(agent, env, max_steps=4)
    rewards = np.asarray(episode.rewards)
    np.testing.assert_allclose(episode.returns_to_go, 20.0 - np.r_[0, np.cumsum(rewards)[:-1]])
    assert _leap().returns_to_go is None  # mission-conditioned: no return-to-go


def test_weights_with_beam_copies_sharing_their_parents_keys() -> None:
    """The TT planner's SiblingKV cache: captured weights rebuild the layer's output."""
    from seqagents.models.kv_cache import SharedPrefixKV

    torch.manual_seed(1)
    layer = SelfAttention(TransformerConfig(n_embd=8, n_head=2, attn_pdrop=0.0)).eval()
    G, n, S, H = 2, 2, 3, 8  # parents (one env), copies, parent tokens, width
    R = G * n

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.view(t.shape[0], -1, 2, 4).transpose(1, 2)  # (B, nh, T, hd)

    _, k_past, v_past = (heads(t) for t in layer.c_attn(torch.randn(G, S, H)).split(H, dim=2))
    empty = k_past.new_zeros(1, 2, 0, 4)  # (E, nh, 0, hd): no env prefix
    parent = SharedPrefixKV.from_cache(
        ConcatKV(empty, empty), torch.zeros(G, dtype=torch.long), S + 2 * n
    )
    parent.suffix.append(k_past, v_past)
    cache = parent.expand(torch.arange(G).repeat(n), n, 2)  # copies share their parent's keys
    x = torch.randn(R, 1, H)  # one new token per copy, rows (copy, beam)
    with torch.no_grad(), capture_attention(layer) as rec:
        out, _ = layer(x, past=cache)
    weights = rec.records[0].weights  # (R, nh, 1, S + 1)
    _, _, v_new = (heads(t) for t in layer.c_attn(x).split(H, dim=2))
    parent_of = torch.arange(R) % G  # (R,)
    values = torch.cat([v_past[parent_of], v_new], dim=2)  # (R, nh, S + 1, hd)
    y = (weights @ values).transpose(1, 2).reshape(R, 1, H)
    torch.testing.assert_close(layer.c_proj(y), out, atol=1e-5, rtol=1e-5)
