"""Input checks of the agents: the checkpoint against an env, observations, rewards and
per-env arguments of ``predict``, and the weights on load.

Each check raises an error that names the fix; none changes what a valid input means.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from seqagents.envs import describe_space, spaces_match
from seqagents.errors import CheckpointError
from seqagents.observations import PRIVILEGED_KEYS, MissionVocabulary, babyai_arrays

__all__ = [
    "ObservationCheck",
    "check_env_spaces",
    "check_finite_weights",
    "check_gym_habits",
    "env_id_of",
    "per_env",
    "rewards_batch",
]


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


def check_env_spaces(
    env: gym.Env | Any,
    observation_space: gym.Space,
    action_space: gym.Space,
    trained_on: str | None,
) -> str | None:
    """Check ``env`` against a checkpoint's spaces (see ``SequenceAgent.check_env``); returns
    the warning to give when the env's gymnasium id differs from ``trained_on``, else None."""
    obs_space = getattr(env, "single_observation_space", None) or env.observation_space
    act_space = getattr(env, "single_action_space", None) or env.action_space
    for what, ours, theirs in (
        ("observation", observation_space, obs_space),
        ("action", action_space, act_space),
    ):
        if not spaces_match(ours, theirs):
            raise CheckpointError(
                f"{what} space mismatch: the checkpoint expects {describe_space(ours)} "
                f"(trained on {trained_on}), the env has {describe_space(theirs)}"
            )
    ours, theirs = action_space, act_space
    if isinstance(ours, gym.spaces.Box) and isinstance(theirs, gym.spaces.Box):
        low, high = np.asarray(ours.low, np.float64), np.asarray(ours.high, np.float64)
        env_low, env_high = (np.asarray(b, np.float64) for b in (theirs.low, theirs.high))
        if not (np.allclose(low, env_low) and np.allclose(high, env_high)):
            raise CheckpointError(
                f"action bounds mismatch: the checkpoint acts in [{_bounds(low)}, "
                f"{_bounds(high)}] (trained on {trained_on}), the env accepts "
                f"[{_bounds(env_low)}, {_bounds(env_high)}]; use the env the agent was "
                "trained on (agent.make_env()) or rescale its actions with a wrapper"
            )
    env_id = env_id_of(env)
    if env_id and trained_on and env_id != trained_on:
        return (
            f"the env is {env_id} but this checkpoint was trained on {trained_on}; "
            "their spaces match, so it runs, but its returns (and normalized scores) say "
            f"nothing about the agent: evaluate on {trained_on} (agent.make_env())"
        )
    return None


class ObservationCheck:
    """Turns what ``predict`` receives into a batch on the device, or raises saying why not."""

    def __init__(
        self,
        space: gym.Space,
        vocabulary: MissionVocabulary | None,
        device: torch.device,
    ) -> None:
        self.space, self.vocabulary, self.device = space, vocabulary, device
        self._integer_bounds: tuple[int, int] | None = None  # integer Box spaces: (low, high)

    def __call__(self, observation: Any) -> tuple[torch.Tensor | dict[str, torch.Tensor], bool]:
        """The observation as a batch on the device, and whether it was one env's.

        A Box observation becomes a ``(n, *shape)`` tensor (uint8 kept, anything else float32);
        a BabyAI Dict observation becomes :func:`seqagents.observations.babyai_arrays`' dict.
        """
        space = self.space
        if isinstance(space, gym.spaces.Dict):
            return self._dict(observation)
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
            obs = self._integer(obs)
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

    def _integer(self, obs: np.ndarray) -> np.ndarray:
        """An observation of an integer Box space (Atari frames: uint8 0-255) must hold
        integers within the space's bounds: frames scaled to [0, 1] would be divided by 255
        again by the encoder, and out-of-range values read as other pixels."""
        space = self.space
        if self._integer_bounds is None:  # computed once: an Atari stack has 28,224 bounds
            self._integer_bounds = (int(np.min(space.low)), int(np.max(space.high)))
        low, high = self._integer_bounds
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

    def _dict(self, observation: Any) -> tuple[dict[str, torch.Tensor], bool]:
        space = self.space
        if self.vocabulary is None:
            raise CheckpointError(
                "this checkpoint has a Dict observation space but no mission vocabulary "
                "(preprocessing.mission_vocabulary); only BabyAI Dict observations are supported"
            )
        arrays = babyai_arrays(observation, self.vocabulary)  # ValueError on bad input
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


def rewards_batch(
    reward: Any, starts: np.ndarray, n: int, *, required: bool, agent: str
) -> np.ndarray:
    """``(n,)`` float32 rewards r_{t-1} for ``predict`` (0 where an episode starts); an error
    when an agent that needs them (``required``) gets none after the first step."""
    if reward is None:
        if required and not starts.all():
            raise ValueError(
                f"{agent}.predict needs the reward received after the previous "
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


def check_gym_habits(observation: Any, state: Any, reward: Any) -> None:
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


def per_env(value: Any, n: int, name: str, dtype: Any) -> np.ndarray:
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
