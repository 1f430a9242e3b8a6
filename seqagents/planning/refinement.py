"""LEAP planning: iterative refinement of an action plan by energy minimization.

Owns the planner (:func:`refine_plan`), its settings (:class:`RefinementConfig`, each default
and bound written once), the plan energy (:func:`plan_energy`) and the slow reference loop.

The energy of a plan ``a_{c..c+h-1}`` is its negative pseudo-log-likelihood under the masked
model, ``E = -sum_j log p(a_j | window with a_j masked)`` (LEAP paper, Fig. 2). Two modes:

- ``greedy`` — the official code (``mingpt/utils.py::leap_sample_multi_step``): iteration 0 fills
  the all-MASK plan in one parallel argmax pass; each later iteration re-masks one uniformly
  random site and refills it by argmax (iterated conditional modes). No energy is needed for it.
- ``gibbs`` — the paper's wording: each later iteration re-masks ``sites_per_iteration`` random
  sites and *samples* them from the conditional at a temperature (optionally annealed
  geometrically to ``anneal_to``), with an optional user ``constraint_energy`` added to the
  model's (LEAP's test-time constraints); iteration 0 samples every site at once.

``n_iterations`` counts model calls, iteration 0 included (the official ``sample_iteration``).
Randomness: one ``torch.Generator`` per env; at the start of a plan each env draws its site
choices (``torch.rand(n_iterations, h)``, the sites of iteration ``i`` are the ``k`` largest of
row ``i``) and its sampling uniforms (``torch.rand(n_iterations, h)``) from its own generator, so
an env's plan depends on its generator only, whatever the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from seqagents.errors import check_minimums
from seqagents.models.leap import LEAP, PlanContext
from seqagents.planning._settings import PlannerSettings

__all__ = [
    "MODES",
    "RefinementConfig",
    "LEAPPlan",
    "plan_energy",
    "refine_plan",
    "refine_plan_reference",
]

MODES = ("greedy", "gibbs")

ConstraintEnergy = Callable[[torch.Tensor], torch.Tensor]
"""``constraint_energy(plans (M, h) long) -> (M,)`` energies (lower = preferred)."""


@dataclass
class LEAPPlan:
    """Result of :func:`refine_plan` for ``B`` envs."""

    actions: torch.Tensor  # (B, h) long: the plan after the last iteration
    history: torch.Tensor  # (B, N, h) long: the plan after each iteration
    energy: torch.Tensor | None  # (B, N): its energy after each iteration (None: not tracked)


@dataclass(frozen=True)
class RefinementConfig(PlannerSettings):
    """Refinement settings (defaults: the official BabyAI code, ``test_run.sh``).

    Validated here, once; :meth:`plan_horizon` adds the check that needs the model's ``H``.

    Example:
        >>> RefinementConfig(n_iterations=30).replace(mode="gibbs").mode
        'gibbs'
    """

    _kind: ClassVar[str] = "LEAP planner settings"

    n_iterations: int = 10  # model calls per plan, the parallel fill included (mazes: 30)
    mode: str = "greedy"  # "greedy" (official: argmax refills) or "gibbs" (sampled refills)
    horizon: int | None = None  # plan steps h <= the model's H (later steps PAD); None = H
    temperature: float = 1.0  # sampling temperature (gibbs; greedy when refine_plan samples)
    anneal_to: float | None = None  # gibbs: temperature of the last iteration (geometric)
    sites_per_iteration: int = 1  # gibbs: sites re-masked per iteration (greedy: 1)
    # Compute the plan's energy after every iteration (h extra rows per window and iteration).
    track_energy: bool = False

    def __post_init__(self) -> None:
        check_minimums(self, n_iterations=1)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        for name in ("temperature", "anneal_to"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, (int, float)) and 0 < value < float("inf")
            ):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if self.horizon is not None:
            check_minimums(self, horizon=1)
        if self.mode == "gibbs":
            check_minimums(self, sites_per_iteration=1)

    def plan_horizon(self, max_horizon: int) -> int:
        """The plan steps ``h`` for a model of horizon ``max_horizon``; ``ValueError`` if the
        settings ask for more than it has."""
        h = max_horizon if self.horizon is None else self.horizon
        if not 1 <= h <= max_horizon:
            raise ValueError(f"horizon must be an int in [1, {max_horizon}] (the model's), got {h}")
        if self.mode == "gibbs" and self.sites_per_iteration > h:
            raise ValueError(
                f"sites_per_iteration must be an int in [1, horizon={h}], got "
                f"{self.sites_per_iteration!r}"
            )
        return h


def _full_actions(history: torch.Tensor, plan: torch.Tensor, pad_id: int, T: int) -> torch.Tensor:
    """``(B, T)`` window actions: history, the plan, PAD after a plan shorter than ``H``."""
    B = plan.shape[0]
    tail = plan.new_full((B, T - history.shape[1] - plan.shape[1]), pad_id)  # (B, H - h)
    return torch.cat([history, plan, tail], dim=1)  # (B, T)


def plan_energy(
    model: LEAP, ctx: PlanContext, history: torch.Tensor, plan: torch.Tensor
) -> torch.Tensor:
    """Negative pseudo-log-likelihood of each plan, ``(B,)``, in one forward of ``B * h`` rows.

    Copy ``j`` of window ``b`` has plan step ``j`` masked; its log-probability of ``plan[b, j]``
    is summed over ``j``.

    Args:
        model: the LEAP network.
        ctx: ``model.context(...)`` of the ``B`` windows.
        history: ``(B, P)`` history actions (PAD before the episode start).
        plan: ``(B, h)`` actions, ``h <= H``.
    """
    cfg = model.config
    B, h = plan.shape
    P = cfg.history_len
    full = _full_actions(history, plan, cfg.pad_id, cfg.steps)  # (B, T)
    copies = full.repeat_interleave(h, dim=0)  # (B * h, T): row b * h + j
    j = torch.arange(h, device=plan.device).repeat(B)  # (B * h,) the masked plan step
    rows = torch.arange(B * h, device=plan.device)
    copies[rows, P + j] = cfg.mask_id
    logits = model.action_logits(ctx.repeat(h), copies)[rows, P + j]  # (B * h, n_actions)
    logp = logits.float().log_softmax(-1).gather(1, plan.reshape(-1, 1))[:, 0]  # (B * h,)
    return -logp.reshape(B, h).sum(1)  # (B,)


def _sample(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Categorical draws by inverting the CDF: ``logits (..., n)``, uniforms ``u (...)``."""
    cdf = logits.float().softmax(-1).cumsum(-1)  # (..., n)
    return (cdf < u[..., None]).sum(-1).clamp(max=logits.shape[-1] - 1)  # (...)


def refine_plan(
    model: LEAP,
    ctx: PlanContext,
    history: torch.Tensor,
    config: RefinementConfig | None = None,
    *,
    generators: Sequence[torch.Generator],
    constraint_energy: ConstraintEnergy | None = None,
    sample: bool = False,
) -> LEAPPlan:
    """LEAPPlan ``h`` actions for ``B`` windows by iterative refinement (module docstring).

    Args:
        model: the LEAP network (eval mode).
        ctx: ``model.context(...)`` of the windows (computed once, reused by every iteration).
        history: ``(B, P)`` history actions (PAD before the episode start).
        config: the refinement settings (None = the official defaults).
        generators: one ``torch.Generator`` per window (on the model's device).
        constraint_energy: ``gibbs`` only: ``(M, h) plans -> (M,)`` energy added to the model's.
        sample: ``greedy``: sample the fills at ``config.temperature`` instead of argmax.

    Returns:
        :class:`LEAPPlan`; with ``config.track_energy`` its energy includes
        ``constraint_energy``.

    Example:
        >>> from seqagents.models.leap import LEAP, LEAPConfig
        >>> net = LEAP(LEAPConfig(state_shape=(3,), n_actions=4, horizon=5, hidden_size=16,
        ...                       n_layer=1, n_head=1, state_encoder="linear")).eval()
        >>> t = torch.zeros(2, dtype=torch.long)
        >>> ctx = net.context(net.embed_state(torch.randn(2, 1, 3)), t)
        >>> gens = [torch.Generator().manual_seed(i) for i in range(2)]
        >>> plan = refine_plan(net, ctx, torch.zeros(2, 0, dtype=torch.long),
        ...                    RefinementConfig(track_energy=True), generators=gens)
        >>> plan.actions.shape, plan.energy.shape
        (torch.Size([2, 5]), torch.Size([2, 10]))
    """
    cfg = model.config
    settings = RefinementConfig() if config is None else config
    mode, temperature, anneal_to = settings.mode, settings.temperature, settings.anneal_to
    h = settings.plan_horizon(cfg.horizon)
    k = 1 if mode == "greedy" else settings.sites_per_iteration
    if constraint_energy is not None and mode != "gibbs":
        raise ValueError("constraint_energy needs mode='gibbs' (greedy refills by argmax)")
    B, P, N = ctx.tokens.shape[0], cfg.history_len, settings.n_iterations
    if len(generators) != B or history.shape != (B, P):
        raise ValueError(
            f"expected {B} generators and history of shape ({B}, {P}), got {len(generators)} "
            f"and {tuple(history.shape)}"
        )
    device = ctx.tokens.device
    draws = torch.stack([torch.rand(2, N, h, generator=g, device=g.device) for g in generators]).to(
        device
    )  # (B, 2, N, h): site keys, sampling uniforms
    site_keys, uniforms = draws[:, 0], draws[:, 1]  # (B, N, h) each
    stochastic = mode == "gibbs" or sample
    if mode == "gibbs" and anneal_to is not None and N > 1:
        ratio = torch.arange(N, dtype=torch.float32) / (N - 1)
        temps = (temperature * (anneal_to / temperature) ** ratio).tolist()  # (N,)
    else:
        temps = [temperature] * N

    plan = torch.full((B, h), cfg.mask_id, dtype=torch.long, device=device)  # (B, h)
    history_plans, energies = [], []
    rows = torch.arange(B, device=device)[:, None]  # (B, 1)
    for i in range(N):
        if i == 0:
            sites = torch.arange(h, device=device).expand(B, h)  # (B, h): fill every site
        else:
            sites = site_keys[:, i].topk(k, dim=1).indices  # (B, k): k random distinct sites
            previous = plan.clone()  # (B, h): what the constraint sees at the other sites
            plan[rows, sites] = cfg.mask_id
        full = _full_actions(history, plan, cfg.pad_id, cfg.steps)  # (B, T)
        logits = model.action_logits(ctx, full)[rows, P + sites]  # (B, k or h, n_actions)
        if constraint_energy is not None and i > 0:
            logits = logits.float() - _site_constraint(
                constraint_energy, previous, sites, cfg.n_actions
            )
        if stochastic:
            fill = _sample(logits / temps[i], uniforms[:, i].gather(1, sites))  # (B, k or h)
        else:
            fill = logits.argmax(-1)  # (B, k or h)
        plan[rows, sites] = fill
        history_plans.append(plan.clone())
        if settings.track_energy:
            energy = plan_energy(model, ctx, history, plan)  # (B,)
            if constraint_energy is not None:
                energy = energy + constraint_energy(plan).float()
            energies.append(energy)
    return LEAPPlan(
        actions=plan,
        history=torch.stack(history_plans, dim=1),  # (B, N, h)
        energy=torch.stack(energies, dim=1) if settings.track_energy else None,  # (B, N)
    )


def _site_constraint(
    constraint_energy: ConstraintEnergy, plan: torch.Tensor, sites: torch.Tensor, n_actions: int
) -> torch.Tensor:
    """Constraint energy of every value at every site, the rest of the plan as it was before
    this iteration: ``(B, k, n_actions)`` (the sites of one iteration are scored independently)."""
    B, h = plan.shape
    k = sites.shape[1]
    candidates = plan[:, None, None, :].repeat(1, k, n_actions, 1)  # (B, k, n, h)
    values = torch.arange(n_actions, device=plan.device)  # (n,)
    b, j, v = torch.meshgrid(
        torch.arange(B, device=plan.device),
        torch.arange(k, device=plan.device),
        values,
        indexing="ij",
    )  # (B, k, n) each
    candidates[b, j, v, sites[b, j]] = v
    energy = constraint_energy(candidates.reshape(-1, h))  # (B * k * n, h) plans -> (B * k * n,)
    return energy.float().reshape(B, k, n_actions)  # (B, k, n)


def refine_plan_reference(
    model: LEAP,
    states: torch.Tensor | dict[str, torch.Tensor],
    timesteps: torch.Tensor,
    history: torch.Tensor,
    *,
    n_iterations: int,
    generator: torch.Generator,
    returns_to_go: torch.Tensor | None = None,
    known: torch.Tensor | None = None,
) -> torch.Tensor:
    """SLOW REFERENCE of ``greedy`` mode for ONE env, for tests and benchmarks only.

    What the official loop does: every iteration is a full forward that re-encodes the
    observations; the all-MASK plan is filled by argmax, then one random site per iteration is
    re-masked and refilled. Its random draws follow :func:`refine_plan`'s protocol, so the two
    agree on the same seed.

    Args:
        states: ``(1, P + 1, ...)`` known states (or a dict of such tensors).
        timesteps: ``(1,)``; history ``(1, P)``; returns_to_go/known as in ``LEAP.forward``.

    Returns:
        The plan, ``(1, H)`` long.
    """
    cfg = model.config
    P, H, N = cfg.history_len, cfg.horizon, n_iterations
    site_keys = torch.rand(2, N, H, generator=generator, device=generator.device)[0]  # (N, H)
    plan = torch.full((1, H), cfg.mask_id, dtype=torch.long, device=history.device)  # (1, H)
    for i in range(N):
        sites = list(range(H)) if i == 0 else [int(site_keys[i].argmax())]
        plan[0, sites] = cfg.mask_id
        actions = torch.cat([history, plan], dim=1)  # (1, T)
        logits = model(states, actions, timesteps, returns_to_go, known)  # (1, T, n_actions)
        for site in sites:
            plan[0, site] = logits[0, P + site].argmax()
    return plan
