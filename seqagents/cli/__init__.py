"""The ``seqagents`` command: zoo, info, evaluate, enjoy, record, push, collect, train, benchmark,
analyze, plot.

Every command that takes a MODEL accepts a zoo entry name (``halfcheetah-medium``), a local
checkpoint folder or a Hugging Face Hub repo id. Results go to stdout (a table, or JSON with
``--json``; :func:`seqagents.cli.common.emit`); progress bars and errors go to stderr; bad input
exits with status 2 and one line. The parser is :mod:`seqagents.cli.parser`; each command group
has its module (``zoo``/``info``: :mod:`~seqagents.cli.zoo`, ``evaluate``/``enjoy``/``record``/
``benchmark``: :mod:`~seqagents.cli.evaluate`, ``push``: :mod:`~seqagents.cli.hub`, ``collect``:
:mod:`~seqagents.cli.collect`, ``train``: :mod:`~seqagents.cli.train`); commands only parse and
print, the work is the library's.
"""

from __future__ import annotations

import logging
import sys
import zipfile

from seqagents.cli.common import UserError, checkpoint_overrides, cli_words
from seqagents.cli.parser import build_parser

__all__ = ["main", "build_parser", "checkpoint_overrides", "cli_words"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``seqagents`` command; returns the exit status."""
    from seqagents._gl import ensure_headless_gl  # not seqagents.envs: --help stays fast

    ensure_headless_gl()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    import gymnasium as gym
    import torch

    from seqagents.errors import CheckpointError, MissingDependencyError

    torch.set_num_threads(args.threads)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print(f"seqagents {args.command}: interrupted", file=sys.stderr)
        return 130
    except (
        UserError,
        CheckpointError,
        MissingDependencyError,
        OSError,  # files and folders: missing, unreadable, not a folder, disk full, ...
        zipfile.BadZipFile,
        KeyError,
        ValueError,
        gym.error.Error,
    ) as e:
        print(f"seqagents {args.command}: error: {cli_words(_one_line(e))}", file=sys.stderr)
        return 2
    return 0


def _one_line(error: BaseException) -> str:
    """The message of a user-caused error on one line; an ``OSError`` names its file."""
    if isinstance(error, KeyError) and error.args:
        message = str(error.args[0])
    elif isinstance(error, OSError) and error.filename is not None:
        where = str(error.filename)
        if error.filename2 is not None:
            where += f" -> {error.filename2}"
        message = f"{where}: {error.strerror or error}; check the path and its permissions"
    else:
        message = str(error) or type(error).__name__
    return " ".join(message.split())
