"""LEAP training: LEAP's parts of the one recipe (:mod:`seqagents.training.recipe`) — its
defaults, agent creation, windows around a current step, the masked-action objectives and its
evaluation — and the ``train_leap`` entry point.

Protocol (official BabyAI code, ``docs/references.md`` section 3): windows of ``P`` history steps,
the current step and ``H - 1`` plan steps (:meth:`~seqagents.data.WindowSampler.windows_around`,
the current step drawn uniformly over transitions); the model sees the known states (history and
current) and every action but the masked one(s):

- ``objective="sweep"`` (default, official): every plan position is masked once per window —
  ``H`` copies of each window in one batched forward (the official code runs ``H`` forwards) —
  and the cross-entropy of the true actions is **summed** over windows and positions; PAD
  positions (past the episode end) are skipped. Summing rather than averaging scales the gradient
  by ``B * H``, which matters under the grad-norm clip (official: 1.0).
- ``objective="random"``: one forward with each plan position masked with probability
  ``mask_prob`` (at least one per window), summed cross-entropy over the masked positions.

Optimizer (official ``run_leap.py``/``trainer_babyai.py``): AdamW lr 6e-4, betas (0.9, 0.95),
weight decay 0.1, grad clip 1.0, batch 64. Deviation, written down: the official linear warmup
over 10,240 tokens then cosine decay (which oscillates past its end) is replaced by the shared
trainer's linear warmup (32 steps = 10,240 tokens at B=64, K=5) and constant rate.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqagents.agents.leap import LEAPAgent
from seqagents.data import TrajectoryData, WindowSampler
from seqagents.models.leap import LEAP, LEAPConfig
from seqagents.training.recipe import (
    RECORD_FIELDS,
    Algorithm,
    AlgorithmParts,
    RunSetup,
    run_recipe,
)
from seqagents.training.train_config import TrainConfig
from seqagents.training.trainer import Batch

__all__ = ["LEAP_TRAIN_DEFAULTS", "OBJECTIVES", "leap_batch", "leap_loss", "train_leap"]

logger = logging.getLogger(__name__)

OBJECTIVES = ("sweep", "random")

# TrainConfig values of the official code (run_leap.py, test_run.sh).
LEAP_TRAIN_DEFAULTS = {
    "batch_size": 64,
    "learning_rate": 6e-4,
    "weight_decay": 0.1,
    "betas": (0.9, 0.95),
    "grad_clip": 1.0,
    "warmup_steps": 32,
    "steps": 1563,  # 200 epochs of 500 windows (one per demo) at batch 64
}


def _check_data(data: TrajectoryData) -> None:
    if not data.is_discrete:
        raise ValueError(
            f"LEAP plans over discrete actions; {data.dataset_id or 'the dataset'} has "
            f"{data.action_space}"
        )


# The recipe's view of LEAP (its record has no world_size: it never had one).
LEAP_RECIPE = Algorithm(
    name="leap",
    trainer="seqagents.training.train_leap",
    defaults=LEAP_TRAIN_DEFAULTS,
    record_layout=(*RECORD_FIELDS[:6], "objective", "mask_prob", "final_loss", "train_config"),
    check_data=_check_data,
)


def _head(states: Any, n: int) -> Any:
    """The first ``n`` steps of ``(B, T, ...)`` states (or of each tensor of a dict)."""
    if isinstance(states, dict):
        return {key: value[:, :n] for key, value in states.items()}
    return states[:, :n]


def leap_batch(window: Batch, config: LEAPConfig) -> Batch:
    """Turn :meth:`~seqagents.data.WindowSampler.windows_around`'s dict into LEAP inputs.

    Returns ``states`` ``(B, P + 1, ...)`` (history and current), ``actions (B, T)`` with PAD on
    padding, ``returns_to_go (B, P + 1, 1)``, ``timesteps (B,)`` of the current step and
    ``known (B, P + 1)``.
    """
    P1 = config.history_len + 1
    mask = window["mask"]  # (B, T)
    actions = window["actions"].long().masked_fill(~mask, config.pad_id)  # (B, T)
    return {
        "states": _head(window["states"], P1),
        "actions": actions,
        "returns_to_go": window["returns_to_go"][:, :P1],  # (B, P + 1, 1)
        "timesteps": window["timesteps"][:, P1 - 1],  # (B,)
        "known": mask[:, :P1],  # (B, P + 1)
    }


def leap_loss(
    network: nn.Module,
    batch: Batch,
    objective: str = "sweep",
    mask_prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Summed masked-action cross-entropy of a LEAP network (module docstring).

    Args:
        network: the :class:`~seqagents.models.leap.LEAP` network.
        batch: :func:`leap_batch`'s dict.
        objective: ``"sweep"`` (official) or ``"random"``.
        mask_prob: ``random``: probability of masking each plan position.
        generator: ``random``: where the masks are drawn from (default: torch's global RNG,
            which the trainer seeds per step).

    Example:
        >>> net = LEAP(LEAPConfig(state_shape=(3,), n_actions=4, horizon=3, hidden_size=16,
        ...                       n_layer=1, n_head=1, state_encoder="linear"))
        >>> actions = torch.tensor([[0, 1, 4], [2, 2, 3]])  # 4 = PAD: past the episode end
        >>> batch = {"states": torch.randn(2, 1, 3), "actions": actions,
        ...          "timesteps": torch.zeros(2, dtype=torch.long)}
        >>> float(leap_loss(net, batch).detach()) > 0
        True
    """
    model: LEAP = network
    cfg = model.config
    P, H = cfg.history_len, cfg.horizon
    actions = batch["actions"]  # (B, T)
    B = actions.shape[0]
    state_emb = model.embed_state(batch["states"])  # (B, P + 1, H)
    ctx = model.context(
        state_emb, batch["timesteps"], batch.get("returns_to_go"), batch.get("known")
    )
    target = actions[:, P:]  # (B, H) the plan steps
    if objective == "sweep":
        copies = actions.repeat_interleave(H, dim=0)  # (B * H, T): row b * H + j masks P + j
        j = torch.arange(H, device=actions.device).repeat(B)  # (B * H,)
        rows = torch.arange(B * H, device=actions.device)
        copies[rows, P + j] = cfg.mask_id
        logits = model.action_logits(ctx.repeat(H), copies)[rows, P + j]  # (B * H, n_actions)
        target = target.reshape(-1)  # (B * H,) in the same row order
    elif objective == "random":
        u = torch.rand(B, H, device=actions.device, generator=generator)  # (B, H)
        masked = u < mask_prob
        masked[torch.arange(B), u.argmin(1)] = True  # at least one site per window
        inputs = actions.clone()
        inputs[:, P:] = target.masked_fill(masked, cfg.mask_id)
        logits = model.action_logits(ctx, inputs)[:, P:][masked]  # (n_masked, n_actions)
        target = target[masked]  # (n_masked,)
    else:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    valid = target != cfg.pad_id  # PAD (past the episode end) is never a target
    return F.cross_entropy(logits[valid].float(), target[valid], reduction="sum")


def train_leap(
    dataset: str | TrajectoryData,
    *,
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    model_config: dict[str, Any] | None = None,
    train_config: TrainConfig | dict[str, Any] | None = None,
    planner: dict[str, Any] | None = None,
    objective: str = "sweep",
    mask_prob: float = 0.15,
    return_scale: float = 1.0,
    target_return: float | None = None,
    resume: bool = False,
    progress_bar: bool = True,
    download: bool = False,
) -> LEAPAgent:
    """Train a LEAP model on an offline dataset of discrete actions; save a native checkpoint.

    Args:
        dataset: a Minari dataset id or :class:`~seqagents.data.TrajectoryData` (BabyAI Dict
            observations carry their ``mission_vocabulary``), an Atari learning-history folder
            or ``dqn-replay:PATH[?options]`` (:func:`seqagents.data.load_dqn_replay`).
        env_id: env recorded in the checkpoint (default: the dataset's ``env_spec``).
        env_kwargs: its ``gymnasium.make`` kwargs (default: the dataset's).
        model_config: :class:`~seqagents.models.leap.LEAPConfig` fields; the state encoder and
            ``n_actions`` come from the data when missing.
        train_config: :class:`TrainConfig` fields; missing ones take
            :data:`LEAP_TRAIN_DEFAULTS`. ``out_dir`` defaults to ``runs/leap/<dataset id>``.
        planner: :class:`~seqagents.planning.RefinementConfig` fields, ``replan_every`` and
            ``seed``, stored as defaults.
        objective: ``"sweep"`` (official) or ``"random"`` (see module docstring).
        mask_prob: masking probability of the ``random`` objective.
        return_scale: returns-to-go are divided by this (return-conditioned models).
        target_return: inference default of a return-conditioned model (default: the best
            episode return of the data).
        resume: continue from ``out_dir/trainer_state.pt``.
        progress_bar: tqdm bar on stderr.
        download: fetch a Minari id from the remote if missing locally.

    Returns:
        The trained agent, also saved in ``out_dir/checkpoint``.

    Raises:
        ValueError: continuous actions, actions outside the model's ``n_actions``, bad config.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if not 0 < mask_prob <= 1:
        raise ValueError(f"mask_prob must be in (0, 1], got {mask_prob}")

    def build(setup: RunSetup) -> AlgorithmParts:
        data, config, device = setup.data, setup.config, setup.device
        model_fields = dict(model_config or {})
        flat = isinstance(data.observations, np.ndarray) and len(data.obs_shape) == 1
        sampler = WindowSampler(
            data,
            1,  # windows_around sets their own length
            return_scale,
            normalize_states=flat,
            device=device,
        )
        stats = sampler.stats
        rc = bool(model_fields.get("return_conditioned", False))
        best = float(data.episode_returns().max()) if rc else None
        agent = LEAPAgent.create(
            data.observation_space,
            data.action_space,
            env_id=setup.env_id,
            env_kwargs=setup.env_kwargs,
            mission_vocabulary=getattr(data, "mission_vocabulary", None),
            state_mean=stats.state_mean if flat else None,
            state_std=stats.state_std if flat else None,
            return_scale=return_scale,
            target_return=best if target_return is None else float(target_return),  # rc only
            planner=planner,
            device=str(device),
            seed=config.seed,
            **model_fields,
        )
        cfg = agent.model_config
        if data.actions.max() >= cfg.n_actions:
            raise ValueError(
                f"the dataset has action {int(data.actions.max())} but the model plans over "
                f"n_actions={cfg.n_actions}; raise n_actions or drop those steps"
            )

        def sample(batch_size: int, rng: np.random.Generator) -> Batch:
            current = rng.integers(0, sampler.n_transitions, size=batch_size)  # (B,)
            window = sampler.windows_around(current, cfg.history_len, cfg.horizon - 1)
            return leap_batch(window, cfg)

        def loss(network: nn.Module, batch: Batch) -> torch.Tensor:
            return leap_loss(network, batch, objective, mask_prob)

        def evaluate(step: int) -> dict[str, Any]:
            return _evaluate(agent, setup.env_id, setup.env_kwargs, config, step)

        record = {"objective": objective, "mask_prob": mask_prob if objective == "random" else None}
        return AlgorithmParts(agent, loss, sample, evaluate, record=record)

    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if not 0 < mask_prob <= 1:
        raise ValueError(f"mask_prob must be in (0, 1], got {mask_prob}")
    return run_recipe(
        LEAP_RECIPE, dataset, build, env_id=env_id, env_kwargs=env_kwargs,
        train_config=train_config, resume=resume, progress_bar=progress_bar, download=download,
    )  # fmt: skip


def _evaluate(
    agent: LEAPAgent, env_id: str, env_kwargs: dict[str, Any], config: TrainConfig, step: int
) -> dict[str, Any]:
    """``eval_episodes`` episodes in a fresh env, seeded apart from the training seed."""
    from seqagents.envs import make_env
    from seqagents.evaluation import evaluate_policy

    with make_env(env_id, **env_kwargs) as env:
        returns, lengths = evaluate_policy(
            agent,
            env,
            n_eval_episodes=config.eval_episodes,
            return_episode_rewards=True,
            seed=config.seed + 1_000_000,
        )
    agent.reset()
    returns = np.asarray(returns, dtype=np.float64)
    return {
        "step": step,
        "env_id": env_id,
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "success_rate": float((returns > 0).mean()),
        "mean_length": float(np.mean(lengths)),
        "n_episodes": int(returns.size),
    }
