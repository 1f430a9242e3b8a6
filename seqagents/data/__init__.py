"""Offline datasets: Minari loading, collection from behaviour policies, training windows.

Example:
    >>> from seqagents.data import WindowSampler, load_trajectories
    >>> data = load_trajectories("local/halfcheetah/medium-v0")  # doctest: +SKIP
    >>> sampler = WindowSampler(data, context_len=20, return_scale=1000.0)  # doctest: +SKIP
    >>> batch = sampler.sample(64)  # doctest: +SKIP
"""

from seqagents.data.atari import AtariTrajectoryData, load_atari_dataset
from seqagents.data.atari_collect import (
    LearningHistoryRecorder,
    make_recorded_atari_env,
    record_ppo_history,
)
from seqagents.data.atari_writer import AtariDatasetWriter
from seqagents.data.collect import SB3_ALGOS, SupportsPredict, collect_dataset
from seqagents.data.dqn_replay import DQNReplayOptions, load_dqn_replay
from seqagents.data.frames import FrameStackedFrames
from seqagents.data.minari_io import (
    TrajectoryData,
    load_dataset,
    load_trajectories,
    to_trajectory_data,
)
from seqagents.data.windows import (
    STD_FLOOR,
    DatasetStats,
    WindowSampler,
    compute_returns_to_go,
    compute_stats,
    compute_timesteps,
    image_stats,
)

__all__ = [
    # loading
    "TrajectoryData",
    "load_dataset",
    "load_trajectories",
    "to_trajectory_data",
    # collection
    "SB3_ALGOS",
    "SupportsPredict",
    "collect_dataset",
    # training windows
    "STD_FLOOR",
    "DatasetStats",
    "WindowSampler",
    "compute_returns_to_go",
    "compute_stats",
    "compute_timesteps",
    "image_stats",
    # Atari: learning histories recorded from PPO, frames stored once
    "AtariDatasetWriter",
    "AtariTrajectoryData",
    "FrameStackedFrames",
    "LearningHistoryRecorder",
    "load_atari_dataset",
    "make_recorded_atari_env",
    "record_ppo_history",
    # Atari: the DQN Replay Dataset (dopamine replay logs) sampled as the DT paper did
    "DQNReplayOptions",
    "load_dqn_replay",
]
