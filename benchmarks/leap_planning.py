"""One LEAP planning step: the batched planner against the official loop's way of planning.

Ours (:func:`seqagents.planning.refine_plan`, as ``LEAPAgent`` calls it): the new observation is
encoded once (older ones come from the agent's per-frame cache), the window's state tokens are
built once per plan and every iteration runs the transformer on them; envs are batched.
Reference (:func:`seqagents.planning.refinement.refine_plan_reference`): what the official code
does — one env at a time, and every iteration a full forward that re-encodes every known
observation of the window. Both give the same plan on the same seed (checked here).

A second reference, "official-cost", also pays what the official BabyAI code pays on top: its
window holds the current observation at every one of the H state slots (``I = [img] * H``), all
of them encoded at every iteration (our model uses a learned placeholder there, so the extra
encodings are computed and dropped; plans are unchanged).

Rows: a BabyAI-size model (babyai encoder on 7x7x3 views, 3 layers, 4 heads, 128, no history)
at H=5/N=10 and H=10/N=30, and an Atari-size model (Nature CNN on 4x84x84 frames, [R, s, a],
25 history steps + H=5, N=10). Columns: ms per planning step at batch 1 (ours, reference,
speed-up), and at batch 16 the per-env throughput of one batched call against 16 sequential
batch-1 calls. Rounds alternate between the contenders so background load hits both alike.

Run: ``python benchmarks/leap_planning.py [--rounds 5] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import time

import torch

from seqagents.models.leap import LEAP, LEAPConfig
from seqagents.planning.refinement import RefinementConfig, refine_plan, refine_plan_reference


def _setup(name: str):
    if name.startswith("babyai"):
        H, N = (5, 10) if name == "babyai-H5-N10" else (10, 30)
        cfg = LEAPConfig(
            state_shape=(7, 7, 3),
            n_actions=6,
            horizon=H,
            state_encoder="babyai",
            state_encoder_kwargs={"vocab_size": 25},
        )

        def states(B: int):
            return {
                "image": torch.randint(0, 6, (B, 1, 7, 7, 3), dtype=torch.uint8),
                "direction": torch.randint(0, 4, (B, 1)),
                "mission": torch.randint(0, 25, (B, 1, 9)),
            }

        def newest(s):
            return {k: v[:, -1:] for k, v in s.items()}

    else:
        N = 10
        cfg = LEAPConfig(
            state_shape=(4, 84, 84),
            n_actions=4,
            horizon=5,
            history_len=25,
            return_conditioned=True,
            state_encoder="nature_cnn",
            n_layer=6,
            n_head=8,
        )

        def states(B: int):
            return torch.randint(0, 255, (B, 26, 4, 84, 84), dtype=torch.uint8)

        def newest(s):
            return s[:, -1:]

    torch.manual_seed(0)
    net = LEAP(cfg).eval()
    return net, cfg, N, states, newest


class _OfficialCost(torch.nn.Module):
    """The network, plus the official code's encoding of the current observation at all H state
    slots of the window at every forward (computed, then dropped: plans are unchanged)."""

    def __init__(self, net: LEAP) -> None:
        super().__init__()
        self.net, self.config = net, net.config

    def forward(self, states, actions, timesteps, returns_to_go=None, known=None):
        H = self.config.horizon
        if isinstance(states, dict):
            slots = {k: v[:, -1:].expand(-1, H, *v.shape[2:]) for k, v in states.items()}
        else:
            slots = states[:, -1:].expand(-1, H, *states.shape[2:])
        self.net.embed_state(slots)  # (1, H, H_model): the official image/state encoders
        return self.net(states, actions, timesteps, returns_to_go, known)


def _time(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@torch.inference_mode()
def bench(name: str, rounds: int) -> dict:
    net, cfg, N, make_states, newest = _setup(name)
    P = cfg.history_len
    results = {}
    for B in (1, 16):
        s = make_states(B)
        t = torch.arange(B) + 40
        hist = torch.randint(0, cfg.n_actions, (B, P))
        rtg = torch.randn(B, P + 1, 1) if cfg.return_conditioned else None
        cached = net.embed_state(s)  # (B, P + 1, H): the agent's per-frame cache

        def ours(B=B, s=s, t=t, hist=hist, rtg=rtg, cached=cached):
            new = net.embed_state(newest(s))  # only the newest frame is encoded
            emb = torch.cat([cached[:, :-1], new], dim=1)  # (B, P + 1, H)
            ctx = net.context(emb, t, rtg)
            gens = [torch.Generator().manual_seed(i) for i in range(B)]
            return refine_plan(
                net, ctx, hist, RefinementConfig(n_iterations=N), generators=gens
            ).actions

        def reference(B=B, s=s, t=t, hist=hist, rtg=rtg, model=net):
            plans = []
            for i in range(B):
                si = (
                    {k: v[i : i + 1] for k, v in s.items()} if isinstance(s, dict) else s[i : i + 1]
                )
                plans.append(
                    refine_plan_reference(
                        model,
                        si,
                        t[i : i + 1],
                        hist[i : i + 1],
                        n_iterations=N,
                        generator=torch.Generator().manual_seed(i),
                        returns_to_go=None if rtg is None else rtg[i : i + 1],
                    )
                )
            return torch.cat(plans)

        official = _OfficialCost(net)

        def reference_official(reference=reference, official=official):
            return reference(model=official)

        assert torch.equal(ours(), reference()), f"{name} B={B}: plans differ"
        assert torch.equal(ours(), reference_official()), f"{name} B={B}: plans differ"
        t_ours = t_ref = t_off = float("inf")
        for _ in range(rounds):  # alternate: background load hits all alike
            t_ours = min(t_ours, _time(ours, 1))
            t_ref = min(t_ref, _time(reference, 1))
            if B == 1:
                t_off = min(t_off, _time(reference_official, 1))
        results[B] = (t_ours, t_ref, t_off)
    (o1, r1, f1), (o16, _, _) = results[1], results[16]
    return {
        "name": name,
        "ours_ms": 1e3 * o1,
        "ref_ms": 1e3 * r1,
        "speedup": r1 / o1,
        "official_ms": 1e3 * f1,
        "official_speedup": f1 / o1,
        "batch16_ms": 1e3 * o16,
        "batch16_throughput": 16 * o1 / o16,  # per-env throughput vs 16 sequential calls
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.only or ["babyai-H5-N10", "babyai-H10-N30", "atari-H5-N10"]
    print(f"torch {torch.__version__}, {args.threads} thread(s), best of {args.rounds} rounds")
    print(
        "| model | ours ms (B=1) | reference ms (B=1) | speed-up | official-cost ms | speed-up "
        "| B=16 ms | B=16 per-env throughput vs 16 calls |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        r = bench(name, args.rounds)
        print(
            f"| {r['name']} | {r['ours_ms']:.1f} | {r['ref_ms']:.1f} | {r['speedup']:.1f}x | "
            f"{r['official_ms']:.1f} | {r['official_speedup']:.1f}x | "
            f"{r['batch16_ms']:.1f} | {r['batch16_throughput']:.1f}x |"
        )


if __name__ == "__main__":
    main()
