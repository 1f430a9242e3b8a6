"""One evaluation result type, :class:`EvaluationReport`, and one vocabulary for its numbers.

:func:`evaluation_report` runs :func:`seqagents.evaluate_policy` once per target return and
returns an :class:`EvaluationReport`; every output is read from it: ``seqagents evaluate`` /
``benchmark`` / ``push``, ``eval_info.json`` (:mod:`seqagents.eval_folder`), and the
``evaluation`` record a checkpoint stores (:meth:`EvaluationReport.to_record`) from which the
model card's ``model-index`` is written.

The words, written once here: ``mean_return``/``std_return`` (episode returns: the sum of the
rewards the agent received), ``mean_length``, ``normalized_mean``/``normalized_std`` (D4RL
normalized score, where :mod:`seqagents.scores` knows the task), ``success_rate`` (BabyAI and
MiniGrid pay only on success: an episode succeeds when its return is > 0), ``wall_time_s``.
Stored records written before this vocabulary (``mean_reward``/``std_reward``) are read by
:func:`read_record`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seqagents.protocol import EvaluationProtocol, resolve_protocol

__all__ = ["EvaluationReport", "TargetResult", "evaluation_report", "read_record"]

# Keys of stored evaluation records before one vocabulary (SB3's words) -> today's.
_OLD_KEYS = {"mean_reward": "mean_return", "std_reward": "std_return"}


@dataclass(frozen=True)
class TargetResult:
    """The episodes run at one target return, in the order they ended."""

    target_return: float | None  # the target the episodes ran at (None: not return-conditioned)
    episode_returns: list[float]  # sum of the rewards the agent received, per episode
    episode_lengths: list[int]  # steps per episode
    wall_time_s: float  # seconds the episodes took (all of them)
    normalized_scores: list[float] | None = None  # D4RL normalized, where the task has one
    successes: list[bool] | None = None  # BabyAI/MiniGrid: return > 0; None elsewhere
    episode_seeds: list[int] | None = None  # each episode's reset seed, when each had its own

    @classmethod
    def measure(
        cls,
        env_id: str | None,
        target_return: float | None,
        returns: Any,
        lengths: Any,
        wall_time_s: float,
        episode_seeds: list[int] | None = None,
    ) -> TargetResult:
        """The result of episodes of ``env_id``: normalized scores where
        :mod:`seqagents.scores` knows the task, successes on BabyAI/MiniGrid levels."""
        from seqagents.envs import is_babyai_env
        from seqagents.evaluation import episode_successes
        from seqagents.scores import has_normalized_score, normalized_score

        returns = [float(r) for r in returns]
        scores = successes = None
        if env_id and has_normalized_score(env_id):
            scores = np.asarray(normalized_score(np.asarray(returns), env_id), dtype=np.float64)
            scores = [float(s) for s in scores.reshape(-1)]
        if env_id and is_babyai_env(env_id):  # they pay only on success: success = return > 0
            successes = [bool(s) for s in episode_successes(returns)]
        return cls(
            target_return=target_return,
            episode_returns=returns,
            episode_lengths=[int(n) for n in lengths],
            wall_time_s=round(float(wall_time_s), 2),
            normalized_scores=scores,
            successes=successes,
            episode_seeds=episode_seeds,
        )

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.episode_returns))

    @property
    def std_return(self) -> float:
        return float(np.std(self.episode_returns))

    @property
    def mean_length(self) -> float:
        return float(np.mean(self.episode_lengths))

    @property
    def success_rate(self) -> float | None:
        return None if self.successes is None else float(np.mean(self.successes))

    def summary(self) -> dict[str, float]:
        """The aggregate numbers, in the one vocabulary (keys only where the env defines them):
        ``mean_return``, ``std_return``, ``mean_length``, ``normalized_mean``,
        ``normalized_std``, ``success_rate``."""
        numbers = {
            "mean_return": self.mean_return,
            "std_return": self.std_return,
            "mean_length": self.mean_length,
        }
        if self.normalized_scores is not None:
            numbers["normalized_mean"] = float(np.mean(self.normalized_scores))
            numbers["normalized_std"] = float(np.std(self.normalized_scores))
        if self.successes is not None:
            numbers["success_rate"] = float(np.mean(self.successes))
        return numbers

    def to_dict(self) -> dict[str, Any]:
        """Per episode and aggregate, as ``seqagents evaluate --json`` prints each target."""
        row: dict[str, Any] = {
            "target_return": self.target_return,
            "episode_returns": list(self.episode_returns),
            "episode_lengths": list(self.episode_lengths),
            **self.summary(),
            "wall_time_s": self.wall_time_s,
        }
        if self.successes is not None:
            row["episode_successes"] = list(self.successes)
        if self.episode_seeds is not None:
            row["episode_seeds"] = list(self.episode_seeds)
        return row


@dataclass(frozen=True)
class EvaluationReport:
    """An evaluation of one model on one env: the protocol it ran and one result per target.

    Example:
        >>> report = EvaluationReport("CartPole-v1", EvaluationProtocol(), 2, seed=0, results=[
        ...     TargetResult.measure("CartPole-v1", None, [9.0, 11.0], [9, 11], 0.01)])
        >>> report.results[0].summary()
        {'mean_return': 10.0, 'std_return': 1.0, 'mean_length': 10.0}
        >>> report.describe_protocol()
        'greedy actions, 2 episodes from seed 0'
    """

    env_id: str | None  # the env the episodes ran in
    protocol: EvaluationProtocol  # sampling mode and episode cap that ran
    n_episodes: int  # episodes per target
    seed: int | None  # seed of the first reset (sub-env i: seed + i) and of the agent's streams
    results: list[TargetResult] = field(default_factory=list)  # one per target return
    model: str | None = None  # what was loaded: zoo entry, folder or Hub id, as the user named it
    algorithm: str | None = None  # "dt", "tt", "leap"
    device: str | None = None  # the agent's device
    n_envs: int = 1  # parallel envs the episodes were split over
    followed_checkpoint: bool = False  # the protocol is the checkpoint's (not the caller's)

    def describe_protocol(self) -> str:
        """The protocol in words, as every evaluation output prints it."""
        text = self.protocol.describe()
        if self.followed_checkpoint:
            text += " (the checkpoint's protocol)"
        return f"{text}, {self.n_episodes} episodes from seed {self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """The report as ``seqagents evaluate --json`` prints it."""
        return {
            "model": self.model,
            "algorithm": self.algorithm,
            "env": self.env_id,
            "episodes": self.n_episodes,
            "n_envs": self.n_envs,
            "seed": self.seed,
            "deterministic": self.protocol.deterministic,
            "max_episode_steps": self.protocol.max_episode_steps,
            "protocol": self.protocol.describe()
            + (" (the checkpoint's protocol)" if self.followed_checkpoint else ""),
            "device": self.device,
            "results": [result.to_dict() for result in self.results],
        }

    def to_record(self, command: str | None = None) -> dict[str, Any]:
        """The first target's result as a checkpoint stores it (``config.json`` ``evaluation``,
        the model card's ``model-index``), with the ``command`` that measures it again."""
        result = self.results[0]
        summary = result.summary()
        measured = {
            "normalized_score": summary.get("normalized_mean"),
            "normalized_score_std": summary.get("normalized_std"),
            "success_rate": summary.get("success_rate"),
            "max_episode_steps": self.protocol.max_episode_steps,
        }
        record = {
            "env_id": self.env_id,
            "target_return": result.target_return,
            "mean_return": summary["mean_return"],
            "std_return": summary["std_return"],
            **{key: value for key, value in measured.items() if value is not None},
            "mean_length": summary["mean_length"],
            "n_episodes": self.n_episodes,
            "seed": self.seed,
            "deterministic": self.protocol.deterministic,
        }
        return {**record, "command": command} if command else record


def read_record(record: dict[str, Any] | None) -> dict[str, Any]:
    """A stored ``evaluation`` record in today's vocabulary: records written before it
    (``mean_reward``/``std_reward``, also inside ``per_target``) are read as ``mean_return``/
    ``std_return``.

    Example:
        >>> read_record({"mean_reward": 4939.8, "std_reward": 62.0, "n_episodes": 10})
        {'mean_return': 4939.8, 'std_return': 62.0, 'n_episodes': 10}
    """
    if not record:
        return {}
    read = {_OLD_KEYS.get(key, key): value for key, value in record.items()}
    if isinstance(read.get("per_target"), list):
        read["per_target"] = [read_record(row) for row in read["per_target"]]
    return read


def evaluation_report(
    agent: Any,
    env: Any,
    *,
    env_id: str | None = None,
    n_eval_episodes: int = 10,
    target_returns: list[float | None] | tuple[float | None, ...] = (None,),
    seed: int | None = 0,
    deterministic: bool | None = None,
    max_episode_steps: int | None = None,
    progress_bar: bool = False,
    model: str | None = None,
) -> EvaluationReport:
    """Evaluate ``agent`` in ``env`` at each target return with :func:`evaluate_policy`.

    Args:
        agent: a seqagents agent (or anything :func:`seqagents.evaluate_policy` takes).
        env: a ``gymnasium.Env``, gymnasium ``VectorEnv`` or SB3 ``VecEnv``.
        env_id: the env's id, for normalized scores and success (default: ``env.spec.id``,
            else the agent's ``env_id``).
        n_eval_episodes: episodes per target.
        target_returns: the targets to run at; ``None`` is the agent's own target.
        seed: seed of the first reset and of the agent's streams, for every target.
        deterministic: greedy or sampled; None follows the agent's protocol.
        max_episode_steps: episode cap; None follows the agent's protocol.
        progress_bar: a tqdm bar over the episodes.
        model: how the user named the model (a zoo entry, folder or Hub id), for the report.

    Returns:
        The report: the protocol that ran and one :class:`TargetResult` per target.
    """
    from seqagents.evaluation import evaluate_policy

    followed = deterministic is None
    deterministic, max_steps = resolve_protocol(agent, deterministic, max_episode_steps)
    spec = getattr(env, "spec", None)
    env_id = env_id or getattr(spec, "id", None) or getattr(agent, "env_id", None)
    results = []
    for target in target_returns:
        start = time.perf_counter()
        returns, lengths = evaluate_policy(
            agent,
            env,
            n_eval_episodes=n_eval_episodes,
            deterministic=deterministic,
            return_episode_rewards=True,
            target_return=target,
            seed=seed,
            progress_bar=progress_bar,
            max_episode_steps=max_steps,
        )
        shown = target if target is not None else getattr(agent, "target_return", None)
        elapsed = time.perf_counter() - start
        results.append(TargetResult.measure(env_id, shown, returns, lengths, elapsed))
    config = getattr(agent, "spec", None)
    return EvaluationReport(
        env_id=env_id,
        protocol=EvaluationProtocol(deterministic, max_steps),
        n_episodes=n_eval_episodes,
        seed=seed,
        results=results,
        model=model,
        algorithm=getattr(config, "algorithm", None),
        device=str(agent.device) if hasattr(agent, "device") else None,
        n_envs=int(getattr(env, "num_envs", 1)),
        followed_checkpoint=followed,
    )
