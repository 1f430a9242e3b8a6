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

from seqagents.agents.base import SequenceAgent, config_setting
from seqagents.agents.conditioning import ReturnConditioning
from seqagents.agents.spaces import encoder_for_space
from seqagents.config import AgentConfig, LEAPInference, StatePreprocessing
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
    network_class = LEAP

    def __init__(self, network: LEAP, config: AgentConfig, device: str = "auto") -> None:
        super().__init__(network, config, device)
        cfg: LEAPConfig = self.model_config
        act = self.action_space
        if not isinstance(act, gym.spaces.Discrete) or act.n < cfg.n_actions:
            raise CheckpointError(
                f"the LEAP network plans over {cfg.n_actions} discrete actions but the "
                f"checkpoint's action space is {act}"
            )
        self.requires_reward = cfg.return_conditioned  # [s, a] models ignore rewards
        self.conditioning = ReturnConditioning(
            config.preprocessing, cfg.state_shape, self.device, returns=cfg.return_conditioned
        )
        self.constraint_energy: ConstraintEnergy | None = None
        self.last_plan: LEAPPlan | None = None  # the latest plan (numpy), with its env indices
        self.last_plan_envs = np.zeros(0, dtype=np.int64)
        self._ctx: RollingContext | None = None

    # ------------------------------------------------------------------ settings (views of config)
    planner: RefinementConfig = config_setting(
        "inference", "planner", "The refinement settings (``config.inference.planner``)."
    )
    replan_every: int = config_setting("inference", "replan_every", "Steps executed per plan.")
    planning_seed: int = config_setting(
        "inference", "seed", "Env i plans from the stream ``planning_seed + i``."
    )
    return_scale: float = config_setting(
        "preprocessing", "return_scale", "Returns-to-go are divided by it."
    )

    @property
    def target_return(self) -> float | None:
        """Return-conditioned models: the target return the episodes start from (the one
        given to ``reset(target_return=...)`` until the next reset, else the saved default);
        None for mission-conditioned ones. Setting it sets the saved default."""
        if not self.model_config.return_conditioned:
            return None
        episode = self.conditioning.episode_target
        return (self.config.inference.target_return or 0.0) if episode is None else episode

    @target_return.setter
    def target_return(self, value: float) -> None:
        self.config = self.config.replace(target_return=value)

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
        config = AgentConfig.new(
            cls.algorithm,
            model_config,
            observation_space,
            action_space,
            StatePreprocessing(state_mean, state_std, return_scale, mission_vocabulary),
            LEAPInference(target_return=target_return),
            env_id=env_id,
            env_kwargs=env_kwargs,
        ).replace(**dict(planner or {}))
        return cls(LEAP(model_config), config, device)

    # ------------------------------------------------------------------ acting
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
        return self.conditioning.returns_to_go()

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
        conditioning = self.conditioning
        state_emb = conditioning.embed(self.network, obs, check=True)  # (n, H): s_t, checked
        conditioning.step(rewards, starts, self.target_return)  # (n,)
        if starts.any():
            ctx.clear(torch.as_tensor(starts, device=self.device))
            self._plan_step[starts] = self.replan_every  # replan at once
        ctx.push(state_emb=state_emb, returns_to_go=conditioning.rtg[:, None], actions=cfg.pad_id)
        replan = np.flatnonzero(self._plan_step >= self.replan_every)  # envs whose plan is used up
        if replan.size:
            self._replan(replan, deterministic)
        rows = torch.arange(self.n_envs, device=self.device)
        action = self._plan[rows, torch.as_tensor(self._plan_step, device=self.device)]  # (n,)
        self._plan_step += 1
        ctx.set_last("actions", action)
        return action

    def _replan(
        self, envs: np.ndarray, deterministic: bool, planner: RefinementConfig | None = None
    ) -> None:
        """Plan for ``envs`` with ``planner`` (default: the config's settings)."""
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
            self.planner if planner is None else planner,
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
