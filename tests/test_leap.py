"""LEAP: bidirectional network, masked objectives, iterative-refinement planner, agent."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch

from seqagents import LEAPAgent, load_agent
from seqagents.data import TrajectoryData
from seqagents.errors import CheckpointError
from seqagents.models.dt import DecisionTransformer, DTConfig
from seqagents.models.leap import LEAP, LEAPConfig
from seqagents.planning import RefinementConfig, plan_energy, refine_plan
from seqagents.planning.refinement import refine_plan_reference
from seqagents.training.leap import leap_batch, leap_loss, train_leap


def tiny_config(**kw) -> LEAPConfig:
    base = dict(
        state_shape=(4,),
        n_actions=3,
        horizon=4,
        hidden_size=32,
        n_layer=2,
        n_head=2,
        dropout=0.0,
        state_encoder="linear",
    )
    return LEAPConfig(**{**base, **kw})


def tiny_net(seed: int = 0, **kw) -> LEAP:
    torch.manual_seed(seed)
    return LEAP(tiny_config(**kw)).eval()


def generators(n: int, seed: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


# ---------------------------------------------------------------------------- network
def test_bidirectional_unlike_dt():
    net = tiny_net()
    states = torch.randn(1, 1, 4)
    t = torch.zeros(1, dtype=torch.long)
    a = torch.tensor([[0, 1, 2, 1]])
    b = a.clone()
    b[0, 3] = 0  # change the LAST action
    la, lb = net(states, a, t), net(states, b, t)
    assert not torch.allclose(la[0, 0], lb[0, 0])  # the first step's logits see it

    torch.manual_seed(0)
    dt = DecisionTransformer(
        DTConfig(state_shape=(4,), act_dim=3, discrete=True, hidden_size=32, context_len=4)
    ).eval()
    s, r, ts = torch.randn(1, 4, 4), torch.zeros(1, 4, 1), torch.arange(4)[None]
    da, db = dt(s, a, r, ts).action, dt(s, b, r, ts).action
    torch.testing.assert_close(da[0, :3], db[0, :3])  # causal: earlier predictions unchanged


def test_history_padding_is_hidden_and_return_layout():
    net = tiny_net(history_len=2, return_conditioned=True)
    emb = net.embed_state(torch.randn(1, 3, 4))
    t = torch.tensor([0])
    known = torch.tensor([[False, False, True]])
    actions = torch.tensor([[3, 3, 0, 1, 2, 0]])  # PAD history, plan of 4
    r = torch.randn(1, 3, 1)
    ref = net.action_logits(net.context(emb, t, r, known), actions)
    emb2, r2 = emb.clone(), r.clone()
    emb2[:, :2] += 5.0  # padded history changes: nothing may change
    r2[:, :2] -= 3.0
    out = net.action_logits(net.context(emb2, t, r2, known), actions)
    torch.testing.assert_close(ref, out)
    with pytest.raises(ValueError, match="returns_to_go"):
        net.context(emb, t, None, known)


# ---------------------------------------------------------------------------- objective
def _toy_data(n_episodes: int = 40, length: int = 12) -> TrajectoryData:
    """Each episode repeats one action, set by its (nearly constant) first state coordinate:
    every plan step is predictable from the current state."""
    rng = np.random.default_rng(0)
    centre = np.repeat(rng.normal(size=(n_episodes, 4)), length, axis=0)  # (N, 4)
    obs = (centre + 0.05 * rng.normal(size=centre.shape)).astype(np.float32)
    actions = np.digitize(centre[:, 0], [-0.5, 0.5])  # 0, 1, 2
    return TrajectoryData(
        observations=obs,
        actions=actions,
        rewards=np.ones(len(obs)),
        terminals=np.zeros(len(obs), bool),
        episode_starts=np.arange(0, len(obs) + 1, length),
        observation_space=gym.spaces.Box(-np.inf, np.inf, (4,)),
        action_space=gym.spaces.Discrete(3),
    )


@pytest.mark.parametrize("objective", ["sweep", "random"])
def test_masked_loss_decreases(tmp_path, objective):
    agent = train_leap(
        _toy_data(),
        model_config={"horizon": 3, "hidden_size": 32, "n_layer": 1, "n_head": 2},
        train_config={
            "steps": 400,
            "batch_size": 16,
            "learning_rate": 3e-3,
            "warmup_steps": 5,
            "log_every": 50,
            "device": "cpu",
            "out_dir": str(tmp_path),
        },
        objective=objective,
        progress_bar=False,
    )
    import json

    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["loss"] < 0.3 * records[0]["loss"]
    assert agent.spec.training["objective"] == objective
    # The first plan action follows the rule the data was made with (batched over episodes).
    data = _toy_data()
    first = data.episode_starts[:-1]
    actions, _ = agent.predict(data.observations[first])
    assert (actions == data.actions[first]).mean() >= 0.7  # chance: 0.4


def test_sweep_masks_each_position_once_and_skips_pad():
    net = tiny_net()
    batch = {
        "states": torch.randn(2, 1, 4),
        "actions": torch.tensor([[0, 1, 2, 3], [3, 3, 3, 3]]),  # 3 = PAD
        "timesteps": torch.zeros(2, dtype=torch.long),
    }
    loss = leap_loss(net, batch)
    # By hand: one forward per masked position of the first window (the second is all PAD).
    expected = 0.0
    for j in range(3):
        a = batch["actions"][:1].clone()
        a[0, j] = net.config.mask_id
        logits = net(batch["states"][:1], a, batch["timesteps"][:1])[0, j]
        expected -= float(logits.log_softmax(-1)[batch["actions"][0, j]].detach())
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)


def test_random_objective_at_mask_prob_1_is_the_official_states_only_pickuploc_training():
    # The official code drops the action tokens on PickupLoc: every plan action is predicted
    # from the states alone. mask_prob=1.0 masks every plan slot (PAD ones too) in one forward.
    net = tiny_net()
    batch = {
        "states": torch.randn(2, 1, 4),
        "actions": torch.tensor([[0, 1, 2, 3], [2, 0, 3, 3]]),  # 3 = PAD: past the episode end
        "timesteps": torch.tensor([0, 5]),
    }
    loss = leap_loss(net, batch, "random", mask_prob=1.0)
    masked = torch.full_like(batch["actions"], net.config.mask_id)
    logp = net(batch["states"], masked, batch["timesteps"]).log_softmax(-1)  # (2, 4, 3)
    expected = -sum(
        float(logp[b, j, a]) for b, row in enumerate(batch["actions"].tolist())
        for j, a in enumerate(row) if a != net.config.pad_id
    )  # fmt: skip
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    other = {**batch, "actions": torch.tensor([[2, 2, 2, 3], [0, 1, 3, 3]])}
    other_expected = -sum(
        float(logp[b, j, a]) for b, row in enumerate(other["actions"].tolist())
        for j, a in enumerate(row) if a != net.config.pad_id
    )  # fmt: skip
    # Only the targets changed: the inputs carry no action (the same logits score them).
    assert float(leap_loss(net, other, "random", 1.0).detach()) == pytest.approx(
        other_expected, rel=1e-5
    )


def test_leap_batch_pads_outside_the_episode():
    window = {
        "states": torch.randn(1, 4, 4),
        "actions": torch.tensor([[1, 2, 0, 0]]),
        "returns_to_go": torch.zeros(1, 4, 1),
        "timesteps": torch.tensor([[6, 7, 0, 0]]),
        "mask": torch.tensor([[True, True, False, False]]),
    }
    cfg = tiny_config(history_len=1, horizon=3)
    batch = leap_batch(window, cfg)
    assert batch["actions"].tolist() == [[1, 2, 3, 3]]
    assert batch["timesteps"].tolist() == [7] and batch["states"].shape == (1, 2, 4)


# ---------------------------------------------------------------------------- planner
class PairwiseModel(torch.nn.Module):
    """A hand-built energy: unary preferences plus a bonus for equal neighbours.

    The conditional of step j given the plan is exactly softmax(u_j + w [a = a_{j-1}] +
    w [a = a_{j+1}]) (masked neighbours contribute nothing).
    """

    def __init__(self, unary: torch.Tensor, w: float) -> None:
        super().__init__()
        H, n = unary.shape
        self.config = LEAPConfig(state_shape=(1,), n_actions=n, horizon=H, state_encoder="linear")
        self.unary, self.w = unary, w

    def action_logits(self, ctx, actions):
        B, T = actions.shape
        n = self.config.n_actions
        one_hot = torch.nn.functional.one_hot(actions.clamp(max=n), n + 1)[..., :n].float()
        left = torch.nn.functional.pad(one_hot, (0, 0, 1, 0))[:, :-1]  # a_{j-1}
        right = torch.nn.functional.pad(one_hot, (0, 0, 0, 1))[:, 1:]  # a_{j+1}
        return self.unary.expand(B, T, n) + self.w * (left + right)


def _ctx(B: int, H: int):
    from seqagents.models.leap import PlanContext

    return PlanContext(torch.zeros(B, H, 1, 1), torch.zeros(B, H, 1), None)


def test_gibbs_finds_the_known_best_plan_of_a_hand_built_energy():
    torch.manual_seed(3)
    H, n = 4, 3
    unary = torch.randn(H, n)
    model = PairwiseModel(unary, w=2.0)
    ctx, hist = _ctx(1, H), torch.zeros(1, 0, dtype=torch.long)
    plans = torch.tensor(list(itertools.product(range(n), repeat=H)))  # (81, H)
    energies = plan_energy(model, _ctx(len(plans), H), torch.zeros(len(plans), 0).long(), plans)
    best = plans[energies.argmin()]
    plan = refine_plan(
        model,
        ctx,
        hist,
        RefinementConfig(
            n_iterations=60, mode="gibbs", temperature=2.0, anneal_to=0.02, track_energy=True
        ),
        generators=generators(1),
    )
    visited = plan.history[0, plan.energy[0].argmin()]
    assert visited.tolist() == best.tolist()
    assert float(plan.energy[0].min()) == pytest.approx(float(energies.min()), rel=1e-5)


def test_constraint_energy_steers_gibbs():
    H, n = 3, 3
    model = PairwiseModel(torch.zeros(H, n), w=0.0)
    forbid_zero = lambda plans: 50.0 * (plans == 0).float().sum(-1)  # noqa: E731
    plan = refine_plan(
        model,
        _ctx(4, H),
        torch.zeros(4, 0, dtype=torch.long),
        RefinementConfig(n_iterations=40, mode="gibbs", sites_per_iteration=2),
        generators=generators(4),
        constraint_energy=forbid_zero,
    )
    assert (plan.actions != 0).all()
    with pytest.raises(ValueError, match="gibbs"):
        refine_plan(
            model, _ctx(1, H), torch.zeros(1, 0).long(), RefinementConfig(n_iterations=2),
            generators=generators(1), constraint_energy=forbid_zero,
        )  # fmt: skip


@pytest.mark.parametrize("history_len", [0, 2])
def test_greedy_equals_the_reference_loop_and_batched_equals_per_env(history_len):
    net = tiny_net(history_len=history_len)
    B, P = 5, history_len
    states = torch.randn(B, P + 1, 4)
    t = torch.tensor([0, 3, 7, 1, 2])
    history = torch.randint(0, 3, (B, P))
    known = torch.ones(B, P + 1, dtype=torch.bool)
    if P:
        known[0, :P] = False
        history[0] = net.config.pad_id
    ctx = net.context(net.embed_state(states), t, None, known)
    config = RefinementConfig(n_iterations=12, track_energy=True)
    batched = refine_plan(net, ctx, history, config, generators=generators(B))
    for i in range(B):
        ref = refine_plan_reference(
            net, states[i : i + 1], t[i : i + 1], history[i : i + 1], n_iterations=12,
            generator=generators(1, seed=i)[0], known=known[i : i + 1],
        )  # fmt: skip
        assert ref.tolist() == batched.actions[i : i + 1].tolist()
        one = refine_plan(
            net, net.context(net.embed_state(states[i : i + 1]), t[i : i + 1], None,
                             known[i : i + 1]),
            history[i : i + 1], config, generators=generators(1, seed=i),
        )  # fmt: skip
        assert one.actions.tolist() == batched.actions[i : i + 1].tolist()
        torch.testing.assert_close(one.energy, batched.energy[i : i + 1], rtol=1e-4, atol=1e-4)


def test_energy_is_the_negative_pseudo_log_likelihood():
    net = tiny_net()
    states, t = torch.randn(1, 1, 4), torch.zeros(1, dtype=torch.long)
    plan = torch.tensor([[2, 0, 1, 1]])
    ctx = net.context(net.embed_state(states), t)
    energy = plan_energy(net, ctx, torch.zeros(1, 0).long(), plan)
    expected = 0.0
    for j in range(4):
        a = plan.clone()
        a[0, j] = net.config.mask_id
        expected -= float(net(states, a, t)[0, j].log_softmax(-1)[plan[0, j]].detach())
    assert float(energy.detach()) == pytest.approx(expected, rel=1e-5)


def test_planner_settings_out_of_range():
    net = tiny_net()
    ctx, hist = net.context(torch.zeros(1, 1, 32), torch.zeros(1).long()), torch.zeros(1, 0).long()
    bad = [
        ({"n_iterations": 0}, "n_iterations"),
        ({"n_iterations": 2, "mode": "beam"}, "mode"),
        ({"n_iterations": 2, "temperature": 0.0}, "temperature"),
        ({"n_iterations": 2, "temperature": float("nan")}, "temperature"),
        ({"n_iterations": 2, "horizon": 9}, "horizon"),
        ({"n_iterations": 2, "mode": "gibbs", "sites_per_iteration": 5}, "sites_per_iteration"),
    ]
    for kwargs, match in bad:  # out of range for any model, or for this one (H = 4)
        with pytest.raises(ValueError, match=match):
            refine_plan(net, ctx, hist, RefinementConfig(**kwargs), generators=generators(1))
    with pytest.raises(TypeError, match="unknown LEAP planner settings \\['beam_width'\\]"):
        RefinementConfig().replace(beam_width=4)


# ---------------------------------------------------------------------------- agent
def cartpole_agent(**planner) -> LEAPAgent:
    env = gym.make("CartPole-v1")
    return LEAPAgent.create(
        env.observation_space,
        env.action_space,
        env_id="CartPole-v1",
        horizon=4,
        n_layer=1,
        hidden_size=32,
        n_head=2,
        planner={"n_iterations": 5, **planner},
        device="cpu",
        seed=0,
    )


def _rollout(agent: LEAPAgent, n_envs: int, steps: int = 8, seed: int = 0) -> np.ndarray:
    envs = [gym.make("CartPole-v1") for _ in range(n_envs)]
    obs = np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(envs)])
    out = []
    agent.reset()
    for _ in range(steps):  # short enough that no CartPole episode ends
        actions, _ = agent.predict(obs if n_envs > 1 else obs[0])
        actions = np.atleast_1d(actions)
        out.append(actions)
        obs = np.stack([e.step(int(a))[0] for e, a in zip(envs, actions)])
    return np.stack(out)  # (steps, n_envs)


def test_agent_batched_equals_single_envs_and_open_loop():
    agent = cartpole_agent(replan_every=1)
    batched = _rollout(agent, 3)
    for i in range(3):
        single = cartpole_agent(replan_every=1, seed=i)
        assert (_rollout(single, 1, seed=i)[:, 0] == batched[:, i]).all()
    # Open loop: the agent replans only every H steps and executes the plan in between.
    agent = cartpole_agent(replan_every=4)
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    plans = []
    for step in range(8):
        action, _ = agent.predict(obs)
        if step % 4 == 0:
            plans.append(agent.last_plan.actions[0].copy())
        assert int(action) == plans[-1][step % 4]
        obs, *_ = env.step(int(action))


def test_round_trip_same_plans_and_overrides_are_saved(tmp_path):
    agent = cartpole_agent(track_energy=True)
    before = _rollout(agent, 2)
    agent.save_pretrained(tmp_path / "ckpt")
    loaded = load_agent(tmp_path / "ckpt", device="cpu")
    assert isinstance(loaded, LEAPAgent)
    assert (_rollout(loaded, 2) == before).all()
    assert loaded.last_plan.energy.shape == (2, 5)
    # An override acts and is what gets saved.
    changed = LEAPAgent.from_pretrained(tmp_path / "ckpt", n_iterations=2, mode="gibbs")
    changed.save_pretrained(tmp_path / "ckpt2")
    again = LEAPAgent.from_pretrained(tmp_path / "ckpt2")
    assert (again.planner.n_iterations, again.planner.mode) == (2, "gibbs")
    assert "LEAPAgent" in (tmp_path / "ckpt" / "README.md").read_text()


def test_sampling_when_not_deterministic():
    agent = cartpole_agent(n_iterations=3)
    obs = np.zeros(4, np.float32)
    seen = set()
    for seed in range(12):
        agent.planning_seed = seed
        agent.reset()
        seen.add(tuple(agent.predict(obs, deterministic=False)[0].reshape(-1).tolist()))
    assert len(seen) > 1


def test_bad_input():
    env = gym.make("Pendulum-v1")
    with pytest.raises(ValueError, match="discrete actions"):
        LEAPAgent.create(env.observation_space, env.action_space)
    cart = gym.make("CartPole-v1")
    for planner, match in [
        ({"n_iterations": 0}, "n_iterations"),
        ({"temperature": -1.0}, "temperature"),
        ({"horizon": 99}, "horizon"),
        ({"replan_every": 5}, "replan_every"),
    ]:
        with pytest.raises(ValueError, match=match):
            LEAPAgent.create(cart.observation_space, cart.action_space, horizon=4, planner=planner)
    with pytest.raises(TypeError, match="unknown LEAP planner settings"):
        LEAPAgent.create(cart.observation_space, cart.action_space, planner={"beam_width": 3})


def test_unknown_override_and_wrong_loader(tmp_path):
    agent = cartpole_agent()
    agent.save_pretrained(tmp_path / "c")
    with pytest.raises(TypeError, match="unknown options"):
        LEAPAgent.from_pretrained(tmp_path / "c", beam_width=4)
    from seqagents import DecisionTransformerAgent

    with pytest.raises(CheckpointError, match="leap"):
        DecisionTransformerAgent.from_pretrained(tmp_path / "c")


def test_planner_docstring_examples():
    import doctest

    from seqagents import config
    from seqagents.planning import refinement

    for module in (refinement, config):
        result = doctest.testmod(module, extraglobs={"torch": torch})
        assert result.attempted > 0 and result.failed == 0
