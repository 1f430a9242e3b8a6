"""How :func:`seqagents.evaluate_policy` steps every env kind, and what it checks on the way.

One interface (:class:`Stepper`) over a single ``gymnasium.Env`` (run as a one-env vector env
without autoreset), a ``gymnasium.vector.VectorEnv`` in each autoreset mode and an SB3 ``VecEnv``;
:class:`EpisodeStarts` for hand-written vector loops; the wrapper introspection behind the
evaluation's warnings (no time limit, normalizing wrappers, Monitor statistics that disagree).
The names here are the package's own (``seqagents.evaluation`` uses them); the public one is
:class:`EpisodeStarts`, exported from :mod:`seqagents`.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, is_vecenv_wrapped

__all__ = [
    "EpisodeBound",
    "EpisodeStarts",
    "EvalEnv",
    "GymVectorStepper",
    "SB3Stepper",
    "Stepper",
    "has_time_limit",
    "make_stepper",
    "sub_envs",
    "unbatch_info",
    "warn_on_monitor_mismatch",
    "warn_on_normalizing_wrappers",
    "wrapper_chain",
]

EvalEnv = gym.Env | VectorEnv | VecEnv


class EpisodeStarts:
    """The right ``episode_start`` for a hand-written loop over a vector env, in any autoreset
    mode (https://farama.org/Vector-Autoreset-Mode).

    With gymnasium's default ``NEXT_STEP`` autoreset (``gym.make_vec``, ``SyncVectorEnv``) the
    step that returns ``done`` returns the episode's *last* observation, and the next step only
    resets that sub-env (its action is ignored, reward 0). SB3's habit ``episode_start = dones``
    then starts the new context with the old episode's last observation and feeds the reset
    step into it. This helper marks a sub-env as starting both at that junk step (its context is
    cleared, nothing from the old episode leaks in) and at the first real step after the reset,
    where the new context begins. With ``SAME_STEP`` (SB3 VecEnvs) and ``DISABLED`` (reset ended
    sub-envs yourself) it is ``dones``::

        envs = gym.make_vec("HalfCheetah-v5", num_envs=4)
        starts = EpisodeStarts(envs)
        obs, _ = envs.reset(seed=0)
        episode_start, rewards = starts.reset(), None
        for _ in range(2000):
            actions, _ = agent.predict(obs, episode_start=episode_start, reward=rewards)
            obs, rewards, terminated, truncated, _ = envs.step(actions)
            episode_start = starts.update(terminated, truncated)

    Returns of the episodes can be summed over all steps: the reset steps pay 0. When you only
    need scores, :func:`evaluate_policy` does all of this for you.

    Args:
        envs: a ``gymnasium.vector.VectorEnv`` (mode read from ``metadata["autoreset_mode"]``,
            NEXT_STEP if absent) or an SB3 ``VecEnv`` (same-step reset).
    """

    def __init__(self, envs: VectorEnv | VecEnv) -> None:
        if isinstance(envs, VecEnv):
            self.mode = AutoresetMode.SAME_STEP
        elif isinstance(envs, VectorEnv):
            self.mode = AutoresetMode(envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))
        else:
            raise TypeError(
                f"EpisodeStarts needs a gymnasium VectorEnv or SB3 VecEnv, got "
                f"{type(envs).__name__}; a single env starts an episode after each reset"
            )
        self.num_envs = int(envs.num_envs)
        self.resetting = np.zeros(self.num_envs, dtype=bool)  # next step only resets (NEXT_STEP)

    def reset(self) -> np.ndarray:
        """After ``envs.reset()``: every sub-env starts an episode. ``(num_envs,)`` bools."""
        self.resetting[:] = False
        return np.ones(self.num_envs, dtype=bool)

    def update(self, terminated: Any, truncated: Any = None) -> np.ndarray:
        """After ``envs.step``: the ``episode_start`` of the next ``predict``, ``(num_envs,)``."""
        dones = np.asarray(terminated, dtype=bool).reshape(-1)
        if truncated is not None:
            dones = dones | np.asarray(truncated, dtype=bool).reshape(-1)
        if dones.shape != (self.num_envs,):
            raise ValueError(f"got {dones.size} done flags for {self.num_envs} envs")
        if self.mode != AutoresetMode.NEXT_STEP:
            return dones
        # NEXT_STEP: rows that just ended (junk step next: the old episode's last obs) and rows
        # whose reset step just happened (the new episode's first obs) both start.
        starts = dones | self.resetting
        self.resetting = dones & ~self.resetting
        return starts


# ----------------------------------------------------------------- one interface over env kinds
class Stepper:
    """Steps an env kind and reports, per sub-env: reward, done, and whether the step was skipped
    (a NEXT_STEP autoreset step that only resets)."""

    num_envs: int
    unbounded: bool = False  # sub-envs with no known time limit that we cannot cut
    monitored: bool = False  # SB3 Monitor/VecMonitor is known to wrap the env
    statistics_note: str = ""  # appended to the Monitor mismatch warning

    def reset(self, seed: int | None) -> Any:
        raise NotImplementedError

    def step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def reset_finished(self, observations: Any) -> tuple[Any, bool]:
        """Reset sub-envs that need a manual reset (DISABLED autoreset) before the next step."""
        return observations, False

    def info(self, i: int, done: bool) -> dict[str, Any]:
        raise NotImplementedError


class SB3Stepper(Stepper):
    """SB3 ``VecEnv``: same-step autoreset; the final obs is in ``info["terminal_observation"]``."""

    def __init__(self, env: VecEnv) -> None:
        self.env = env
        self.num_envs = env.num_envs
        self.monitored = bool(is_vecenv_wrapped(env, VecMonitor) or env.env_is_wrapped(Monitor)[0])
        self._infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]

    def reset(self, seed: int | None) -> Any:
        if seed is not None:
            self.env.seed(seed)  # sub-env i gets seed + i at the next reset
        return self.env.reset()

    def step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
        observations, rewards, dones, self._infos = self.env.step(actions)
        skipped = np.zeros(self.num_envs, dtype=bool)
        return observations, np.asarray(rewards), np.asarray(dones, dtype=bool), skipped

    def info(self, i: int, done: bool) -> dict[str, Any]:
        return self._infos[i]


class GymVectorStepper(Stepper):
    """gymnasium ``VectorEnv`` in any autoreset mode (https://farama.org/Vector-Autoreset-Mode).

    - NEXT_STEP: the step after a done only resets that sub-env (its action is ignored, reward
      0); it is reported as skipped. Its returned obs is the final obs until then.
    - SAME_STEP: the returned obs is already the reset obs; the done step's info is in
      ``info["final_info"]``.
    - DISABLED: ended sub-envs must be reset with ``reset(options={"reset_mask": ...})`` before
      the next step (stepping them raises otherwise).
    """

    def __init__(self, env: VectorEnv) -> None:
        self.env = env
        self.num_envs = env.num_envs
        mode = env.metadata.get("autoreset_mode")
        if mode is None:
            warnings.warn(
                f"{type(env).__name__}.metadata has no 'autoreset_mode'; assuming "
                "AutoresetMode.NEXT_STEP (gymnasium's default). Set it to avoid miscounting.",
                UserWarning,
                stacklevel=5,
            )
            mode = AutoresetMode.NEXT_STEP
        self.mode = AutoresetMode(mode)
        if self.mode == AutoresetMode.DISABLED:
            self.statistics_note = (
                " Note: gymnasium's vector RecordEpisodeStatistics miscounts after partial "
                "resets (AutoresetMode.DISABLED), "
                "https://github.com/Farama-Foundation/Gymnasium/pull/1696."
            )
        self._infos: dict[str, Any] = {}
        self._pending = np.zeros(self.num_envs, dtype=bool)  # ended, not yet reset

    def reset(self, seed: int | None) -> Any:
        self._pending[:] = False
        observations, self._infos = self.env.reset(seed=seed)
        return observations

    def step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
        observations, rewards, terminations, truncations, self._infos = self.env.step(actions)
        dones = np.logical_or(terminations, truncations)
        skipped = np.zeros(self.num_envs, dtype=bool)
        if self.mode == AutoresetMode.NEXT_STEP:
            skipped = self._pending
            dones = dones & ~skipped
            self._pending = dones.copy()
        elif self.mode == AutoresetMode.DISABLED:
            self._pending = dones.copy()
        return observations, np.asarray(rewards), dones, skipped

    def reset_finished(self, observations: Any) -> tuple[Any, bool]:
        if self.mode != AutoresetMode.DISABLED or not self._pending.any():
            return observations, False
        # No seed: the sub-envs' generators continue from the seeded first reset.
        observations, _ = self.env.reset(options={"reset_mask": self._pending.copy()})
        self._pending[:] = False
        return observations, True

    def info(self, i: int, done: bool) -> dict[str, Any]:
        info = unbatch_info(self._infos, i)
        if self.mode == AutoresetMode.SAME_STEP and done:
            # The top-level info is the reset's; the done step's own info is in final_info.
            info = {**info, **info.pop("final_info", {})}
        return info


def make_stepper(env: EvalEnv, max_episode_steps: int | None, default_max_steps: int) -> Stepper:
    """The stepper of ``env``. A single env with no time limit of its own is cut after
    ``default_max_steps`` steps (with a warning), or after ``max_episode_steps`` when given."""
    if max_episode_steps is not None and not isinstance(env, gym.Env):
        raise ValueError(
            "max_episode_steps cuts the episodes of a single gymnasium.Env; for a vector env "
            "wrap each sub-env in gymnasium.wrappers.TimeLimit instead"
        )
    if isinstance(env, VecEnv | VectorEnv):
        stepper: Stepper = SB3Stepper(env) if isinstance(env, VecEnv) else GymVectorStepper(env)
        subs = sub_envs(env)
        stepper.unbounded = bool(subs) and not has_time_limit(subs[0])
        return stepper
    if isinstance(env, gym.Env):
        inner: gym.Env = env
        if max_episode_steps is not None or not has_time_limit(env):
            inner = EpisodeBound(
                env, max_episode_steps or default_max_steps, explicit=max_episode_steps is not None
            )
        # A one-env vector env without autoreset: batches observations (also dict ones) and
        # leaves the user's env open; reset_finished() resets it between episodes.
        stepper = GymVectorStepper(
            SyncVectorEnv([lambda: inner], autoreset_mode=AutoresetMode.DISABLED)
        )
        stepper.statistics_note = ""  # no vector wrapper can sit around our internal one
        return stepper
    raise TypeError(
        f"env must be a gymnasium.Env, gymnasium.vector.VectorEnv or SB3 VecEnv, "
        f"got {type(env).__name__}"
    )


def unbatch_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """Sub-env ``i``'s info from a gymnasium vector info dict (``key``/``_key`` mask pairs)."""
    info: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_") and key[1:] in infos:
            continue
        mask = infos.get(f"_{key}")
        if mask is not None and not mask[i]:
            continue
        if isinstance(value, dict):
            info[key] = unbatch_info(value, i)
        else:
            try:
                info[key] = value[i]
            except (TypeError, IndexError, KeyError):
                info[key] = value
    return info


def sub_envs(env: Any) -> list[Any]:
    """The sub-envs of a vector env when they live in this process (Sync/Dummy), else []."""
    attrs = vars(env) if hasattr(env, "__dict__") else {}
    if attrs.get("envs") is not None:
        return list(attrs["envs"])
    inner = attrs.get("env") if attrs.get("env") is not None else attrs.get("venv")
    return sub_envs(inner) if inner is not None else []


def wrapper_chain(env: Any) -> list[Any]:
    """``env``, the envs it wraps (``.env``/``.venv``) and those of its first sub-env."""
    chain: list[Any] = []
    stack = [env]
    while stack and len(chain) < 100:
        current = stack.pop()
        if current is None or any(current is seen for seen in chain):
            continue
        chain.append(current)
        attrs = vars(current) if hasattr(current, "__dict__") else {}
        stack.extend(attrs.get(key) for key in ("env", "venv"))
        if attrs.get("envs"):
            stack.append(attrs["envs"][0])
    return chain


def has_time_limit(env: gym.Env) -> bool:
    """Whether ``env`` ends its episodes by itself: a ``TimeLimit`` wrapper, a spec with
    ``max_episode_steps``, MiniGrid/BabyAI's ``max_steps`` or ALE's frame limit."""
    spec = getattr(env, "spec", None)
    if spec is not None and spec.max_episode_steps:
        return True
    if any(isinstance(e, gym.wrappers.TimeLimit) for e in wrapper_chain(env)):
        return True
    unwrapped = getattr(env, "unwrapped", env)
    return bool(getattr(unwrapped, "max_steps", None)) or type(unwrapped).__module__.startswith(
        "ale_py"
    )


class EpisodeBound(gym.Wrapper):
    """Truncates episodes after ``max_steps`` steps; unless ``explicit`` (the caller's cap), with
    a warning the first time (an env without a time limit, cut at the evaluation's default)."""

    def __init__(self, env: gym.Env, max_steps: int, *, explicit: bool) -> None:
        super().__init__(env)
        self.explicit = explicit
        self.max_steps = int(max_steps)
        self._steps, self._warned = 0, False

    def reset(self, **kwargs: Any) -> Any:
        self._steps = 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._steps += 1
        if self._steps >= self.max_steps and not (terminated or truncated):
            truncated = True
            if not self.explicit and not self._warned:
                self._warned = True
                warnings.warn(
                    f"the env has no time limit (no TimeLimit wrapper, spec.max_episode_steps is "
                    f"None): evaluate_policy cut an episode at max_episode_steps="
                    f"{self.max_steps} (counted as truncated). Pass max_episode_steps=N or wrap "
                    "the env in gymnasium.wrappers.TimeLimit",
                    UserWarning,
                    stacklevel=2,
                )
        return observation, reward, terminated, truncated, info


def warn_on_normalizing_wrappers(env: Any) -> None:
    """Warn if observations or rewards reach a seqagents agent normalized by a wrapper."""
    from gymnasium.wrappers import NormalizeObservation, NormalizeReward
    from gymnasium.wrappers import vector as vector_wrappers
    from stable_baselines3.common.vec_env import VecNormalize

    obs_types = (NormalizeObservation, vector_wrappers.NormalizeObservation)
    reward_types = (NormalizeReward, vector_wrappers.NormalizeReward)
    found: list[str] = []
    for wrapper in wrapper_chain(env):
        if isinstance(wrapper, obs_types) or (
            isinstance(wrapper, VecNormalize) and wrapper.norm_obs
        ):
            found.append(f"{type(wrapper).__name__} (observations)")
        if isinstance(wrapper, reward_types) or (
            isinstance(wrapper, VecNormalize) and wrapper.norm_reward
        ):
            found.append(f"{type(wrapper).__name__} (rewards)")
    if found:
        warnings.warn(
            f"the env is wrapped in {', '.join(found)}: a seqagents agent normalizes states itself "
            "with the checkpoint's state_mean/state_std and conditions on the env's raw "
            "rewards (returns-to-go), so normalized inputs make it act badly, and normalized "
            "rewards make the reported returns meaningless. Remove the wrapper (agent.make_env() "
            "builds the checkpoint's env)",
            UserWarning,
            stacklevel=4,
        )


def warn_on_monitor_mismatch(
    info: dict[str, Any], episode_return: float, episode_length: int, stepper: Stepper
) -> bool:
    """Warn (once per evaluation, hence the returned flag) if Monitor's stats disagree."""
    stats = info.get("episode")
    if isinstance(stats, dict) and "r" in stats and "l" in stats:
        monitor_return, monitor_length = float(stats["r"]), int(stats["l"])
        # Monitor rounds returns to 6 decimals.
        if monitor_length == episode_length and np.isclose(
            monitor_return, episode_return, rtol=1e-5, atol=1e-5
        ):
            return False
        message = (
            f"info['episode'] reports return {monitor_return:g} over {monitor_length} steps "
            f"but the agent received {episode_return:g} over {episode_length} steps. seqagents "
            "reports what the agent received. A wrapper between the Monitor and the agent may "
            "change rewards or episode ends: wrap the env in Monitor/RecordEpisodeStatistics "
            "last (outermost) to compare." + stepper.statistics_note
        )
    elif stepper.monitored:
        message = (
            "an episode ended (done=True) without Monitor episode statistics: an inner wrapper "
            "(e.g. EpisodicLifeEnv) ends episodes early. seqagents counts each done as the end "
            "of an episode, as the agent's context is reset there too."
        )
    else:
        return False
    warnings.warn(message, UserWarning, stacklevel=4)
    return True
