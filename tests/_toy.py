"""A toy env whose every reward is known, and fake agents that record what they are fed.

ToyEnv's observation names the step exactly: ``[uid, episode, t]``; the reward of step t is
``offset + t`` with ``offset`` in [1, 99] drawn at reset (so seeds matter and rewards are never 0);
episode lengths are drawn in [1, max_length], odd lengths terminate and even ones truncate. Each
env logs the rewards of its completed episodes, so tests can check what the agent received.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class ToyEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, uid: int = 0, max_length: int = 4, render_mode: str | None = None) -> None:
        self.uid, self.max_length, self.render_mode = uid, max_length, render_mode
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.episode = -1  # index of the current episode (number of resets - 1)
        self.log: list[list[float]] = []  # rewards of each completed episode, in order
        self.length, self.offset, self.t = 0, 0.0, 0
        self._rewards: list[float] = []

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.episode += 1
        self.length = int(self.np_random.integers(1, self.max_length + 1))
        self.offset = float(self.np_random.integers(1, 100))
        self.t, self._rewards = 0, []
        return self._obs(), {"reset_info": 1}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        assert self.t < self.length, "stepped an episode that has ended"
        reward = self.offset + self.t
        self._rewards.append(reward)
        self.t += 1
        done = self.t >= self.length
        terminated = done and self.length % 2 == 1
        if done:
            self.log.append(list(self._rewards))
        return self._obs(), reward, terminated, done and not terminated, {"step_info": self.t}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return np.full((32, 32, 3), min(255, 30 * self.t + 30), dtype=np.uint8)

    def _obs(self) -> np.ndarray:
        return np.array([self.uid, self.episode, self.t], dtype=np.float32)


class _Recorder:
    """Records, per predict call, the observations, episode starts and rewards it was fed."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
        self.reset_calls: list[float | None] = []

    def reset(self, target_return: float | None = None) -> None:
        self.reset_calls.append(target_return)

    def _act(self, observation: Any, episode_start: Any, reward: Any) -> tuple[np.ndarray, None]:
        obs = np.array(observation, dtype=np.float64)
        batched = obs.ndim == 2
        obs = obs.reshape(-1, 3)
        n = len(obs)
        starts = np.ones(n, bool) if episode_start is None else np.array(episode_start, bool)
        rewards = None if reward is None else np.broadcast_to(np.asarray(reward, float), (n,))
        self.calls.append(
            (obs, starts.reshape(n).copy(), None if rewards is None else rewards.copy())
        )
        actions = (0.1 * obs[:, 2:3]).astype(np.float32)  # (n, 1)
        return (actions if batched else actions[0]), None


class RewardAgent(_Recorder):
    """Takes ``reward=`` in ``predict``."""

    def predict(
        self, observation, state=None, episode_start=None, deterministic=True, *, reward=None
    ):
        return self._act(observation, episode_start, reward)


class ObserveAgent(_Recorder):
    """Gets rewards through ``observe(reward, done)``; ``predict`` has SB3's signature."""

    def __init__(self) -> None:
        super().__init__()
        self._reward: np.ndarray | None = None
        self._done: np.ndarray | None = None

    def observe(self, reward, done) -> None:
        self._reward = np.array(reward, dtype=np.float64).reshape(-1)
        self._done = np.array(done, dtype=bool).reshape(-1)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        starts = episode_start
        if self._done is not None:
            base = np.ones(len(self._done), bool) if starts is None else np.array(starts, bool)
            starts = base | self._done
        action = self._act(observation, starts, self._reward)
        self._reward = self._done = None
        return action


def segments(agent: _Recorder, i: int) -> list[list[int]]:
    """Indices of the predict calls forming each context the agent kept for env row ``i``."""
    result: list[list[int]] = []
    for k, (_, starts, _) in enumerate(agent.calls):
        if starts[i] or not result:
            assert starts[i], "the first call must start an episode"
            result.append([k])
        else:
            result[-1].append(k)
    return result


def check_feeding(agent: _Recorder, envs: list[ToyEnv], targets: list[int]) -> None:
    """Assert the agent saw exactly the counted episodes (the first ``targets[i]`` of env i),
    every step of them with the previous step's reward, and no step of any other episode
    except single-call contexts that the next call discards."""
    for i, (env, target) in enumerate(zip(envs, targets, strict=True)):
        kept: dict[int, int] = {}  # episode -> number of full contexts of it
        for seg in segments(agent, i):
            ids = [tuple(agent.calls[k][0][i].astype(int)) for k in seg]
            uid, episode, _ = ids[0]
            assert uid == env.uid
            counted = episode < target and episode < len(env.log)
            full = counted and ids == [(uid, episode, t) for t in range(len(env.log[episode]))]
            if not full:
                assert len(seg) == 1, f"env {i} kept a context of uncounted steps {ids}"
                continue
            kept[episode] = kept.get(episode, 0) + 1
            rewards = env.log[episode]
            fed = [float(agent.calls[k][2][i]) for k in seg[1:]]
            assert fed == rewards[:-1], f"env {i} episode {episode}: fed {fed}, got {rewards}"
            after = seg[-1] + 1  # the next call starts an episode: its reward is 0 or r_last
            if after < len(agent.calls):
                assert float(agent.calls[after][2][i]) in (0.0, rewards[-1])
        assert kept == dict.fromkeys(range(target), 1), f"env {i}: contexts {kept}"
        # Any other call of this row fed no reward at all.
        for seg in segments(agent, i):
            k = seg[0]
            if k > 0 and agent.calls[k][2] is not None and float(agent.calls[k][2][i]) != 0:
                prev = [s for s in segments(agent, i) if s[-1] == k - 1][0]
                episode = int(agent.calls[prev[0]][0][i][1])
                assert episode < target and float(agent.calls[k][2][i]) == env.log[episode][-1]


def expected_episodes(envs: list[ToyEnv], targets: list[int]) -> list[tuple[float, int]]:
    """Sorted (return, length) of the first ``targets[i]`` episodes of each env."""
    return sorted(
        (float(sum(env.log[e])), len(env.log[e]))
        for env, target in zip(envs, targets, strict=True)
        for e in range(target)
    )
