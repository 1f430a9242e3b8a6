"""Recorded rollouts: what the figures of :mod:`seqagents.analysis.figures` are computed from.

:func:`run_rollouts` plays episodes of one agent in one env (single env, the agent's own
time-index convention: ``predict(s_t, reward=r_{t-1})``) and keeps, per step, the observation,
action, reward, the agent's return-to-go (``agent.returns_to_go``, the value it conditioned
``a_t`` on), the wall time of ``predict``, the attention weights (:func:`capture_attention`,
env row 0) and the planner's output (TT: the best beam's planned trajectory; LEAP: the energy
of the plan after each refinement iteration). :func:`sweep` replays episodes while one setting
(target return, beam width, refinement iterations) takes several values.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seqagents.analysis.capture import capture_attention

__all__ = ["Episode", "run_rollouts", "sweep", "SWEEP_SETTINGS"]

SWEEP_SETTINGS = ("target_return", "beam_width", "n_iterations")


@dataclass
class Episode:
    """One recorded episode of a single env (``T`` steps)."""

    algorithm: str  # "dt", "tt" or "leap"
    config: Any  # the network's config (token layout)
    observations: list[Any] = field(default_factory=list)  # T + 1: s_0 .. s_T (s_T: final)
    actions: list[np.ndarray] = field(default_factory=list)  # T actions a_t
    rewards: list[float] = field(default_factory=list)  # T rewards r_t
    returns_to_go: list[float] = field(default_factory=list)  # T: R_t used for a_t (DT, LEAP-R)
    step_time_s: list[float] = field(default_factory=list)  # T: wall time of predict
    # attention[t][c][l]: (n_head, T_q, S) weights of env row 0, network call c, layer l
    attention: list[list[list[np.ndarray]]] = field(default_factory=list)
    plans: list[np.ndarray] = field(default_factory=list)  # TT: T x (horizon, transition_dim)
    energies: list[np.ndarray] = field(default_factory=list)  # LEAP: one (iterations,) per plan
    setting: float | None = None  # the swept setting's value (sweep only)
    time_limit: int | None = None  # the env's max_episode_steps (None: unknown)
    _plan_seen: Any = field(default=None, repr=False)  # the LEAP plan whose energy is stored

    @property
    def episode_return(self) -> float:
        return float(np.sum(self.rewards))

    @property
    def length(self) -> int:
        return len(self.rewards)

    def return_after(self) -> np.ndarray:
        """``G_t = r_t + r_{t+1} + ...``: the return actually collected from step ``t`` on."""
        return np.cumsum(np.asarray(self.rewards, dtype=np.float64)[::-1])[::-1].copy()


def run_rollouts(
    agent: Any,
    env: Any,
    n_episodes: int = 1,
    *,
    seed: int = 0,
    target_return: float | None = None,
    max_steps: int | None = None,
    capture: bool = True,
    attention_steps: int | None = 1000,
    progress_bar: bool = False,
    desc: str = "rollouts",
) -> list[Episode]:
    """Play ``n_episodes`` episodes (reset seeds ``seed, seed + 1, ...``) and record them.

    Args:
        agent: a DT, TT or LEAP agent.
        env: a single gymnasium env matching the agent.
        n_episodes: episodes to record.
        seed: reset seed of the first episode.
        target_return: condition DT / return-conditioned LEAP on it (default: the agent's).
        max_steps: cut every episode after this many steps (None: until it ends).
        capture: record attention (TT: the forward over the real context of each step; DT and
            LEAP: every network call).
        attention_steps: keep the attention of at most this many steps per episode (None: all;
            a 6-layer, 8-head DT over 90 tokens holds 1.5 MB a step).
        progress_bar: a tqdm bar over the episodes.
        desc: the bar's label.

    Returns:
        The recorded :class:`Episode` s.

    Example:
        >>> import gymnasium as gym
        >>> from seqagents import DecisionTransformerAgent
        >>> env = gym.make("Pendulum-v1")
        >>> agent = DecisionTransformerAgent.create(env.observation_space, env.action_space,
        ...     n_layer=1, hidden_size=16, context_len=4, target_return=-100.0, return_scale=100.0)
        >>> [episode] = run_rollouts(agent, env, max_steps=5)
        >>> episode.length, len(episode.attention), episode.returns_to_go[0]
        (5, 5, -100.0)
    """
    from tqdm import tqdm

    from seqagents.analysis.capture import _algorithm

    algorithm = _algorithm(agent.network)
    own_planner = getattr(agent, "planner", None)
    if algorithm == "leap":  # energies per refinement iteration (figures)
        agent.planner = own_planner.replace(track_energy=True)
    episodes = []
    try:
        for i in tqdm(range(n_episodes), desc=desc, unit="ep", disable=not progress_bar):
            episodes.append(
                _episode(
                    agent, env, algorithm, seed + i, target_return, max_steps, capture,
                    attention_steps,
                )
            )  # fmt: skip
    finally:
        if algorithm == "leap":
            agent.planner = own_planner
        agent.reset()  # the target of these episodes was theirs: the saved default is back
    return episodes


def _episode(
    agent: Any,
    env: Any,
    algorithm: str,
    seed: int,
    target_return: float | None,
    max_steps: int | None,
    capture: bool,
    attention_steps: int | None,
) -> Episode:
    agent.reset(target_return=target_return)
    spec = getattr(env, "spec", None)
    episode = Episode(algorithm, agent.network.config)
    episode.time_limit = getattr(spec, "max_episode_steps", None)
    obs, _ = env.reset(seed=seed)
    episode.observations.append(obs)
    reward: float | None = None
    calls = "first" if algorithm == "tt" else "all"
    done = False
    with capture_attention(agent, calls=calls) if capture else contextlib.nullcontext() as recorder:
        while not done and (max_steps is None or episode.length < max_steps):
            start = time.perf_counter()
            action, _ = agent.predict(obs, reward=reward)
            episode.step_time_s.append(time.perf_counter() - start)
            rtg = getattr(agent, "returns_to_go", None)
            if rtg is not None:
                episode.returns_to_go.append(float(np.asarray(rtg).reshape(-1)[0]))
            if recorder is not None and (
                attention_steps is None or episode.length < attention_steps
            ):
                step = recorder.steps - 1
                episode.attention.append(
                    [[r.weights[0].numpy() for r in call] for call in recorder.calls(step)]
                )
            if recorder is not None:
                recorder.records.clear()  # keep only what the episode stores
            _record_plan(agent, algorithm, episode)
            obs, reward, terminated, truncated, _ = env.step(action)
            episode.actions.append(np.asarray(action))
            episode.rewards.append(float(reward))
            episode.observations.append(obs)
            done = terminated or truncated
    return episode


def _record_plan(agent: Any, algorithm: str, episode: Episode) -> None:
    plan = getattr(agent, "last_plan", None)
    if plan is None:
        return
    if algorithm == "tt":
        trajectory = plan.trajectory.cpu().numpy()  # ([E,] horizon, transition_dim)
        episode.plans.append(trajectory.reshape(-1, *trajectory.shape[-2:])[0])
    elif algorithm == "leap" and plan.energy is not None and 0 in agent.last_plan_envs:
        if plan is not episode._plan_seen:  # a new plan (not the one still being executed)
            row = list(agent.last_plan_envs).index(0)
            episode.energies.append(np.asarray(plan.energy)[row])  # (iterations,)
            episode._plan_seen = plan


def sweep(
    agent: Any,
    env: Any,
    setting: str,
    values: Iterable[float],
    n_episodes: int = 1,
    *,
    seed: int = 0,
    max_steps: int | None = None,
    progress_bar: bool = False,
) -> dict[float, list[Episode]]:
    """Episodes (attention not captured) for each value of one setting.

    Args:
        agent: the agent; its setting is restored afterwards.
        env: a single env matching it.
        setting: ``"target_return"`` (DT, return-conditioned LEAP), ``"beam_width"`` (TT) or
            ``"n_iterations"`` (LEAP refinement iterations).
        values: the values to try.
        n_episodes: episodes per value.
        seed: first reset seed (the same seeds for every value).
        max_steps: cut episodes after this many steps.
        progress_bar: a tqdm bar per value.

    Returns:
        ``{value: episodes}`` in the order of ``values``.

    Example:
        >>> import gymnasium as gym
        >>> from seqagents import DecisionTransformerAgent
        >>> env = gym.make("Pendulum-v1")
        >>> agent = DecisionTransformerAgent.create(env.observation_space, env.action_space,
        ...                                         n_layer=1, hidden_size=16, context_len=4)
        >>> result = sweep(agent, env, "target_return", [-100.0, 0.0], max_steps=3)
        >>> list(result), result[0.0][0].length
        ([-100.0, 0.0], 3)
    """
    if setting not in SWEEP_SETTINGS:
        raise ValueError(f"setting must be one of {SWEEP_SETTINGS}, got {setting!r}")
    own_planner = getattr(agent, "planner", None)
    if setting != "target_return" and not hasattr(own_planner, setting):
        raise ValueError(f"{type(agent).__name__} has no planner setting {setting!r}")
    own = getattr(own_planner, setting) if setting != "target_return" else None
    results: dict[float, list[Episode]] = {}
    try:
        for value in values:
            target = None
            if setting == "target_return":
                target = float(value)
            else:
                typed = type(own)(value) if own is not None else value
                agent.planner = own_planner.replace(**{setting: typed})
            episodes = run_rollouts(
                agent,
                env,
                n_episodes,
                seed=seed,
                target_return=target,
                max_steps=max_steps,
                capture=False,
                progress_bar=progress_bar,
                desc=f"{setting}={value:g}",
            )
            for episode in episodes:
                episode.setting = float(value)
            results[value] = episodes
    finally:
        if setting != "target_return":
            agent.planner = own_planner
    return results
