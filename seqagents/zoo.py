"""The zoo: ``zoo/<algo>.yml`` entries parsed into typed dataclasses that reject unknown keys.

Each YAML file maps entry names (e.g. ``halfcheetah-medium``) to an env, a dataset (remote Minari
id and a local collection recipe), model and training hyperparameters (paper values, with their
source), an evaluation protocol, the paper's score and the checkpoint. Keys starting with ``_``
hold YAML anchors shared by the entries (``<<: *defaults``), as rl-baselines3-zoo does.

Names: ``algo/name`` (``tt/halfcheetah-medium``) names one entry. A short name (``name``) that
several algorithms share means the entry of the first algorithm in :data:`SHORT_NAME_ORDER`
(DT first: ``halfcheetah-medium`` is ``dt/halfcheetah-medium``, the ``make demo`` agent); a
note (logged once per name) lists the other choices. A ``algo/name`` that is no entry but close
to one is an error with a did-you-mean (not a Hub lookup).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from seqagents.errors import reject_unknown_keys

__all__ = [
    "SHORT_NAME_ORDER",
    "ZOO_HUB_ORG",
    "ZooEntry",
    "zoo_dir",
    "list_entries",
    "get_entry",
    "resolve_model",
    "short_name_choices",
]

logger = logging.getLogger(__name__)

SHORT_NAME_ORDER = ("dt", "leap", "tt")
"""Which algorithm a short zoo name shared by several means: the first of these that has it."""


def zoo_dir() -> Path:
    """The zoo folder: ``$SEQAGENTS_ZOO_DIR``, else the checkout's ``zoo/``, else the copy an
    installed wheel ships as the package data ``seqagents/_zoo``."""
    if "SEQAGENTS_ZOO_DIR" in os.environ:
        return Path(os.environ["SEQAGENTS_ZOO_DIR"])
    package = Path(__file__).resolve().parent
    checkout = package.parent / "zoo"
    return checkout if (checkout / "dt.yml").is_file() else package / "_zoo"


def _in_checkout() -> bool:
    """Whether the zoo is a repository checkout's ``zoo/`` (not a wheel's package data)."""
    return zoo_dir().resolve() == (Path(__file__).resolve().parent.parent / "zoo").resolve()


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
    ref_min_score: float | None = None  # D4RL constants (docs/references.md section 4)
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
    bc: float | None = None  # the same table's behaviour-cloning baseline, where it has one
    source: str = ""  # paper, table


ZOO_HUB_ORG = "seqagents"
"""The Hugging Face Hub organization that holds every checkpoint the zoo bundles, each in the
repo named after its folder (``zoo/checkpoints/dt-breakout`` -> ``seqagents/dt-breakout``)."""


@dataclass
class CheckpointSpec:
    path: str | None = None  # bundled checkpoint, relative to the zoo folder
    hub_id: str | None = None  # a Hub repo of someone else's checkpoint (edbeeching's DTs)
    alternative: str | None = None  # another Hub checkpoint of the entry (e.g. transformers')

    @property
    def repo_id(self) -> str | None:
        """The Hub repo of this checkpoint: ``hub_id``, else ours, ``ZOO_HUB_ORG/<folder>``."""
        if self.hub_id:
            return self.hub_id
        return f"{ZOO_HUB_ORG}/{Path(self.path).name}" if self.path else None


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
        """The bundled checkpoint folder if it exists (a checkout keeps them all, the wheel only
        the demo's), else the Hub repo it is downloaded from; None for an entry not trained yet
        (a checkout without its folder)."""
        if self.checkpoint.path:
            path = zoo_dir() / self.checkpoint.path
            if (path / "config.json").exists():
                return str(path)
            if _in_checkout():  # the repository keeps every trained checkpoint
                return self.checkpoint.hub_id
        return self.checkpoint.repo_id


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
    for key, entry in sorted(out.items(), key=lambda item: _algo_rank(item[1].algo)):
        out.setdefault(key.split("/", 1)[1], entry)  # a short name: see SHORT_NAME_ORDER
    return out


def _algo_rank(algo: str) -> tuple[int, str]:
    order = SHORT_NAME_ORDER
    return (order.index(algo) if algo in order else len(order), algo)


def short_name_choices(name: str, entries: dict[str, ZooEntry] | None = None) -> list[str]:
    """The ``algo/name`` entries a short ``name`` could mean, default first (see the module
    docstring); one or none for a name that is not ambiguous.

    Example:
        >>> short_name_choices("halfcheetah-medium")
        ['dt/halfcheetah-medium', 'tt/halfcheetah-medium']
    """
    entries = entries if entries is not None else list_entries()
    if "/" in name:
        return [name] if name in entries else []
    keys = [k for k in entries if "/" in k and k.split("/", 1)[1] == name]
    return sorted(keys, key=lambda k: _algo_rank(k.split("/", 1)[0]))


_NOTED: set[str] = set()  # short names whose choice was already noted


def _note_ambiguous(name: str, entries: dict[str, ZooEntry]) -> None:
    """Log once per process which entry a short name shared by several algorithms means."""
    choices = short_name_choices(name, entries)
    if len(choices) > 1 and name not in _NOTED:
        _NOTED.add(name)
        logger.warning(
            "zoo name %r is shared by %s; using %s (a shared short name means %s). Name the "
            "algorithm to choose another, e.g. %r",
            name,
            ", ".join(choices),
            choices[0],
            ", else ".join(f"the {a.upper()} entry" for a in SHORT_NAME_ORDER),
            choices[1],
        )


def _check_prefixed_typo(name: str, entries: dict[str, ZooEntry]) -> None:
    """``dt/halfchetah-medium``: a zoo algorithm's prefix and a near-miss of one of its entries
    is a typo, not a Hub repo id: a ``LookupError`` with the did-you-mean."""
    algo = name.split("/", 1)[0] if name.count("/") == 1 else None
    if algo is None or name in entries or algo not in {e.algo for e in entries.values()}:
        return
    hint = did_you_mean(name, {k: v for k, v in entries.items() if k.startswith(f"{algo}/")})
    if hint:
        raise LookupError(
            f"unknown zoo entry {name!r}{hint} (a Hub repo id of a user named {algo!r} is not "
            "looked up when it is this close to a zoo entry; download it to a folder and pass "
            "the folder)"
        )


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
    _note_ambiguous(name, entries)
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
        LookupError: the entry exists but has no checkpoint yet (bundled or on the Hub), or
            ``model`` is a near-miss of an ``algo/name`` entry (``dt/halfchetah-medium``; the
            message has the did-you-mean).
    """
    entries = list_entries()
    if model not in entries:
        if not Path(model).exists():
            _check_prefixed_typo(model, entries)
        return model, None
    _note_ambiguous(model, entries)
    entry = entries[model]
    location = entry.checkpoint_location()
    if location is None:
        alternative = entry.checkpoint.alternative
        raise LookupError(
            f"zoo entry {model!r} has no checkpoint yet; train one with `seqagents train {model}`"
            + (f", or load its alternative {alternative}" if alternative else "")
        )
    return location, entry


def publish_zoo(
    org: str, *, token: str | None = None, log: Any = print
) -> list[tuple[str, str, str]]:
    """Push every bundled checkpoint, with its model card, to ``org/<folder name>`` on the Hub
    (``org`` is ``ZOO_HUB_ORG`` for the zoo's own home). The login and the right to write to
    ``org`` are checked once, before anything is uploaded.

    Args:
        org: the Hub user or organization to publish to.
        token: a Hub token; ``None`` uses the saved one.
        log: called with one line per published checkpoint.

    Returns:
        ``(entry, repo id, commit URL)`` for each published checkpoint.

    Raises:
        HubError: not logged in, the Hub unreachable, or no right to write to ``org``.
    """
    from seqagents.agents import load_agent
    from seqagents.checkpoints.hub import check_hub_access

    check_hub_access(f"{org}/zoo", token)
    published = []
    for key, entry in list_entries().items():
        path = entry.checkpoint.path
        if "/" not in key or not path or not (zoo_dir() / path / "config.json").is_file():
            continue
        repo_id = f"{org}/{Path(path).name}"
        agent = load_agent(zoo_dir() / path, device="cpu")
        url = agent.push_to_hub(repo_id, token=token, commit_message=f"seqagents zoo: {key}")
        log(f"{key}: {repo_id} ({url})")
        published.append((key, repo_id, url))
    return published
