"""Behaviour policies for :func:`seqagents.data.collect_dataset` (its ``policy`` argument), chosen
by a spec string or given as an object:

- ``"random"``: ``env.action_space.sample()``, the action space seeded with ``seed + env_index``.
- ``"babyai-bot"``: ``minigrid.utils.baby_ai_bot.BabyAIBot``, the expert that solves BabyAI levels
  (a new bot per episode, one per env). Options follow a colon, comma-separated, e.g.
  ``"babyai-bot:noise=0.4,full_view=1,unique_goal=1"`` (LEAP's demos); see
  :class:`BabyAIBotOptions`.
  Only successful episodes (return > 0) are kept; see docs/datasets.md "BabyAI demos".
- ``"<algo>:<path.zip>"``: a stable-baselines3 model, e.g. ``"sac:zoo/sac-halfcheetah.zip"``;
  ``<algo>`` is one of ``a2c ddpg dqn ppo sac td3`` (case-insensitive).
- ``"<path.zip>"``: the same, the algorithm read from the zip (works for SAC, TD3, DDPG, DQN; PPO
  and A2C share a policy class, so write ``"ppo:<path.zip>"`` for them).
- any object with an SB3-style ``predict(observation, deterministic=...) -> (action, state)``
  (a loaded SB3 model, for instance), called on the stacked observations of the running envs.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from seqagents.errors import require

if TYPE_CHECKING:
    from seqagents.data.collect import _Episode

__all__ = [
    "SB3_ALGOS",
    "BabyAIBotOptions",
    "BehaviourPolicy",
    "SupportsPredict",
    "make_policy",
    "stack_observations",
]

logger = logging.getLogger(__name__)

SB3_ALGOS = ("a2c", "ddpg", "dqn", "ppo", "sac", "td3")
"""stable-baselines3 algorithms accepted in ``"<algo>:<path.zip>"`` policy specs."""


@runtime_checkable
class SupportsPredict(Protocol):
    """Anything with stable-baselines3's ``predict`` (SB3 models, seqagents agents)."""

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[Any, Any]: ...


class BehaviourPolicy:
    """Internal batched action source; ``reset`` is called after every env reset.

    ``act`` returns the actions to RECORD (None for an env whose episode must be dropped);
    ``execute`` maps a recorded action to the one the env executes (the same, except for a noisy
    bot); ``keep`` says whether a finished episode is saved.
    """

    def reset(self, env_index: int, env: gym.Env) -> bool:
        """Called after each reset; False rejects this start (the env is reset again)."""
        return True

    def act(self, observations: list[Any], env_indices: list[int]) -> list[Any]:
        raise NotImplementedError

    def execute(self, env_index: int, action: Any) -> Any:
        return action

    def keep(self, episode: _Episode) -> bool:
        return True


class _RandomPolicy(BehaviourPolicy):
    def __init__(self, envs: Sequence[gym.Env], seed: int) -> None:
        self.spaces = [env.action_space for env in envs]
        for i, space in enumerate(self.spaces):
            space.seed(seed + i)

    def act(self, observations: list[Any], env_indices: list[int]) -> list[Any]:
        return [self.spaces[i].sample() for i in env_indices]


@dataclass(frozen=True)
class BabyAIBotOptions:
    """Options of the ``"babyai-bot"`` behaviour policy, written after a colon in the spec.

    Attributes:
        noise: probability, at each step, of EXECUTING a uniformly random action among the first
            six (MiniGrid left..toggle, LEAP's action set) while RECORDING the bot's action as the
            label (LEAP's ``make_agent_demos``: 0.4 for its ``_suboptimal`` demos, 0 otherwise).
        full_view: the bot sees the whole grid (``bot.vis_mask[:] = True`` before each replan),
            as LEAP's bot did, so it never explores; otherwise it maps the level from its 7x7
            view like BabyAI's bot.
        unique_goal: reject starts whose mission matches more than one object (LEAP kept only
            demos with exactly one goal candidate).

    Example:
        >>> BabyAIBotOptions.parse("noise=0.4,full_view=1")
        BabyAIBotOptions(noise=0.4, full_view=True, unique_goal=False)
        >>> BabyAIBotOptions.parse("")
        BabyAIBotOptions(noise=0.0, full_view=False, unique_goal=False)
    """

    noise: float = 0.0
    full_view: bool = False
    unique_goal: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"babyai-bot noise must lie in [0, 1], got {self.noise}.")

    @classmethod
    def parse(cls, text: str) -> BabyAIBotOptions:
        """Options from ``"key=value,key=value"`` (booleans as 1/0/true/false/yes/no)."""
        names = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, _, value = item.partition("=")
            key, value = key.strip(), value.strip().lower()
            if key not in names or not value:
                raise ValueError(
                    f"bad babyai-bot option {item!r}: use key=value with key in "
                    f"{', '.join(names)}, e.g. 'babyai-bot:noise=0.4,full_view=1'."
                )
            if key == "noise":
                values[key] = float(value)
            elif value in ("1", "true", "yes"):
                values[key] = True
            elif value in ("0", "false", "no"):
                values[key] = False
            else:
                raise ValueError(f"babyai-bot option {key} takes 1/0 or true/false, got {value!r}.")
        return cls(**values)

    def describe(self) -> str:
        set_options = [f"{f.name}={getattr(self, f.name)}" for f in fields(self)]
        return f"BabyAIBot({', '.join(set_options)})"


class _BabyAIBotPolicy(BehaviourPolicy):
    N_NOISE_ACTIONS = 6  # left, right, forward, pickup, drop, toggle (not done)

    def __init__(self, options: BabyAIBotOptions, seed: int) -> None:
        self._bot_class = require("minigrid.utils.baby_ai_bot", "babyai").BabyAIBot
        self.options = options
        self.bots: dict[int, Any] = {}
        # Action executed at an env's previous step when it differed from the bot's, else None
        # (replan(None) means "the suggested action was taken").
        self._taken: dict[int, int | None] = {}
        self._rng = np.random.default_rng(seed)

    def reset(self, env_index: int, env: gym.Env) -> bool:
        # The bot plans from the env's internal state, so it is rebuilt after every reset.
        bot = self.bots[env_index] = self._bot_class(env.unwrapped)
        self._taken[env_index] = None
        if self.options.unique_goal:
            target = getattr(bot.stack[-1], "datum", None) if bot.stack else None
            return len(getattr(target, "obj_poss", ())) == 1
        return True

    def act(self, observations: list[Any], env_indices: list[int]) -> list[Any]:
        actions: list[Any] = []
        for i in env_indices:
            bot = self.bots[i]
            if self.options.full_view:
                bot.vis_mask[:] = True
            try:
                actions.append(int(bot.replan(self._taken[i])))
            except Exception as error:  # the bot gives up, e.g. after a noisy toggle opened a box
                logger.debug("BabyAIBot failed (%s: %s); dropping the episode", type(error), error)
                actions.append(None)
        return actions

    def execute(self, env_index: int, action: Any) -> Any:
        executed = action
        if self.options.noise > 0 and self._rng.random() < self.options.noise:
            executed = int(self._rng.integers(self.N_NOISE_ACTIONS))
        self._taken[env_index] = None if executed == action else executed
        return executed

    def keep(self, episode: _Episode) -> bool:
        return sum(episode.rewards) > 0  # BabyAI pays only on success


class _PredictPolicy(BehaviourPolicy):
    def __init__(self, model: SupportsPredict, deterministic: bool) -> None:
        self.model, self.deterministic = model, deterministic

    def act(self, observations: list[Any], env_indices: list[int]) -> list[Any]:
        batch = stack_observations(observations)  # (n_active, *obs_shape), dicts stacked per key
        actions, _ = self.model.predict(batch, deterministic=self.deterministic)
        return list(np.asarray(actions))  # n_active x (*act_shape)


def stack_observations(values: list[Any]) -> Any:
    """Stack per-step values along a new first axis; dicts per key, strings as a list."""
    if isinstance(values[0], dict):
        return {key: stack_observations([value[key] for value in values]) for key in values[0]}
    if isinstance(values[0], str):
        return list(values)
    return np.stack([np.asarray(value) for value in values])  # (T, *shape)


def _infer_sb3_algo(path: str) -> str:
    """Read the algorithm of an SB3 zip from the module of its stored policy class."""
    try:
        with zipfile.ZipFile(path) as archive:
            module = json.loads(archive.read("data"))["policy_class"]["__module__"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a stable-baselines3 model zip: {error}") from error
    algo = module.split(".")[1] if module.startswith("stable_baselines3.") else ""
    if algo not in SB3_ALGOS:
        raise ValueError(
            f"Cannot tell the algorithm of {path} from its policy class ({module}); "
            f"name it explicitly, e.g. policy='ppo:{path}' (one of {', '.join(SB3_ALGOS)})."
        )
    return algo


def _load_sb3(algo: str, path: str, env: gym.Env) -> SupportsPredict:
    import stable_baselines3

    if not os.path.isfile(path):
        raise FileNotFoundError(f"stable-baselines3 model file not found: {path}")
    model = getattr(stable_baselines3, algo.upper()).load(path, device="cpu")
    model_shape = getattr(model.observation_space, "shape", None)
    if model_shape != getattr(env.observation_space, "shape", None):
        raise ValueError(
            f"The {algo.upper()} model in {path} expects observations of shape {model_shape}, "
            f"but the env has {env.observation_space}; was it trained on this env?"
        )
    return model


def make_policy(
    policy: str | SupportsPredict,
    envs: Sequence[gym.Env],
    seed: int,
    deterministic: bool,
    trust_policy_file: bool = False,
) -> tuple[BehaviourPolicy, str]:
    """Build the action source for a policy spec; returns it and a short description."""
    if isinstance(policy, SupportsPredict):
        return _PredictPolicy(policy, deterministic), type(policy).__name__
    if not isinstance(policy, str):
        raise TypeError(f"policy must be a string spec or have predict(), got {type(policy)}")
    if policy == "random":
        return _RandomPolicy(envs, seed), "random"
    if policy == "babyai-bot" or policy.startswith("babyai-bot:"):
        options = BabyAIBotOptions.parse(policy.partition(":")[2])
        return _BabyAIBotPolicy(options, seed), options.describe()
    algo, separator, path = policy.partition(":")
    if separator and algo.lower() in SB3_ALGOS:
        algo = algo.lower()
    elif policy.endswith(".zip"):
        algo, path = _infer_sb3_algo(policy), policy
    else:
        raise ValueError(
            f"Unknown policy {policy!r}: use 'random', 'babyai-bot', '<algo>:<path.zip>' with "
            f"<algo> in {', '.join(SB3_ALGOS)} (e.g. 'sac:zoo/sac-halfcheetah.zip'), or a path "
            "to a stable-baselines3 .zip."
        )
    _check_trusted(path, trust_policy_file)
    model = _load_sb3(algo, path, envs[0])
    return _PredictPolicy(model, deterministic), f"stable-baselines3 {algo.upper()} ({path})"


def _check_trusted(path: str, trusted: bool) -> None:
    """Loading a stable-baselines3 zip unpickles Python objects, which can run any code: only
    files the user vouches for (``trust_policy_file=True``) or that ship with seqagents (the
    zoo's behaviour policies) are loaded."""
    from seqagents.zoo import zoo_dir

    if trusted or not os.path.isfile(path):  # a missing file: _load_sb3 says so
        return
    if Path(path).resolve().is_relative_to(zoo_dir().resolve()):
        return  # shipped with the package: as trusted as its code
    raise PermissionError(
        f"refusing to load {path}: a stable-baselines3 .zip holds pickled Python objects, and "
        "loading it runs whatever code they hold. Load only a file you made or trust, with "
        "trust_policy_file=True (seqagents collect --trust-policy-file)"
    )
