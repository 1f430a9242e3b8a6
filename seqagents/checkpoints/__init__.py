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

__all__ = [
    "known_repo",
    "known_repo_id",
    "known_repos",
    "local_repo_ids",
    "foreign_algorithm",
]

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

    A local copy of a known repo matches too: the Hub cache's snapshot folder
    (``.../models--edbeeching--decision-transformer-gym-halfcheetah-medium/snapshots/<sha>``,
    what ``snapshot_download`` returns), a ``git clone`` of it (its remote URL), or a folder
    named like the repo (``decision-transformer-gym-halfcheetah-medium``).
    """
    matched = known_repo_id(repo_id)
    return None if matched is None else dict(_registry()[matched])


def known_repo_id(repo_id: str) -> str | None:
    """The registry id that ``repo_id`` (a Hub id or a local copy, see :func:`known_repo`)
    stands for, or None."""
    reg = _registry()
    if repo_id in reg:
        return repo_id
    for candidate in local_repo_ids(Path(repo_id)):
        if candidate in reg:
            return candidate
    name = Path(repo_id.rstrip("/")).name
    matches = [k for k in reg if k.split("/")[1] == name]
    return matches[0] if len(matches) == 1 else None


def local_repo_ids(folder: Path) -> list[str]:
    """The Hub repo ids a local folder says it is a copy of: a Hub cache snapshot
    (``models--owner--name`` above it) or a ``git clone`` (``.git/config``'s remote URL)."""
    ids = []
    for parent in (folder, *folder.parents):
        if parent.name.startswith("models--") and "--" in parent.name[len("models--") :]:
            ids.append(parent.name[len("models--") :].replace("--", "/", 1))
            break
    git_config = folder / ".git" / "config"
    if git_config.is_file():
        for line in git_config.read_text(errors="replace").splitlines():
            key, _, url = line.partition("=")
            if key.strip() == "url" and "huggingface.co/" in url:
                path = url.strip().split("huggingface.co/", 1)[1].removesuffix(".git")
                ids.append(path.removeprefix("models/").strip("/"))
    return ids


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
