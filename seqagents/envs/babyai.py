"""BabyAI/MiniGrid levels: the env factory (quiet stdout, LEAP's opt-in privileged observations)
and the wrappers around it (:class:`QuietStdout`, :class:`BabyAIPrivileged`,
:class:`MissionTokens`)."""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any

import gymnasium as gym
import numpy as np

from seqagents.envs.spaces import describe_space
from seqagents.errors import require

__all__ = [
    "PRIVILEGED_KWARG",
    "BabyAIPrivileged",
    "MissionTokens",
    "QuietStdout",
    "babyai_goal_candidates",
    "is_babyai_env",
    "make_babyai_env",
]

_logger = logging.getLogger("seqagents.envs")  # QuietStdout's lines, at DEBUG

_BABYAI_PREFIXES = ("BabyAI-", "MiniGrid-")
PRIVILEGED_KWARG = "privileged"
"""The key of a saved ``env_kwargs`` (checkpoint, zoo entry) that asks for LEAP's privileged
observations: :func:`make_babyai_env`'s ``privileged`` argument, next to the level's own kwargs
(e.g. ``{"doors_open": True, "privileged": True}``)."""


def is_babyai_env(env_id: str) -> bool:
    """Whether ``env_id`` is a BabyAI or MiniGrid level (``BabyAI-*``, ``MiniGrid-*``).

    Example:
        >>> is_babyai_env("BabyAI-GoToLocalS7N5-v0"), is_babyai_env("HalfCheetah-v5")
        (True, False)
    """
    return isinstance(env_id, str) and env_id.startswith(_BABYAI_PREFIXES)


class _DebugLogStream(io.TextIOBase):
    """A text stream that sends each complete line written to it to ``logger.debug``."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self._logger = logger
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            if line.strip():
                self._logger.debug("%s", line)
        return len(text)

    def flush(self) -> None:
        if self._pending.strip():
            self._logger.debug("%s", self._pending)
        self._pending = ""


class QuietStdout(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Send what the env prints to stdout during ``reset``/``step`` to a debug-level logger.

    minigrid's BabyAI levels ``print`` "Sampling rejected: unreachable object at ..." and
    "Timeout during mission generation: ..." while they generate a level (in
    ``minigrid/envs/babyai/core/roomgrid_level.py``, at reset), which would corrupt any output a
    script parses. :func:`make_babyai_env` (hence ``make_env``) adds this wrapper to every
    BabyAI/MiniGrid env, so the library, the ``seqagents`` command and vector envs built from
    them stay quiet; the
    lines go to the ``seqagents.envs`` logger at DEBUG level. For ``gymnasium.make_vec``, pass it
    as a wrapper: ``gym.make_vec(env_id, 4, wrappers=[QuietStdout])``.

    ``sys.stdout`` is swapped (``contextlib.redirect_stdout``) only while the wrapped env's
    ``reset``/``step`` runs, so prints from other threads in that window are logged too.

    Example:
        >>> import gymnasium as gym
        >>> env = QuietStdout(gym.make("BabyAI-GoToObjMazeS4R2-v0"))
        >>> _ = env.reset(seed=0)  # prints nothing
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._stream = _DebugLogStream(_logger)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        with contextlib.redirect_stdout(self._stream):
            try:
                return self.env.reset(**kwargs)
            finally:
                self._stream.flush()

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        with contextlib.redirect_stdout(self._stream):
            try:
                return self.env.step(action)
            finally:
                self._stream.flush()


def babyai_goal_candidates(env: gym.Env) -> np.ndarray:
    """Positions ``(n, 2)`` int64 of the objects BabyAI's bot would go to first, right after reset.

    ``minigrid.utils.baby_ai_bot.BabyAIBot`` turns the mission into a stack of subgoals; GoTo and
    Pickup (and PutNext, Open) push a ``GoNextToSubgoal`` on an object description last, so the
    top of the stack names the first target; its ``obj_poss`` are the positions of every object
    matching the description (minigrid 3.2.0, ``BabyAIBot._process_instr``).

    Args:
        env: a BabyAI env (any wrapper), just reset.

    Raises:
        ValueError: the bot's first subgoal is not "go next to an object" (a level without an
            object goal).
    """
    from minigrid.envs.babyai.core.verifier import ObjDesc

    BabyAIBot = require("minigrid.utils.baby_ai_bot", "babyai").BabyAIBot
    bot = BabyAIBot(env.unwrapped)
    top = bot.stack[-1] if bot.stack else None
    if top is None or type(top).__name__ != "GoNextToSubgoal" or not isinstance(top.datum, ObjDesc):
        raise ValueError(
            f"the BabyAI bot's first subgoal is {top!r}, not going next to an object; "
            f"{env.unwrapped.spec.id if env.unwrapped.spec else 'this level'} has no object goal "
            "for BabyAIPrivileged"
        )
    return np.asarray(top.datum.obj_poss, dtype=np.int64).reshape(-1, 2)  # (n, 2)


class BabyAIPrivileged(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """PRIVILEGED observations of LEAP's BabyAI setting: the full grid plus agent and goal cells.

    This is information a normal BabyAI agent does not get (it sees a 7x7 egocentric view and
    the mission text): the whole grid, its own coordinates and the coordinates of the object the
    mission refers to, taken from the expert bot. LEAP (Chen et al., 2023) conditions on exactly
    this. Results obtained with it are not comparable with BabyAI agents that see the standard
    observation; say so when reporting them.

    Observation (``Dict``, a proper gymnasium space):

    - ``image``: ``(W, H, 3)`` uint8, ``grid.encode()`` of the whole grid with the agent's cell
      set to ``[10, 0, direction]`` (``minigrid.wrappers.FullyObsWrapper``'s convention: object
      "agent", colour "red"), so codes stay within object < 11, colour < 6, state < 4;
    - ``direction``: ``Discrete(4)``, the agent's direction;
    - ``mission``: the mission text (minigrid's ``MissionSpace``);
    - ``agent_pos``: ``(2,)`` int64, ``env.unwrapped.agent_pos`` (x, y);
    - ``goal_pos``: ``(2,)`` int64 (x, y), fixed for the episode: at each reset, among the
      positions of the objects matching the bot's first target (:func:`babyai_goal_candidates`),
      the one nearest (Euclidean) to the agent; ties go to the first listed.

    ``info`` of ``reset`` also holds ``goal_candidates``, the number of matching objects (LEAP
    kept only demos with one).

    Get it from :func:`make_babyai_env` with ``privileged=True``; a checkpoint's or zoo entry's
    ``env_kwargs`` ask for it with the same key (:data:`PRIVILEGED_KWARG`), which
    :func:`seqagents.envs.make_env` passes on: ``make_env("BabyAI-GoToObjMazeS4-v0",
    doors_open=True, privileged=True)``.

    Args:
        env: a BabyAI env whose missions start with going to an object (GoTo*, Pickup*, ...).

    Example:
        >>> env = make_babyai_env("BabyAI-GoToLocalS7N5-v0", privileged=True)
        >>> obs, info = env.reset(seed=0)
        >>> sorted(obs), obs["image"].shape, obs["goal_pos"].dtype
        (['agent_pos', 'direction', 'goal_pos', 'image', 'mission'], (7, 7, 3), dtype('int64'))
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        spaces = env.observation_space
        if not isinstance(spaces, gym.spaces.Dict) or not {"direction", "mission"} <= set(
            spaces.spaces
        ):
            raise ValueError(
                f"BabyAIPrivileged needs a BabyAI Dict observation space, got {spaces}"
            )
        width, height = env.unwrapped.width, env.unwrapped.height
        position = gym.spaces.Box(0, max(width, height) - 1, shape=(2,), dtype=np.int64)
        self.observation_space = gym.spaces.Dict(
            {
                "image": gym.spaces.Box(0, 255, shape=(width, height, 3), dtype=np.uint8),
                "direction": spaces["direction"],
                "mission": spaces["mission"],
                "agent_pos": position,
                "goal_pos": position,
            }
        )
        self._goal_pos = np.zeros(2, dtype=np.int64)

    def reset(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        observation, info = self.env.reset(**kwargs)
        candidates = babyai_goal_candidates(self.env)  # (n, 2)
        agent = np.asarray(self.env.unwrapped.agent_pos, dtype=np.int64)  # (2,)
        distance = np.linalg.norm((candidates - agent).astype(np.float64), axis=1)  # (n,)
        self._goal_pos = candidates[int(np.argmin(distance))].copy()  # (2,)
        return self._observation(observation), {**info, "goal_candidates": len(candidates)}

    def step(self, action: Any) -> tuple[dict[str, Any], Any, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        return self._observation(observation), reward, terminated, truncated, info

    def _observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

        base = self.env.unwrapped
        image = base.grid.encode()  # (W, H, 3) uint8
        x, y = base.agent_pos
        image[x, y] = (OBJECT_TO_IDX["agent"], COLOR_TO_IDX["red"], base.agent_dir)
        return {
            "image": image,
            "direction": int(observation["direction"]),
            "mission": observation["mission"],
            "agent_pos": np.asarray(base.agent_pos, dtype=np.int64),  # (2,)
            "goal_pos": self._goal_pos.copy(),  # (2,)
        }


class MissionTokens(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """BabyAI's mission text as a fixed-size array of word ids, for vector envs that hold arrays.

    Stable-Baselines3's ``DummyVecEnv``/``SubprocVecEnv`` (and ``make_vec_env``) allocate one
    numpy buffer per observation key and cannot hold minigrid's ``MissionSpace``; this wrapper
    replaces ``mission`` by ``Box(0, vocabulary.size - 1, (vocabulary.max_len,), int64)``: the
    ids :meth:`MissionVocabulary.encode <seqagents.observations.MissionVocabulary.encode>`
    gives (left-padded with 0). seqagents' BabyAI agents read this form as they read the text,
    provided the ids come from their own vocabulary (``agent.mission_vocabulary``); the other
    keys (``image``, ``direction``, the privileged ones) pass unchanged.

    Args:
        env: a BabyAI env (any wrapper, privileged included) with a ``mission`` key.
        vocabulary: the agent's mission vocabulary (``agent.mission_vocabulary``).

    Example:
        >>> from seqagents import load_agent
        >>> agent = load_agent("dt/babyai-gotolocal-s7n5", device="cpu")
        >>> env = MissionTokens(agent.make_env(), agent.mission_vocabulary)
        >>> obs, _ = env.reset(seed=0)
        >>> obs["mission"].shape == (agent.mission_vocabulary.max_len,)
        True
    """

    def __init__(self, env: gym.Env, vocabulary: Any) -> None:
        from seqagents.observations import MissionVocabulary

        if not isinstance(vocabulary, MissionVocabulary):
            raise TypeError(
                f"vocabulary must be a MissionVocabulary (agent.mission_vocabulary), got "
                f"{type(vocabulary).__name__}; non-BabyAI agents need no MissionTokens"
            )
        gym.utils.RecordConstructorArgs.__init__(self, vocabulary=vocabulary)
        gym.ObservationWrapper.__init__(self, env)
        spaces = env.observation_space
        if not isinstance(spaces, gym.spaces.Dict) or "mission" not in spaces.spaces:
            raise ValueError(
                f"MissionTokens needs a Dict observation space with a 'mission' key (BabyAI), "
                f"got {describe_space(spaces)}"
            )
        self.vocabulary = vocabulary
        tokens = gym.spaces.Box(0, vocabulary.size - 1, (vocabulary.max_len,), np.int64)
        self.observation_space = gym.spaces.Dict({**spaces.spaces, "mission": tokens})

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        ids = self.vocabulary.encode([observation["mission"]])[0]  # (L,) int64
        return {**observation, "mission": ids}


def make_babyai_env(env_id: str, *, privileged: bool = False, **kwargs: Any) -> gym.Env:
    """A BabyAI/MiniGrid level: ``gymnasium.make(env_id, **kwargs)`` wrapped in
    :class:`QuietStdout`, then in :class:`BabyAIPrivileged` when ``privileged`` (LEAP's setting;
    opt-in, never hidden inside an agent).

    Args:
        env_id: a ``BabyAI-*`` or ``MiniGrid-*`` id.
        privileged: add :class:`BabyAIPrivileged` (full grid, agent and goal cells).
        **kwargs: the level's own kwargs (``doors_open``, ``render_mode``, ...).

    Example:
        >>> env = make_babyai_env("BabyAI-GoToLocalS7N5-v0", privileged=True)
        >>> sorted(env.observation_space.spaces)
        ['agent_pos', 'direction', 'goal_pos', 'image', 'mission']
    """
    from seqagents.envs.base import make_gym_env

    if not is_babyai_env(env_id):
        raise ValueError(f"{env_id!r} is not a BabyAI/MiniGrid level (BabyAI-*, MiniGrid-*)")
    env = QuietStdout(make_gym_env(env_id, **kwargs))
    return BabyAIPrivileged(env) if privileged else env
