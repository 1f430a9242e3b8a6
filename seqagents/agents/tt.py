"""Trajectory Transformer agent: a TT world model + beam-search planning inside ``predict``.

Owns the agent's side of TT: the context of completed transitions, the discretizer, one seeded
generator per env, loading (native and transformers checkpoints) and saving. The search
settings are the planner's (:class:`~seqagents.planning.BeamSearchConfig`), held whole.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from seqagents.agents.base import SequenceAgent, config_setting
from seqagents.checkpoints.native import (
    CheckpointFiles,
    build_network,
    converted_spec,
    load_weights,
)
from seqagents.config import AgentConfig, DiscretizerPreprocessing, TTInference
from seqagents.context import RollingContext
from seqagents.errors import CheckpointError
from seqagents.models.tt import TrajectoryTransformer, TTConfig
from seqagents.planning import BeamSearchConfig, Discretizer, beam_plan, trajectory_transitions

__all__ = ["TrajectoryTransformerAgent"]

logger = logging.getLogger(__name__)

_DISCRETIZER_PREFIX = "discretizer."


# Per-dataset planner overrides of the original (config/offline.py `overrides`).
_PLANNER_OVERRIDES = {
    ("halfcheetah", "medium"): {"horizon": 5, "beam_width": 32},
    ("halfcheetah", "medium-replay"): {"horizon": 5, "beam_width": 32},
}
_ENV_IDS = {"halfcheetah": "HalfCheetah-v5", "hopper": "Hopper-v5", "walker2d": "Walker2d-v5"}


class TrajectoryTransformerAgent(SequenceAgent):
    """Plans with beam search over a discretized trajectory model (Janner et al. 2021).

    At step t the agent completes the previous transition with ``r_{t-1}`` (the value token of
    past transitions is hidden from attention, so a placeholder is stored), conditions on the
    last ``max_context_transitions`` transitions plus the tokens of ``s_t``, plans ``horizon``
    transitions and returns the first planned action (replanning every step, as the paper).
    Planning samples action tokens from one seeded stream per env, running on across episodes
    (:meth:`seed` restarts them), so a seed fixes the plans; ``deterministic`` does not change
    TT's planner.

    Example:
        >>> import gymnasium as gym, numpy as np
        >>> env = gym.make("Pendulum-v1")
        >>> rows = np.random.default_rng(0).normal(size=(500, 3 + 1 + 2))
        >>> agent = TrajectoryTransformerAgent.create(
        ...     env.observation_space, env.action_space, rows, n_bins=10, n_layer=1,
        ...     n_embd=16, n_head=1, planner={"horizon": 2, "beam_width": 4}, device="cpu")
        >>> obs, _ = env.reset(seed=0)
        >>> action, _ = agent.predict(obs)
        >>> action.shape
        (1,)
    """

    algorithm = "tt"

    def __init__(
        self,
        network: TrajectoryTransformer,
        discretizer: Discretizer,
        config: AgentConfig,
        device: str = "auto",
    ) -> None:
        super().__init__(network, config, device)
        self.discretizer = discretizer.to(self.device)
        cfg: TTConfig = self.model_config
        n_act = int(np.prod(self.action_space.shape or (1,)))
        obs_dim = int(np.prod(self.observation_space.shape or (1,)))
        if (
            not isinstance(self.action_space, gym.spaces.Box)
            or n_act != cfg.action_dim
            or (obs_dim != cfg.observation_dim)
        ):
            raise CheckpointError(
                f"the TT network has observation_dim={cfg.observation_dim}, action_dim="
                f"{cfg.action_dim} (continuous) but the checkpoint's spaces are "
                f"{self.observation_space} and {self.action_space}"
            )
        if discretizer.n_columns != cfg.transition_dim or discretizer.n_bins != cfg.vocab_size:
            raise CheckpointError(
                f"discretizer has {discretizer.n_columns} columns x {discretizer.n_bins} bins, "
                f"the network needs {cfg.transition_dim} x {cfg.vocab_size}"
            )
        if not bool(torch.isfinite(discretizer.thresholds).all()):
            raise CheckpointError(
                "the TT discretizer's thresholds hold NaN/inf; the checkpoint is corrupt: "
                "re-download it or rebuild the discretizer from the dataset"
            )
        self._ctx: RollingContext | None = None
        self._last_obs = torch.zeros(0)
        self._last_action = torch.zeros(0)
        self.last_plan = None  # the most recent Plan (for analysis)

    planner: BeamSearchConfig = config_setting(
        "inference", "planner", "The beam-search settings (``config.inference.planner``)."
    )
    planning_seed: int = config_setting(
        "inference", "seed", "Env i plans from the stream ``planning_seed + i``."
    )

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(
        cls,
        observation_space: gym.Space,
        action_space: gym.Space,
        transitions: np.ndarray,
        *,
        n_bins: int = 100,
        discretizer_kind: str = "quantile",
        env_id: str | None = None,
        env_kwargs: dict | None = None,
        planner: dict | None = None,
        device: str = "auto",
        seed: int | None = None,
        **model_kwargs: Any,
    ) -> TrajectoryTransformerAgent:
        """A new, randomly initialised agent whose discretizer is built from ``transitions``
        (rows ``(obs, action, reward, value)``, e.g. from ``trajectory_transitions``)."""
        obs_dim = int(np.prod(observation_space.shape))
        act_dim = int(np.prod(action_space.shape))
        model_config = TTConfig(
            vocab_size=n_bins,
            observation_dim=obs_dim,
            action_dim=act_dim,
            transition_dim=obs_dim + act_dim + 2,
            **model_kwargs,
        )
        if seed is not None:
            torch.manual_seed(seed)
        discretizer = Discretizer.from_data(transitions, n_bins=n_bins, kind=discretizer_kind)
        config = AgentConfig.new(
            cls.algorithm,
            model_config,
            observation_space,
            action_space,
            DiscretizerPreprocessing(discretizer_kind, n_bins),
            TTInference(),
            env_id=env_id,
            env_kwargs=env_kwargs,
        ).replace(**dict(planner or {}))
        return cls(TrajectoryTransformer(config.model), discretizer, config, device)

    @classmethod
    def _from_config(
        cls, config: dict, files: CheckpointFiles, device: str, overrides: dict
    ) -> TrajectoryTransformerAgent:
        _reject_foreign_options(overrides)
        saved = AgentConfig.from_dict(config)
        network = build_network(TrajectoryTransformer, saved.model, files.model_id)
        state = files.load_safetensors()
        disc_state = {
            k[len(_DISCRETIZER_PREFIX) :]: v
            for k, v in state.items()
            if k.startswith(_DISCRETIZER_PREFIX)
        }
        if not disc_state:
            raise CheckpointError(f"{files.model_id}: model.safetensors holds no discretizer")
        load_weights(
            network,
            {k: v for k, v in state.items() if not k.startswith(_DISCRETIZER_PREFIX)},
            files.model_id,
        )
        discretizer = Discretizer.from_state_dict(disc_state)
        return cls(network, discretizer, saved.replace(**overrides), device)

    @classmethod
    def _from_foreign(
        cls, config: dict, files: CheckpointFiles, device: str, overrides: dict
    ) -> TrajectoryTransformerAgent:
        """transformers ``trajectory_transformer`` checkpoint (e.g. the CarlCochet repos).

        Their discretizer is not stored: it is rebuilt from ``dataset=`` (a Minari id or a D4RL
        hdf5 file; ``download=True`` fetches a Minari id that is not stored locally) or read from
        ``discretizer=`` (a safetensors file holding ``thresholds``).
        """
        from seqagents.checkpoints.tt_convert import convert_trajectory_transformer_state_dict

        dataset = overrides.pop("dataset", None)
        thresholds_file = overrides.pop("discretizer", None)
        download = bool(overrides.pop("download", False))
        try:
            model_config, state = convert_trajectory_transformer_state_dict(
                files.load_foreign_weights(), config
            )
        except ValueError as e:
            raise CheckpointError(f"{files.model_id}: {e}") from e
        if dataset is None and thresholds_file is None:
            raise CheckpointError(
                f"{files.model_id}: transformers Trajectory Transformer checkpoints do not store "
                "their discretizer; rebuild it from the training data with dataset=... (a Minari "
                "id such as 'mujoco/halfcheetah/medium-v0' or the path of a D4RL .hdf5 file) or "
                "pass discretizer='thresholds.safetensors'"
            )
        if thresholds_file is not None:
            from safetensors.torch import load_file

            discretizer = Discretizer(load_file(str(thresholds_file))["thresholds"].float())
        else:
            discretizer = Discretizer.from_data(
                _dataset_transitions(dataset, model_config, download),
                n_bins=model_config.vocab_size,
            )
        match = re.search(
            r"trajectory-transformer-(halfcheetah|hopper|walker2d)-(.+?)-v2", files.model_id
        )
        env_id = overrides.pop("env_id", _ENV_IDS[match.group(1)] if match else None)
        planner = dict(_PLANNER_OVERRIDES.get(match.groups(), {}) if match else {})
        spec = converted_spec(
            cls.algorithm,
            model_config.to_dict(),
            model_config.observation_dim,
            model_config.action_dim,
            env_id,
            files.model_id,
            preprocessing={
                "discretizer": "quantile",
                "n_bins": model_config.vocab_size,
                "discretizer_source": str(dataset or thresholds_file),
            },
            inference={"planner": planner},  # the rest: BeamSearchConfig's defaults
        )
        network = build_network(TrajectoryTransformer, model_config, files.model_id)
        load_weights(network, state, files.model_id)
        config = AgentConfig.from_checkpoint(spec).replace(**overrides)
        return cls(network, discretizer, config, device)

    def _state_dict_to_save(self) -> dict[str, torch.Tensor]:
        state = dict(self.network.state_dict())
        for key, value in self.discretizer.to_state_dict().items():
            state[_DISCRETIZER_PREFIX + key] = value
        return state

    # ------------------------------------------------------------------ acting
    def plan_summary(self, env_index: int = 0, action_names: list[str] | None = None) -> str | None:
        """``"plan: reward 12.31 over 5 steps, score 480.2"``: the predicted rewards summed
        over the planned horizon and the search score (rewards + discounted final value) of
        the plan chosen at the last ``predict`` for env ``env_index``."""
        plan = self.last_plan
        if plan is None:
            return None
        trajectory, value = plan.trajectory, plan.value
        if trajectory.dim() == 3:  # (E, horizon, transition_dim): a batch of envs
            if env_index >= len(trajectory):
                return None
            trajectory, value = trajectory[env_index], value[env_index]
        cfg = self.model_config
        rewards = trajectory[:, cfg.observation_dim + cfg.action_dim]  # (horizon,)
        return (
            f"plan: reward {float(rewards.sum()):.2f} over {len(rewards)} steps, "
            f"score {float(value):.1f}"
        )

    def _allocate(self, n_envs: int) -> None:
        super()._allocate(n_envs)
        cfg = self.model_config
        # Transitions kept: enough to fill the window the planner crops them to.
        window = self.planner.max_context_transitions
        self._ctx = RollingContext(
            n_envs,
            window or -(-cfg.block_size // cfg.transition_dim),
            {"tokens": ((cfg.transition_dim,), torch.long)},
            self.device,
        )
        self._last_obs = torch.zeros(
            n_envs, cfg.observation_dim, device=self.device, dtype=torch.float32
        )
        self._last_action = torch.zeros(
            n_envs, cfg.action_dim, device=self.device, dtype=torch.float32
        )

    def _step(
        self, obs: torch.Tensor, rewards: torch.Tensor, starts: np.ndarray, deterministic: bool
    ) -> torch.Tensor:
        cfg, ctx, p = self.model_config, self._ctx, self.planner
        assert ctx is not None
        if not deterministic:
            self._warn_once(
                "deterministic",
                "deterministic=False has no effect on the Trajectory Transformer agent: its beam "
                "search always samples action tokens from the agent's seeded planning streams "
                "(one per env, running on across episodes); seed them with agent.seed(N) or "
                "evaluate_policy(..., seed=N)",
                stacklevel=4,
            )
        obs = obs.reshape(len(obs), -1).float()  # (n, O)
        # Time-index convention: at step t the agent receives s_t and r_{t-1}; the transition
        # (s_{t-1}, a_{t-1}, r_{t-1}, V placeholder) is completed and appended to the context
        # (value tokens are hidden from attention, as in the original update_context).
        value = torch.zeros_like(rewards)
        row = torch.cat(
            [self._last_obs, self._last_action, rewards[:, None], value[:, None]], dim=1
        )  # (n, transition_dim)
        ctx.push(tokens=self.discretizer.discretize(row))
        if starts.any():
            ctx.clear(torch.as_tensor(starts, device=self.device))
        obs_tokens = self.discretizer.discretize(obs)  # (n, O)
        mask = ctx.mask.cpu().numpy()  # (n, K_ctx)
        past = ctx["tokens"]  # (n, K_ctx, transition_dim)
        contexts = [
            torch.cat(
                [past[i][torch.as_tensor(mask[i], device=self.device)].reshape(-1), obs_tokens[i]]
            )
            for i in range(len(obs))
        ]  # each (k*D + O,)
        plan = beam_plan(
            self.network, self.discretizer, contexts, p, generator=self._planning_streams(len(obs))
        )
        self.last_plan = plan
        action = plan.action.reshape(len(obs), cfg.action_dim)  # (n, A)
        self._last_obs, self._last_action = obs, action
        return action.reshape(-1, *self.action_space.shape)


def _reject_foreign_options(overrides: dict) -> None:
    if {"dataset", "discretizer", "download"} & set(overrides):
        raise TypeError(
            "this TrajectoryTransformerAgent checkpoint stores its discretizer and takes no "
            "dataset=, discretizer= or download= (those rebuild the one of a transformers "
            "checkpoint)"
        )


def _dataset_transitions(
    dataset: str | Path, config: TTConfig, download: bool = False
) -> np.ndarray:
    """(obs, action, reward, value) rows of a Minari dataset id (``download``: fetch it from
    the Minari remote when not stored locally) or a D4RL hdf5 file."""
    path = Path(str(dataset))
    if path.suffix in (".hdf5", ".h5"):
        if not path.exists():
            raise CheckpointError(f"D4RL dataset file {path} does not exist")
        import h5py

        with h5py.File(path, "r") as f:
            obs, act = np.asarray(f["observations"]), np.asarray(f["actions"])
            rew, term = np.asarray(f["rewards"]), np.asarray(f["terminals"], bool)
            timeouts = np.asarray(f["timeouts"], bool) if "timeouts" in f else np.zeros_like(term)
        ends = np.flatnonzero(term | timeouts) + 1
        offsets = np.unique(np.concatenate([[0], ends, [len(rew)]]))
    else:
        from seqagents.data import load_trajectories

        data = load_trajectories(str(dataset), download=download)
        obs, act, rew = data.observations, data.actions, data.rewards
        term, offsets = data.terminals, data.episode_starts
    if obs.shape[1] != config.observation_dim or act.shape[1] != config.action_dim:
        raise CheckpointError(
            f"dataset {dataset} has observation/action dims {obs.shape[1]}/{act.shape[1]}, "
            f"the checkpoint needs {config.observation_dim}/{config.action_dim}"
        )
    return trajectory_transitions(obs, act, rew, term, offsets)
