"""The TT planner sweep: a grid of (beam width, horizon) evaluated and drawn from its records."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np

from seqagents import TrajectoryTransformerAgent
from seqagents.analysis.planner_sweep import main, planner_grid, planner_sweep_figure


def test_grid_measures_each_cell_and_the_figure_shows_the_records(tmp_path):
    env = gym.make("Pendulum-v1")
    rows = np.random.default_rng(0).normal(size=(300, 6))  # (N, obs 3 + act 1 + r + V)
    agent = TrajectoryTransformerAgent.create(
        env.observation_space, env.action_space, rows, n_bins=10, env_id="Pendulum-v1",
        device="cpu", seed=0, n_layer=1, n_head=1, n_embd=8, block_size=23,
    )  # fmt: skip
    agent.save_pretrained(tmp_path / "tt")
    records = planner_grid(str(tmp_path / "tt"), [2, 4], [1, 2], n_episodes=2, n_envs=1,
                           max_steps=5)  # fmt: skip
    assert [(r["beam_width"], r["horizon"]) for r in records] == [(2, 1), (4, 1), (2, 2), (4, 2)]
    assert all(len(r["returns"]) == 2 and r["s_per_step"] > 0 for r in records)
    assert all(r["normalized"] is None for r in records)  # Pendulum has no normalization
    fig, data = planner_sweep_figure(records)
    line = data["horizon"][2]
    assert line["beam_width"] == [2, 4]
    assert line["score"] == [float(np.mean(r["returns"])) for r in records[2:]]
    (ax,) = fig.axes
    xs = sorted(x for bars in ax.containers for x in bars.lines[0].get_xdata())
    assert xs == sorted(r["s_per_step"] for r in records)  # the drawn points are the records
    assert (
        main(
            [
                str(tmp_path / "tt"),
                "--beam-widths",
                "2",
                "--horizons",
                "1",
                "--episodes",
                "1",
                "--n-envs",
                "1",
                "--max-steps",
                "3",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    saved = json.loads((tmp_path / "out" / "planner_sweep_records.json").read_text())
    assert len(saved) == 1 and (tmp_path / "out" / "planner_sweep.png").stat().st_size > 0
