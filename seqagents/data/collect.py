"""Collecting local Minari datasets from a behaviour policy (the ``seqagents collect`` command).

Datasets are written with Minari's jax-free path, ``minari.create_dataset_from_buffers`` with one
``minari.data_collector.EpisodeBuffer`` per finished episode (``minari.DataCollector`` would need
``minari[create]``, i.e. jax). Each buffer holds ``T + 1`` observations, ``T`` actions, rewards,
terminations and truncations, the layout of Minari's remote datasets, so
:func:`seqagents.data.load_dataset` reads both the same way.

Behaviour policies (the ``policy`` argument of :func:`collect_dataset`):

- ``"random"``: ``env.action_space.sample()``, the action space seeded with ``seed + env_index``.
- ``"babyai-bot"``: ``minigrid.utils.baby_ai_bot.BabyAIBot``, the expert that solves BabyAI levels
  (a new bot per episode, one per env). Options follow a colon, comma-separated, e.g.
  ``"babyai-bot:noise=0.4,full_view=1,unique_goal=1"`` (LEAP's demos); see
  :class:`BabyAIBotOptions`.
  Only successful episodes (return > 0) are kept; see "BabyAI demos" below.
- ``"<algo>:<path.zip>"``: a stable-baselines3 model, e.g. ``"sac:zoo/sac-halfcheetah.zip"``;
  ``<algo>`` is one of ``a2c ddpg dqn ppo sac td3`` (case-insensitive).
- ``"<path.zip>"``: the same, the algorithm read from the zip (works for SAC, TD3, DDPG, DQN; PPO
  and A2C share a policy class, so write ``"ppo:<path.zip>"`` for them).
- any object with an SB3-style ``predict(observation, deterministic=...) -> (action, state)``
  (a loaded SB3 model, for instance), called on the stacked observations of the running envs.

BabyAI demos (``policy="babyai-bot..."``):

- Episodes the bot does not solve (return 0, or the bot raised, e.g. after a noisy action opened
  a box) are dropped and replaced, as LEAP kept only successful demos; so are starts rejected by
  ``unique_goal``. A dropped episode still uses up its seed, so the kept episodes' seeds (stored
  per episode by Minari) are ``seed + k`` for increasing, not necessarily consecutive, ``k``.
- Evaluation must use seeds disjoint from the demos' (the zoo evaluates BabyAI from seed
  1_000_000; demos use ``seed`` = 0 upwards), or it measures memorized levels.
- LEAP's privileged observations (full grid, agent and goal positions): collect with
  ``env_kwargs={"privileged": True}`` (:class:`seqagents.envs.BabyAIPrivileged`).
- ``noise`` > 0 (LEAP's ``make_agent_demos``): at each step, with that probability the env
  EXECUTES a uniformly random action among the first six (left, right, forward, pickup, drop,
  toggle) while the dataset RECORDS the bot's action as the label. The bot is told the action
  actually taken (``BabyAIBot.replan(action_taken)``), which replans from the new state and plans
  to undo pickup/drop/toggle side effects. Each episode's ``infos["executed_action"]`` (``T + 1``
  entries, Minari's layout: entry ``t + 1`` is the action executed at step ``t``, entry 0 is -1)
  tells which steps were perturbed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import minari
import numpy as np
import torch
from minari.data_collector import EpisodeBuffer
from minari.dataset.minari_dataset import parse_dataset_id
from minari.storage.datasets_root_dir import get_dataset_path
from tqdm.auto import tqdm

from seqagents.envs import make_env, storable_space
from seqagents.errors import require

__all__ = ["SB3_ALGOS", "BabyAIBotOptions", "SupportsPredict", "collect_dataset"]

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


class _Policy:
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


class _RandomPolicy(_Policy):
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


class _BabyAIBotPolicy(_Policy):
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


class _PredictPolicy(_Policy):
    def __init__(self, model: SupportsPredict, deterministic: bool) -> None:
        self.model, self.deterministic = model, deterministic

    def act(self, observations: list[Any], env_indices: list[int]) -> list[Any]:
        batch = _stack(observations)  # (n_active, *obs_shape), dicts stacked per key
        actions, _ = self.model.predict(batch, deterministic=self.deterministic)
        return list(np.asarray(actions))  # n_active x (*act_shape)


def _stack(values: list[Any]) -> Any:
    """Stack per-step values along a new first axis; dicts per key, strings as a list."""
    if isinstance(values[0], dict):
        return {key: _stack([value[key] for value in values]) for key in values[0]}
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


def _make_policy(
    policy: str | SupportsPredict,
    envs: Sequence[gym.Env],
    seed: int,
    deterministic: bool,
    trust_policy_file: bool = False,
) -> tuple[_Policy, str]:
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


# Env-id prefixes whose envs register on import of a package: (prefix, module, seqagents extra).
@dataclass
class _Episode:
    """The running episode of one env: T + 1 observations, T of everything else."""

    seed: int
    observations: list[Any]
    actions: list[Any] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terminations: list[bool] = field(default_factory=list)
    truncations: list[bool] = field(default_factory=list)
    executed: list[int] | None = None  # actions executed, kept only when they may differ

    def to_buffer(self, action_space: gym.spaces.Space) -> EpisodeBuffer:
        if isinstance(action_space, gym.spaces.Discrete):
            actions = np.asarray(self.actions, dtype=np.int64)  # (T,)
        else:
            actions = np.stack(self.actions).astype(action_space.dtype)  # (T, *act_shape)
        return EpisodeBuffer(
            seed=self.seed,
            observations=_stack(self.observations),  # (T + 1, *obs_shape)
            actions=actions,
            rewards=np.asarray(self.rewards, dtype=np.float64),  # (T,)
            terminations=np.asarray(self.terminations, dtype=bool),  # (T,)
            truncations=np.asarray(self.truncations, dtype=bool),  # (T,)
            # Minari's info layout: entry 0 from the reset, entry t + 1 from step t.
            infos=None
            if self.executed is None
            else {"executed_action": np.asarray([-1, *self.executed], dtype=np.int64)},  # (T+1,)
        )


def collect_dataset(
    dataset_id: str,
    env_id: str,
    policy: str | SupportsPredict = "random",
    *,
    n_steps: int | None = None,
    n_episodes: int | None = None,
    n_envs: int = 1,
    seed: int = 0,
    deterministic: bool = False,
    env_kwargs: dict[str, Any] | None = None,
    max_episode_steps: int | None = None,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    algorithm_name: str | None = None,
    author: str = "seqagents",
    description: str | None = None,
    overwrite: bool = False,
    progress_bar: bool = True,
    trust_policy_file: bool = False,
) -> minari.MinariDataset:
    """Run a behaviour policy in ``n_envs`` envs and save the episodes as a local Minari dataset.

    The envs are stepped in lock-step (like ``gymnasium.vector.SyncVectorEnv``, the policy called
    once per step on the stacked observations of the running envs) but reset explicitly, so every
    saved episode is complete: it ends with ``terminated`` (MDP end) or ``truncated`` (time limit),
    both kept as the env reported them. Episode ``k`` (in start order) is reset with seed
    ``seed + k``, which Minari records per episode, so a collection is reproducible.

    Stopping: no new episode starts once ``n_episodes`` episodes have started or ``n_steps``
    transitions have been taken; the envs finish their running episodes. With ``n_episodes``
    exactly that many episodes are saved; with ``n_steps`` the dataset holds at least ``n_steps``
    transitions (at most ``n_envs - 1`` episodes more than needed). At least one of the two is
    required; with both, whichever is reached first stops new episodes.

    Args:
        dataset_id: Minari id of the new dataset with a version, e.g.
            ``"local/halfcheetah/medium-v0"``; written under ``$MINARI_DATASETS_PATH``.
        env_id: gymnasium env id, e.g. ``"HalfCheetah-v5"``.
        policy: ``"random"``, ``"babyai-bot[:options]"``, ``"<algo>:<path.zip>"``
            (stable-baselines3, e.g. ``"sac:zoo/sac-halfcheetah.zip"``), a bare SB3 ``.zip``
            path, or an object with an SB3-style ``predict``. See the module docstring.
        n_steps: minimum number of transitions to collect.
        n_episodes: number of episodes to collect.
        n_envs: number of envs run side by side (``env_kwargs`` apply to all).
        seed: base seed of episode resets (``seed + k``), action-space sampling
            (``seed + env_index``) and torch's RNG for stochastic SB3 policies (restored after).
        deterministic: passed to ``predict`` of SB3 policies. D4RL-style "medium" data comes from
            the stochastic policy (False).
        env_kwargs: keyword arguments for ``gymnasium.make``.
        max_episode_steps: time limit for ``gymnasium.make`` (None keeps the env's own).
        ref_min_score: random-policy return stored in the metadata for normalized scores (D4RL
            HalfCheetah: -280.178953). Give both reference scores or neither.
        ref_max_score: expert return stored in the metadata (D4RL HalfCheetah: 12135.0).
        algorithm_name: metadata ``algorithm_name``; default: a description of ``policy``.
        author: metadata ``author``.
        description: metadata ``description``; default: generated from the arguments.
        overwrite: replace an existing local dataset with the same id (deleted only after the
            collection succeeded).
        progress_bar: show a tqdm progress bar on stderr.
        trust_policy_file: load a stable-baselines3 ``.zip`` policy. Such a file holds pickled
            Python objects and loading it runs any code they hold, so it is refused unless you
            made or trust it (the zoo's bundled behaviour policies are always loaded).

    Returns:
        The new dataset, opened.

    Raises:
        ValueError: bad id, limits, policy spec or reference scores.
        PermissionError: an SB3 policy file without ``trust_policy_file=True``.
        FileExistsError: the dataset exists and ``overwrite`` is False.

    Example:
        >>> dataset = collect_dataset("local/pendulum/random-v0", "Pendulum-v1", "random",
        ...                           n_episodes=2, n_envs=2, progress_bar=False)
        >>> dataset.total_episodes, dataset.total_steps
        (2, 400)
    """
    try:
        _, _, version = parse_dataset_id(dataset_id)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"'{dataset_id}' is not a valid Minari dataset id: use (namespace/)name-v<version>, "
            "e.g. 'local/halfcheetah/medium-v0'."
        ) from error
    if n_steps is None and n_episodes is None:
        raise ValueError("Give n_steps or n_episodes (or both) to say when collection stops.")
    for name, value in (("n_steps", n_steps), ("n_episodes", n_episodes), ("n_envs", n_envs)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if (ref_min_score is None) != (ref_max_score is None):
        # Minari would drop a lone ref_min_score, and estimate a missing one with 100 random
        # episodes; we want neither silently.
        raise ValueError("Give both ref_min_score and ref_max_score, or neither.")
    dataset_path = get_dataset_path(dataset_id)
    if os.path.exists(dataset_path) and not overwrite:
        raise FileExistsError(
            f"Minari dataset '{dataset_id}' already exists at {dataset_path}; pick another "
            "name or version, or pass overwrite=True (seqagents collect --overwrite)."
        )

    make_kwargs = dict(env_kwargs or {})
    if max_episode_steps is not None:
        make_kwargs["max_episode_steps"] = max_episode_steps
    envs = [make_env(env_id, **make_kwargs) for _ in range(n_envs)]
    try:
        action_source, policy_name = _make_policy(
            policy, envs, seed, deterministic, trust_policy_file
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            buffers, dropped = _run_episodes(
                envs, action_source, n_steps, n_episodes, seed, progress_bar, dataset_id
            )
        total_steps = sum(len(buffer) for buffer in buffers)
        if description is None:
            description = (
                f"Collected by seqagents: {len(buffers)} episodes, {total_steps} steps of "
                f"{env_id} with policy {policy_name} (deterministic={deterministic}, seed={seed})."
            )
            if dropped:
                description += f" {dropped} failed or rejected episodes were dropped."
        if overwrite and os.path.exists(dataset_path):
            shutil.rmtree(dataset_path)
        with warnings.catch_warnings():
            # Minari warns about every metadata field left None; these are deliberate.
            warnings.filterwarnings("ignore", message=r"`\w+` is set to None", module="minari")
            dataset = minari.create_dataset_from_buffers(
                dataset_id=dataset_id,
                buffer=buffers,
                env=envs[0],
                algorithm_name=algorithm_name or policy_name,
                author=author,
                description=description,
                observation_space=storable_space(envs[0].observation_space),
                action_space=envs[0].action_space,
                ref_min_score=ref_min_score,
                ref_max_score=ref_max_score,
                # Lossless storage: JPEG would alter image observations (Atari frames).
                jpeg_encoding=False,
            )
    finally:
        for env in envs:
            env.close()
    logger.info(
        "Wrote %s (version %d): %d episodes, %d steps, at %s",
        dataset_id, version, len(buffers), total_steps, dataset_path,
    )  # fmt: skip
    return dataset


def _run_episodes(
    envs: Sequence[gym.Env],
    policy: _Policy,
    n_steps: int | None,
    n_episodes: int | None,
    seed: int,
    progress_bar: bool,
    dataset_id: str,
) -> tuple[list[EpisodeBuffer], int]:
    """Step the envs in lock-step until the limits are reached.

    Returns:
        The finished (kept) episodes, and how many episodes were dropped (``policy.keep`` said
        no, ``policy.act`` gave None, or ``policy.reset`` rejected the start).
    """
    finished: list[EpisodeBuffer] = []
    running: list[_Episode | None] = [None] * len(envs)
    started = steps = dropped = 0  # steps: of kept and running episodes only
    record_executed = getattr(getattr(policy, "options", None), "noise", 0) > 0

    def drop(episode: _Episode) -> None:
        nonlocal steps, dropped
        steps -= len(episode.actions)
        dropped += 1
        if dropped > 100 + 10 * (started - dropped):
            raise RuntimeError(
                f"the behaviour policy failed {dropped} of {started} episodes of "
                f"{envs[0].spec.id if envs[0].spec else 'the env'}; is it the right policy "
                "for this env (the BabyAI bot cannot solve every level, e.g. KeyInBox)?"
            )

    def start_episode(i: int) -> None:
        nonlocal started
        while True:
            if (n_episodes is not None and started - dropped >= n_episodes) or (
                n_steps is not None and steps >= n_steps
            ):
                running[i] = None  # budget reached: this env stays idle
                return
            observation, _ = envs[i].reset(seed=seed + started)
            episode = _Episode(seed=seed + started, observations=[observation])
            episode.executed = [] if record_executed else None
            started += 1
            if policy.reset(i, envs[i]):
                running[i] = episode
                return
            drop(episode)  # rejected start: reset with the next seed

    by_steps = n_steps is not None
    bar = tqdm(
        total=n_steps if by_steps else n_episodes,
        unit="step" if by_steps else "episode",
        desc=f"collect {dataset_id}",
        file=sys.stderr,
        disable=not progress_bar,
        dynamic_ncols=True,
    )
    with bar:
        for i in range(len(envs)):
            start_episode(i)
        while active := [i for i, episode in enumerate(running) if episode is not None]:
            actions = policy.act([running[i].observations[-1] for i in active], active)
            for i, action in zip(active, actions, strict=True):
                episode = running[i]
                if action is None:  # the policy gave up on this episode
                    drop(episode)
                    start_episode(i)
                    continue
                executed = policy.execute(i, action)
                observation, reward, terminated, truncated, _ = envs[i].step(executed)
                episode.observations.append(observation)
                episode.actions.append(action)
                if episode.executed is not None:
                    episode.executed.append(int(executed))
                episode.rewards.append(float(reward))
                episode.terminations.append(bool(terminated))
                episode.truncations.append(bool(truncated))
                steps += 1
                if by_steps and min(steps, n_steps) > bar.n:
                    bar.update(min(steps, n_steps) - bar.n)
                if terminated or truncated:
                    if policy.keep(episode):
                        finished.append(episode.to_buffer(envs[i].action_space))
                        if not by_steps:
                            bar.update(1)
                    else:
                        drop(episode)
                    bar.set_postfix(episodes=len(finished), ret=f"{sum(episode.rewards):.1f}")
                    start_episode(i)
    return finished, dropped
