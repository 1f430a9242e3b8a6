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
rewards are counted or fed. How each env kind is stepped lives in :mod:`seqagents.stepping`.
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
from stable_baselines3.common.type_aliases import PolicyPredictor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn
from tqdm import tqdm

from seqagents.protocol import resolve_protocol
from seqagents.stepping import (
    EpisodeStarts,
    EvalEnv,
    Stepper,
    make_stepper,
    warn_on_monitor_mismatch,
    warn_on_normalizing_wrappers,
)

__all__ = [
    "DEFAULT_MAX_EPISODE_STEPS",
    "EpisodeStarts",
    "SB3Adapter",
    "episode_successes",
    "evaluate_policy",
]

logger = logging.getLogger(__name__)

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
    mean_return = float(np.mean(episode_rewards))
    std_return = float(np.std(episode_rewards))
    if reward_threshold is not None and not mean_return > reward_threshold:
        raise AssertionError(  # SB3's message
            f"Mean reward below threshold: {mean_return:.2f} < {reward_threshold:.2f}"
        )
    if return_success:
        successes = episode_successes(episode_rewards).tolist()
        if return_episode_rewards:
            return episode_rewards, episode_lengths, successes
        return mean_return, std_return, float(np.mean(successes))
    if return_episode_rewards:
        return episode_rewards, episode_lengths
    return mean_return, std_return


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
        warn_on_normalizing_wrappers(env)
        if seed is not None:
            agent.seed(seed)
    stepper = make_stepper(env, max_episode_steps, DEFAULT_MAX_EPISODE_STEPS)
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
    stepper: Stepper,
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
                        warned = warn_on_monitor_mismatch(
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


def _sequence_agent(model: Any) -> Any:
    """``model`` if it is a seqagents agent (checked against the env, reset afterwards)."""
    from seqagents.agents.base import SequenceAgent

    return model if isinstance(model, SequenceAgent) else None
