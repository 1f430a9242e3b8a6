"""LEAP agent: plans by iterative energy minimization inside ``predict`` (Chen et al. 2023).

Owns the agent's side of LEAP: the context of state embeddings, executing a plan for
``replan_every`` steps, one seeded generator per env, loading and saving. The refinement
settings are the planner's (:class:`~seqagents.planning.RefinementConfig`), held whole.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from seqagents import __version__
from seqagents.agents.base import SequenceAgent, check_target_return, encoder_for_space
from seqagents.agents.planner_section import (
    override_planner_section,
    read_planner_section,
    write_planner_section,
)
from seqagents.checkpoints.native import (
    CheckpointConfig,
    CheckpointFiles,
    build_network,
    load_weights,
    serialize_space,
)
from seqagents.context import RollingContext
from seqagents.errors import CheckpointError
from seqagents.models.leap import LEAP, LEAPConfig
from seqagents.observations import MissionVocabulary
from seqagents.planning.refinement import (
    ConstraintEnergy,
    LEAPPlan,
    RefinementConfig,
    refine_plan,
)

__all__ = ["LEAPAgent"]


# The agent's settings in the saved planner section, which refine_plan never sees: steps
# executed per plan (1 = replan every step (Atari); H = open loop, the official BabyAI code)
# and the planning seed (env i plans from the stream seed + i, which runs on across
# episodes; agent.seed reseeds the streams).
_AGENT_SETTINGS = {"replan_every": 1, "seed": 0}
_PLANNER_KEYS = (*RefinementConfig.__dataclass_fields__, *_AGENT_SETTINGS)


class LEAPAgent(SequenceAgent):
    """Plans ``horizon`` discrete actions by iterative refinement of a masked model (LEAP).

    At step t the agent appends s_t (and, return-conditioned, ``rtg_t = rtg_{t-1} -
    r_{t-1} / scale`` as DT does) to its context and, when its plan is used up (every
    ``replan_every`` steps, or at an episode start), plans from the last ``history_len + 1``
    states: :func:`seqagents.planning.refine_plan` with the planner settings of the checkpoint
    (overridable by keyword, saved as they act). It executes the plan's next action.

    ``deterministic=False`` samples the refills at ``temperature`` in ``greedy`` mode (``gibbs``
    always samples). Planning draws from one stream per env (``seed + i``, seeded once and
    running on across episodes; :meth:`seed` restarts them), so a seed fixes the plans. Goal
    information enters only through the observation (e.g.
    :class:`seqagents.envs.BabyAIPrivileged`), never through an oracle here.
    ``constraint_energy`` (attribute, not saved) adds a user's energy in ``gibbs`` mode.

    Example:
        >>> import gymnasium as gym
        >>> from seqagents import LEAPAgent
        >>> env = gym.make("CartPole-v1")
        >>> agent = LEAPAgent.create(env.observation_space, env.action_space, horizon=3,
        ...                          n_layer=1, hidden_size=32, planner={"n_iterations": 4})
        >>> obs, _ = env.reset(seed=0)
        >>> action, _ = agent.predict(obs)
        >>> int(action) in (0, 1), agent.last_plan.actions.shape
        (True, (1, 3))
    """

    algorithm = "leap"

    def __init__(self, network: LEAP, spec: CheckpointConfig, device: str = "auto") -> None:
        super().__init__(network, spec, device)
        cfg: LEAPConfig = network.config
        self.model_config = cfg
        act = self.action_space
        if not isinstance(act, gym.spaces.Discrete) or act.n < cfg.n_actions:
            raise CheckpointError(
                f"the LEAP network plans over {cfg.n_actions} discrete actions but the "
                f"checkpoint's action space is {act}"
            )
        section = spec.inference.get("planner", {})
        self.planner, own = read_planner_section(section, RefinementConfig, **_AGENT_SETTINGS)
        self.replan_every, self.planning_seed = own["replan_every"], own["seed"]
        horizon = self.planner.plan_horizon(cfg.horizon)  # the model-dependent check, early
        if not 1 <= self.replan_every <= horizon:
            raise ValueError(
                f"replan_every must be an int in [1, horizon={horizon}], got {self.replan_every!r}"
            )
        self.requires_reward = cfg.return_conditioned  # [s, a] models ignore rewards
        self._setup_states(cfg.state_shape)
        target = spec.inference.get("target_return")
        self.target_return = None
        if cfg.return_conditioned:
            try:
                self.target_return = check_target_return(target or 0.0)
            except ValueError as e:
                raise CheckpointError(f"inference.{e}") from e
        self.constraint_energy: ConstraintEnergy | None = None
        self.last_plan: LEAPPlan | None = None  # the latest plan (numpy), with its env indices
        self.last_plan_envs = np.zeros(0, dtype=np.int64)
        self._ctx: RollingContext | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(
        cls,
        observation_space: gym.Space,
        action_space: gym.Space,
        model_config: LEAPConfig | None = None,
        *,
        env_id: str | None = None,
        env_kwargs: dict | None = None,
        mission_vocabulary: MissionVocabulary | None = None,
        state_mean: np.ndarray | None = None,
        state_std: np.ndarray | None = None,
        return_scale: float = 1.0,
        target_return: float | None = None,
        planner: dict | None = None,
        device: str = "auto",
        seed: int | None = None,
        **model_kwargs: Any,
    ) -> LEAPAgent:
        """A new, randomly initialised agent for the given spaces (to train, or to test with).

        ``model_kwargs`` override fields of the default :class:`LEAPConfig` (e.g.
        ``horizon=10``, ``return_conditioned=True``); the state encoder follows the observation
        space (BabyAI's Dict observations need ``mission_vocabulary``).

        Raises:
            ValueError: a continuous action space, bad planner settings.
        """
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ValueError(
                f"LEAP plans over discrete actions; the action space is {action_space}. Use "
                "DecisionTransformerAgent or TrajectoryTransformerAgent for continuous actions"
            )
        if model_config is None:
            fields = {**encoder_for_space(observation_space, mission_vocabulary)}
            fields["n_actions"] = int(action_space.n)
            model_config = LEAPConfig(**{**fields, **model_kwargs})
        if seed is not None:
            torch.manual_seed(seed)
        preprocessing: dict[str, Any] = {"return_scale": float(return_scale)}
        if state_mean is not None and state_std is not None:
            preprocessing["state_mean"] = np.asarray(state_mean).tolist()
            preprocessing["state_std"] = np.asarray(state_std).tolist()
        if mission_vocabulary is not None:
            preprocessing["mission_vocabulary"] = mission_vocabulary.to_dict()
        spec = CheckpointConfig(
            algorithm=cls.algorithm,
            model=model_config.to_dict(),
            observation_space=serialize_space(observation_space),
            action_space=serialize_space(action_space),
            env_id=env_id,
            env_kwargs=dict(env_kwargs or {}),
            preprocessing=preprocessing,
            inference={
                "target_return": None if target_return is None else float(target_return),
                "planner": dict(planner or {}),  # completed by _with_overrides
            },
            library_version=__version__,
        )
        return cls._with_overrides(LEAP(model_config), spec, device, {})

    @classmethod
    def _from_config(
        cls, config: dict, files: CheckpointFiles, device: str, overrides: dict
    ) -> LEAPAgent:
        spec = CheckpointConfig.from_dict(config)
        network = build_network(LEAP, LEAPConfig.from_dict(spec.model), files.model_id)
        load_weights(network, files.load_safetensors(), files.model_id)
        return cls._with_overrides(network, spec, device, overrides)

    @classmethod
    def _with_overrides(
        cls, network: LEAP, spec: CheckpointConfig, device: str, overrides: dict
    ) -> LEAPAgent:
        """Apply keyword overrides to the spec (so that what is saved is what acts)."""
        overrides = dict(overrides)
        if "env_id" in overrides:
            spec.env_id = overrides.pop("env_id")
        if "target_return" in overrides:
            spec.inference["target_return"] = check_target_return(overrides.pop("target_return"))
        planner = {k: overrides.pop(k) for k in list(overrides) if k in _PLANNER_KEYS}
        if overrides:
            raise TypeError(
                f"unknown options {sorted(overrides)} for LEAPAgent; expected the planner "
                f"settings {list(_PLANNER_KEYS)}, target_return or env_id"
            )
        spec.inference["planner"] = override_planner_section(
            spec.inference.get("planner", {}), RefinementConfig, planner, **_AGENT_SETTINGS
        )
        return cls(network, spec, device)  # checks the settings against the model

    def _sync_spec(self) -> None:
        super()._sync_spec()
        section = write_planner_section(
            self.planner, replan_every=self.replan_every, seed=self.planning_seed
        )
        self.spec.inference["planner"] = section

    # ------------------------------------------------------------------ acting
    def _set_target_return(self, target_return: float) -> None:
        if not self.model_config.return_conditioned:
            raise ValueError("this LEAP agent is not return-conditioned (no target return)")
        self.target_return = target_return
        self.spec.inference["target_return"] = target_return

    @property
    def horizon(self) -> int:
        """Plan steps ``h``."""
        return self.planner.plan_horizon(self.model_config.horizon)

    @property
    def returns_to_go(self) -> np.ndarray | None:
        """Return-conditioned models: each env's current return-to-go in reward units
        (``(n_envs,)``, as DT's); None for mission-conditioned ones."""
        if not self.model_config.return_conditioned:
            return None
        return (self._rtg * self.return_scale).cpu().numpy()

    def plan_summary(self, env_index: int = 0, action_names: list[str] | None = None) -> str | None:
        """``"plan 2/5: left [forward] forward pickup toggle"``: the latest plan of env
        ``env_index``, the action just taken in brackets.

        Example:
            >>> import gymnasium as gym
            >>> env = gym.make("CartPole-v1")
            >>> agent = LEAPAgent.create(env.observation_space, env.action_space, horizon=3,
            ...                          n_layer=1, hidden_size=16, device="cpu")
            >>> _ = agent.predict(env.reset(seed=0)[0])
            >>> agent.plan_summary(action_names=["push left", "push right"]).startswith("plan 1/3")
            True
        """
        if self.last_plan is None or not (self.last_plan_envs == env_index).any():
            return None
        row = int(np.flatnonzero(self.last_plan_envs == env_index)[0])
        actions = self.last_plan.actions[row].tolist()  # (h,)
        taken = int(self._plan_step[env_index]) - 1  # index of the action just executed
        names = [
            action_names[a] if action_names and 0 <= a < len(action_names) else str(a)
            for a in actions
        ]
        if 0 <= taken < len(names):
            names[taken] = f"[{names[taken]}]"
        return f"plan {taken + 1}/{len(names)}: " + " ".join(names)

    def _allocate(self, n_envs: int) -> None:
        super()._allocate(n_envs)
        cfg = self.model_config
        self._ctx = RollingContext(
            n_envs,
            cfg.history_len + 1,
            {
                # Each state is encoded once, when it arrives; plans reuse the embeddings.
                "state_emb": ((cfg.hidden_size,), torch.float32),
                "actions": ((), torch.long),
                "returns_to_go": ((1,), torch.float32),
            },
            self.device,
        )
        self._plan = torch.zeros(n_envs, self.horizon, dtype=torch.long, device=self.device)
        self._plan_step = np.full(n_envs, self.replan_every)  # (n,) next plan index

    def _step(
        self,
        obs: torch.Tensor | dict[str, torch.Tensor],
        rewards: torch.Tensor,
        starts: np.ndarray,
        deterministic: bool,
    ) -> torch.Tensor:
        cfg, ctx = self.model_config, self._ctx
        assert ctx is not None
        # Time-index convention (as DT): at step t the agent receives s_t and r_{t-1},
        # rtg_t = rtg_{t-1} - r_{t-1} / scale, appends (rtg_t, s_t) and acts a_t, which is stored.
        state_emb = self._embed_states(obs)  # (n, H), the only encoding of s_t (checked finite)
        self._step_returns_to_go(rewards, starts)  # (n,)
        if starts.any():
            ctx.clear(torch.as_tensor(starts, device=self.device))
            self._plan_step[starts] = self.replan_every  # replan at once
        ctx.push(state_emb=state_emb, returns_to_go=self._rtg[:, None], actions=cfg.pad_id)
        replan = np.flatnonzero(self._plan_step >= self.replan_every)  # envs whose plan is used up
        if replan.size:
            self._replan(replan, deterministic)
        rows = torch.arange(self.n_envs, device=self.device)
        action = self._plan[rows, torch.as_tensor(self._plan_step, device=self.device)]  # (n,)
        self._plan_step += 1
        ctx.set_last("actions", action)
        return action

    def _replan(self, envs: np.ndarray, deterministic: bool) -> None:
        cfg, ctx = self.model_config, self._ctx
        assert ctx is not None
        index = torch.as_tensor(envs, device=self.device)  # (m,)
        known = ctx.mask[index]  # (m, P + 1), False on history before the episode start
        history = ctx["actions"][index, : cfg.history_len]  # (m, P)
        history = history.masked_fill(~known[:, : cfg.history_len], cfg.pad_id)
        t = torch.as_tensor(self._t[envs], device=self.device)  # (m,) current timestep
        plan_ctx = self.network.context(
            ctx["state_emb"][index],
            t,
            ctx["returns_to_go"][index] if cfg.return_conditioned else None,
            known,
        )
        plan = refine_plan(
            self.network,
            plan_ctx,
            history,
            self.planner,
            generators=[self._planning_streams(self.n_envs)[i] for i in envs],
            constraint_energy=self.constraint_energy,
            sample=not deterministic,
        )
        self._plan[index] = plan.actions
        self._plan_step[envs] = 0
        self.last_plan = LEAPPlan(
            actions=plan.actions.cpu().numpy(),
            history=plan.history.cpu().numpy(),
            energy=None if plan.energy is None else plan.energy.cpu().numpy(),
        )
        self.last_plan_envs = envs
