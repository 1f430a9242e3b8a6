"""Checkpoint formats: our native one (:mod:`seqagents.checkpoints.native`) and converters for
foreign formats.

Foreign formats are recognised from ``config.json``'s ``model_type``:

- ``decision_transformer``: transformers' ``DecisionTransformerModel`` (the edbeeching Hub repos),
  converted by :mod:`seqagents.checkpoints.hf_dt`; normalization stats from :func:`known_repo`.
- ``trajectory_transformer``: transformers' ``TrajectoryTransformerModel`` (CarlCochet repos),
  converted by :mod:`seqagents.checkpoints.tt_convert`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from seqagents.errors import CheckpointError

__all__ = ["known_repo", "known_repos", "foreign_algorithm"]

# model_type in a foreign config.json -> algorithm of the agent that converts it
FOREIGN_MODEL_TYPES = {"decision_transformer": "dt", "trajectory_transformer": "tt"}


@cache
def _registry() -> dict[str, Any]:
    return json.loads((Path(__file__).parent / "known_repos.json").read_text())["repos"]


def known_repos() -> list[str]:
    """Hub repos whose missing metadata (env id, normalization stats, targets) we ship."""
    return sorted(_registry())


def known_repo(repo_id: str) -> dict[str, Any] | None:
    """Registry entry of a known foreign Hub repo (``None`` if unknown).

    Local folders named like a known repo (e.g. a ``snapshot_download`` of it) match too.
    """
    reg = _registry()
    if repo_id in reg:
        return dict(reg[repo_id])
    name = Path(repo_id.rstrip("/")).name
    matches = [v for k, v in reg.items() if k.split("/")[1] == name]
    return dict(matches[0]) if len(matches) == 1 else None


def foreign_algorithm(config: dict, model_id: str, requested: str) -> str:
    """The algorithm (``"dt"``, ``"tt"``) of the agent that converts the foreign ``config``."""
    model_type = config.get("model_type")
    algorithm = FOREIGN_MODEL_TYPES.get(model_type)
    if algorithm is None:
        raise CheckpointError(
            f"{model_id}: unknown checkpoint format (model_type={model_type!r}); expected a "
            f"seqagents checkpoint or one of the model types {sorted(FOREIGN_MODEL_TYPES)}"
        )
    if requested and requested != algorithm:
        raise CheckpointError(
            f"{model_id} is a {model_type} checkpoint; load it with the {algorithm!r} agent"
        )
    return algorithm
