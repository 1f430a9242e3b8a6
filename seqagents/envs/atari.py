"""The Atari evaluation env: ALE games through AtariPreprocessing and a frame stack."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from seqagents.envs.base import make_gym_env

__all__ = ["ATARI_PREPROCESSING_KWARG", "make_atari_env"]

ATARI_PREPROCESSING_KWARG = "atari_preprocessing"
"""The key of a saved ``env_kwargs`` that names :func:`make_atari_env` as the factory: a
checkpoint's ``env_id`` + ``env_kwargs`` (``{"atari_preprocessing": True,
"repeat_action_probability": 0.0}``) rebuild the evaluation env through
:func:`seqagents.envs.make_env`, which reads the key (:func:`seqagents.envs.env_factory`) and
passes the other kwargs on. Code that builds the env itself calls :func:`make_atari_env`."""


def make_atari_env(
    env_id: str,
    *,
    repeat_action_probability: float = 0.0,
    noop_max: int = 30,
    frame_skip: int = 4,
    screen_size: int = 84,
    frame_stack: int = 4,
    max_num_frames_per_episode: int = 108_000,
    **ale_kwargs: Any,
) -> gym.Env:
    """The Atari evaluation env: full games, ``(4, 84, 84)`` uint8 frame stacks.

    ``ALE/<Game>-v5(frameskip=1)`` → ``AtariPreprocessing(noop_max=30, frame_skip=4,
    screen_size=84, grayscale_obs=True, terminal_on_life_loss=False)`` →
    ``FrameStackObservation(4)`` (padded at reset by repeating the reset frame, its default).
    Games end at game over, never at a life loss; ALE truncates them at 108,000 frames (27,000
    agent steps), the standard cap. No FIRE is pressed for the agent: the recorded datasets
    (:mod:`seqagents.data.atari`) hold the FIRE presses, so an agent trained on them presses it.

    Sticky actions are off by default (``repeat_action_probability=0.0``, ALE v5's own default is
    0.25): it matches the recorded PPO data and the DT paper's evaluation ("sticky actions off");
    a zoo entry may set it.

    Args:
        env_id: an ``ALE/<Game>-v5`` id.
        repeat_action_probability: ALE sticky actions.
        noop_max: maximum random no-ops (raw frames) at reset.
        frame_skip: frames per agent step (max-pooled over the last two).
        screen_size: frame height and width.
        frame_stack: frames per observation.
        max_num_frames_per_episode: ALE's frame cap (truncation).
        **ale_kwargs: other ``ALE/`` kwargs (``mode``, ``difficulty``, ``render_mode``, ...).

    Returns:
        The env; observation space ``Box(0, 255, (4, 84, 84), uint8)``.

    Example:
        >>> env = make_atari_env("ALE/Breakout-v5")
        >>> env.observation_space.shape, env.observation_space.dtype
        ((4, 84, 84), dtype('uint8'))
    """
    if not env_id.startswith("ALE/"):
        raise ValueError(
            f"the Atari pipeline ({ATARI_PREPROCESSING_KWARG}=True) needs an ALE/<Game>-v5 env "
            f"id, got {env_id!r}."
        )
    if "frameskip" in ale_kwargs:
        raise ValueError("pass frame_skip (AtariPreprocessing's), not frameskip: ALE's is 1 here.")
    env = make_gym_env(
        env_id,
        frameskip=1,
        repeat_action_probability=repeat_action_probability,
        max_num_frames_per_episode=max_num_frames_per_episode,
        **ale_kwargs,
    )
    env = gym.wrappers.AtariPreprocessing(
        env,
        noop_max=noop_max,
        frame_skip=frame_skip,
        screen_size=screen_size,
        grayscale_obs=True,
        terminal_on_life_loss=False,
    )
    return gym.wrappers.FrameStackObservation(env, frame_stack)
