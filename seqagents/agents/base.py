"""The predict protocol every seqagents agent shares, over one env or a batch of envs.

Owns the episode bookkeeping of ``predict`` (contexts per env, episode starts, the reward
r_{t-1}, the thread that owns the contexts), seeding, the agent's typed config and the env it
was made for. Checkpoint reading and writing live in :mod:`seqagents.agents.io`, input checks
in :mod:`seqagents.agents.checks`, return conditioning and state normalization (DT, LEAP) in
:mod:`seqagents.agents.conditioning`. A subclass supplies the network, how one batched step is
taken (``_step``) and how a checkpoint of its algorithm is read (``_from_config``).
"""

from __future__ import annotations

import logging
import threading
import warnings
from typing import Any, ClassVar, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from seqagents._device import resolve_device
from seqagents.agents.checks import (
    ObservationCheck,
    check_env_spaces,
    check_finite_weights,
    check_gym_habits,
    env_id_of,
    per_env,
    rewards_batch,
)
from seqagents.agents.conditioning import ReturnConditioning
from seqagents.agents.io import CheckpointIO
from seqagents.agents.spaces import encoder_for_space
from seqagents.checkpoints.native import CheckpointConfig
from seqagents.config import AgentConfig, check_target_return
from seqagents.envs import check_env_id_from_file, describe_space, make_env
from seqagents.observations import MissionVocabulary
from seqagents.protocol import EvaluationProtocol

__all__ = [
    "Agent",
    "AgentConfig",
    "CheckpointConfig",
    "SequenceAgent",
    "config_setting",
    "check_finite_weights",
    "check_target_return",
    "encoder_for_space",
    "env_id_of",
    "resolve_device",
]  # all but Agent and SequenceAgent: re-exports

logger = logging.getLogger(__name__)


def config_setting(section: str, name: str, doc: str) -> Any:
    """A property of an agent that reads ``agent.config.<section>.<name>`` and sets it through
    ``agent.config.replace(<name>=...)`` (its one validation): a view of the config, never a
    copy of it. Named settings of :meth:`AgentConfig.replace` only (``seed`` for the planning
    seed, whatever the property is called)."""

    def get(agent: SequenceAgent) -> Any:
        return getattr(getattr(agent.config, section), name)

    def put(agent: SequenceAgent, value: Any) -> None:
        agent.config = agent.config.replace(**{name: value})

    return property(get, put, doc=doc)


@runtime_checkable
class Agent(Protocol):
    """Anything that acts in a gymnasium loop like an SB3 policy (what evaluate_policy accepts)."""

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]: ...


class SequenceAgent(
    CheckpointIO,
    library_name="seqagents",
    tags=["reinforcement-learning", "seqagents"],
    repo_url="https://github.com/seqagents/seqagents",
):
    """Base class of the DT, TT and LEAP agents.

    The agent keeps each env's context (past states, actions, rewards, ...) internally on
    ``self.device``. Call ``predict`` once per env step; pass the reward received after the
    previous action (``reward=``) or report it with ``observe`` — sequence agents condition on it.
    One thread at a time steps an agent (``predict`` raises otherwise): give each thread its own
    (``copy.deepcopy(agent)``).

    ``agent.config`` (:class:`~seqagents.config.AgentConfig`) is what the agent acts with and
    what ``save_pretrained`` writes; change it with ``agent.config = agent.config.replace(...)``.
    """

    requires_reward: ClassVar[bool] = True  # does the context need r_{t-1} at every step?
    # DT and LEAP: their return conditioning and state normalization (None: TT)
    conditioning: ReturnConditioning | None = None

    def __init__(self, network: nn.Module, config: AgentConfig, device: str = "auto") -> None:
        if not isinstance(config, AgentConfig):
            raise TypeError(f"config must be an AgentConfig, got {type(config).__name__}")
        self._config = config
        self.device = resolve_device(device)
        network.config = config.model  # one object: the network acts with the saved config
        # float32 whatever torch.get_default_dtype() was when it was built (the inputs are)
        self.network = network.to(device=self.device, dtype=torch.float32).eval()
        check_finite_weights(self.network, config.algorithm)
        self.observation_space, self.action_space = config.spaces()
        # Sampling (deterministic=False) draws from this generator, never torch's global one:
        # seed it with agent.seed(...) (evaluate_policy(seed=...) does) to repeat a rollout.
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(torch.initial_seed())
        # Planning noise (TT beam search, LEAP refinement): one stream per env index, seeded
        # once (agent.seed, else the planner's seed setting: env i gets seed + i) and running
        # on across episodes, so that N episodes are N samples, not N replicas of one.
        self._stream_seed: int | None = None
        self._streams: list[torch.Generator] = []
        self._warned: set[str] = set()  # one-time warnings already given (by key)
        self._observation_check = ObservationCheck(
            self.observation_space, config.mission_vocabulary, self.device
        )
        # The thread that owns the current contexts: {id(self): thread id}, claimed with one
        # atomic dict.setdefault by the first predict after a reset (see predict).
        self._owner: dict[int, int] = {}
        self.n_envs = 0  # batch size of the current contexts (0 = none yet)
        self._t = np.zeros(0, dtype=np.int64)  # (n_envs,) steps taken in each env's episode
        self._pending_reward: np.ndarray | None = None  # r_{t-1} reported through observe()
        self._pending_done = np.zeros(0, dtype=bool)  # envs whose episode ended (observe)

    # ------------------------------------------------------------------ the config
    @property
    def config(self) -> AgentConfig:
        """The agent's typed config: what it acts with and what ``save_pretrained`` writes."""
        return self._config

    @config.setter
    def config(self, config: AgentConfig) -> None:
        if not isinstance(config, AgentConfig) or config.algorithm != self._config.algorithm:
            raise TypeError(f"config must be a {self._config.algorithm} AgentConfig")
        if config.model != self._config.model:
            raise ValueError(
                "the network config cannot change under a built network; load the checkpoint "
                "again with the new setting (from_pretrained(..., context_len=...))"
            )
        self.network.config = config.model
        self._config = config
        self._observation_check = ObservationCheck(
            self.observation_space, config.mission_vocabulary, self.device
        )
        if self.conditioning is not None:
            self.conditioning.configure(config.preprocessing)

    @property
    def spec(self) -> AgentConfig:
        """Read-only alias of :attr:`config` (its fields have the same names)."""
        return self._config

    @property
    def model_config(self) -> Any:
        """The network's config (``DTConfig``, ``TTConfig``, ``LEAPConfig``): ``config.model``."""
        return self._config.model

    # ------------------------------------------------------------------ public protocol
    def __repr__(self) -> str:
        parameters = sum(p.numel() for p in self.network.parameters())
        return (
            f"{type(self).__name__}(env_id={self.env_id!r}, "
            f"observation_space={describe_space(self.observation_space)}, "
            f"action_space={describe_space(self.action_space)}, "
            f"parameters={parameters:,}, device={str(self.device)!r})"
        )

    @property
    def protocol(self) -> EvaluationProtocol:
        """How this checkpoint is evaluated (greedy or sampled, episode cap): what
        :func:`seqagents.evaluate_policy`, :func:`seqagents.record_video` and the CLI use
        unless told otherwise. Set it with ``agent.config = agent.config.replace(protocol={...})``
        before saving."""
        return EvaluationProtocol.of_checkpoint(self.config.protocol, self.config.evaluation)

    @property
    def env_id(self) -> str | None:
        """The gymnasium id this checkpoint was made for."""
        return self.config.env_id

    @property
    def mission_vocabulary(self) -> MissionVocabulary | None:
        """The words this agent reads in BabyAI missions (None for non-BabyAI agents)."""
        return self.config.mission_vocabulary

    def make_env(self, **kwargs: Any) -> gym.Env:
        """``gymnasium.make`` the checkpoint's env with its kwargs (``kwargs`` override them).

        An env id of the form ``module:Env-v0`` (which would import ``module``) is refused: a
        checkpoint never makes seqagents import code (see :func:`check_env_id_from_file`)."""
        if not self.env_id:
            raise ValueError("this checkpoint names no env id; pass an env explicitly")
        check_env_id_from_file(self.env_id, "this checkpoint's config.json")
        return make_env(self.env_id, **{**self.config.env_kwargs, **kwargs})

    def check_env(self, env: gym.Env | Any) -> None:
        """Check ``env`` against the checkpoint before acting in it.

        Raises :class:`CheckpointError` if the observation or action spaces differ (shapes,
        Discrete sizes, space kinds) or if a Box action space has other bounds than the
        checkpoint's (the agent's actions would be clipped or mean something else). Warns
        (once per env id) when the env's gymnasium id differs from the checkpoint's: envs with
        equal spaces (HalfCheetah and Walker2d) accept each other's agents, with meaningless
        results. ``evaluate_policy`` and ``record_video`` call it; accepts gymnasium envs and
        vector envs and SB3 VecEnvs.
        """
        warning = check_env_spaces(env, self.observation_space, self.action_space, self.env_id)
        if warning is not None:
            self._warn_once(f"env:{env_id_of(env)}", warning)

    def seed(self, seed: int | None = None) -> None:
        """Seed the agent's random streams, so that the same seed repeats a whole rollout or
        evaluation; torch's global RNG is never used. ``evaluate_policy(seed=...)`` and
        ``record_video(seed=...)`` call it.

        Two kinds of stream restart here and then run on across episodes (an episode start
        never reseeds them, so N episodes are N different samples): sampled actions
        (``deterministic=False``, one stream per agent; ``seed=None``: torch's initial seed)
        and the planning noise of TT's beam search and LEAP's refinement (env ``i`` of a batch:
        ``seed + i``; ``seed=None``: the planner's ``seed`` setting, what a new agent uses).
        """
        self._generator.manual_seed(torch.initial_seed() if seed is None else int(seed))
        self._stream_seed = None if seed is None else int(seed)
        self._streams = []  # recreated from the new seed at the next plan

    def _planning_streams(self, n_envs: int) -> list[torch.Generator]:
        """The planning generators of envs ``0 .. n_envs - 1`` (see :meth:`seed`)."""
        base = self._stream_seed
        if base is None:  # TT and LEAP: the saved planning seed
            base = int(getattr(self.config.inference, "seed", 0))
        while len(self._streams) < n_envs:
            stream = torch.Generator(device=self.device)
            stream.manual_seed(base + len(self._streams))
            self._streams.append(stream)
        return self._streams[:n_envs]

    def _warn_once(self, key: str, message: str, stacklevel: int = 3) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, UserWarning, stacklevel=stacklevel)

    def reset(self, target_return: float | None = None) -> None:
        """Forget every env's context. ``target_return`` (DT, return-conditioned LEAP): the
        target of the episodes until the next reset, in reward units; None: the saved default
        (``agent.config.inference.target_return``). The saved config never changes here.

        Raises:
            ValueError: a target return that is not a finite number, or one given to an agent
                that conditions on no return.
        """
        if self.conditioning is not None:
            self.conditioning.set_episode_target(target_return)
        elif target_return is not None:
            raise ValueError(f"{type(self).__name__} has no target return")
        self._owner.clear()  # another thread may take the agent over now
        self.n_envs = 0
        self._pending_reward, self._pending_done = None, np.zeros(0, dtype=bool)

    def plan_summary(self, env_index: int = 0, action_names: list[str] | None = None) -> str | None:
        """One line on what the agent plans for env ``env_index`` after its last ``predict``
        (video overlays); None for agents that do not plan (DT)."""
        return None

    def observe(self, reward: float | np.ndarray, done: bool | np.ndarray) -> None:
        """Report the reward of the last ``env.step`` and whether the episode ended.

        For loops that cannot pass ``reward=`` into ``predict`` (e.g. a VecEnv wrapper). An env
        whose ``done`` is True starts a new episode at its next ``predict``.
        """
        self._claim("observe")
        n = max(self.n_envs, 1)
        self._pending_reward = per_env(reward, n, "observe: reward", np.float32).copy()
        done = per_env(done, n, "observe: done", bool)
        self._pending_done = self._pending_done | done if self._pending_done.size == n else done

    @torch.inference_mode()
    def predict(
        self,
        observation: np.ndarray | dict,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        *,
        reward: float | np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """Choose the action for the current observation of one env or a batch of envs.

        Args:
            observation: shape ``observation_space.shape`` (one env) or ``(n_envs, *shape)``.
            state: unused (SB3 compatibility); returned unchanged.
            episode_start: ``(n_envs,)`` bools, True where a new episode begins (clears that
                env's context). Envs seen for the first time always start an episode. In a
                loop over a gymnasium vector env (default NEXT_STEP autoreset) compute it with
                :class:`seqagents.EpisodeStarts`; ``episode_start = dones`` is right only for
                same-step autoreset (SB3 VecEnvs).
            deterministic: greedy action (default) or sampled (discrete DT: from the agent's
                own generator, see :meth:`seed`; LEAP: sampled refills). Continuous DT and TT
                have no sampled mode: ``False`` warns once and changes nothing.
            reward: reward received after the previous action, per env. Required after the
                first step of an episode unless reported through :meth:`observe`.

        Returns:
            ``(action, state)``: action of shape ``action_space.shape`` or ``(n_envs, ...)``.

        Raises:
            RuntimeError: called from another thread than the one whose episodes are in the
                contexts. An agent holds one set of contexts: two threads stepping it would mix
                their episodes. Use one agent per thread (``copy.deepcopy(agent)`` or load it
                once per thread); a thread takes an agent over after ``agent.reset()``.
        """
        self._claim("predict")
        check_gym_habits(observation, state, reward)
        dtype = next(self.network.parameters()).dtype
        if dtype != torch.float32:
            raise ValueError(
                f"the agent's network is {dtype} but seqagents agents compute in torch.float32 "
                "(their inputs, contexts and statistics are float32): call agent.network.float()"
            )
        obs, single = self._observation_check(observation)
        n = (obs["image"] if isinstance(obs, dict) else obs).shape[0]
        if n == 0:
            raise ValueError("predict got an empty batch (0 envs); pass at least one observation")
        if n != self.n_envs:
            if self.n_envs and self._t.any():
                logger.warning(
                    "predict got %d envs while %d episodes were in progress: their contexts are "
                    "discarded (call agent.reset() when you change the number of envs)",
                    n,
                    self.n_envs,
                )
            self._allocate(n)
        starts = self._t == 0
        if episode_start is not None:
            starts = starts | per_env(episode_start, n, "episode_start", bool)
        if self._pending_done.size == n:  # observe() reported episode ends
            starts = starts | self._pending_done
        rewards = rewards_batch(
            self._pending_reward if reward is None else reward,
            starts,
            n,
            required=self.requires_reward,
            agent=type(self).__name__,
        )
        self._t[starts] = 0
        actions = self._step(
            obs, torch.as_tensor(rewards, device=self.device), starts, deterministic
        )
        self._t += 1
        self._pending_reward, self._pending_done = None, np.zeros(0, dtype=bool)
        actions = actions.cpu().numpy()
        return (actions[0] if single else actions), state

    def _claim(self, method: str) -> None:
        """Make the calling thread the owner of the contexts, or raise if another thread owns
        them (they would mix the two threads' episodes, with no other sign)."""
        me = threading.get_ident()
        owner = self._owner.setdefault(id(self), me)  # atomic: one thread claims it
        if owner != me:
            raise RuntimeError(
                f"{type(self).__name__}.{method} called from another thread than the one whose "
                "episodes are in this agent's contexts; an agent steps one set of episodes at "
                "a time, so threads would mix them. Use one agent per thread "
                "(copy.deepcopy(agent), or load the checkpoint once per thread), or call "
                "agent.reset() before another thread takes it over"
            )

    # ------------------------------------------------------------------ subclass hooks
    def _allocate(self, n_envs: int) -> None:
        """(Re)create empty contexts for ``n_envs`` envs. Subclasses extend this."""
        self.n_envs = n_envs
        self._t = np.zeros(n_envs, dtype=np.int64)
        self._pending_done = np.zeros(0, dtype=bool)  # none reported
        if self.conditioning is not None:
            self.conditioning.allocate(n_envs)

    def _step(
        self,
        obs: torch.Tensor | dict[str, torch.Tensor],
        rewards: torch.Tensor,
        starts: np.ndarray,
        deterministic: bool,
    ) -> torch.Tensor:
        """One batched step: ``obs (n, *obs_shape)`` (or a dict of such), ``rewards (n,)`` =
        r_{t-1} (0 at starts) on the device; ``starts (n,)`` numpy bool, True where an episode
        begins (``self._t`` is already 0 there). Returns actions ``(n, *action_shape)``."""
        raise NotImplementedError
