"""Seconds per TT planning step: shared-prefix beam search vs per-beam cache vs recomputing.

A halfcheetah-sized Trajectory Transformer (4 layers, 4 heads, width 128, transition_dim 25,
N = 100) with random weights plans from a full context (5 transitions + the current observation)
at the halfcheetah planner settings (beam 32, horizon 5) and the paper defaults (beam 128,
horizon 15). Columns, in alternating rounds: ``beam_plan`` (shared-prefix attention: the window's
keys/values once per env), the per-beam KV-cached planner it replaced (the same decoder with
``share_keys=False``, ``tests/_tt_reference.py``),
and a floor: the linear layers alone (qkv, attention projection, MLP, heads) on the same
``(rows, tokens)`` the shared-prefix planner feeds the model, i.e. what any exact planner doing
this search must at least compute. All planners get the same seed, so they must return the
same plan; the table says whether they did. Last line: 10 envs planned in one call vs 1 env.

The recomputing reference runs the model over the whole window for every sampled token, as the
original does; it is slow on CPU, so it runs once (``--reference-repeats``), and for horizons
above 5 its time is extrapolated from horizons 1 and 3 (``--full-reference`` measures it; the
output says which).

    python benchmarks/tt_planning.py                  # both settings, CPU
    python benchmarks/tt_planning.py --settings halfcheetah --rounds 5
    python benchmarks/tt_planning.py --settings defaults --rounds 1 --no-reference --profile
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from seqagents.models.tt import TrajectoryTransformer, TTConfig
from seqagents.planning import BeamSearchConfig, Discretizer, Plan, beam_plan
from seqagents.planning.beam_decoder import BeamDecoder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the reference planners' tests/
from tests._tt_reference import beam_plan_per_beam, beam_plan_reference  # noqa: E402


@dataclass(frozen=True)
class Setting:
    name: str
    beam_width: int
    horizon: int


SETTINGS = {
    "halfcheetah": Setting("halfcheetah", beam_width=32, horizon=5),  # TT config, halfcheetah
    "defaults": Setting("defaults", beam_width=128, horizon=15),  # TT paper defaults
}


def make_model(device: torch.device) -> tuple[TrajectoryTransformer, Discretizer]:
    torch.manual_seed(0)
    model = TrajectoryTransformer(TTConfig()).to(device).eval()
    with torch.no_grad():
        # Somewhat sharper next-token distributions than the init's (top token ~15%), still
        # diverse enough that all beams differ.
        model.pos_emb.normal_(0.0, 0.5)
        model.head.weight.mul_(2.0)
    data = np.random.default_rng(0).normal(size=(10_000, model.config.transition_dim))
    return model, Discretizer.from_data(data, n_bins=model.config.vocab_size).to(device)


def record_calls(model: TrajectoryTransformer, plan: Callable[[], Plan]) -> list[tuple[int, int]]:
    """The ``(rows, new tokens)`` of every model call one plan makes."""
    calls: list[tuple[int, int]] = []
    handle = model.register_forward_pre_hook(lambda _, args: calls.append(tuple(args[0].shape)))
    try:
        plan()
    finally:
        handle.remove()
    return calls


@torch.inference_mode()
def linear_floor(
    model: TrajectoryTransformer, calls: list[tuple[int, int]], device: torch.device
) -> float:
    """Seconds of the linear layers alone (qkv, attention projection, MLP, heads) for ``calls``."""
    H = model.config.n_embd
    inputs = {shape: torch.randn(*shape, H, device=device) for shape in set(calls)}  # (B, T, H)
    dims = torch.zeros(max(t for _, t in calls), dtype=torch.long, device=device)  # (T_max,)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for rows, width in calls:
        x = inputs[rows, width]  # (B, T, H)
        for block in model.transformer.h:
            block.attn.c_attn(x)  # (B, T, 3H)
            block.attn.c_proj(x)  # (B, T, H)
            block.mlp.c_proj(block.mlp.c_fc(x))  # (B, T, 4H) -> (B, T, H)
        model.head(x, dims[:width])  # (B, T, N + 1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def profile_plan(
    plan: Callable[[], Plan], cached_plan: Callable[[], Plan], calls: list[tuple[int, int]]
) -> str:
    """Where one planning call spends its time: window recomputes (both planners), the rows
    each recompute feeds, and torch.profiler's table of operators of ``beam_plan``."""
    from torch.profiler import profile

    lines = []
    recompute = BeamDecoder._recompute
    for name, run in (("beam_plan", plan), ("cached planner", cached_plan)):
        spent = [0.0]

        def timed_recompute(self, window, spent=spent):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            result = recompute(self, window)
            spent[0] += time.perf_counter() - start
            return result

        BeamDecoder._recompute = timed_recompute  # type: ignore[method-assign]
        try:
            total, _ = timed(run, torch.device("cpu"))
        finally:
            BeamDecoder._recompute = recompute  # type: ignore[method-assign]
        lines.append(f"{name}: window recomputes {spent[0]:.3f} s of {total:.3f} s")
    chunks = " ".join(f"{rows}x{tokens}" for rows, tokens in calls if tokens > 1)
    lines.append(f"beam_plan's model calls of more than one token (rows x tokens): {chunks}")
    with profile() as prof:
        plan()
    lines.append(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    return "\n".join(lines)


@torch.inference_mode()
def decode_attention_cost(device: torch.device, keys: int = 110) -> str:
    """Per-call cost of one decoding step's attention (one query per row over ``keys`` cached
    keys, the paper-size 4 heads x 32), and the rate at which it reads the keys and values."""
    lines = [f"decoding attention, 1 query per row over {keys} keys (4 heads x 32), per call:"]
    for rows in (32, 64, 128, 256):
        q = torch.randn(rows, 4, 1, 32, device=device)  # (R, nh, 1, hd)
        k, v = (torch.randn(rows, 4, keys, 32, device=device) for _ in range(2))  # (R, nh, S, hd)
        torch.nn.functional.scaled_dot_product_attention(q, k, v)  # warm-up
        start = time.perf_counter()
        for _ in range(100):
            torch.nn.functional.scaled_dot_product_attention(q, k, v)
        seconds = (time.perf_counter() - start) / 100
        read = 2 * k.numel() * k.element_size()
        lines.append(
            f"  {rows:>3} rows: {seconds * 1e3:.3f} ms, keys+values {read / 2**20:.1f} MiB read "
            f"at {read / seconds / 1e9:.1f} GB/s"
        )
    return "\n".join(lines)


def float64_verdict(
    model: TrajectoryTransformer, disc: Discretizer, context: torch.Tensor, config: BeamSearchConfig
) -> str:
    """Why two planners' float32 plans differ: rerun both in float64, where rounding cannot
    flip a near-tie between beams or a sampled token."""
    double = copy.deepcopy(model).double()
    plans = [
        planner(double, disc, context, config, generator=torch.Generator().manual_seed(0))
        for planner in (beam_plan, beam_plan_per_beam)
    ]
    if same_plan(*plans):
        return (
            "float32 plans differ by rounding (a near-tie flipped); in float64 both planners "
            f"return the same plan (value {float(plans[0].value):.6f})"
        )
    return "the planners' plans differ in float64 too: a bug"


def timed(plan: Callable[[], Plan], device: torch.device) -> tuple[float, Plan]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = plan()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def same_plan(a: Plan, b: Plan) -> bool:
    return torch.equal(a.tokens, b.tokens) and torch.allclose(a.value, b.value, rtol=1e-4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating timed rounds (medians reported)"
    )
    parser.add_argument(
        "--reference-repeats", type=int, default=1, help="timed calls of the reference planner"
    )
    parser.add_argument(
        "--full-reference",
        action="store_true",
        help="time the reference at every horizon (defaults: ~6 min on 1 CPU thread) instead of "
        "extrapolating horizons above 5 from horizons 1 and 3",
    )
    parser.add_argument("--no-reference", action="store_true", help="skip the reference")
    parser.add_argument(
        "--envs",
        type=int,
        default=10,
        help="envs planned together in the batched comparison (halfcheetah setting; 0 = skip)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print torch.profiler's top operators of one beam_plan call per setting",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a few shared cores, more threads that wait on "
        "each other are slower than one); 0 = torch's default",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model, disc = make_model(device)
    config = model.config
    n_context = 5  # max_context_transitions: the steady state of an episode
    length = n_context * config.transition_dim + config.observation_dim
    source = torch.Generator().manual_seed(0)
    contexts = [
        torch.randint(0, config.vocab_size, (length,), generator=source).to(device)
        for _ in range(max(args.envs, 1))
    ]
    context = contexts[0]

    print(
        f"TT planning step on {device} ({torch.get_num_threads()} threads), random "
        f"{config.n_layer}L/{config.n_head}H/{config.n_embd} model, transition_dim "
        f"{config.transition_dim}, N {config.vocab_size}, context {n_context} transitions"
    )
    print(
        f"shared-prefix (beam_plan), per-beam cached and linear floor: median of {args.rounds} "
        f"alternating round(s) after a warm-up; reference: {args.reference_repeats} call(s)"
    )

    def run(planner: Callable[..., Plan], **kwargs: int) -> Plan:
        generator = torch.Generator(device).manual_seed(0)  # same draws for every planner
        return planner(model, disc, context, BeamSearchConfig(**kwargs), generator=generator)

    def reference(beam_width: int, horizon: int, ours: Plan | None = None) -> tuple[float, bool]:
        """Reference seconds at this setting, and whether it chose the same plan as ours."""
        plan = partial(run, beam_plan_reference, beam_width=beam_width, horizon=horizon)
        seconds = []
        for _ in range(args.reference_repeats):
            s, their_plan = timed(plan, device)
            seconds.append(s)
        if ours is None:
            ours = run(beam_plan, beam_width=beam_width, horizon=horizon)
        return float(np.median(seconds)), same_plan(ours, their_plan)

    profiles: list[tuple[str, str]] = []
    header = (
        f"{'setting':<12} {'beam':>5} {'horizon':>7} {'shared s':>9} {'cached s':>9} "
        f"{'floor s':>8} {'reference s':>12}  {'vs cached':>9} {'vs floor':>8} "
        f"{'vs ref':>7}  same plan"
    )
    print(header)
    notes = []
    for name in args.settings:
        setting = SETTINGS[name]
        kwargs = dict(beam_width=setting.beam_width, horizon=setting.horizon)
        shared_plan = partial(run, beam_plan, **kwargs)
        cached_plan = partial(run, beam_plan_per_beam, **kwargs)
        calls = record_calls(model, shared_plan)
        times: dict[str, list[float]] = {"shared": [], "cached": [], "floor": []}
        ours, theirs = shared_plan(), cached_plan()  # warm-up
        linear_floor(model, calls, device)
        for _ in range(args.rounds):
            s, ours = timed(shared_plan, device)
            times["shared"].append(s)
            s, theirs = timed(cached_plan, device)
            times["cached"].append(s)
            times["floor"].append(linear_floor(model, calls, device))
        shared_s, cached_s, floor_s = (float(np.median(times[k])) for k in times)
        same = same_plan(ours, theirs)
        if not same:
            verdict = float64_verdict(model, disc, context, BeamSearchConfig(**kwargs))
            notes.append(f"* {name}: {verdict}")
        ref_text, ratio_text = f"{'-':>12}", f"{'-':>7}"
        if not args.no_reference:
            if args.full_reference or setting.horizon <= 5:
                ref_s, same_ref = reference(setting.beam_width, setting.horizon, ours)
                mark = " "
            else:
                # With a full context every planned transition costs the reference the same
                # (only the last one skips the next observation): seconds grow linearly.
                short, same_short = reference(setting.beam_width, 1)
                longer, same_longer = reference(setting.beam_width, 3)
                ref_s = longer + (setting.horizon - 3) * (longer - short) / 2
                same_ref = same_short and same_longer
                mark = "*"
                notes.append(
                    f"* {name}: reference extrapolated from horizons 1 and 3 ({short:.1f} s, "
                    f"{longer:.1f} s), same plan checked at those horizons; --full-reference "
                    "times it"
                )
            same = same and same_ref
            ref_text, ratio_text = f"{ref_s:>11.2f}{mark}", f"{ref_s / shared_s:>6.1f}x"
        print(
            f"{name:<12} {setting.beam_width:>5} {setting.horizon:>7} {shared_s:>9.3f} "
            f"{cached_s:>9.3f} {floor_s:>8.3f} {ref_text}  {cached_s / shared_s:>8.2f}x "
            f"{shared_s / floor_s:>7.2f}x {ratio_text}  {'yes' if same else 'NO *'}",
            flush=True,
        )
        if args.profile:
            profiles.append((name, profile_plan(shared_plan, cached_plan, calls)))
    if args.envs > 1:
        setting = SETTINGS["halfcheetah"]
        config = BeamSearchConfig(beam_width=setting.beam_width, horizon=setting.horizon)

        def batch(n: int) -> Plan:
            generators = [torch.Generator(device).manual_seed(i) for i in range(n)]
            return beam_plan(model, disc, contexts[:n], config, generator=generators)

        one_env, many_envs = [], []
        batch(1), batch(args.envs)  # warm-up
        for _ in range(args.rounds):
            one_env.append(timed(partial(batch, 1), device)[0])
            many_envs.append(timed(partial(batch, args.envs), device)[0])
        one_s, many_s = float(np.median(one_env)), float(np.median(many_envs))
        print(
            f"{args.envs} envs planned together (halfcheetah setting): {many_s:.3f} s vs "
            f"{one_s:.3f} s for 1 env = {many_s / one_s:.2f}x ({args.envs * one_s / many_s:.2f}x "
            f"the throughput of {args.envs} single-env calls)"
        )
    for note in notes:
        print(note)
    for name, table in profiles:
        print(f"\nbeam_plan, {name} setting (torch.profiler operators: one call)")
        print(table)
    if args.profile:
        print(decode_attention_cost(device))


if __name__ == "__main__":
    main()
