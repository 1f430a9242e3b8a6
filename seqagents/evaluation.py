"""Evaluate agents like Stable-Baselines3 does, feeding sequence agents every reward.

:func:`evaluate_policy` has SB3's signature, defaults and return values, and accepts a
``gymnasium.Env``, a ``gymnasium.vector.VectorEnv`` (all three autoreset modes) or an SB3
``VecEnv``. Unlike SB3's loop it hands the agent the reward of each step (sequence agents
condition on returns-to-go) and never lets steps outside the counted episodes into an agent's
context. :class:`SB3Adapter` makes SB3's own ``evaluate_policy`` work unchanged.

What the agent is fed (time-index convention of :mod:`seqagents.agents`): at env step t of env i
the agent gets ``observation[i] = s_t``, ``episode_start[i]`` (True at t = 0) and
``reward[i] = r_{t-1}`` (meaningless, and 0 or the last reward of the previous episode, when
``episode_start[i]`` is True). Sub-envs that have already run their share of episodes keep
stepping (a vector env steps all of them); their rows are always passed with
``episode_start=True`` and ``reward=0``, so their context is cleared at every call and none of their
rewards are counted or fed.
"""

from __future__ import annotations

import inspect
import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.type_aliases import PolicyPredictor
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    VecEnv,
    VecEnvWrapper,
    VecMonitor,
    is_vecenv_wrapped,
)
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn
from tqdm import tqdm

from seqagents.protocol import resolve_protocol

__all__ = [
    "DEFAULT_MAX_EPISODE_STEPS",
    "EpisodeStarts",
    "SB3Adapter",
    "episode_successes",
    "evaluate_policy",
]

logger = logging.getLogger(__name__)

EvalEnv = gym.Env | VectorEnv | VecEnv

DEFAULT_MAX_EPISODE_STEPS = 10_000
"""Steps after which :func:`evaluate_policy` cuts an episode of an env with no time limit."""


def evaluate_policy(
    model: PolicyPredictor,
    env: EvalEnv,
    n_eval_episodes: int = 10,
    deterministic: bool | None = None,
    render: bool = False,
    callback: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
    reward_threshold: float | None = None,
    return_episode_rewards: bool = False,
    warn: bool = True,
    *,
    target_return: float | None = None,
    seed: int | None = None,
    progress_bar: bool = False,
    return_success: bool = False,
    max_episode_steps: int | None = None,
) -> (
    tuple[float, float]
    | tuple[list[float], list[int]]
    | tuple[float, float, float]
    | tuple[list[float], list[int], list[bool]]
):
    """Run ``n_eval_episodes`` episodes and return the mean and std of their returns.

    A drop-in for ``stable_baselines3.common.evaluation.evaluate_policy`` that also feeds the
    reward of every step back to the agent (through ``predict(..., reward=r)`` when its
    ``predict`` takes ``reward``, else through ``model.observe(reward, done)`` when it has one;
    plain SB3 models get neither). Episodes are split over the sub-envs of a vector env as in SB3
    (env ``i`` runs ``(n_eval_episodes + i) // n_envs`` of them, to avoid biasing towards short
    episodes: https://github.com/DLR-RM/stable-baselines3/issues/402).

    Returns are the sums of the rewards the agent received. When a ``Monitor`` (SB3) or
    ``RecordEpisodeStatistics`` wrapper reports ``info["episode"]``, SB3 reports those numbers
    instead; we keep ours (they are what the agent's returns-to-go were computed from) and warn
    if the two disagree, e.g. because a reward-changing wrapper sits between the Monitor and the
    agent. A ``done`` always ends the agent's episode here, including early ones from wrappers
    such as SB3's ``EpisodicLifeEnv``, which SB3 skips when Monitor-wrapped.

    A seqagents agent is checked against the env first (:meth:`SequenceAgent.check_env`: spaces
    and action bounds must match the checkpoint's, a different env id warns), a warning is given
    if ``NormalizeObservation``/``NormalizeReward`` (or SB3's ``VecNormalize``) wraps the env (the
    agent normalizes states itself and conditions on raw rewards), and the agent is left with
    empty contexts and its own target return when the evaluation ends (also on errors), so a
    following loop starts fresh.

    Args:
        model: the agent, or anything with SB3's ``predict(observation, state, episode_start,
            deterministic)`` (an SB3 model or policy). Observations are always passed batched,
            ``(n_envs, *obs_shape)``, also for a single ``gymnasium.Env``.
        env: a ``gymnasium.Env``, a ``gymnasium.vector.VectorEnv`` (autoreset mode read from
            ``env.metadata["autoreset_mode"]``) or an SB3 ``VecEnv``.
        n_eval_episodes: number of episodes to run, in total over all sub-envs.
        deterministic: greedy (True) or sampled (False) actions; None (default) follows a
            seqagents agent's checkpoint protocol (``agent.protocol``: sampled on Atari, where
            greedy play never presses FIRE), and is greedy for other models, as in SB3.
        render: call ``env.render()`` after each step.
        callback: called as ``callback(locals(), globals())`` after each step, once per sub-env
            still counting episodes, as SB3 does; ``locals()`` holds ``i``, ``reward``, ``done``
            and ``info`` of that sub-env (https://github.com/DLR-RM/stable-baselines3/issues/1912).
        reward_threshold: raise ``AssertionError`` unless the mean return exceeds it (like SB3).
        return_episode_rewards: return ``(episode_returns, episode_lengths)`` instead.
        warn: warn when a ``Monitor``'s episode statistics disagree with the counted ones.
        target_return: if given, the episodes run with this target return
            (``model.reset(target_return=...)``, DT and return-conditioned LEAP); a seqagents
            agent gets its own target back afterwards, so a later ``save_pretrained`` saves the
            checkpoint's default, not ``target_return``.
        seed: seed of the first reset (``env.reset(seed=seed)``; sub-env ``i`` of a vector env
            gets ``seed + i``) and of a seqagents agent's random streams (``agent.seed(seed)``:
            sampled actions, TT/LEAP planning noise), so the same seed gives the same episodes,
            also with ``deterministic=False``. The streams run on from one episode to the next:
            the episodes are different samples.
        progress_bar: show a tqdm bar over episodes (on stderr).
        return_success: also return the success rate (a third value; SB3's return values are
            unchanged without it). An episode succeeds when its return is > 0 (see
            :func:`episode_successes`): the BabyAI/MiniGrid criterion, as those levels pay only
            on success (``1 - 0.9 * steps / max_steps``). Meaningless for envs that pay
            otherwise (MuJoCo, Atari).
        max_episode_steps: end (truncate) each episode of a single ``gymnasium.Env`` after this
            many steps. By default an env with no time limit of its own (no ``TimeLimit``
            wrapper or ``spec.max_episode_steps``, not a MiniGrid/BabyAI or ALE env) is cut at
            :data:`DEFAULT_MAX_EPISODE_STEPS` (10,000) steps, with a warning when that happens,
            so an evaluation always ends. Vector envs cannot be cut per sub-env: give their
            envs a ``TimeLimit`` (a warning says when an episode runs past 10,000 steps).
            None also takes a seqagents agent's protocol cap (``agent.protocol``) first.

    Returns:
        ``(mean_return, std_return)``, or ``(episode_returns, episode_lengths)`` with
        ``return_episode_rewards=True``, in the order the episodes ended. With
        ``return_success=True`` a third value follows: the success rate in [0, 1], or the list
        of per-episode successes (bools) with ``return_episode_rewards=True``.

    Raises:
        AssertionError: the mean return is not above ``reward_threshold``.
        CheckpointError: a seqagents agent's checkpoint does not match the env (spaces, action
            bounds).
        TypeError: ``env`` is not an env, or ``target_return`` is given to a model without
            ``reset``.

    Example:
        With a pretrained agent: ``evaluate_policy(agent, gym.make("HalfCheetah-v5"),
        target_return=6000, seed=0)``. Any object with SB3's ``predict`` works:

        >>> import gymnasium as gym
        >>> class Left:  # stands in for an agent
        ...     def predict(self, observation, state=None, episode_start=None, deterministic=True):
        ...         return np.zeros(len(observation), dtype=np.int64), state
        >>> returns, lengths = evaluate_policy(
        ...     Left(), gym.make("CartPole-v1"), n_eval_episodes=2, seed=0,
        ...     return_episode_rewards=True)
        >>> returns == [float(n) for n in lengths]  # CartPole pays 1 per step
        True

        BabyAI success rate (episodes with a positive return):
        ``mean, std, success_rate = evaluate_policy(agent, make_env("BabyAI-GoToLocalS7N5-v0"),
        n_eval_episodes=100, seed=1_000_000, return_success=True)``.
    """
    episode_rewards, episode_lengths = _run_episodes(
        model,
        env,
        n_eval_episodes,
        deterministic=deterministic,
        seed=seed,
        target_return=target_return,
        render=render,
        callback=callback,
        warn=warn,
        progress_bar=progress_bar,
        max_episode_steps=max_episode_steps,
    )
    mean_reward = float(np.mean(episode_rewards))
    std_reward = float(np.std(episode_rewards))
    if reward_threshold is not None and not mean_reward > reward_threshold:
        raise AssertionError(
            f"Mean reward below threshold: {mean_reward:.2f} < {reward_threshold:.2f}"
        )
    if return_success:
        successes = episode_successes(episode_rewards).tolist()
        if return_episode_rewards:
            return episode_rewards, episode_lengths, successes
        return mean_reward, std_reward, float(np.mean(successes))
    if return_episode_rewards:
        return episode_rewards, episode_lengths
    return mean_reward, std_reward


def episode_successes(episode_returns: Any) -> np.ndarray:
    """Which episodes succeeded, by the BabyAI/MiniGrid criterion: return > 0, ``(n,)`` bool.

    BabyAI and MiniGrid levels pay a reward only when the mission is accomplished
    (``1 - 0.9 * steps / max_steps``), so a positive return means success.

    Example:
        >>> episode_successes([0.0, 0.93, 0.0, 0.55]).tolist()
        [False, True, False, True]
    """
    return np.asarray(episode_returns, dtype=np.float64).reshape(-1) > 0  # (n,)


def _sb3_compatible(env: gym.Env, vocabulary: Any = None) -> gym.Env:
    """``env`` in a form SB3's VecEnvs can hold: a Dict observation with a text ``mission``
    (BabyAI) gets :class:`seqagents.MissionTokens` with ``vocabulary`` (the agent's
    ``mission_vocabulary``); anything else comes back unchanged.

    Raises:
        ValueError: a mission text but no vocabulary to turn it into word ids.
    """
    from seqagents.envs import MissionTokens, _is_text

    space = env.observation_space
    if not (isinstance(space, gym.spaces.Dict) and _is_text(space.spaces.get("mission"))):
        return env
    if vocabulary is None:
        raise ValueError(
            "SB3's VecEnvs cannot hold BabyAI's mission text; wrap the env with "
            "seqagents.MissionTokens(env, agent.mission_vocabulary) (word ids the agents read)"
        )
    return MissionTokens(env, vocabulary)


class SB3Adapter(VecEnvWrapper):
    """A ``VecEnv`` wrapper that reports every step's rewards to a sequence agent.

    SB3's ``evaluate_policy`` (and other SB3-style loops) call ``model.predict(obs, state=...,
    episode_start=..., deterministic=...)`` without the reward a sequence agent needs. This
    wrapper calls ``agent.observe(rewards, dones)`` after each ``step`` and ``agent.reset()`` on
    ``reset``, and passes ``predict`` through, so the wrapper serves as both model and env::

        from stable_baselines3.common.evaluation import evaluate_policy as sb3_evaluate_policy
        from stable_baselines3.common.vec_env import DummyVecEnv

        venv = DummyVecEnv([lambda: gym.make("HalfCheetah-v5")] * 2)
        adapter = SB3Adapter(agent, venv)
        mean, std = sb3_evaluate_policy(adapter, adapter, n_eval_episodes=4)
        # passing the agent itself as the model works too: sb3_evaluate_policy(agent, adapter)

    Prefer :func:`seqagents.evaluate_policy` where you can: SB3's loop keeps stepping sub-envs
    that have finished their share of episodes and reports those steps' rewards through this
    wrapper too (harmless: it marks them as episode starts, which clears their context).

    BabyAI: SB3's VecEnvs cannot hold the mission text; build them from
    ``MissionTokens(agent.make_env(), agent.mission_vocabulary)`` (word ids, which the agents
    read too). A single BabyAI ``gymnasium.Env`` passed here gets that wrapper itself.

    Args:
        agent: an agent with ``predict`` and ``observe(reward, done)``.
        venv: an SB3 ``VecEnv``, or a ``gymnasium.Env`` (wrapped in a ``DummyVecEnv``).
    """

    def __init__(self, agent: Any, venv: VecEnv | gym.Env) -> None:
        if not callable(getattr(agent, "observe", None)):
            raise TypeError(
                f"{type(agent).__name__} has no observe(reward, done); SB3Adapter is for "
                "sequence agents that need rewards. Plain SB3 models need no adapter."
            )
        if isinstance(venv, gym.Env):
            single_env = _sb3_compatible(venv, getattr(agent, "mission_vocabulary", None))
            venv = DummyVecEnv([lambda: single_env])
        super().__init__(venv)
        self.agent = agent

    def reset(self) -> VecEnvObs:
        observations = self.venv.reset()
        reset = getattr(self.agent, "reset", None)
        if callable(reset):
            reset()  # forget all contexts, keep the target return
        return observations

    def step_wait(self) -> VecEnvStepReturn:
        observations, rewards, dones, infos = self.venv.step_wait()
        self.agent.observe(rewards, dones)
        return observations, rewards, dones, infos

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """``agent.predict`` (SB3's ``PolicyPredictor`` signature; the default ``deterministic``
        is SB3's, and ``evaluate_policy`` passes it explicitly)."""
        return self.agent.predict(
            observation, state=state, episode_start=episode_start, deterministic=deterministic
        )


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


# ---------------------------------------------------------------------------- the episode loop
def _run_episodes(
    model: PolicyPredictor,
    env: EvalEnv,
    n_episodes: int,
    *,
    deterministic: bool | None = None,
    seed: int | None = None,
    target_return: float | None = None,
    render: bool = False,
    callback: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
    warn: bool = True,
    progress_bar: bool = False,
    frame_hook: Callable[[], bool] | None = None,
    max_episode_steps: int | None = None,
) -> tuple[list[float], list[int]]:
    """The loop behind :func:`evaluate_policy` and :func:`seqagents.video.record_video`.

    ``frame_hook()`` is called after every reset and every step (for video frames); it returns
    True to stop early. A seqagents agent is checked against ``env`` first and is left with
    empty contexts and its own target return at the end (see :func:`evaluate_policy`).
    """
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, int | np.integer):
        raise TypeError(f"n_eval_episodes must be an int, got {n_episodes!r}")
    if n_episodes < 1:
        raise ValueError(f"n_eval_episodes must be >= 1, got {n_episodes}")
    if max_episode_steps is not None and (
        isinstance(max_episode_steps, bool)
        or not isinstance(max_episode_steps, int | np.integer)
        or max_episode_steps < 1
    ):
        raise ValueError(f"max_episode_steps must be an int >= 1, got {max_episode_steps!r}")
    deterministic, max_episode_steps = resolve_protocol(model, deterministic, max_episode_steps)
    agent = _sequence_agent(model)
    if agent is not None:
        agent.check_env(env)
        _warn_on_normalizing_wrappers(env)
        if seed is not None:
            agent.seed(seed)
    stepper = _make_stepper(env, max_episode_steps)
    try:
        return _episode_loop(
            model,
            env,
            stepper,
            n_episodes,
            deterministic=deterministic,
            seed=seed,
            target_return=target_return,
            render=render,
            callback=callback,
            warn=warn,
            progress_bar=progress_bar,
            frame_hook=frame_hook,
        )
    finally:
        if agent is not None:  # leave the agent clean: no half episode, its saved target
            agent.reset()


def _episode_loop(
    model: PolicyPredictor,
    env: EvalEnv,
    stepper: _Stepper,
    n_episodes: int,
    *,
    deterministic: bool,
    seed: int | None,
    target_return: float | None,
    render: bool,
    callback: Callable[[dict[str, Any], dict[str, Any]], None] | None,
    warn: bool,
    progress_bar: bool,
    frame_hook: Callable[[], bool] | None,
) -> tuple[list[float], list[int]]:
    # Local variable names follow SB3's loop because ``callback`` sees them.
    n_envs = stepper.num_envs
    feeds_reward = _predict_takes_reward(model)
    observe = None if feeds_reward else getattr(model, "observe", None)
    _reset_model(model, target_return, sequence_agent=feeds_reward or callable(observe))

    episode_rewards: list[float] = []
    episode_lengths: list[int] = []
    episode_counts = np.zeros(n_envs, dtype=np.int64)
    # Divides episodes among the sub-envs as evenly as possible (SB3 issue 402).
    episode_count_targets = np.array([(n_episodes + i) // n_envs for i in range(n_envs)])
    current_rewards = np.zeros(n_envs, dtype=np.float64)
    current_lengths = np.zeros(n_envs, dtype=np.int64)
    episode_starts = np.ones(n_envs, dtype=bool)  # True where the next predict starts an episode
    # r_{t-1} per env for the next predict. Zeros (ignored: every row starts) rather than None
    # at the first call, so a reward an agent kept from an earlier loop is never used.
    fed_rewards = np.zeros(n_envs, dtype=np.float64)
    states = None
    warned = warned_long = False

    observations = stepper.reset(seed)
    stop = frame_hook is not None and frame_hook()
    shown = time.monotonic()  # the bar's step/return postfix: progress inside long episodes
    with tqdm(total=n_episodes, disable=not progress_bar, desc="evaluate", unit="ep") as bar:
        while not stop and (episode_counts < episode_count_targets).any():
            observations, was_reset = stepper.reset_finished(observations)
            if was_reset and frame_hook is not None and frame_hook():
                break
            active = episode_counts < episode_count_targets
            # Rows of envs past their share always start an episode: their context is dropped.
            starts = episode_starts | ~active
            extra = {"reward": fed_rewards} if feeds_reward else {}
            actions, states = model.predict(
                observations,  # type: ignore[arg-type]
                state=states,
                episode_start=starts,
                deterministic=deterministic,
                **extra,
            )
            observations, rewards, dones, skipped = stepper.step(actions)
            # ``skipped``: NEXT_STEP autoreset steps (action ignored, reward 0, not a real step).
            counted = active & ~skipped
            current_rewards[counted] += rewards[counted]
            current_lengths[counted] += 1
            if (
                stepper.unbounded
                and not warned_long
                and (current_lengths > DEFAULT_MAX_EPISODE_STEPS).any()
            ):
                warned_long = True  # vector envs only: a single env is cut before this
                warnings.warn(
                    f"an episode has run {DEFAULT_MAX_EPISODE_STEPS} steps without ending: the "
                    "vector env's sub-envs may have no time limit, and evaluate_policy cannot cut "
                    "them; wrap each in gymnasium.wrappers.TimeLimit",
                    UserWarning,
                    stacklevel=4,
                )
            for i in np.flatnonzero(counted):
                i = int(i)
                reward, done = float(rewards[i]), bool(dones[i])
                episode_starts[i] = done
                info = stepper.info(i, done) if callback is not None or (done and warn) else {}
                if callback is not None:
                    callback(locals(), globals())
                if done:
                    episode_rewards.append(float(current_rewards[i]))
                    episode_lengths.append(int(current_lengths[i]))
                    episode_counts[i] += 1
                    bar.update(1)
                    if warn and not warned:
                        warned = _warn_on_monitor_mismatch(
                            info, episode_rewards[-1], episode_lengths[-1], stepper
                        )
                    current_rewards[i] = 0.0
                    current_lengths[i] = 0
            fed_rewards = np.where(counted, rewards, 0.0)
            if progress_bar and time.monotonic() - shown > 1.0:
                shown = time.monotonic()
                running = current_lengths[active]
                bar.set_postfix_str(
                    f"step {int(running.max()) if running.size else 0}, return "
                    f"{float(current_rewards[active].mean()) if running.size else 0.0:.1f}"
                )
            if observe is not None:
                observe(fed_rewards, episode_starts | ~(episode_counts < episode_count_targets))
            if render:
                env.render()
            if frame_hook is not None and frame_hook():
                break
    return episode_rewards, episode_lengths


def _predict_takes_reward(model: Any) -> bool:
    try:
        parameters = inspect.signature(model.predict).parameters
    except (TypeError, ValueError):  # builtins, C extensions
        return False
    return "reward" in parameters


def _reset_model(model: Any, target_return: float | None, *, sequence_agent: bool) -> None:
    reset = getattr(model, "reset", None)
    if target_return is not None:
        if not callable(reset):
            raise TypeError(
                f"target_return={target_return} needs a model with reset(target_return=...); "
                f"{type(model).__name__} has none"
            )
        from seqagents.agents.base import check_target_return

        reset(target_return=check_target_return(target_return))
    elif sequence_agent and callable(reset):
        reset()  # start from empty contexts and the saved target return


def _warn_on_monitor_mismatch(
    info: dict[str, Any], episode_return: float, episode_length: int, stepper: _Stepper
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


# ----------------------------------------------------------------- one interface over env kinds
class _Stepper:
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


class _SB3Stepper(_Stepper):
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


class _GymVectorStepper(_Stepper):
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
        info = _unbatch_info(self._infos, i)
        if self.mode == AutoresetMode.SAME_STEP and done:
            # The top-level info is the reset's; the done step's own info is in final_info.
            info = {**info, **info.pop("final_info", {})}
        return info


def _make_stepper(env: EvalEnv, max_episode_steps: int | None = None) -> _Stepper:
    if max_episode_steps is not None and not isinstance(env, gym.Env):
        raise ValueError(
            "max_episode_steps cuts the episodes of a single gymnasium.Env; for a vector env "
            "wrap each sub-env in gymnasium.wrappers.TimeLimit instead"
        )
    if isinstance(env, VecEnv | VectorEnv):
        stepper: _Stepper = _SB3Stepper(env) if isinstance(env, VecEnv) else _GymVectorStepper(env)
        sub_envs = _sub_envs(env)
        stepper.unbounded = bool(sub_envs) and not _has_time_limit(sub_envs[0])
        return stepper
    if isinstance(env, gym.Env):
        inner: gym.Env = env
        if max_episode_steps is not None or not _has_time_limit(env):
            inner = _EpisodeBound(env, max_episode_steps)
        # A one-env vector env without autoreset: batches observations (also dict ones) and
        # leaves the user's env open; reset_finished() resets it between episodes.
        stepper = _GymVectorStepper(
            SyncVectorEnv([lambda: inner], autoreset_mode=AutoresetMode.DISABLED)
        )
        stepper.statistics_note = ""  # no vector wrapper can sit around our internal one
        return stepper
    raise TypeError(
        f"env must be a gymnasium.Env, gymnasium.vector.VectorEnv or SB3 VecEnv, "
        f"got {type(env).__name__}"
    )


def _unbatch_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """Sub-env ``i``'s info from a gymnasium vector info dict (``key``/``_key`` mask pairs)."""
    info: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_") and key[1:] in infos:
            continue
        mask = infos.get(f"_{key}")
        if mask is not None and not mask[i]:
            continue
        if isinstance(value, dict):
            info[key] = _unbatch_info(value, i)
        else:
            try:
                info[key] = value[i]
            except (TypeError, IndexError, KeyError):
                info[key] = value
    return info


# ------------------------------------------------------------------ env checks for seqagents
def _sequence_agent(model: Any) -> Any:
    """``model`` if it is a seqagents agent (checked against the env, reset afterwards)."""
    from seqagents.agents.base import SequenceAgent

    return model if isinstance(model, SequenceAgent) else None


def _sub_envs(env: Any) -> list[Any]:
    """The sub-envs of a vector env when they live in this process (Sync/Dummy), else []."""
    attrs = vars(env) if hasattr(env, "__dict__") else {}
    if attrs.get("envs") is not None:
        return list(attrs["envs"])
    inner = attrs.get("env") if attrs.get("env") is not None else attrs.get("venv")
    return _sub_envs(inner) if inner is not None else []


def _wrapper_chain(env: Any) -> list[Any]:
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


def _has_time_limit(env: gym.Env) -> bool:
    """Whether ``env`` ends its episodes by itself: a ``TimeLimit`` wrapper, a spec with
    ``max_episode_steps``, MiniGrid/BabyAI's ``max_steps`` or ALE's frame limit."""
    spec = getattr(env, "spec", None)
    if spec is not None and spec.max_episode_steps:
        return True
    if any(isinstance(e, gym.wrappers.TimeLimit) for e in _wrapper_chain(env)):
        return True
    unwrapped = getattr(env, "unwrapped", env)
    return bool(getattr(unwrapped, "max_steps", None)) or type(unwrapped).__module__.startswith(
        "ale_py"
    )


class _EpisodeBound(gym.Wrapper):
    """Truncates episodes after ``max_steps`` steps (default :data:`DEFAULT_MAX_EPISODE_STEPS`,
    with a warning, for envs without a time limit)."""

    def __init__(self, env: gym.Env, max_steps: int | None) -> None:
        super().__init__(env)
        self.explicit = max_steps is not None
        self.max_steps = int(max_steps or DEFAULT_MAX_EPISODE_STEPS)
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


def _warn_on_normalizing_wrappers(env: Any) -> None:
    """Warn if observations or rewards reach a seqagents agent normalized by a wrapper."""
    from gymnasium.wrappers import NormalizeObservation, NormalizeReward
    from gymnasium.wrappers import vector as vector_wrappers
    from stable_baselines3.common.vec_env import VecNormalize

    obs_types = (NormalizeObservation, vector_wrappers.NormalizeObservation)
    reward_types = (NormalizeReward, vector_wrappers.NormalizeReward)
    found: list[str] = []
    for wrapper in _wrapper_chain(env):
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
