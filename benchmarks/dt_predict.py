"""Per-step cost of DecisionTransformerAgent.predict, measured side by side in one run (CPU).

Compares, over a 1000-step episode of a HalfCheetah-size DT (3 layers, 1 head, H=128, K=20):
  (a) the transformers example loop: full history tensors grown with torch.cat each step,
      normalized, re-sliced to the last K steps and left-padded, fed to DecisionTransformerModel;
  (b) the bare network call (``DecisionTransformer.act``) on an already prepared (1, K) window:
      it embeds the K steps and runs the transformer (what predict would cost with no
      bookkeeping at all);
  ours: agent.predict(obs, reward=r): each step's tokens are embedded once, when the step
      arrives (the action's once it is chosen), and kept on device in a rolling window that
      ``DecisionTransformer.act_tokens`` runs.
Then batch 64: steps/s of one batched agent vs 64 single-env predicts.

Targets: ours >= 3x faster than (a) (issue 2); ours <= 1.1x of (b) (issue 14). The
bookkeeping row times predict with ``act_tokens`` stubbed out (input checks, returns-to-go,
embedding the new step, the context, the output): (b + bookkeeping) / b is the overhead ratio
free of the cache and load effects that move the measured ours/b (in the real loop each
forward pass streams the weights through the caches, so the bookkeeping's small calls run cold
and cost about twice what they cost alone).

    python benchmarks/dt_predict.py [--steps 1000] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from seqagents import DecisionTransformerAgent
from seqagents.models.dt import DTConfig


def make_agent(n_obs: int = 17, n_act: int = 6, device: str = "cpu") -> DecisionTransformerAgent:
    import gymnasium as gym

    obs_space = gym.spaces.Box(-np.inf, np.inf, (n_obs,), np.float64)
    act_space = gym.spaces.Box(-1, 1, (n_act,), np.float32)
    return DecisionTransformerAgent.create(
        obs_space,
        act_space,
        DTConfig(state_shape=(n_obs,), act_dim=n_act),
        state_mean=np.zeros(n_obs),
        state_std=np.ones(n_obs),
        target_return=6000.0,
        device=device,
        seed=0,
    )


def time_ours(agent, observations, rewards) -> float:
    agent.reset()
    start = time.perf_counter()
    for t in range(len(observations)):
        agent.predict(observations[t], reward=None if t == 0 else rewards[t - 1])
    return (time.perf_counter() - start) / len(observations)


def time_bare(agent, steps: int) -> float:
    K, net, device = agent.model_config.context_len, agent.network, agent.device
    states, actions = torch.randn(1, K, 17, device=device), torch.randn(1, K, 6, device=device)
    rtg, timesteps = torch.randn(1, K, 1, device=device), torch.arange(K, device=device)[None]
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(steps):
            net.act(states, actions, rtg, timesteps).cpu().numpy()  # the agent's host copy
    return (time.perf_counter() - start) / steps


def time_bookkeeping(agent, observations, rewards) -> float:
    """``agent.predict`` with the transformer call stubbed out (zeros): what predict adds to
    the bare forward, measured alone so that load on the machine hardly moves it."""
    network, real = agent.network, agent.network.act_tokens
    act_dim = agent.model_config.act_dim
    network.act_tokens = lambda tokens, *_: torch.zeros(
        tokens.shape[0], act_dim, device=tokens.device
    )
    try:
        return time_ours(agent, observations, rewards)
    finally:
        network.act_tokens = real


def time_transformers(agent, observations, rewards) -> float | None:
    try:
        import transformers
    except ImportError:
        return None
    cfg = transformers.DecisionTransformerConfig(
        state_dim=17,
        act_dim=6,
        hidden_size=128,
        n_layer=3,
        n_head=1,
        max_ep_len=1000,
        activation_function="relu",
        action_tanh=True,
    )
    model = transformers.DecisionTransformerModel(cfg).eval()
    K, scale = 20, 1000.0
    mean, std = torch.zeros(17), torch.ones(17)
    start = time.perf_counter()
    states = torch.as_tensor(observations[0], dtype=torch.float32)[None]
    actions, rtg = torch.zeros(0, 6), torch.tensor([[6000.0 / scale]])
    timesteps = torch.zeros(1, dtype=torch.long)
    for t in range(len(observations)):
        actions = torch.cat([actions, torch.zeros(1, 6)])
        s = ((states - mean) / std)[-K:]
        a, r, ts = actions[-K:], rtg[-K:], timesteps[-K:]
        pad = K - s.shape[0]
        mask = torch.cat([torch.zeros(pad), torch.ones(s.shape[0])])[None].long()
        s = torch.cat([torch.zeros(pad, 17), s])[None]
        a = torch.cat([torch.zeros(pad, 6), a])[None]
        r = torch.cat([torch.zeros(pad, 1), r])[None]
        ts = torch.cat([torch.zeros(pad, dtype=torch.long), ts])[None]
        with torch.no_grad():
            _, action_preds, _ = model(
                states=s,
                actions=a,
                rewards=None,
                returns_to_go=r,
                timesteps=ts,
                attention_mask=mask,
                return_dict=False,
            )
        actions[-1] = action_preds[0, -1]
        action_preds[0, -1].numpy()
        if t + 1 < len(observations):
            states = torch.cat(
                [states, torch.as_tensor(observations[t + 1], dtype=torch.float32)[None]]
            )
            rtg = torch.cat([rtg, rtg[-1:] - rewards[t] / scale])
            timesteps = torch.cat([timesteps, torch.tensor([t + 1])])
    return (time.perf_counter() - start) / len(observations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(args.steps, 17))
    rewards = rng.normal(size=args.steps)
    agent = make_agent(device=args.device)
    time_ours(agent, observations[:50], rewards)  # warm-up
    time_bare(agent, 50)
    # Alternate the three measurements over rounds and keep each one's best round, so a busy
    # machine slows them alike instead of biasing the ratios.
    ours, bare, ref, books = [], [], [], []
    for _ in range(args.rounds):
        ours.append(time_ours(agent, observations, rewards))
        bare.append(time_bare(agent, args.steps))
        ref.append(time_transformers(agent, observations, rewards))
        books.append(time_bookkeeping(agent, observations, rewards))
    ours, bare, books = min(ours), min(bare), min(books)
    ref = None if ref[0] is None else min(ref)

    B = args.batch
    batch_obs = rng.normal(size=(args.steps // 5, B, 17))
    batch_rew = rng.normal(size=(args.steps // 5, B))
    agent.reset()
    start = time.perf_counter()
    for t in range(len(batch_obs)):
        agent.predict(batch_obs[t], reward=None if t == 0 else batch_rew[t - 1])
    batched = B * len(batch_obs) / (time.perf_counter() - start)
    single = 1.0 / ours

    print(
        f"DT predict, HalfCheetah-size (3L/1H/128, K=20), {args.steps} steps, {args.device}, "
        f"{args.threads} thread(s), best of {args.rounds} alternating rounds"
    )
    print(f"{'':34s}{'ms/step':>10s}{'ratio':>12s}")
    print(f"{'ours: agent.predict':34s}{ours * 1e3:10.3f}{'1.00':>12s}")
    print(
        f"{'(b) bare forward, prepared window':34s}{bare * 1e3:10.3f}"
        f"{f'ours/b = {ours / bare:.2f}':>22s}"
    )
    print(
        f"{'bookkeeping alone (network stubbed)':34s}{books * 1e3:10.3f}"
        f"{f'(b + it)/b = {(bare + books) / bare:.2f}':>22s}"
    )
    if ref is not None:
        print(
            f"{'(a) transformers example loop':34s}{ref * 1e3:10.3f}"
            f"{f'a/ours = {ref / ours:.2f}':>22s}"
        )
    else:
        print("(a) skipped: pip install transformers")
    print(
        f"batch {B}: {batched:,.0f} env-steps/s vs {single:,.0f} at batch 1 "
        f"({batched / single:.1f}x)"
    )


if __name__ == "__main__":
    main()
