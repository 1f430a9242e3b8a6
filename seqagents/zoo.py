"""The zoo: ``zoo/<algo>.yml`` entries parsed into typed dataclasses that reject unknown keys.

Each YAML file maps entry names (e.g. ``halfcheetah-medium``) to an env, a dataset (remote Minari
id and a local collection recipe), model and training hyperparameters (paper values, with their
source), an evaluation protocol, the paper's score and the checkpoint. Keys starting with ``_``
hold YAML anchors shared by the entries (``<<: *defaults``), as rl-baselines3-zoo does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from seqagents.errors import reject_unknown_keys

__all__ = ["ZooEntry", "zoo_dir", "list_entries", "get_entry", "resolve_model"]


def zoo_dir() -> Path:
    """The zoo folder: ``$SEQAGENTS_ZOO_DIR``, else the checkout's ``zoo/``, else the copy an
    installed wheel ships as the package data ``seqagents/_zoo``."""
    if "SEQAGENTS_ZOO_DIR" in os.environ:
        return Path(os.environ["SEQAGENTS_ZOO_DIR"])
    package = Path(__file__).resolve().parent
    checkout = package.parent / "zoo"
    return checkout if (checkout / "dt.yml").is_file() else package / "_zoo"


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    reject_unknown_keys(cls, data, f"{where}: unknown keys")
    values = {}
    for f in fields(cls):
        if f.name in data:
            sub = _NESTED.get((cls.__name__, f.name))
            value = data[f.name]
            values[f.name] = (
                _build(sub, value, f"{where}.{f.name}") if sub and value is not None else value
            )
    try:
        return cls(**values)
    except TypeError as e:
        raise ValueError(f"{where}: {e}") from e


@dataclass
class CollectRecipe:
    """How ``seqagents collect`` builds the dataset locally."""

    policy: str  # "random", "babyai-bot" or "<algo>:<zip relative to the repo root>"
    n_steps: int | None = None  # transitions to collect (whole episodes)
    n_episodes: int | None = None
    n_envs: int = 1
    seed: int = 0
    deterministic: bool = False  # D4RL collected with the stochastic policy
    ref_min_score: float | None = None  # D4RL normalization constants (REFERENCE.md section 4)
    ref_max_score: float | None = None
    behavior_command: str | None = None  # the command that trained the behaviour policy


@dataclass
class DatasetSpec:
    id: str  # Minari dataset id used for training (local or remote)
    remote_id: str | None = None  # the published Minari id, when one exists
    collect: CollectRecipe | None = None  # local recipe (no network needed)
    note: str | None = None  # how it differs from the paper's data


@dataclass
class EvalSpec:
    target_returns: list[float] = field(default_factory=list)  # paper targets
    n_episodes: int = 10  # paper: 100 per target (D4RL), 10 (Atari)
    deterministic: bool = True
    seed: int = 0


@dataclass
class PaperScore:
    score: float | None = None  # normalized score reported in the paper
    std: float | None = None
    source: str = ""  # paper, table


@dataclass
class CheckpointSpec:
    path: str | None = None  # bundled checkpoint, relative to the zoo folder
    hub_id: str | None = None  # Hugging Face Hub repo


@dataclass
class ZooEntry:
    """One zoo entry (see module docstring)."""

    name: str
    algo: str  # "dt" | "tt" | "leap"
    env_id: str
    dataset: DatasetSpec
    env_kwargs: dict = field(default_factory=dict)
    render_kwargs: dict = field(default_factory=dict)  # extra gymnasium.make kwargs for videos
    model: dict = field(default_factory=dict)  # the algorithm's model config fields
    training: dict = field(default_factory=dict)  # TrainConfig fields
    inference: dict = field(default_factory=dict)  # planner settings etc.
    return_scale: float = 1.0
    evaluation: EvalSpec = field(default_factory=EvalSpec)
    paper: PaperScore = field(default_factory=PaperScore)
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec)
    sources: list[str] = field(default_factory=list)  # where the numbers come from

    def checkpoint_location(self) -> str | None:
        """The bundled checkpoint folder if it exists, else the Hub id (or None)."""
        if self.checkpoint.path:
            path = zoo_dir() / self.checkpoint.path
            if (path / "config.json").exists():
                return str(path)
        return self.checkpoint.hub_id


_NESTED = {
    ("ZooEntry", "dataset"): DatasetSpec,
    ("DatasetSpec", "collect"): CollectRecipe,
    ("ZooEntry", "evaluation"): EvalSpec,
    ("ZooEntry", "paper"): PaperScore,
    ("ZooEntry", "checkpoint"): CheckpointSpec,
}


def _load_file(path: Path) -> dict[str, ZooEntry]:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML: {' '.join(str(e).split())}") from e
    if not isinstance(raw, dict):
        raise ValueError(f"{path} holds a YAML {type(raw).__name__}; expected entries by name")
    entries = {}
    for name, data in raw.items():
        if str(name).startswith("_"):
            continue
        entries[name] = _build(ZooEntry, {"name": name, **data}, f"{path.name}:{name}")
    return entries


def list_entries(directory: Path | None = None) -> dict[str, ZooEntry]:
    """All entries of every ``<algo>.yml`` in the zoo, keyed ``name`` (and ``algo/name``)."""
    directory = directory or zoo_dir()
    out: dict[str, ZooEntry] = {}
    for path in sorted(directory.glob("*.yml")):
        for name, entry in _load_file(path).items():
            out[f"{entry.algo}/{name}"] = entry
            out.setdefault(name, entry)
    return out


def get_entry(name: str, directory: Path | None = None) -> ZooEntry:
    """The entry ``name`` (``halfcheetah-medium`` or ``dt/halfcheetah-medium``).

    Raises:
        KeyError: unknown entry; the message lists the known ones.
    """
    entries = list_entries(directory)
    if name not in entries:
        known = sorted(k for k in entries if "/" in k)
        hint = did_you_mean(name, entries) or f"; known entries: {', '.join(known)}"
        raise KeyError(f"unknown zoo entry {name!r}{hint}")
    return entries[name]


def did_you_mean(name: str, entries: dict[str, ZooEntry] | None = None) -> str:
    """``"; did you mean 'dt/halfcheetah-medium'?"`` for a near-miss zoo name, else ``""``."""
    import difflib

    names = list(entries if entries is not None else list_entries())
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.75)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def resolve_model(model: str) -> tuple[str, ZooEntry | None]:
    """``(checkpoint location, entry)`` for a zoo entry name; anything else (a folder, a Hub
    repo id) comes back unchanged with ``None``.

    Raises:
        LookupError: the entry exists but has no checkpoint yet (bundled or on the Hub).
    """
    entries = list_entries()
    if model not in entries:
        return model, None
    entry = entries[model]
    location = entry.checkpoint_location()
    if location is None:
        raise LookupError(
            f"zoo entry {model!r} has no checkpoint yet; train one with `seqagents train {model}`"
        )
    return location, entry
