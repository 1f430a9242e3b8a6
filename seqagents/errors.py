"""Exceptions raised by seqagents; each message says what was expected and what to do."""

from __future__ import annotations

__all__ = ["CheckpointError", "MissingDependencyError", "reject_unknown_keys"]


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


def reject_unknown_keys(
    cls: type, data: dict, message: str, error: type[Exception] = ValueError
) -> None:
    """Raise ``error("<message> [unknown]; known keys: [...]")`` if ``data`` has keys that are not
    fields of the dataclass ``cls`` (configs are parsed strictly: a typo is an error)."""
    from dataclasses import fields

    known = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise error(f"{message} {unknown}; known keys: {known}")
