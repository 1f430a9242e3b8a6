"""The native checkpoint format: ``config.json`` + ``model.safetensors`` + a model card.

Everything about reading and writing checkpoints lives here: the config dataclass, file
resolution from a local folder or the Hub cache, safe weight loading (safetensors; pickles only
with ``weights_only=True``), strict state-dict loading with clear errors. The model card is
written by :mod:`seqagents.checkpoints.card`. Agents import this module; it never imports the
agents.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from huggingface_hub import hf_hub_download
from safetensors import SafetensorError
from safetensors.torch import load, load_file
from torch import nn

from seqagents.errors import CheckpointError, reject_unknown_keys

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "FORMAT",
    "CheckpointConfig",
    "CheckpointFiles",
    "converted_spec",
    "serialize_space",
    "MAX_PARAMETERS",
    "build_network",
    "load_weights",
    "hub_errors",
    "not_found",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "seqagents"  # marker of our native config.json


@dataclass
class CheckpointConfig:
    """Contents of a native ``config.json`` (everything except the weights)."""

    algorithm: str  # "dt" | "tt" | "leap"
    model: dict  # the algorithm's network config (e.g. DTConfig fields)
    observation_space: dict  # minari.serialization.serialize_space(space, to_string=False)
    action_space: dict
    env_id: str | None = None  # gymnasium id the checkpoint was trained for
    env_kwargs: dict = field(default_factory=dict)  # gymnasium.make kwargs
    preprocessing: dict = field(default_factory=dict)  # e.g. state_mean/state_std/return_scale
    inference: dict = field(default_factory=dict)  # e.g. target_return, planner settings
    training: dict = field(default_factory=dict)  # provenance: dataset id, steps, seed, ...
    evaluation: dict = field(default_factory=dict)  # measured results (model card model-index)
    protocol: dict = field(default_factory=dict)  # seqagents.protocol.EvaluationProtocol fields
    library_version: str = ""
    format: str = FORMAT

    @classmethod
    def from_dict(cls, data: dict) -> CheckpointConfig:
        reject_unknown_keys(cls, data, "config.json has unknown keys", CheckpointError)
        try:
            return cls(**data)
        except TypeError as e:
            raise CheckpointError(f"config.json is incomplete: {e}") from e

    def to_dict(self) -> dict:
        return asdict(self)

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        from minari.serialization import deserialize_space

        obs, act = _expand_bounds(self.observation_space), _expand_bounds(self.action_space)
        return deserialize_space(obs), deserialize_space(act)


def converted_spec(
    algorithm: str,
    model: dict,
    obs_dim: int,
    act_dim: int,
    env_id: str | None,
    source: str,
    *,
    preprocessing: dict,
    inference: dict,
) -> CheckpointConfig:
    """The config of a converted transformers checkpoint: flat MuJoCo-style Box spaces (actions
    in [-1, 1]), the given sections, and ``source`` recorded as provenance."""
    from seqagents import __version__

    return CheckpointConfig(
        algorithm=algorithm,
        model=model,
        observation_space=serialize_space(gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64)),
        action_space=serialize_space(gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)),
        env_id=env_id,
        preprocessing=preprocessing,
        inference=inference,
        training={"converted_from": source, "format": "transformers"},
        library_version=__version__,
    )


def serialize_space(space: gym.Space) -> dict:
    from minari.serialization import serialize_space as _serialize

    from seqagents.envs import storable_space

    return _compact_bounds(_serialize(storable_space(space), to_string=False))


def _map_boxes(node: object, fn) -> object:
    """``node`` (a serialized space, nested dicts/lists) with ``fn`` applied to every Box dict."""
    if isinstance(node, list):
        return [_map_boxes(v, fn) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _map_boxes(v, fn) for k, v in node.items()}
    return fn(node) if node.get("type") == "Box" else node


def _compact_bounds(node: object) -> object:
    """Store a Box's uniform ``low``/``high`` as one number instead of one per element (an
    Atari frame stack's bounds are 28,224 numbers each); :func:`_expand_bounds` undoes it."""

    def compact(box: dict) -> dict:
        for key in ("low", "high"):
            values = np.asarray(box[key])
            if values.ndim and values.size and (values == values.flat[0]).all():
                box[key] = values.flat[0].item()
        return box

    return _map_boxes(node, compact)


def _expand_bounds(node: object) -> object:
    """Inverse of :func:`_compact_bounds`: a scalar Box bound becomes a full nested list."""

    def expand(box: dict) -> dict:
        for key in ("low", "high"):
            if not isinstance(box[key], list):
                box[key] = np.full(box["shape"], box[key]).tolist()
        return box

    return _map_boxes(node, expand)


class _OneRetryWarning(logging.Filter):
    """Lets through the first of huggingface_hub's per-retry warnings (the error, then
    "Retrying in ...") and drops the repeats: an unreachable Hub otherwise prints ten lines."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        kind = next((k for k in ("thrown while requesting", "Retrying in") if k in message), None)
        if kind is None:
            return True
        first = kind not in self.seen
        self.seen.add(kind)
        return first


@contextlib.contextmanager
def quiet_hub_retries() -> Iterator[None]:
    """While active, huggingface_hub warns once per kind about retries, not once per retry."""
    hub_logger = logging.getLogger("huggingface_hub.utils._http")
    condense = _OneRetryWarning()
    hub_logger.addFilter(condense)
    try:
        yield
    finally:
        hub_logger.removeFilter(condense)


def hub_errors() -> tuple[type[BaseException], ...]:
    """huggingface_hub's errors, and the base error of its HTTP client: ``HTTPError`` is
    requests' below huggingface_hub 1.0 and httpx's from 1.0 on (whose transport errors, e.g. a
    refused connection, are not ``OSError`` s)."""
    from huggingface_hub import errors

    names = (
        "LocalEntryNotFoundError",
        "OfflineModeIsEnabled",
        "RepositoryNotFoundError",
        "RevisionNotFoundError",
        "EntryNotFoundError",
        "HfHubHTTPError",
        "HTTPError",
    )
    return tuple(getattr(errors, n) for n in names if hasattr(errors, n))


class CheckpointFiles:
    """Resolves the files of a checkpoint, from a local folder or the Hub (cache)."""

    def __init__(
        self,
        model_id: str,
        revision: str | None,
        cache_dir: Any,
        force_download: bool,
        local_files_only: bool,
        token: Any,
        preloaded: dict[str, bytes] | None = None,
    ) -> None:
        self.model_id, self.revision, self.cache_dir = model_id, revision, cache_dir
        self.force_download, self.local_files_only, self.token = (
            force_download,
            local_files_only,
            token,
        )
        # Files of a local folder already read, all from one save (seqagents._files.read_files)
        self.preloaded = dict(preloaded or {})

    def path(self, filename: str) -> Path:
        if os.path.isdir(self.model_id):
            path = Path(self.model_id) / filename
            if filename in self.preloaded:
                return path
            if not os.path.exists(path):
                raise CheckpointError(f"{self.model_id}: missing file {filename}")
            from seqagents._files import check_regular_file

            check_regular_file(path, CheckpointError)  # a FIFO would block the reader
            return path
        try:
            with quiet_hub_retries():
                return Path(
                    hf_hub_download(
                        self.model_id,
                        filename,
                        revision=self.revision,
                        cache_dir=self.cache_dir,
                        force_download=self.force_download,
                        local_files_only=self.local_files_only,
                        token=self.token,
                    )
                )
        except hub_errors() as e:
            raise not_found(f"{self.model_id}/{filename}", e) from e

    def load_safetensors(self, filename: str = WEIGHTS_NAME) -> dict[str, torch.Tensor]:
        path = self.path(filename)
        try:
            if filename in self.preloaded:
                return load(self.preloaded[filename])
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(
                f"{path}: corrupt or truncated weights file ({e}); re-download it "
                "(force_download=True) or re-save the checkpoint"
            ) from e

    def load_foreign_weights(self) -> dict[str, torch.Tensor]:
        """A transformers-style folder's state dict: ``model.safetensors`` (what current
        transformers writes) if present, else the older ``pytorch_model.bin``."""
        try:
            self.path(WEIGHTS_NAME)
        except CheckpointError as safetensors_error:
            try:
                return self.load_torch_bin()
            except CheckpointError as e:
                if "missing file" not in str(e) and "cannot find" not in str(e):
                    raise
                raise CheckpointError(
                    f"{self.model_id}: no weights found: neither {WEIGHTS_NAME} nor "
                    f"pytorch_model.bin ({safetensors_error}; {e})"
                ) from e
        return self.load_safetensors()

    def load_torch_bin(self, filename: str = "pytorch_model.bin") -> dict[str, torch.Tensor]:
        """Load a pickled state dict with ``weights_only=True`` (plain tensors only)."""
        import pickle

        path = self.path(filename)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise CheckpointError(
                f"{path}: refused to load, the pickle holds objects other than plain tensors "
                f"(only weights_only=True loading is allowed): {str(e).splitlines()[0]}"
            ) from e
        except (RuntimeError, EOFError, OSError) as e:
            raise CheckpointError(f"{path}: corrupt or truncated weights file ({e})") from e
        if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise CheckpointError(f"{path}: expected a dict of tensors (a state dict)")
        return state


def not_found(what: str, error: BaseException) -> CheckpointError:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    hint = (
        "HF_HUB_OFFLINE is set, so only the local Hugging Face cache was searched; unset it to "
        "download, or pass a local folder"
        if offline
        else "check the repo id and revision, your network, or pass a local folder path"
    )
    return CheckpointError(f"cannot find {what}: {type(error).__name__}; {hint}")


MAX_PARAMETERS = 500_000_000
"""Most parameters (and buffer elements) a checkpoint's network may have: 2 GB of float32,
a hundred times the largest zoo model. Counted from the config before anything is allocated
(:func:`build_network`), so a config that asks for more is an error, not an exhausted machine;
raise it here for a larger checkpoint that you trust."""


def build_network(network_class: type[nn.Module], config: Any, where: str) -> nn.Module:
    """``network_class(config)`` once its size is known to be within :data:`MAX_PARAMETERS`
    (the network is first built on the meta device, which allocates no memory)."""
    with torch.device("meta"):
        probe = network_class(config)
    count = sum(t.numel() for t in (*probe.parameters(), *probe.buffers()))
    if count > MAX_PARAMETERS:
        raise CheckpointError(
            f"{where}: the config describes a network of {count:,} parameters, above the limit "
            f"{MAX_PARAMETERS:,} (seqagents.checkpoints.native.MAX_PARAMETERS); the config is "
            "corrupt, or raise the limit for a checkpoint you trust"
        )
    return network_class(config)


def load_weights(network: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """``load_state_dict(strict=True)`` with an error that names the checkpoint and the keys.

    Dtypes are checked too: a floating-point weight must be stored as floating point (int8 or
    bool values would be cast silently into meaningless weights), other tensors in their own
    dtype."""
    own = network.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{where}: weights do not match the config: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, shape mismatches {shapes[:5]}"
        )
    dtypes = [
        f"{k}: {state[k].dtype} (expected {own[k].dtype})"
        for k in sorted(own)
        if (
            not state[k].is_floating_point()
            if own[k].is_floating_point()
            else state[k].dtype != own[k].dtype
        )
    ]
    if dtypes:
        raise CheckpointError(
            f"{where}: {len(dtypes)} weights have the wrong dtype, e.g. {dtypes[:3]}; the weights "
            "file is not a seqagents checkpoint of this config (quantized or corrupt): re-save it "
            "with save_pretrained"
        )
    network.load_state_dict(state)
