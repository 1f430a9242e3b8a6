"""An agent's configuration: typed sections per algorithm, validated once, the one saved truth.

Owns what an agent is configured with and how that is checked, overridden and written:

- the sections: the network config (``DTConfig``, ``TTConfig``, ``LEAPConfig``), the
  preprocessing (:class:`StatePreprocessing` for DT and LEAP, :class:`DiscretizerPreprocessing`
  for TT) and the inference defaults (:class:`DTInference`, :class:`TTInference`,
  :class:`LEAPInference`, which hold the planner's own config whole); each is a frozen
  dataclass that validates itself in ``__post_init__``;
- :class:`AgentConfig`, the whole config an agent holds: the sections, the env and its spaces,
  and the records (training provenance, measured evaluation, evaluation protocol). Its
  ``__post_init__`` runs the checks that span sections (state statistics against the network's
  state shape, LEAP's ``replan_every`` against its horizon, the protocol);
- :meth:`AgentConfig.replace`, the one path of ``from_pretrained(..., **overrides)``: each
  keyword goes to its section, each changed section is rebuilt (its one validation);
- reading and writing today's ``config.json`` layout (:class:`CheckpointConfig`, dict
  sections), so every checkpoint saved so far loads and what is saved loads everywhere.

Episode-level choices (this episode's target return, sampled or greedy actions) are not here:
they are passed to ``agent.reset`` / ``evaluate_policy`` and never change the saved config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from seqagents.checkpoints.native import CheckpointConfig
from seqagents.errors import CheckpointError, reject_unknown_keys
from seqagents.models.dt import DTConfig
from seqagents.models.leap import LEAPConfig
from seqagents.models.tt import TTConfig
from seqagents.observations import MissionVocabulary
from seqagents.planning.beam_search import BeamSearchConfig
from seqagents.planning.refinement import RefinementConfig
from seqagents.protocol import EvaluationProtocol

__all__ = [
    "AgentConfig",
    "DTInference",
    "DiscretizerPreprocessing",
    "LEAPInference",
    "StatePreprocessing",
    "TTInference",
    "check_return_scale",
    "check_state_stats",
    "check_target_return",
]


# ---------------------------------------------------------------------------- value checks
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


def check_state_stats(mean: Any, std: Any, where: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` unless ``state_mean``/``state_std`` are finite in float32
    (the agent computes in it) and every ``state_std`` entry is > 0 (states are divided by it)."""
    with np.errstate(over="ignore"):
        arrays = {name: np.asarray(v, np.float32) for name, v in (("mean", mean), ("std", std))}
    for name, value in arrays.items():
        bad = np.flatnonzero(~np.isfinite(value)).tolist()
        if bad:
            raise CheckpointError(
                f"{where}: preprocessing.state_{name} holds NaN/inf at index {bad[:5]}; pass "
                f"finite state_{name}=... to from_pretrained or fix config.json"
            )
    bad = np.flatnonzero(arrays["std"] <= 0).tolist()
    if bad:
        raise CheckpointError(
            f"{where}: preprocessing.state_std is <= 0 at index {bad[:5]} (states are divided "
            "by it); floor constant dimensions at a small positive value, e.g. "
            "state_std=np.maximum(std, 1e-6), and pass it to from_pretrained or fix config.json"
        )


def _check_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an int, got {value!r}")
    return int(value)


def _without_none(section: Any) -> dict[str, Any]:
    """A section's fields as saved: unset (None) fields left out, as the saved layout has it."""
    return {k: v for k, v in dataclasses.asdict(section).items() if v is not None}


def _from_dict(cls: type, data: Any, section: str) -> Any:
    reject_unknown_keys(cls, data, f"config.json {section} has unknown keys", CheckpointError)
    return cls(**data)


# ---------------------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class StatePreprocessing:
    """How states and returns enter a DT or LEAP network (``config.json`` ``preprocessing``)."""

    # Per-dimension mean and std of the dataset's states (nested lists in the state's shape or
    # flat; arrays are stored as lists); states enter as (s - mean) / std. None: 0 and 1
    # (images, BabyAI dicts).
    state_mean: list | None = None
    state_std: list | None = None
    return_scale: float = 1.0  # returns-to-go are divided by it (DT paper: 1000 for MuJoCo)
    # BabyAI: the words the agent reads in missions (a MissionVocabulary is stored as its dict).
    mission_vocabulary: dict | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "return_scale", check_return_scale(self.return_scale))
        if isinstance(self.mission_vocabulary, MissionVocabulary):
            object.__setattr__(self, "mission_vocabulary", self.mission_vocabulary.to_dict())
        for name in ("state_mean", "state_std"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, np.asarray(value, dtype=np.float64).tolist())
        mean, std = self.state_mean, self.state_std
        check_state_stats(0.0 if mean is None else mean, 1.0 if std is None else std, "checkpoint")

    def to_dict(self) -> dict[str, Any]:
        return _without_none(self)


@dataclass(frozen=True)
class DiscretizerPreprocessing:
    """How TT's discretizer was made (``preprocessing``; its thresholds are in the weights)."""

    discretizer: str = "quantile"  # "quantile" (original) or "uniform" bins per dimension
    n_bins: int | None = None  # bins per dimension (the network's vocab_size)
    discretizer_source: str | None = None  # dataset or thresholds file it was rebuilt from

    def to_dict(self) -> dict[str, Any]:
        return _without_none(self)


# ---------------------------------------------------------------------------- inference
@dataclass(frozen=True)
class DTInference:
    """DT's inference defaults (``inference``)."""

    target_return: float = 0.0  # return-to-go of the first step, in reward units
    target_returns: tuple[float, ...] | None = None  # the targets its evaluations use

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_return", check_target_return(self.target_return))
        if self.target_returns is not None:
            targets = tuple(check_target_return(t) for t in self.target_returns)
            object.__setattr__(self, "target_returns", targets)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target_return": self.target_return}
        if self.target_returns is not None:
            out["target_returns"] = list(self.target_returns)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DTInference:
        return _from_dict(cls, data, "inference")


@dataclass(frozen=True)
class TTInference:
    """TT's inference defaults: the beam search, held whole, and the planning seed."""

    planner: BeamSearchConfig = field(default_factory=BeamSearchConfig)
    # Env i of a batch plans from the stream seed + i, which runs on across episodes.
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "seed", _check_int("seed", self.seed))

    def to_dict(self) -> dict[str, Any]:
        # Saved layout: the agent's settings beside the planner's, in one "planner" object.
        return {"planner": {**self.planner.to_dict(), "seed": self.seed}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TTInference:
        reject_unknown_keys(cls, data, "config.json inference has unknown keys", CheckpointError)
        section = dict(data.get("planner") or {})
        seed = section.pop("seed", 0)
        return cls(BeamSearchConfig.from_dict(section), seed=seed)


@dataclass(frozen=True)
class LEAPInference:
    """LEAP's inference defaults: the refinement, held whole, and the agent's own settings."""

    planner: RefinementConfig = field(default_factory=RefinementConfig)
    # Steps executed per plan: 1 = replan every step (Atari); H = open loop (official BabyAI).
    replan_every: int = 1
    seed: int = 0  # env i of a batch plans from the stream seed + i (runs on across episodes)
    target_return: float | None = None  # return-conditioned models: the first step's RTG

    def __post_init__(self) -> None:
        object.__setattr__(self, "replan_every", _check_int("replan_every", self.replan_every))
        object.__setattr__(self, "seed", _check_int("seed", self.seed))
        if self.target_return is not None:
            object.__setattr__(self, "target_return", check_target_return(self.target_return))

    def to_dict(self) -> dict[str, Any]:
        planner = {**self.planner.to_dict(), "replan_every": self.replan_every, "seed": self.seed}
        return {"target_return": self.target_return, "planner": planner}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LEAPInference:
        reject_unknown_keys(cls, data, "config.json inference has unknown keys", CheckpointError)
        section = dict(data.get("planner") or {})
        own = {k: section.pop(k) for k in ("replan_every", "seed") if k in section}
        planner = RefinementConfig.from_dict(section)
        return cls(planner, target_return=data.get("target_return"), **own)


# ---------------------------------------------------------------------------- per algorithm
@dataclass(frozen=True)
class _Algorithm:
    """What one algorithm's config is made of, and the keyword overrides its agent takes."""

    agent: str  # the agent class, named in errors
    model: type
    preprocessing: type
    inference: type
    overrides: dict[str, str]  # keyword -> section ("model", "preprocessing", "inference")
    planner: type | None = None  # planner config class; its fields are overrides too


_STATE = dict.fromkeys(("state_mean", "state_std", "return_scale"), "preprocessing")
_ALGORITHMS = {
    "dt": _Algorithm("DecisionTransformerAgent", DTConfig, StatePreprocessing, DTInference,
                     {"target_return": "inference", "context_len": "model", **_STATE}),
    "tt": _Algorithm("TrajectoryTransformerAgent", TTConfig, DiscretizerPreprocessing,
                     TTInference, {"seed": "inference"}, BeamSearchConfig),
    "leap": _Algorithm("LEAPAgent", LEAPConfig, StatePreprocessing, LEAPInference,
                       {**dict.fromkeys(("target_return", "replan_every", "seed"), "inference"),
                        **_STATE}, RefinementConfig),
}  # fmt: skip


def _algorithm(name: str) -> _Algorithm:
    if name not in _ALGORITHMS:
        raise CheckpointError(f"unknown algorithm {name!r}; seqagents knows {sorted(_ALGORITHMS)}")
    return _ALGORITHMS[name]


# ---------------------------------------------------------------------------- the whole config
@dataclass(frozen=True)
class AgentConfig:
    """Everything an agent is configured with; ``save_pretrained`` writes it as it is.

    Example:
        >>> import gymnasium as gym
        >>> from seqagents.checkpoints.native import serialize_space
        >>> config = AgentConfig(
        ...     "dt", DTConfig(state_shape=(3,), act_dim=1),
        ...     serialize_space(gym.spaces.Box(-1, 1, (3,))),
        ...     serialize_space(gym.spaces.Box(-1, 1, (1,))),
        ...     StatePreprocessing(return_scale=100.0), DTInference(target_return=-200.0))
        >>> config.replace(target_return=-150.0).inference.target_return
        -150.0
        >>> AgentConfig.from_dict(config.to_dict()) == config
        True
    """

    algorithm: str  # "dt" | "tt" | "leap"
    model: Any  # the network's config: DTConfig | TTConfig | LEAPConfig
    observation_space: dict  # minari.serialization.serialize_space(space, to_string=False)
    action_space: dict
    preprocessing: Any  # StatePreprocessing (DT, LEAP) | DiscretizerPreprocessing (TT)
    inference: Any  # DTInference | TTInference | LEAPInference
    env_id: str | None = None  # gymnasium id the checkpoint was trained for
    env_kwargs: dict = field(default_factory=dict)  # gymnasium.make kwargs
    training: dict = field(default_factory=dict)  # record: dataset id, steps, seed, ...
    evaluation: dict = field(default_factory=dict)  # record: measured results (model card)
    protocol: dict = field(default_factory=dict)  # seqagents.protocol.EvaluationProtocol fields
    library_version: str = ""

    def __post_init__(self) -> None:
        """The checks that span sections (each section checked itself when it was built)."""
        algo = _algorithm(self.algorithm)
        for name in ("model", "preprocessing", "inference"):
            want = getattr(algo, name)
            if not isinstance(getattr(self, name), want):
                raise TypeError(
                    f"a {self.algorithm} config's {name} is a {want.__name__}, got "
                    f"{type(getattr(self, name)).__name__}"
                )
        pre = self.preprocessing
        if isinstance(pre, StatePreprocessing):
            shape = tuple(self.model.state_shape)
            for key in ("state_mean", "state_std"):
                size = np.size(getattr(pre, key))
                if getattr(pre, key) is not None and size != int(np.prod(shape)):
                    raise CheckpointError(
                        f"{self.algorithm} checkpoint: preprocessing.{key} has {size} values, "
                        f"the observations have shape {shape}; pass {key}=... with "
                        f"{int(np.prod(shape))} values or fix config.json"
                    )
        if isinstance(self.inference, LEAPInference):
            horizon = self.inference.planner.plan_horizon(self.model.horizon)
            if not 1 <= self.inference.replan_every <= horizon:
                raise ValueError(
                    f"replan_every must be an int in [1, horizon={horizon}], got "
                    f"{self.inference.replan_every!r}"
                )
        try:
            EvaluationProtocol.of_checkpoint(self.protocol, self.evaluation)
        except (TypeError, ValueError) as e:
            raise CheckpointError(str(e)) from e

    # ------------------------------------------------------------------ overrides
    def replace(self, **changes: Any) -> AgentConfig:
        """A copy with ``changes``: whole fields (``training=...``, ``inference=...``) or the
        algorithm's settings by name (``target_return``, ``context_len``, ``state_mean``,
        ``return_scale``, ``beam_width``, ``n_iterations``, ``replan_every``, ``seed``, ...).
        Each changed section is rebuilt once (its validation), then the whole config once.

        Raises:
            TypeError: a keyword that is neither a field nor a setting of this algorithm.
            ValueError: a value its section rejects (the message names it).
        """
        algo = _algorithm(self.algorithm)
        fields = {f.name for f in dataclasses.fields(self)}
        planner_keys = {f.name for f in dataclasses.fields(algo.planner)} if algo.planner else set()
        whole = {k: v for k, v in changes.items() if k in fields}
        by_section: dict[str, dict[str, Any]] = {"model": {}, "preprocessing": {}, "inference": {}}
        planner: dict[str, Any] = {}
        unknown = []
        for key, value in changes.items():
            if key in fields:
                continue
            if key in algo.overrides:
                by_section[algo.overrides[key]][key] = value
            elif key in planner_keys or (key == "planner" and algo.planner):
                planner[key] = value
            else:
                unknown.append(key)
        if unknown:
            if self.algorithm == "tt" and "target_return" in unknown:
                raise TypeError(
                    "TrajectoryTransformerAgent takes no target_return: TT plans for the highest "
                    "predicted return (beam search); pass planner settings such as beam_width="
                )
            expected = [*algo.overrides, *sorted(planner_keys), "env_id"]
            planner_note = f" (and unknown {algo.planner._kind})" if algo.planner else ""
            raise TypeError(
                f"unknown options {sorted(unknown)} for {algo.agent}{planner_note}; expected "
                f"{', '.join(expected)}"
            )
        if planner:
            base = planner.pop("planner", whole.get("inference", self.inference).planner)
            by_section["inference"]["planner"] = base.replace(**planner) if planner else base
        for section, values in by_section.items():
            if values:
                current = whole.get(section, getattr(self, section))
                whole[section] = dataclasses.replace(current, **values)
        return dataclasses.replace(self, **whole)

    @classmethod
    def new(
        cls,
        algorithm: str,
        model: Any,
        observation_space: gym.Space,
        action_space: gym.Space,
        preprocessing: Any,
        inference: Any,
        *,
        env_id: str | None = None,
        env_kwargs: dict | None = None,
    ) -> AgentConfig:
        """The config of a new agent for these spaces, saved with this library's version."""
        from seqagents import __version__
        from seqagents.checkpoints.native import serialize_space

        return cls(
            algorithm,
            model,
            serialize_space(observation_space),
            serialize_space(action_space),
            preprocessing,
            inference,
            env_id=env_id,
            env_kwargs=dict(env_kwargs or {}),
            library_version=__version__,
        )

    # ------------------------------------------------------------------ saved layout
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentConfig:
        """The config of a native ``config.json`` (today's layout; unknown keys are errors)."""
        return cls.from_checkpoint(CheckpointConfig.from_dict(data))

    @classmethod
    def from_checkpoint(cls, spec: CheckpointConfig) -> AgentConfig:
        """The typed config of a :class:`CheckpointConfig` (the saved layout, dict sections)."""
        algo = _algorithm(spec.algorithm)
        sections = {}
        for name, read in (
            ("model", algo.model.from_dict),
            ("preprocessing", lambda d: _from_dict(algo.preprocessing, d, "preprocessing")),
            ("inference", algo.inference.from_dict),
        ):
            try:
                sections[name] = read(dict(getattr(spec, name)))
            except CheckpointError:
                raise
            except ValueError as e:  # named after the file's section: "inference.target_return"
                raise CheckpointError(f"{name}.{e}" if name != "model" else str(e)) from e
        return cls(
            algorithm=spec.algorithm,
            observation_space=spec.observation_space,
            action_space=spec.action_space,
            **sections,
            env_id=spec.env_id,
            env_kwargs=dict(spec.env_kwargs),
            training=dict(spec.training),
            evaluation=dict(spec.evaluation),
            protocol=dict(spec.protocol),
            library_version=spec.library_version,
        )

    def to_checkpoint(self) -> CheckpointConfig:
        """The saved layout (what ``config.json`` holds; the model card reads it)."""
        return CheckpointConfig(
            algorithm=self.algorithm,
            model=self.model.to_dict(),
            observation_space=self.observation_space,
            action_space=self.action_space,
            env_id=self.env_id,
            env_kwargs=dict(self.env_kwargs),
            preprocessing=self.preprocessing.to_dict(),
            inference=self.inference.to_dict(),
            training=dict(self.training),
            evaluation=dict(self.evaluation),
            protocol=dict(self.protocol),
            library_version=self.library_version,
        )

    def to_dict(self) -> dict[str, Any]:
        """``config.json``'s contents."""
        return self.to_checkpoint().to_dict()

    # ------------------------------------------------------------------ derived
    def spaces(self) -> tuple[gym.Space, gym.Space]:
        """The observation and action spaces."""
        return self.to_checkpoint().spaces()

    @property
    def mission_vocabulary(self) -> MissionVocabulary | None:
        """The words the agent reads in BabyAI missions (None for non-BabyAI agents)."""
        vocab = getattr(self.preprocessing, "mission_vocabulary", None)
        return None if vocab is None else MissionVocabulary.from_dict(vocab)
