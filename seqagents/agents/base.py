"""What every seqagents agent shares: checkpoint I/O through the Hugging Face Hub, input checks,
and the SB3-style ``predict`` protocol over one env or a batch of envs.

A subclass supplies the network, how one batched step is taken (``_step``) and how a checkpoint of
its algorithm is read (``_from_config``); everything a user touches lives here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import gymnasium as gym
import numpy as np
import torch
from huggingface_hub import ModelCard, ModelHubMixin
from huggingface_hub.errors import HFValidationError
from safetensors.torch import save_file
from torch import nn

from seqagents._files import check_regular_file, read_files
from seqagents.checkpoints.card import model_card, public_spec
from seqagents.checkpoints.native import (
    CONFIG_NAME,
    FORMAT,
    WEIGHTS_NAME,
    CheckpointConfig,
    CheckpointFiles,
    hub_errors,
    not_found,
    quiet_hub_retries,
)
from seqagents.envs import check_env_id_from_file, describe_space, make_env, spaces_match
from seqagents.errors import CheckpointError
from seqagents.observations import PRIVILEGED_KEYS, MissionVocabulary, babyai_arrays
from seqagents.protocol import EvaluationProtocol

__all__ = [
    "Agent",
    "CheckpointConfig",
    "SequenceAgent",
    "resolve_device",
]  # CheckpointConfig: re-export

logger = logging.getLogger(__name__)


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


def encoder_for_space(
    observation_space: gym.Space, vocabulary: MissionVocabulary | None = None
) -> dict[str, Any]:
    """The state-encoder fields of a model config for ``observation_space``: ``state_shape``,
    ``state_encoder`` and ``state_encoder_kwargs`` (flat Box -> ``linear``; ``(C, 84, 84)``
    frames -> ``nature_cnn``; BabyAI Dict -> ``babyai``, which needs the mission vocabulary).

    Example:
        >>> encoder_for_space(gym.spaces.Box(-1, 1, (3,)))["state_encoder"]
        'linear'
    """
    if isinstance(observation_space, gym.spaces.Dict):
        keys = set(observation_space.spaces)
        if not {"image", "direction", "mission"} <= keys:
            raise ValueError(
                f"Dict observations with keys {sorted(keys)} are not supported: the only Dict "
                "layout read is BabyAI/MiniGrid's (image, direction, mission). Flatten the "
                "observation first (gymnasium.wrappers.FlattenObservation) for a Box"
            )
        if vocabulary is None:
            raise ValueError(
                "BabyAI Dict observations need the mission_vocabulary "
                "(seqagents.observations.MissionVocabulary.from_missions)"
            )
        privileged = all(k in observation_space.spaces for k in PRIVILEGED_KEYS)
        return {
            "state_shape": tuple(observation_space["image"].shape),
            "state_encoder": "babyai",
            "state_encoder_kwargs": {"vocab_size": vocabulary.size, "privileged": privileged},
        }
    shape = tuple(observation_space.shape or ())
    kind = "nature_cnn" if len(shape) == 3 and shape[1:] == (84, 84) else "linear"
    return {"state_shape": shape, "state_encoder": kind, "state_encoder_kwargs": {}}


def check_finite_weights(network: nn.Module, where: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` naming the first weight or buffer holding NaN or inf
    (such weights give NaN actions that would poison every later step)."""
    tensors = [*network.named_parameters(), *network.named_buffers()]
    for name, tensor in tensors:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"{where}: weight {name!r} holds {bad} NaN/inf values of {tensor.numel()}; the "
                "checkpoint is corrupt or its training diverged: re-download or retrain it"
            )


def check_state_stats(mean: torch.Tensor, std: torch.Tensor, where: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` unless ``state_mean``/``state_std`` are finite and every
    ``state_std`` entry is > 0 (states are divided by it)."""
    for name, value in (("state_mean", mean), ("state_std", std)):
        bad = torch.flatten(~torch.isfinite(value)).nonzero().flatten().tolist()
        if bad:
            raise CheckpointError(
                f"{where}: preprocessing.{name} holds NaN/inf at index {bad[:5]}; pass finite "
                f"{name}=... to from_pretrained or fix config.json"
            )
    bad = torch.flatten(std <= 0).nonzero().flatten().tolist()
    if bad:
        raise CheckpointError(
            f"{where}: preprocessing.state_std is <= 0 at index {bad[:5]} (states are divided "
            "by it); floor constant dimensions at a small positive value, e.g. "
            "state_std=np.maximum(std, 1e-6), and pass it to from_pretrained or fix config.json"
        )


def check_return_scale(value: Any) -> float:
    """``value`` as a float, or a ``ValueError`` unless it is finite and > 0 (returns-to-go are
    divided by it)."""
    try:
        scale = float(value)
    except (TypeError, ValueError):
        scale = float("nan")
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(
            f"return_scale must be a finite number > 0 (returns-to-go are divided by it), got "
            f"{value!r}"
        )
    return scale


def check_target_return(value: Any) -> float:
    """``value`` as a float, or a ``ValueError`` unless it is a finite number (the returns-to-go
    start from it: NaN or inf would make every prediction NaN)."""
    try:
        target = float(value)
    except (TypeError, ValueError):
        target = float("nan")
    if not np.isfinite(target):
        raise ValueError(
            f"target_return must be a finite number (the return to condition on, in reward "
            f"units), got {value!r}"
        )
    return target


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"``,
    ``"mps"`` as :class:`torch.device`, checked to exist here.

    Raises:
        ValueError: an unknown device name, or a device this machine does not have (the
            message says which devices there are).

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(
            f"unknown device {str(device)!r}; expected auto, cpu, cuda, cuda:N or mps"
        ) from e
    if resolved.type not in ("cpu", "cuda", "mps", "meta"):
        raise ValueError(f"device {str(device)!r} is not supported; use auto, cpu, cuda or mps")
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            built = "with" if torch.backends.cuda.is_built() else "without"
            raise ValueError(
                f"device {str(device)!r}: CUDA is not available on this machine (torch "
                f"{torch.__version__}, built {built} CUDA); use device='cpu' or 'auto'"
            )
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"device {str(device)!r}: this machine has {count} CUDA device(s)")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r}: MPS is not available; use 'cpu' or 'auto'")
    return resolved


_AgentT = TypeVar("_AgentT", bound="SequenceAgent")
_MAX_CONFIG_BYTES = 1 << 26  # 64 MB of config.json, far above any real one (< 1 MB)


class SequenceAgent(
    ModelHubMixin,
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
    """

    algorithm: ClassVar[str] = ""
    requires_reward: ClassVar[bool] = True  # does the context need r_{t-1} at every step?
    _registry: ClassVar[dict[str, type[SequenceAgent]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("algorithm"):  # a class naming its own algorithm, not a subclass
            SequenceAgent._registry[cls.algorithm] = cls  # of one (that keeps its loader)

    def __init__(self, network: nn.Module, spec: CheckpointConfig, device: str = "auto") -> None:
        self.spec = spec
        try:
            self.protocol  # noqa: B018 -- a bad saved protocol is an error at load time
        except (TypeError, ValueError) as e:
            raise CheckpointError(str(e)) from e
        self.device = resolve_device(device)
        # float32 whatever torch.get_default_dtype() was when it was built (the inputs are)
        self.network = network.to(device=self.device, dtype=torch.float32).eval()
        check_finite_weights(self.network, spec.algorithm)
        self.observation_space, self.action_space = spec.spaces()
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
        self._obs_bounds: tuple[int, int] | None = None  # integer Box spaces: (low, high)
        self._vocabulary = self.mission_vocabulary
        # The thread that owns the current contexts: {id(self): thread id}, claimed with one
        # atomic dict.setdefault by the first predict after a reset (see predict).
        self._owner: dict[int, int] = {}
        self.n_envs = 0  # batch size of the current contexts (0 = none yet)
        self._t = np.zeros(0, dtype=np.int64)  # (n_envs,) steps taken in each env's episode
        self._pending_reward: np.ndarray | None = None  # r_{t-1} reported through observe()
        self._pending_done = np.zeros(0, dtype=bool)  # envs whose episode ended (observe)

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
        unless told otherwise. Set it with ``agent.spec.protocol = {...}`` before saving."""
        return EvaluationProtocol.of_checkpoint(self.spec.protocol, self.spec.evaluation)

    @property
    def env_id(self) -> str | None:
        """The gymnasium id this checkpoint was made for."""
        return self.spec.env_id

    def make_env(self, **kwargs: Any) -> gym.Env:
        """``gymnasium.make`` the checkpoint's env with its kwargs (``kwargs`` override them).

        An env id of the form ``module:Env-v0`` (which would import ``module``) is refused: a
        checkpoint never makes seqagents import code (see :func:`check_env_id_from_file`)."""
        if not self.spec.env_id:
            raise ValueError("this checkpoint names no env id; pass an env explicitly")
        check_env_id_from_file(self.spec.env_id, "this checkpoint's config.json")
        return make_env(self.spec.env_id, **{**self.spec.env_kwargs, **kwargs})

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
        obs_space = getattr(env, "single_observation_space", None) or env.observation_space
        act_space = getattr(env, "single_action_space", None) or env.action_space
        for what, ours, theirs in (
            ("observation", self.observation_space, obs_space),
            ("action", self.action_space, act_space),
        ):
            if not spaces_match(ours, theirs):
                raise CheckpointError(
                    f"{what} space mismatch: the checkpoint expects {describe_space(ours)} "
                    f"(trained on {self.spec.env_id}), the env has {describe_space(theirs)}"
                )
        ours, theirs = self.action_space, act_space
        if isinstance(ours, gym.spaces.Box) and isinstance(theirs, gym.spaces.Box):
            low, high = np.asarray(ours.low, np.float64), np.asarray(ours.high, np.float64)
            env_low, env_high = (np.asarray(b, np.float64) for b in (theirs.low, theirs.high))
            if not (np.allclose(low, env_low) and np.allclose(high, env_high)):
                raise CheckpointError(
                    f"action bounds mismatch: the checkpoint acts in [{_bounds(low)}, "
                    f"{_bounds(high)}] (trained on {self.spec.env_id}), the env accepts "
                    f"[{_bounds(env_low)}, {_bounds(env_high)}]; use the env the agent was "
                    "trained on (agent.make_env()) or rescale its actions with a wrapper"
                )
        env_id = env_id_of(env)
        if env_id and self.spec.env_id and env_id != self.spec.env_id:
            self._warn_once(
                f"env:{env_id}",
                f"the env is {env_id} but this checkpoint was trained on {self.spec.env_id}; "
                "their spaces match, so it runs, but its returns (and normalized scores) say "
                f"nothing about the agent: evaluate on {self.spec.env_id} (agent.make_env())",
            )

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
        if base is None:
            base = int(getattr(self, "planning_seed", 0))  # TT and LEAP: the saved planner seed
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
        """Forget every env's context; optionally set a new target return (DT).

        Raises:
            ValueError: a target return that is not a finite number.
        """
        if target_return is not None:
            self._set_target_return(check_target_return(target_return))
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
        self._pending_reward = _per_env(reward, n, "observe: reward", np.float32).copy()
        done = _per_env(done, n, "observe: done", bool)
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
        _check_gym_habits(observation, state, reward)
        dtype = next(self.network.parameters()).dtype
        if dtype != torch.float32:
            raise ValueError(
                f"the agent's network is {dtype} but seqagents agents compute in torch.float32 "
                "(their inputs, contexts and statistics are float32): call agent.network.float()"
            )
        obs, single = self._check_observation(observation)
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
            starts = starts | _per_env(episode_start, n, "episode_start", bool)
        if self._pending_done.size == n:  # observe() reported episode ends
            starts = starts | self._pending_done
        rewards = self._rewards(reward, starts, n)
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
    def _sync_spec(self) -> None:
        """Write the settings the agent acts with back into ``self.spec`` (so that what is
        saved is what acts): the network config, return scale, target return and planner, for
        the agents that have them."""
        to_dict = getattr(getattr(self.network, "config", None), "to_dict", None)
        if callable(to_dict):
            self.spec.model = to_dict()
        if hasattr(self, "return_scale"):
            self.spec.preprocessing["return_scale"] = float(self.return_scale)
        if getattr(self, "target_return", None) is not None:  # DT, return-conditioned LEAP
            self.spec.inference["target_return"] = float(self.target_return)
        planner = getattr(self, "planner", None)
        if dataclasses.is_dataclass(planner):  # TT, LEAP
            self.spec.inference["planner"] = dataclasses.asdict(planner)

    def _allocate(self, n_envs: int) -> None:
        """(Re)create empty contexts for ``n_envs`` envs. Subclasses extend this."""
        self.n_envs = n_envs
        self._t = np.zeros(n_envs, dtype=np.int64)
        self._pending_done = np.zeros(0, dtype=bool)  # none reported
        if hasattr(self, "_rtg"):  # return-conditioned agents (see _setup_states)
            # (n,) current scaled RTG, float32 whatever the default dtype
            self._rtg = torch.zeros(n_envs, device=self.device, dtype=torch.float32)

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

    def _setup_states(self, state_shape: tuple[int, ...]) -> None:
        """Return scale and state normalization from the checkpoint (DT, LEAP); call once."""
        pre = self.spec.preprocessing
        self.return_scale = check_return_scale(pre.get("return_scale", 1.0))
        for key in ("state_mean", "state_std"):
            size = np.size(pre[key]) if key in pre else int(np.prod(state_shape))
            if size != int(np.prod(state_shape)):
                raise CheckpointError(
                    f"{self.spec.algorithm} checkpoint: preprocessing.{key} has {size} values, "
                    f"the observations have shape {state_shape}; pass {key}=... with "
                    f"{int(np.prod(state_shape))} values or fix config.json"
                )
        self._state_mean, self._state_std = (
            torch.as_tensor(
                pre.get(key, default(state_shape)), dtype=torch.float32, device=self.device
            ).reshape(state_shape)
            for key, default in (("state_mean", np.zeros), ("state_std", np.ones))
        )
        check_state_stats(self._state_mean, self._state_std, f"{self.spec.algorithm} checkpoint")
        # (n,) scaled RTG of each env
        self._rtg = torch.zeros(0, device=self.device, dtype=torch.float32)

    def _embed_states(
        self, obs: torch.Tensor | dict[str, torch.Tensor], check: bool = True
    ) -> torch.Tensor:
        """``(n, H)`` embeddings of the new states, the only encoding each state gets (the
        contexts cache it): flat states normalized, images and BabyAI dicts as they come.
        ``check=False`` skips the finiteness check (a caller that checks its prediction instead
        calls :meth:`_check_embedding` when that fails: one host sync per step, not two)."""
        if isinstance(obs, dict):
            return self.network.embed_state(obs)
        embedded = self.network.embed_state((obs.float() - self._state_mean) / self._state_std)
        if check:
            self._check_embedding(obs, embedded)
        return embedded

    def _check_embedding(self, obs: torch.Tensor | dict, embedded: torch.Tensor) -> None:
        """Raise the "observation overflows" error if ``embedded`` is not finite."""
        if bool(torch.isfinite(embedded).all()) or isinstance(obs, dict):
            return
        states = (obs.float() - self._state_mean) / self._state_std
        raise ValueError(
            "the observation overflows: after normalization by the checkpoint's state_mean/"
            f"state_std its largest magnitude is {states.abs().max().item():.3g} and the "
            "state embedding is not finite; nothing was stored. Check the observation (and "
            "that no wrapper rescales it)"
        )

    def _step_returns_to_go(self, rewards: torch.Tensor, starts: np.ndarray) -> None:
        """``rtg_t = rtg_{t-1} - r_{t-1} / return_scale``; the target return where an episode
        starts (see the time-index convention in the agents' ``_step``). ``self._rtg`` becomes a
        new tensor: the old one is left as it was (the DT agent restores it after a failed step)."""
        self._rtg = self._rtg - rewards / self.return_scale  # (n,)
        if starts.any():
            new = torch.as_tensor(starts, device=self.device)
            self._rtg.masked_fill_(new, (self.target_return or 0.0) / self.return_scale)

    def _set_target_return(self, target_return: float) -> None:
        raise ValueError(f"{type(self).__name__} has no target return")

    @classmethod
    def _from_config(
        cls, config: dict, files: CheckpointFiles, device: str, overrides: dict
    ) -> Any:
        raise NotImplementedError

    def _state_dict_to_save(self) -> dict[str, torch.Tensor]:
        return self.network.state_dict()

    # ------------------------------------------------------------------ input checks
    def _check_observation(
        self, observation: Any
    ) -> tuple[torch.Tensor | dict[str, torch.Tensor], bool]:
        """The observation as a batch on the device, and whether it was one env's.

        A Box observation becomes a ``(n, *shape)`` tensor (uint8 kept, anything else float32);
        a BabyAI Dict observation becomes :func:`seqagents.observations.babyai_arrays`' dict.
        """
        space = self.observation_space
        if isinstance(space, gym.spaces.Dict):
            return self._check_dict_observation(observation)
        obs = np.asarray(observation)
        if obs.dtype.kind not in "biufc":  # bool, signed, unsigned, float, complex
            raise ValueError(
                f"observation has dtype {obs.dtype}; expected a numeric array matching "
                f"{describe_space(space)}"
            )
        shape = space.shape or ()
        if obs.shape == shape:
            single, obs = True, obs[None]
        elif obs.shape[1:] == shape and obs.ndim == len(shape) + 1:
            single = False
        else:
            raise ValueError(
                f"observation has shape {obs.shape}; expected {shape} (one env) or "
                f"(n_envs, *{shape}) for {describe_space(space)}"
            )
        if np.issubdtype(space.dtype, np.integer):  # e.g. Atari frames: uint8 in [0, 255]
            obs = self._check_integer_observation(obs)
        if obs.dtype == np.uint8:
            return torch.as_tensor(obs, dtype=torch.uint8, device=self.device), single
        if obs.dtype == np.float32:
            cast = obs
        else:
            with np.errstate(over="ignore"):  # an overflow is reported below
                cast = obs.astype(np.float32)
        if not np.isfinite(cast).all():  # one pass: NaN/inf given, or e.g. 1e39 -> inf in float32
            if np.issubdtype(obs.dtype, np.floating) and not np.isfinite(obs).all():
                raise ValueError("observation contains NaN or inf")
            raise ValueError(
                f"observation overflows float32 (largest magnitude {np.abs(obs).max():.3g}, "
                f"float32 max {np.finfo(np.float32).max:.3g}); the agent computes in float32"
            )
        return torch.as_tensor(cast, device=self.device), single

    def _check_integer_observation(self, obs: np.ndarray) -> np.ndarray:
        """An observation of an integer Box space (Atari frames: uint8 0-255) must hold
        integers within the space's bounds: frames scaled to [0, 1] would be divided by 255
        again by the encoder, and out-of-range values read as other pixels."""
        space = self.observation_space
        if self._obs_bounds is None:  # computed once: an Atari stack has 28,224 bounds
            self._obs_bounds = (int(np.min(space.low)), int(np.max(space.high)))
        low, high = self._obs_bounds
        kind = np.dtype(space.dtype).name
        expected = f"{kind} values in [{low}, {high}] ({describe_space(space)})"
        if obs.dtype.kind not in "iu":
            raise ValueError(
                f"observation has dtype {obs.dtype}; this agent expects {expected}, as the env "
                "gives them: pass frames unscaled (not divided by 255) and uncast"
            )
        info = np.iinfo(obs.dtype)
        if info.min < low or info.max > high:  # the dtype itself does not bound the values
            if obs.min() < low or obs.max() > high:
                raise ValueError(
                    f"observation values range over [{obs.min()}, {obs.max()}]; this agent "
                    f"expects {expected}"
                )
            obs = obs.astype(space.dtype)
        return obs

    @property
    def mission_vocabulary(self) -> MissionVocabulary | None:
        """The words this agent reads in BabyAI missions (None for non-BabyAI agents)."""
        vocab = self.spec.preprocessing.get("mission_vocabulary")
        return None if vocab is None else MissionVocabulary.from_dict(vocab)

    def _check_dict_observation(self, observation: Any) -> tuple[dict[str, torch.Tensor], bool]:
        space = self.observation_space
        if self._vocabulary is None:
            raise CheckpointError(
                "this checkpoint has a Dict observation space but no mission vocabulary "
                "(preprocessing.mission_vocabulary); only BabyAI Dict observations are supported"
            )
        arrays = babyai_arrays(observation, self._vocabulary)  # ValueError on bad input
        single = np.asarray(observation["image"]).ndim == 3
        want = tuple(space["image"].shape)
        if arrays["image"].shape[1:] != want:
            raise ValueError(
                f"observation image has shape {arrays['image'].shape[1:]}; this agent expects "
                f"{want} (privileged agents read the full grid, see seqagents.envs)"
            )
        missing = [k for k in space.spaces if k in PRIVILEGED_KEYS and k not in arrays]
        if missing:
            raise ValueError(
                f"observation lacks {missing}: this agent was trained in LEAP's privileged "
                "setting; wrap the env with seqagents.envs.BabyAIPrivileged"
            )
        return {k: torch.as_tensor(v, device=self.device) for k, v in arrays.items()}, single

    def _rewards(self, reward: Any, starts: np.ndarray, n: int) -> np.ndarray:
        if reward is None:
            reward = self._pending_reward
        if reward is None:
            if self.requires_reward and not starts.all():
                raise ValueError(
                    f"{type(self).__name__}.predict needs the reward received after the previous "
                    "action: call predict(obs, reward=r) or agent.observe(reward, done) after "
                    "each env.step. If a new episode begins here (after env.reset()), call "
                    "agent.reset() first or pass predict(obs, episode_start=True); with several "
                    "envs, episode_start=[...] marks the ones that begin"
                )
            return np.zeros(n, dtype=np.float32)
        rewards = np.array(reward, dtype=np.float32).reshape(-1)  # a copy: written below
        if rewards.size not in (1, n):
            raise ValueError(f"reward has {rewards.size} values for {n} envs")
        if rewards.size != n:
            rewards = np.full(n, rewards[0])  # (n,): one reward for every env
        if not np.isfinite(rewards).all():
            raise ValueError("reward contains NaN or inf")
        rewards[starts] = 0.0  # r_{t-1} does not exist at the first step of an episode
        return rewards

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls: type[_AgentT],
        repo_id_or_path: str | Path,
        *,
        revision: str | None = None,
        device: str = "auto",
        cache_dir: str | Path | None = None,
        token: str | bool | None = None,
        local_files_only: bool = False,
        force_download: bool = False,
        env: gym.Env | None = None,
        **overrides: Any,
    ) -> _AgentT:
        """Load an agent from a Hub repo id, a local folder or a zoo entry name.

        Args:
            repo_id_or_path: ``"user/repo"`` on the Hugging Face Hub, a local directory
                holding ``config.json`` (native ``model.safetensors``, or a supported foreign
                format such as transformers' ``decision_transformer``), or a zoo entry name
                with a checkpoint (``"halfcheetah-medium"``, ``"dt/breakout"``).
            revision: Hub branch, tag or commit.
            device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda:0"``, ...
            env: optional env to check the checkpoint's spaces against.
            **overrides: algorithm options, e.g. ``target_return=6000`` for DT.

        Raises:
            CheckpointError: missing, corrupt or mismatched checkpoint (the message says why).
        """
        resolve_device(device)  # an unknown or absent device fails before any download
        path = Path(repo_id_or_path)
        if path.exists() and not path.is_dir():
            raise CheckpointError(f"{path} is a file; expected a checkpoint folder or Hub repo id")
        if not path.exists():  # a zoo entry name ("halfcheetah-medium") -> its checkpoint
            from seqagents.zoo import did_you_mean, resolve_model

            try:
                repo_id_or_path = resolve_model(str(repo_id_or_path))[0]
            except LookupError as e:
                raise CheckpointError(str(e)) from e
            path = Path(repo_id_or_path)
        if not path.exists() and str(repo_id_or_path).count("/") != 1:
            raise CheckpointError(
                f"{repo_id_or_path!r} is neither an existing local folder, a zoo entry nor a Hub "
                f"repo id of the form 'user/name'{did_you_mean(str(repo_id_or_path))}"
            )
        agent = cls._read_checkpoint(
            path,
            str(repo_id_or_path),
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
            force_download=force_download,
            device=device,
            overrides=overrides,
        )
        if env is not None:
            agent.check_env(env)
        return agent

    @classmethod
    def _read_checkpoint(
        cls: type[_AgentT],
        path: Path,
        repo_id_or_path: str,
        *,
        revision: str | None,
        cache_dir: str | Path | None,
        token: str | bool | None,
        local_files_only: bool,
        force_download: bool,
        device: str,
        overrides: dict,
    ) -> _AgentT:
        """Read the checkpoint (see :meth:`from_pretrained`).

        A local folder's ``config.json`` and ``model.safetensors`` are read at once, from one
        version of the folder (:func:`seqagents._files.read_files`): a folder re-saved meanwhile
        (``save_pretrained`` swaps in a whole new one) gives the old or the new checkpoint,
        never one's config with the other's weights.
        """
        if path.is_dir():
            from seqagents.checkpoints import native  # MAX_PARAMETERS may be raised at run time

            weights = 8 * native.MAX_PARAMETERS + 2**26  # float64 at most, plus the header
            limits = {CONFIG_NAME: _MAX_CONFIG_BYTES, WEIGHTS_NAME: weights}
            preloaded = read_files(path, [CONFIG_NAME, WEIGHTS_NAME], CheckpointError, limits)
            config = None
            if CONFIG_NAME in preloaded:
                config = _read_config(path / CONFIG_NAME, preloaded[CONFIG_NAME])
            return cls._from_pretrained(
                model_id=repo_id_or_path,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                local_files_only=local_files_only,
                token=token,
                config=config,
                device=device,
                overrides=overrides,
                preloaded=preloaded,
            )
        try:
            # config.json read here first from the Hub: bad JSON or a non-object is an error
            # naming the file (the mixin would raise a bare JSONDecodeError/AttributeError)
            files = CheckpointFiles(
                repo_id_or_path, revision, cache_dir, force_download, local_files_only, token
            )
            _read_config(files.path(CONFIG_NAME))
            with quiet_hub_retries():
                return super().from_pretrained(
                    repo_id_or_path,
                    revision=revision,
                    cache_dir=cache_dir,
                    token=token,
                    local_files_only=local_files_only,
                    force_download=force_download,
                    device=device,
                    overrides=overrides,
                )
        except HFValidationError as e:
            raise CheckpointError(f"{repo_id_or_path!r} is not a valid Hub repo id: {e}") from e
        except hub_errors() as e:
            raise not_found(repo_id_or_path, e) from e

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: dict | None = None,
        device: str = "auto",
        overrides: dict | None = None,
        preloaded: dict[str, bytes] | None = None,
        **_: Any,
    ) -> Any:
        files = CheckpointFiles(
            model_id, revision, cache_dir, force_download, local_files_only, token, preloaded
        )
        if config is None and not os.path.isdir(model_id):
            files.path(CONFIG_NAME)  # the mixin swallows Hub misses: raise the real reason
        if config is None:
            raise CheckpointError(
                f"{model_id}: no {CONFIG_NAME} found; a checkpoint folder needs {CONFIG_NAME} "
                f"and {WEIGHTS_NAME} (written by save_pretrained)"
            )
        if config.get("format") == FORMAT:
            algorithm = config.get("algorithm")
            target = cls._registry.get(algorithm)
            if target is None:
                raise CheckpointError(
                    f"{model_id}/{CONFIG_NAME} names algorithm {algorithm!r}; seqagents loads "
                    f"{sorted(cls._registry)}. Fix the file or re-save the checkpoint"
                )
            if cls.algorithm and not issubclass(cls, target):
                raise CheckpointError(
                    f"{model_id} is a {algorithm!r} checkpoint; load it with "
                    f"{target.__name__}.from_pretrained or seqagents.load_agent"
                )
            try:
                maker = cls if cls.algorithm else target  # a subclass loads as itself
                return maker._from_config(config, files, device, overrides or {})
            except ValueError as e:  # a config section or override that is rejected
                if str(e).startswith(model_id):
                    raise
                where = f"{model_id}/{CONFIG_NAME}" + (" or the overrides" if overrides else "")
                raise CheckpointError(f"{where}: {e}") from e
        from seqagents.checkpoints import foreign_algorithm

        algorithm = foreign_algorithm(config, model_id, cls.algorithm)
        import seqagents.agents  # noqa: F401  (registers every agent class)

        return cls._registry[algorithm]._from_foreign(config, files, device, overrides or {})

    def save_pretrained(  # type: ignore[override]
        self,
        save_directory: str | Path,
        *,
        push_to_hub: bool = False,
        repo_id: str | None = None,
        **push_to_hub_kwargs: Any,
    ) -> str | None:
        """Write the checkpoint folder: ``config.json``, ``model.safetensors``, ``README.md``.

        The write is atomic: the folder is written as a hidden temporary sibling and swapped
        into place, so a save that fails half-way (a full disk, a crash) leaves the previous
        checkpoint as it was, and a reader (:meth:`from_pretrained`, another process) sees the
        old checkpoint or the new one, never one's config beside the other's weights. Other
        files in an existing folder (a replay video, ``metrics.jsonl``) are carried over.
        Symbolic links are never written through: a link in the folder (a Hub cache snapshot is
        made of links into its blob store) is replaced by a file, a link as the folder itself by
        a folder. Files get the modes of the user's umask.

        Args:
            save_directory: the checkpoint folder (created with its parents if needed).
            push_to_hub: also upload it with :meth:`push_to_hub` (to ``repo_id``, default the
                folder name, with ``push_to_hub_kwargs``).

        Raises:
            FileExistsError: ``save_directory`` is a file.
            ValueError: ``save_directory`` is the working folder or holds it.
            OSError: the folder could not be written (the previous checkpoint is unchanged).
        """
        from seqagents._files import apply_umask, remove_folder, swap_into_place, temp_sibling

        target = Path(os.path.abspath(save_directory))
        if Path.cwd().resolve().is_relative_to(target.resolve()):
            raise ValueError(
                f"save_pretrained({str(save_directory)!r}): the working folder (or one holding "
                "it) cannot be replaced; save into a sub-folder"
            )
        if target.exists() and not target.is_dir():
            raise FileExistsError(
                f"{target} is a file; save_pretrained writes a checkpoint folder: pass a folder"
            )
        new = temp_sibling(target)
        try:
            self._write_folder(new, location=str(save_directory))
            _carry_over(target, new)
            apply_umask(new)
            swap_into_place(new, target)
        except BaseException:
            remove_folder(new)
            raise
        if push_to_hub:
            return self.push_to_hub(repo_id or target.name, **push_to_hub_kwargs)
        return None

    def _save_pretrained(self, save_directory: Path) -> None:
        self._write_folder(Path(save_directory), location=str(save_directory))

    def _write_folder(
        self,
        directory: Path,
        location: str,
        video: str | Path | None = None,
        public: bool = False,
    ) -> None:
        """``config.json``, ``model.safetensors`` and a fresh model card (``README.md``, always
        rewritten so that it describes what is saved) whose usage snippet loads ``location``;
        a ``video`` is copied in as ``replay<suffix>`` and shown in the card. ``public``: the
        folder is for the Hub, so its ``config.json`` holds no local path either (the card
        never does). A link in the way of one of these files is replaced, never written
        through; the files written get the modes of the user's umask."""
        from seqagents._files import apply_umask, remove_entry, write_text

        self._sync_spec()
        spec = public_spec(self.spec) if public else self.spec
        write_text(directory / CONFIG_NAME, json.dumps(spec.to_dict(), indent=2))
        state = {k: v.detach().cpu().contiguous() for k, v in self._state_dict_to_save().items()}
        remove_entry(directory / WEIGHTS_NAME)
        save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
        written = [CONFIG_NAME, WEIGHTS_NAME, "README.md"]
        replay = None
        if video is not None:
            replay = f"replay{Path(video).suffix}"
            remove_entry(directory / replay)
            shutil.copyfile(video, directory / replay)
            written.append(replay)
        card = model_card(self.spec, type(self).__name__, location=location, replay=replay)
        write_text(directory / "README.md", str(card))
        apply_umask(directory, written)

    def push_to_hub(  # type: ignore[override]
        self,
        repo_id: str,
        *,
        video: str | Path | None = None,
        commit_message: str = "Upload seqagents checkpoint",
        private: bool | None = None,
        token: str | None = None,
        branch: str | None = None,
    ) -> str:
        """Upload the checkpoint (config, weights, model card) and an optional replay video to
        the Hub repo ``repo_id``, creating it if needed; returns the commit URL. The uploaded
        config and card hold no local path (the run folder is dropped, absolute paths are
        reduced to their names).

        Example:
            >>> agent.push_to_hub("me/dt-halfcheetah", video="replay.mp4")  # doctest: +SKIP
        """
        from huggingface_hub import HfApi

        from seqagents.checkpoints.hub import upload_folder

        if "/" not in repo_id:  # the card's snippet names the full id
            repo_id = f"{HfApi(token=token).whoami()['name']}/{repo_id}"
        with tempfile.TemporaryDirectory() as tmp:
            self._write_folder(Path(tmp), location=repo_id, video=video, public=True)
            return upload_folder(
                tmp,
                repo_id,
                private=private,
                token=token,
                branch=branch,
                commit_message=commit_message,
            )

    def export(self, path: str | Path, **kwargs: Any) -> dict[str, Any]:
        """Write the greedy policy, preprocessing inside, to ``path`` (``.pt``: TorchScript,
        ``.onnx``: ONNX) for use without seqagents; see :func:`seqagents.export.export_policy`
        (Decision Transformer agents with Box observations).

        Example:
            >>> agent.export("policy.onnx")  # doctest: +SKIP
        """
        from seqagents.export import export_policy

        return export_policy(self, path, **kwargs)

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """A model card with the measured results as Hub ``model-index`` metadata."""
        return model_card(self.spec, type(self).__name__, location=kwargs.get("location"))


def _carry_over(old: Path, new: Path) -> None:
    """Put into ``new`` the entries of the folder ``old`` that ``new`` lacks (what a save does not
    write: a replay video, ``metrics.jsonl``): files as hard links where the file system allows
    (no copy of the data), links as links, folders recursively."""
    if not old.is_dir():
        return

    def link_or_copy(source: str, destination: str) -> None:
        try:
            os.link(source, destination, follow_symlinks=False)
        except OSError:
            shutil.copy2(source, destination, follow_symlinks=False)

    from seqagents._files import TEMP_MARKERS

    for entry in os.scandir(old):
        if os.path.lexists(new / entry.name):
            continue
        if entry.name.startswith(".") and any(m in entry.name for m in TEMP_MARKERS):
            continue  # another save's temporary folder, not part of the checkpoint
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), new / entry.name)
        elif entry.is_dir():
            shutil.copytree(entry.path, new / entry.name, symlinks=True, copy_function=link_or_copy)
        else:
            link_or_copy(entry.path, str(new / entry.name))


def _read_config(path: Path, data: bytes | None = None) -> dict:
    """A checkpoint's ``config.json`` (its bytes ``data`` when read already) as a dict, or a
    :class:`CheckpointError` naming the file."""
    try:
        if data is None:
            check_regular_file(path, CheckpointError)
            data = path.read_bytes()
        config = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(
            f"{path} is not valid JSON ({e}); re-save the checkpoint or restore the file"
        ) from e
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{path} holds a JSON {type(config).__name__}; expected an object (written by "
            "save_pretrained)"
        )
    return config


def _check_gym_habits(observation: Any, state: Any, reward: Any) -> None:
    """Errors that name the fix for two old-gym habits (issue 28): passing what
    ``env.reset()`` returns, the ``(obs, info)`` tuple, as the observation; and passing the
    reward by position, where SB3's signature has ``state``."""
    if (
        isinstance(observation, tuple)
        and len(observation) == 2
        and isinstance(observation[1], dict)
    ):
        raise ValueError(
            "predict got a tuple (observation, info): gymnasium's env.reset() returns both; "
            "unpack it first: obs, info = env.reset(); action, _ = agent.predict(obs)"
        )
    if reward is None and state is not None and _is_number(state):
        raise ValueError(
            f"predict got {state!r} as its second positional argument, which is SB3's `state` "
            "(unused here), not the reward: pass the reward by keyword, "
            "predict(obs, reward=r)"
        )


def _is_number(value: Any) -> bool:
    """A real number or a numeric array of at most one axis (what a reward looks like)."""
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, int | float | np.number):
        return True
    if isinstance(value, list) and value:  # one reward per env
        return all(_is_number(v) for v in value)
    return isinstance(value, np.ndarray) and value.ndim <= 1 and value.dtype.kind in "iuf"


def _per_env(value: Any, n: int, name: str, dtype: Any) -> np.ndarray:
    """``value`` (a scalar or one entry per env) as an ``(n,)`` array, or a ``ValueError``
    saying what shape was expected."""
    array = np.asarray(value, dtype)
    if array.size not in (1, n) or (array.ndim > 1 and array.size != n):
        raise ValueError(
            f"{name} has shape {array.shape}; expected a scalar or ({n},), one value per env"
        )
    return np.broadcast_to(array.reshape(-1), (n,))


def _bounds(values: np.ndarray) -> str:
    """``-1`` for equal entries, else the list (short text for messages)."""
    flat = np.unique(values.reshape(-1))
    return f"{flat[0]:g}" if flat.size == 1 else np.array2string(values, precision=3)


def env_id_of(env: Any) -> str | None:
    """The gymnasium id of ``env`` (an env, a gymnasium vector env, an SB3 VecEnv), if known."""
    spec = getattr(env, "spec", None)
    if spec is None and getattr(env, "envs", None):  # SyncVectorEnv, SB3 DummyVecEnv
        spec = getattr(env.envs[0], "spec", None)
    if spec is None and callable(getattr(env, "get_attr", None)):  # other SB3 VecEnvs
        try:
            spec = env.get_attr("spec", [0])[0]
        except Exception:  # noqa: BLE001 - best effort: an id only serves a warning
            spec = None
    return getattr(spec, "id", None)
