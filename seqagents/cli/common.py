"""What every ``seqagents`` command shares: the one-line usage error, argument types, loading a
MODEL, the Python-keyword-to-option wording of messages, and the one JSON-or-text output."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "CLI_OPTIONS",
    "Parser",
    "UserError",
    "checkpoint_overrides",
    "cli_words",
    "count",
    "emit",
    "json_object",
    "load_model",
    "shown",
]


class UserError(Exception):
    """Bad input: reported as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line (``seqagents evaluate: error: ...``) and no
    prefix matching (``--dataset`` must never silently become ``--dataset-best``; issue 28)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def count(low: int) -> Callable[[str], int]:
    """argparse type: an int >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"int>={low}"
    return parse


def json_object(text: str | None, option: str) -> dict:
    """``--model '{"n_layer": 2}'`` as a dict, or a one-line error naming the option."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{option} is not valid JSON ({e}): {text}") from e
    if not isinstance(value, dict):
        raise UserError(f"{option} must be a JSON object like '{{\"key\": 1}}', got {text}")
    return value


def emit(
    as_json: bool, data: Any, text: str | Callable[[], str], *, indent: int | None = 2
) -> None:
    """A command's result on stdout: ``data`` as JSON with ``--json`` (``indent=None``: one
    line, for summaries that scripts read line by line), else ``text`` (a callable is only
    called for text output)."""
    if as_json:
        print(json.dumps(data, indent=indent, default=str))
    else:
        print(text() if callable(text) else text)


def load_model(args: argparse.Namespace, model: str) -> tuple[Any, Any, str]:
    """``(agent, zoo entry or None, how to show the location)`` of MODEL (a zoo entry, a folder
    or a Hub id), with the --device and discretizer options of ``args``."""
    from seqagents import load_agent
    from seqagents.zoo import resolve_model

    try:
        location, entry = resolve_model(model)
    except LookupError as e:
        raise UserError(str(e)) from e
    try:
        agent = load_agent(location, device=args.device, **checkpoint_overrides(args))
    except TypeError as e:  # an option the checkpoint's agent does not take
        raise UserError(str(e)) from e
    return agent, entry, shown(location)


def checkpoint_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``from_pretrained`` keywords of the --dataset, --discretizer and --download options (a
    transformers Trajectory Transformer checkpoint's discretizer source)."""
    dataset, discretizer = getattr(args, "dataset", None), getattr(args, "discretizer", None)
    if getattr(args, "download", False) and not dataset:
        raise UserError("--download fetches the Minari dataset of --dataset; pass --dataset ID")
    overrides: dict[str, Any] = {"dataset": dataset} if dataset else {}
    if discretizer:
        overrides["discretizer"] = discretizer
    if getattr(args, "download", False):
        overrides["download"] = True
    return overrides


# Library messages name Python keywords; a CLI user is told the option instead (issue 28:
# "every message speaks the language of the caller"). Keyword -> option of every command that
# can raise it; tests/test_cli_language.py checks each option exists.
CLI_OPTIONS = {
    "dataset": "--dataset",
    "discretizer": "--discretizer",
    "download": "--download",
    "env_id": "--env",
    "eval_every": "--eval-every",
    "target_return": "--target-return",
}
_CLI_METAVARS = {"--dataset": "ID_OR_PATH", "--env": "ENV_ID"}
_PYTHON_KEYWORD = re.compile(
    r"(?<![\w.-])(" + "|".join(CLI_OPTIONS) + r")=(True|False|\.\.\.|'[^']*'|\d[\d.]*|)"
)


def cli_words(message: str) -> str:
    """A library message as a CLI user reads it: ``dataset=...`` -> ``--dataset ...``,
    ``download=True`` -> ``--download``, ``discretizer='f.safetensors'`` -> ``--discretizer
    f.safetensors``; ``force_download=True`` (no option: the HF cache) -> how to do it.

    Example:
        >>> cli_words("rebuild it with dataset=... or load it with download=True")
        'rebuild it with --dataset ID_OR_PATH or load it with --download'
    """

    def option(match: re.Match) -> str:
        flag, value = CLI_OPTIONS[match.group(1)], match.group(2)
        if value in ("True", ""):
            return flag
        if value == "False":
            return f"without {flag}"
        if value == "...":  # a placeholder: the option's metavar
            return f"{flag} {_CLI_METAVARS.get(flag, '...')}"
        return f"{flag} {value.strip(chr(39))}"

    message = message.replace(
        "(force_download=True)", "(delete its folder in the Hugging Face cache)"
    )
    return _PYTHON_KEYWORD.sub(option, message)


def shown(location: str) -> str:
    """A local path relative to the working folder where it is inside it; else unchanged."""
    path = Path(location)
    try:
        return str(path.resolve().relative_to(Path.cwd())) if path.exists() else location
    except ValueError:
        return location
