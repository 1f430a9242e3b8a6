"""The model card (``README.md``) of a checkpoint: what a Hub visitor needs to trust it.

Install line, usage with the evaluation protocol, replay video, the Hub ``model-index`` with every
measured metric and the dataset, paper links, license, the commands that reproduce training and
evaluation, limitations; never a local path (:func:`public_spec`). Issue 23, item 5.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from seqagents.checkpoints.native import CheckpointConfig

__all__ = [
    "INSTALL",
    "LICENSE",
    "PAPERS",
    "describe_evaluation",
    "model_card",
    "public_spec",
]


LICENSE = "mit"  # the Hub's id of pyproject.toml's license (tests/test_push.py checks they agree)
INSTALL = 'pip install "seqagents[all]"'


@dataclass(frozen=True)
class _Paper:
    title: str
    authors: str  # first author(s) and venue, as cited
    arxiv: str  # arXiv id

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}"


# The paper each algorithm implements (arXiv ids as in docs/references.md and the models).
PAPERS: dict[str, _Paper] = {
    "dt": _Paper(
        "Decision Transformer: Reinforcement Learning via Sequence Modeling",
        "Chen et al., NeurIPS 2021",
        "2106.01345",
    ),
    "tt": _Paper(
        "Offline Reinforcement Learning as One Big Sequence Modeling Problem",
        "Janner, Li, Levine, NeurIPS 2021",
        "2106.02039",
    ),
    "leap": _Paper(
        "Planning with Sequence Models through Iterative Energy Minimization (LEAP)",
        "Chen, Du, Chen, Tenenbaum, Vela, ICLR 2023",
        "2303.16189",
    ),
}
_ALGORITHM_TAGS = {"dt": "decision-transformer", "tt": "trajectory-transformer", "leap": "leap"}

# An absolute path (POSIX, home-relative or Windows) inside a string; group 1 is its last name.
# Not matched: URLs (``https://...``), ids such as ``mujoco/halfcheetah/medium-v0``, ``+/-``.
_ABSOLUTE_PATH = re.compile(
    r"(?<![\w.:/\\~+-])(?:~|[A-Za-z]:)?[/\\](?:[\w.@][^\s/\\'\"`]*[/\\])*([\w.@][^\s/\\'\"`]*)"
)
_LOCAL_KEYS = ("out_dir",)  # record keys that only name a folder on the training machine


def public_spec(spec: CheckpointConfig) -> CheckpointConfig:
    """``spec`` as it may be published: the run folder (``out_dir``) dropped from the training
    record and every absolute path reduced to its last name.

    Example:
        >>> spec = CheckpointConfig("dt", {}, {}, {}, training={
        ...     "dataset_id": "/home/me/data/cheetah", "train_config": {"out_dir": "runs/x"}})
        >>> public_spec(spec).training
        {'dataset_id': 'cheetah', 'train_config': {}}
    """
    return CheckpointConfig(**_public(spec.to_dict()))


def _public(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _public(v) for k, v in node.items() if k not in _LOCAL_KEYS}
    if isinstance(node, list):
        return [_public(v) for v in node]
    if isinstance(node, str):
        return _ABSOLUTE_PATH.sub(r"\1", node)
    return node


def model_card(
    spec: CheckpointConfig,
    agent_class: str,
    location: str | None = None,
    replay: str | None = None,
) -> ModelCard:
    """The model card of ``spec`` (``README.md``), with no local path in it.

    Args:
        spec: the checkpoint's config; its ``evaluation`` fills the Hub ``model-index``.
        agent_class: the agent class's name, for the usage snippet.
        location: what the snippet loads: a Hub repo id or a folder (``None``: ``"."``, the
            card's own folder). An absolute path is reduced to its name.
        replay: the replay video's file name inside the folder, embedded as a ``<video>``.

    Returns:
        The card: metadata (license, tags, paper, model-index) and the sections below.
    """
    spec = public_spec(spec)
    location = _public(location or ".")
    ev = _measured(spec)
    entry = _zoo_entry(spec)
    paper = PAPERS.get(spec.algorithm)
    data = ModelCardData(
        license=LICENSE,
        library_name="seqagents",
        tags=[
            "reinforcement-learning",
            "offline-reinforcement-learning",
            _ALGORITHM_TAGS.get(spec.algorithm, spec.algorithm),
            *([spec.env_id] if spec.env_id else []),
            *([f"arxiv:{paper.arxiv}"] if paper else []),
        ],
        model_name=f"{spec.algorithm}-{spec.env_id}",
        eval_results=_eval_results(spec, ev) or None,
    )
    paper_link = f" ([{paper.authors}]({paper.url}))" if paper else ""
    dataset = spec.training.get("dataset_id")
    lines = [
        f"# {agent_class} for {spec.env_id}",
        "",
        f"A `{spec.algorithm}` agent{paper_link} for `{spec.env_id}`"
        + (f", trained on `{dataset}`" if dataset else "")
        + f", saved with seqagents {spec.library_version}.",
        "",
        *_replay_lines(replay, location),
        *_result_lines(spec, ev),
        "## Install",
        "",
        "```bash",
        INSTALL,
        "```",
        "",
        *_usage_lines(spec, agent_class, location),
        *_reproduce_lines(spec, ev, entry),
        *_limitation_lines(spec, ev, entry),
        *_json_section("Training record", spec.training),
        *_paper_lines(paper),
        "## License",
        "",
        f"{LICENSE.upper()}, as the seqagents library.",
        "",
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def _measured(spec: CheckpointConfig) -> dict:
    """The stored evaluation in today's vocabulary (:func:`seqagents.report.read_record`), with
    the normalized score computed where :mod:`seqagents.scores` knows the task and the
    evaluation did not store it (it is linear in the return)."""
    from seqagents.report import read_record
    from seqagents.scores import has_normalized_score, normalized_score

    ev = {"env_id": spec.env_id, **read_record(spec.evaluation)}
    env_id, mean = ev.get("env_id"), ev.get("mean_return")
    if mean is not None and ev.get("normalized_score") is None and env_id:
        if has_normalized_score(env_id):
            ev["normalized_score"] = normalized_score(mean, env_id)
    return ev


# The Hub's metric type of the mean episode return (its RL leaderboards and rl-zoo's cards).
_HUB_MEAN_RETURN = "mean_reward"


def _eval_results(spec: CheckpointConfig, ev: dict) -> list:
    """One Hub ``EvalResult`` per measured metric, on the training dataset."""
    from huggingface_hub import EvalResult

    if ev.get("mean_return") is None or not spec.env_id:
        return []
    mean = f"{ev['mean_return']:.2f} +/- {ev.get('std_return', 0):.2f}"
    metrics = [(_HUB_MEAN_RETURN, "mean return", mean)]
    if ev.get("normalized_score") is not None:
        metrics.append(("normalized_score", "normalized score", round(ev["normalized_score"], 2)))
    if ev.get("success_rate") is not None:
        metrics.append(("success_rate", "success rate (%)", round(100 * ev["success_rate"], 2)))
    dataset = spec.training.get("dataset_id") or ev.get("env_id") or spec.env_id
    return [
        EvalResult(
            task_type="reinforcement-learning",
            task_name=ev.get("env_id") or spec.env_id,
            dataset_type=dataset,
            dataset_name=dataset,
            metric_type=metric,
            metric_name=name,
            metric_value=value,
        )
        for metric, name, value in metrics
    ]


def _replay_lines(replay: str | None, location: str) -> list[str]:
    """The replay as an HTML video (the Hub does not play videos given with image syntax);
    on the Hub its address is the file's ``resolve`` URL."""
    if not replay:
        return []
    src = replay
    if _is_repo_id(location):
        src = f"https://huggingface.co/{location}/resolve/main/{replay}"
    return ["## Replay", "", f'<video src="{src}" controls autoplay loop muted></video>', ""]


def _is_repo_id(location: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if location.count("/") != 1 or Path(location).exists():
        return False
    try:
        validate_repo_id(location)
    except HFValidationError:
        return False
    return True


def _result_lines(spec: CheckpointConfig, ev: dict) -> list[str]:
    from seqagents.protocol import EvaluationProtocol
    from seqagents.report import read_record

    if not spec.evaluation:
        return []
    lines = ["## Results", ""]
    summary = describe_evaluation(ev)
    if summary:
        protocol = EvaluationProtocol.of_checkpoint(spec.protocol, spec.evaluation)
        lines += [f"{summary[0].upper()}{summary[1:]}, {protocol.describe()}.", ""]
    record = read_record(spec.evaluation)  # as stored, in today's vocabulary
    return lines + _json_section("Evaluation record", record, level="###")


def _usage_lines(spec: CheckpointConfig, agent_class: str, location: str) -> list[str]:
    from seqagents.protocol import EvaluationProtocol

    protocol = EvaluationProtocol.of_checkpoint(spec.protocol, spec.evaluation)
    target = spec.inference.get("target_return")
    predict = f"agent.predict(obs, deterministic={protocol.deterministic}, reward=reward)"
    return [
        "## Usage",
        "",
        f"Evaluation protocol: {protocol.describe(target)}. `evaluate_policy` and the "
        "`seqagents` commands follow it; in a loop of your own pass the same `deterministic` "
        "to `predict`.",
        "",
        "```python",
        f"from seqagents import {agent_class}, evaluate_policy",
        "",
        *_call_lines(f"agent = {agent_class}.from_pretrained(", json.dumps(location)),
        "env = agent.make_env()",
        "print(evaluate_policy(agent, env, n_eval_episodes=10))  # follows the protocol",
        "",
        "obs, info = env.reset(seed=0)",
        "reward, done = None, False  # predict takes the previous step's reward",
        "while not done:",
        f"    action, _ = {predict}",
        "    obs, reward, terminated, truncated, info = env.step(action)",
        "    done = terminated or truncated",
        "```",
        "",
        "From the command line (`enjoy` also writes a replay video under `videos/`):",
        "",
        "```bash",
        f"seqagents evaluate {location}",
        f"seqagents enjoy {location}",
        "```",
        "",
    ]


def _reproduce_lines(spec: CheckpointConfig, ev: dict, entry: tuple[str, Any] | None) -> list:
    lines = ["## Reproduce", ""]
    if ev.get("command"):
        lines += ["The evaluation above:", "", "```bash", ev["command"], "```", ""]
    training = spec.training
    if entry is not None:
        lines += ["Training (the zoo entry's recipe):", "", "```bash"]
        lines += [*_train_commands(training, *entry), "```", ""]
    elif training.get("converted_from"):
        lines += [f"Converted from `{training['converted_from']}` (not trained here).", ""]
    elif training:
        lines += ["Trained with the settings in the training record below.", ""]
    return lines if len(lines) > 2 else []


def _zoo_entry(spec: CheckpointConfig) -> tuple[str, Any] | None:
    """``(name, entry)`` of the one zoo entry whose algorithm, env and dataset match the
    training record (``None`` when none or several do)."""
    from seqagents.zoo import list_entries

    dataset = spec.training.get("dataset_id")
    if not dataset:
        return None
    matches = [
        (name, e)
        for name, e in list_entries().items()
        if "/" in name
        and (e.algo, e.env_id, e.dataset.id) == (spec.algorithm, spec.env_id, dataset)
    ]
    return matches[0] if len(matches) == 1 else None


# TrainConfig fields that change the weights, and the `seqagents train` options that set them.
_TRAIN_OPTIONS = {
    "steps": "--steps",
    "batch_size": "--batch-size",
    "learning_rate": "--learning-rate",
    "warmup_steps": "--warmup-steps",
    "seed": "--seed",
}


def _train_commands(training: dict, name: str, entry: Any) -> list[str]:
    """The commands that remake the dataset (where the zoo has a recipe) and rerun training
    with the record's settings where they differ from the entry's."""
    from seqagents.training import TrainConfig

    lines = []
    if entry.dataset.collect is not None:
        lines += [f"seqagents collect --zoo {name}  # writes {entry.dataset.id}"]
    elif entry.dataset.id != entry.dataset.remote_id and entry.dataset.note:
        lines += [f"# dataset {entry.dataset.id}: {entry.dataset.note}"]
    used = training.get("train_config", {})
    known = {f.name for f in fields(TrainConfig)}  # the entry's own values, typed as training
    default = TrainConfig.from_dict({k: v for k, v in entry.training.items() if k in known})
    options = [
        f"{option} {used[key]:g}" if isinstance(used[key], float) else f"{option} {used[key]}"
        for key, option in _TRAIN_OPTIONS.items()
        if key in used and used[key] != getattr(default, key)
    ]
    lines += [" ".join(["seqagents train", name, *options])]
    if training.get("steps") not in (None, used.get("steps")):
        lines += [f"# this checkpoint is the run's step {training['steps']} (see the note below)"]
    return lines


def _limitation_lines(spec: CheckpointConfig, ev: dict, entry: tuple[str, Any] | None) -> list:
    items = [*_training_limits(spec.training, entry), *_evaluation_limits(spec, ev)]
    return ["## Limitations", "", *(f"- {item}" for item in items), ""]


def _training_limits(training: dict, entry: tuple[str, Any] | None) -> list[str]:
    """What the training record says about scale and data, in words."""
    items = []
    recipe = entry[1] if entry is not None else None
    if training.get("steps"):
        world = training.get("world_size", 1)
        planned = recipe.training.get("steps") if recipe is not None else None
        shorter = planned is not None and planned > training["steps"]
        items.append(
            f"Training scale: {training['steps']:,} gradient steps of batch "
            f"{training.get('train_config', {}).get('batch_size', '?')} on "
            + ("one process" if world == 1 else f"{world} processes")
            + (f", fewer than the zoo recipe's {planned:,}" if shorter else "")
            + "; the full settings are in the training record below."
        )
    if training.get("note"):
        items.append(f"From the training record: {training['note']}")
    if training.get("converted_from"):
        items.append(f"Converted from `{training['converted_from']}`; not trained by seqagents.")
    if recipe is not None and recipe.dataset.id != recipe.dataset.remote_id:
        note = f" {recipe.dataset.note}" if recipe.dataset.note else ""
        items.append(
            f"Data: `{recipe.dataset.id}` was made locally with seqagents, not the paper's "
            f"dataset.{note}"
        )
    if recipe is not None and recipe.paper.score is not None:
        std = f" ± {recipe.paper.std:g}" if recipe.paper.std else ""
        items.append(
            f"The paper reports {recipe.paper.score:g}{std} in {recipe.paper.source}; this "
            "checkpoint is not a reproduction of the paper's run."
        )
    return items


def _evaluation_limits(spec: CheckpointConfig, ev: dict) -> list[str]:
    """How much the measured numbers say: episodes, seed, hardware, the one env tried."""
    items = []
    n_episodes = ev.get("n_episodes")
    if n_episodes:
        items.append(
            f"Measured over {n_episodes} episode{'s' * (n_episodes != 1)}"
            + (f" from seed {ev['seed']}" if ev.get("seed") is not None else "")
            + (f" on {ev['hardware']}" if ev.get("hardware") else "")
            + ("; so few episodes give a noisy mean." if n_episodes < 10 else ".")
        )
    env = f"`{spec.env_id}`" + (f" with `{json.dumps(spec.env_kwargs)}`" if spec.env_kwargs else "")
    items.append(f"Evaluated only on {env}; other env versions or settings are untested.")
    return items


def _call_lines(head: str, argument: str, width: int = 100) -> list[str]:
    """``head + argument + ")"`` on one line, or wrapped the way ruff formats a long call."""
    line = f"{head}{argument})"
    return [line] if len(line) <= width else [head, f"    {argument}", ")"]


def _json_section(title: str, record: dict, level: str = "##") -> list[str]:
    if not record:
        return []
    return [f"{level} {title}", "", "```json", json.dumps(record, indent=2), "```", ""]


def _paper_lines(paper: _Paper | None) -> list[str]:
    if paper is None:
        return []
    return ["## Paper", "", f"{paper.authors}: [{paper.title}]({paper.url}).", ""]


def describe_evaluation(ev: dict) -> str:
    """A checkpoint's stored evaluation in words: ``"mean return 4939.80 ± 62.00, normalized
    42.0 over 10 episodes of HalfCheetah-v5 at target 6000"`` ("" when it holds none). Records
    of either vocabulary are read (:func:`seqagents.report.read_record`)."""
    from seqagents.report import read_record

    ev = read_record(ev)
    if ev.get("mean_return") is None:
        return ""
    text = f"mean return {ev['mean_return']:.2f} ± {ev.get('std_return', 0.0):.2f}"
    if ev.get("normalized_score") is not None:
        text += f", normalized {ev['normalized_score']:.1f}"
    if ev.get("success_rate") is not None:
        text += f", success {100 * ev['success_rate']:.1f}%"
    if ev.get("n_episodes"):
        text += f" over {ev['n_episodes']} episodes"
        text += f" of {ev['env_id']}" if ev.get("env_id") else ""
    if ev.get("target_return") is not None:
        text += f" at target {ev['target_return']:g}"
    return text
