"""Seconds per TT planning step: KV-cached beam search vs the recomputing reference.

A halfcheetah-sized Trajectory Transformer (4 layers, 4 heads, width 128, transition_dim 25,
N = 100) with random weights plans from a full context (5 transitions + the current observation)
at the halfcheetah planner settings (beam 32, horizon 5) and the paper defaults (beam 128,
horizon 15). Both planners get the same seed, so they must return the same plan; the table says
whether they did.

The recomputing reference runs the model over the whole window for every sampled token, as the
original does; it is slow on CPU, so it runs once (``--reference-repeats``), and for horizons
above 5 its time is extrapolated from horizons 1 and 3 (``--full-reference`` measures it; the
output says which).

    python benchmarks/tt_planning.py                  # both settings, CPU
    python benchmarks/tt_planning.py --settings halfcheetah --repeats 5
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from seqagents.models.tt import TrajectoryTransformer, TTConfig
from seqagents.planning import Discretizer, Plan, beam_plan
from seqagents.planning.beam_search import _beam_plan_reference


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


def time_plan(plan: Callable[[], Plan], repeats: int, device: torch.device) -> tuple[float, Plan]:
    """Median seconds of ``repeats`` calls (after one warm-up call when repeating)."""
    result = plan() if repeats > 1 else None
    seconds = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = plan()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    assert result is not None
    return float(np.median(seconds)), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of the cached planner")
    parser.add_argument(
        "--reference-repeats", type=int, default=1, help="timed calls of the reference planner"
    )
    parser.add_argument(
        "--full-reference",
        action="store_true",
        help="time the reference at every horizon (defaults: ~6 min on 1 CPU thread) instead of "
        "extrapolating horizons above 5 from horizons 1 and 3",
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
    context = torch.randint(0, config.vocab_size, (length,), generator=torch.Generator())
    context = context.to(device)

    print(
        f"TT planning step on {device} ({torch.get_num_threads()} threads), random "
        f"{config.n_layer}L/{config.n_head}H/{config.n_embd} model, transition_dim "
        f"{config.transition_dim}, N {config.vocab_size}, context {n_context} transitions"
    )
    warm = " after a warm-up" if args.reference_repeats > 1 else ""
    print(
        f"cached: median of {args.repeats} call(s) after a warm-up; reference: "
        f"{args.reference_repeats} call(s){warm}"
    )

    def run(planner: Callable[..., Plan], **kwargs: int) -> Plan:
        generator = torch.Generator(device).manual_seed(0)  # same draws for both planners
        return planner(model, disc, context, generator=generator, **kwargs)

    def compare(beam_width: int, horizon: int) -> tuple[float, bool]:
        """Reference seconds at this setting, and whether both planners chose the same plan."""
        reference = partial(run, _beam_plan_reference, beam_width=beam_width, horizon=horizon)
        seconds, their_plan = time_plan(reference, args.reference_repeats, device)
        our_plan = run(beam_plan, beam_width=beam_width, horizon=horizon)
        return seconds, torch.equal(our_plan.tokens, their_plan.tokens)

    header = f"{'setting':<12} {'beam':>5} {'horizon':>7} {'cached s':>9} {'reference s':>12}"
    print(header + f" {'ratio':>7}  same plan")
    notes = []
    for name in args.settings:
        setting = SETTINGS[name]
        cached = partial(run, beam_plan, beam_width=setting.beam_width, horizon=setting.horizon)
        ours, _ = time_plan(cached, args.repeats, device)
        if args.full_reference or setting.horizon <= 5:
            theirs, same = compare(setting.beam_width, setting.horizon)
            mark = " "
        else:
            # With a full context every planned transition costs the reference the same (only
            # the last one skips the next observation), so seconds grow linearly with horizon.
            short, same_short = compare(setting.beam_width, 1)
            longer, same_longer = compare(setting.beam_width, 3)
            theirs = longer + (setting.horizon - 3) * (longer - short) / 2
            same = same_short and same_longer
            mark = "*"
            notes.append(
                f"* {name}: reference extrapolated from horizons 1 and 3 ({short:.1f} s, "
                f"{longer:.1f} s), same plan checked at those horizons; --full-reference times it"
            )
        print(
            f"{name:<12} {setting.beam_width:>5} {setting.horizon:>7} {ours:>9.3f} "
            f"{theirs:>11.3f}{mark} {theirs / ours:>6.1f}x  {'yes' if same else 'NO'}",
            flush=True,
        )
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
