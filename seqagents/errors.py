"""Exceptions raised by seqagents; each message says what was expected and what to do."""

from __future__ import annotations

__all__ = [
    "MODEL_SIZE_LIMITS",
    "CheckpointError",
    "HubError",
    "MissingDependencyError",
    "check_maximums",
    "reject_unknown_keys",
]


class CheckpointError(ValueError):
    """A checkpoint cannot be found, read, or does not match what it is used with."""


class HubError(RuntimeError):
    """The Hugging Face Hub cannot be used for an upload (no token, unreachable, refused)."""


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
    """Check ``data`` before building the dataclass ``cls`` from it (configs are parsed
    strictly: a typo or a wrong type is an error, not a crash later).

    Raises ``error`` when ``data`` is not a dict, when it has keys that are not fields of ``cls``
    (``"<message> [unknown]; known keys: [...]"``) or when a value does not have its field's
    annotated type (``int``, ``float``, ``bool``, ``str``, ``dict``, ``list``/``tuple`` and their
    ``| None`` unions are checked; other annotations are not).

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class C:
        ...     n: int = 1
        >>> reject_unknown_keys(C, {"n": "2"}, "unknown C keys")
        Traceback (most recent call last):
        ValueError: C.n must be int, got str '2'
    """
    import typing
    from dataclasses import fields

    if not isinstance(data, dict):
        raise error(f"{cls.__name__} expects a JSON object (a dict), got {type(data).__name__}")
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise error(f"{message} {unknown}; known keys: {known}")
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        hint = hints.get(key)
        if hint is not None and not _has_type(value, hint):
            raise error(
                f"{cls.__name__}.{key} must be {_type_name(hint)}, got "
                f"{type(value).__name__} {value!r}"[:300]
            )


def _has_type(value: object, hint: object) -> bool:
    """Whether ``value`` (parsed JSON/YAML) fits the annotation ``hint``; unknown kinds pass."""
    import types
    import typing

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # JSON writes 1.0 as 1
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    if hint in (list, tuple) or origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        element = args[0] if args and (origin is list or args[-1] is Ellipsis) else None
        return element is None or all(_has_type(v, element) for v in value)
    return True


def _type_name(hint: object) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def check_minimums(config: object, **lows: int) -> None:
    """Raise ``ValueError`` unless each named field of ``config`` is an int >= its low bound
    (``check_minimums(cfg, context_len=1, max_ep_len=1)``); a config dataclass's
    ``__post_init__`` calls it so that an impossible size fails where it is set, not at the
    first step."""
    for name, low in lows.items():
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            name = f"{type(config).__name__}.{name}"
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


MODEL_SIZE_LIMITS = {
    "n_layer": 256,
    "n_head": 1024,
    "hidden_size": 65_536,
    "n_embd": 65_536,
    "n_inner": 262_144,
    "context_len": 65_536,
    "block_size": 65_536,
    "horizon": 65_536,
    "history_len": 65_536,
    "max_ep_len": 1_000_000,
    "vocab_size": 1_000_000,
    "act_dim": 65_536,
    "n_actions": 65_536,
    "observation_dim": 65_536,
    "action_dim": 65_536,
}
"""Upper bounds of model config sizes, far above any published model (DT, TT and LEAP use at
most 6 layers, width 512, contexts of a few hundred tokens): a config from a file is checked
against them before anything is allocated, so ``n_layer: 1000000`` is an error, not a machine
that runs out of memory. The parameter count has its own limit
(:data:`seqagents.checkpoints.native.MAX_PARAMETERS`)."""


def check_maximums(config: object) -> None:
    """Raise ``ValueError`` if a size field of ``config`` (those in :data:`MODEL_SIZE_LIMITS`
    that it has) exceeds its bound."""
    for name, high in MODEL_SIZE_LIMITS.items():
        value = getattr(config, name, None)
        if isinstance(value, int) and value > high:
            raise ValueError(
                f"{type(config).__name__}.{name} is {value:,}, above the limit {high:,} "
                "(seqagents.errors.MODEL_SIZE_LIMITS); the config is corrupt or not meant for "
                "this library"
            )
