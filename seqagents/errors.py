"""Exceptions raised by seqagents; each message says what was expected and what to do."""

from __future__ import annotations

__all__ = ["CheckpointError", "MissingDependencyError"]


class CheckpointError(ValueError):
    """A checkpoint cannot be found, read, or does not match what it is used with."""


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message names the pip command that fixes it."""


def require(module: str, extra: str):
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``seqagents[extra]``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f'{module} is required for this feature: pip install "seqagents[{extra}]"'
        ) from e
