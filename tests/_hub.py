"""Helpers that lay out files exactly like a Hugging Face Hub cache, for offline tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from huggingface_hub import constants

DATA = Path(__file__).resolve().parent / "data"  # real config.json files of Hub repos


def edbeeching_config(name: str = "halfcheetah-medium") -> dict:
    """The real config.json of ``edbeeching/decision-transformer-gym-<name>``."""
    path = DATA / f"decision-transformer-gym-{name}.json"
    return json.loads(path.read_text())


def seed_hub_cache(
    repo_id: str, files: dict[str, Path | bytes | dict], commit: str = "0" * 40
) -> Path:
    """Put ``files`` into the HF cache as snapshot ``commit`` of ``repo_id`` (refs/main)."""
    root = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    for name, content in files.items():
        target = snapshot / name
        if isinstance(content, dict):
            target.write_text(json.dumps(content))
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            shutil.copy(content, target)
    return snapshot


def hf_dt_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A transformers DT state dict as the 4.18-era Hub files hold it (legacy buffers too)."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    n_pos = model.config.n_positions
    causal = torch.tril(torch.ones(n_pos, n_pos, dtype=torch.uint8)).view(1, 1, n_pos, n_pos)
    for i in range(model.config.n_layer):
        state[f"encoder.h.{i}.attn.bias"] = causal
        state[f"encoder.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return state


# ------------------------------------------------------------ foreign files without transformers
# The Hub repos' files (config.json + pytorch_model.bin in transformers' layout) made from our own
# networks by the inverse of seqagents' converters, so that the tests that only need such files
# run where transformers is not installed (the default test environment, with the
# huggingface_hub users get). tests/test_parity.py checks that transformers' own models load
# these state dicts (the parity environment, `make test-parity`).
_DT_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def tt_tiny_config(name: str) -> dict:
    """transformers' ``TrajectoryTransformerConfig(...).to_dict()`` of a tiny TT for ``name``
    (``pendulum``: 3 + 1 dims, ``halfcheetah``: 17 + 6), saved from transformers 4.57."""
    return json.loads((DATA / f"trajectory-transformer-tiny-{name}.json").read_text())


def foreign_dt_state_dict(config: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """A transformers ``DecisionTransformerModel`` state dict for the Hub ``config`` (random
    weights, legacy buffers included as in the 4.18-era files): the inverse of
    :func:`seqagents.checkpoints.hf_dt.convert_hf_dt_state_dict`."""
    from seqagents.checkpoints.hf_dt import dt_config_from_hf
    from seqagents.models.dt import DecisionTransformer

    torch.manual_seed(seed)
    network = DecisionTransformer(dt_config_from_hf(config))
    with torch.no_grad():  # random LayerNorm/bias values too, so no parameter is trivially 0/1
        for p in network.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    n_pos = int(config["n_positions"])
    state: dict[str, torch.Tensor] = {}
    for key, value in network.state_dict().items():
        if key == "position_bias":  # the encoder adds wpe[0] to every token
            wpe = torch.randn(n_pos, value.shape[0]) * 0.02  # (n_positions, H)
            wpe[0] = value
            state["encoder.wpe.weight"] = wpe
            continue
        theirs = (
            key.replace("transformer.", "encoder.", 1) if key.startswith("transformer.") else key
        )
        state[theirs] = value.t().contiguous() if key.endswith(_DT_CONV1D) else value.clone()
    state["encoder.wte.weight"] = torch.randn(int(config["vocab_size"]), network.config.hidden_size)
    causal = torch.tril(torch.ones(n_pos, n_pos, dtype=torch.uint8)).view(1, 1, n_pos, n_pos)
    for i in range(int(config["n_layer"])):
        state[f"encoder.h.{i}.attn.bias"] = causal
        state[f"encoder.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return state


def foreign_tt_state_dict(config: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """A transformers ``TrajectoryTransformerModel`` state dict for ``config`` (random weights):
    the inverse of seqagents.checkpoints.tt_convert's ``convert_trajectory_transformer_state_dict``.
    """
    from seqagents.checkpoints.tt_convert import _BLOCK_RENAMES, tt_config_from_transformers
    from seqagents.models.tt import TrajectoryTransformer

    torch.manual_seed(seed)
    network = TrajectoryTransformer(tt_config_from_transformers(config))
    with torch.no_grad():
        for p in network.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    ours = {v: k for k, v in _BLOCK_RENAMES.items()}
    state: dict[str, torch.Tensor] = {}
    for key, value in network.state_dict().items():
        if not key.startswith("transformer.h."):
            state[key.removeprefix("transformer.")] = value.clone()  # tok_emb, pos_emb, ln_f, head
            continue
        layer, name = key.removeprefix("transformer.h.").split(".", 1)
        if name in ours:
            state[f"blocks.{layer}.{ours[name]}"] = value.clone()
        elif name.startswith("attn.c_attn."):  # (3H, H) / (3H,): q, k, v stacked
            kind = name.rsplit(".", 1)[1]
            for proj, part in zip(("query", "key", "value"), value.chunk(3), strict=True):
                state[f"blocks.{layer}.attn.{proj}.{kind}"] = part.clone()
        else:
            raise KeyError(f"no transformers name for {key}")
    return state


def save_foreign(folder: Path, config: dict, state: dict[str, torch.Tensor]) -> Path:
    """``config.json`` + ``pytorch_model.bin`` in ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    torch.save(state, folder / "pytorch_model.bin")
    return folder


# ------------------------------------------------------------ Hub errors of either client
# huggingface_hub < 1.0 speaks HTTP through requests, >= 1.0 through httpx: its errors carry
# that client's Response, and its transport errors are that client's.
def hub_http_error(message: str, status: int) -> Exception:
    """``HfHubHTTPError(message)`` with a response of HTTP ``status``, for the installed hub."""
    from huggingface_hub import errors

    response_type = errors.Response  # requests.Response or httpx.Response
    if response_type.__module__.startswith("requests"):
        response = response_type()
        response.status_code = status
        return errors.HfHubHTTPError(message, response=response)
    client = __import__(response_type.__module__.split(".")[0])
    request = client.Request("GET", "https://huggingface.co/api/whoami-v2")
    return errors.HfHubHTTPError(message, response=response_type(status, request=request))


def hub_connection_error() -> Exception:
    """What the installed hub's HTTP client raises when the Hub cannot be reached."""
    from huggingface_hub import errors

    name = errors.Response.__module__.split(".")[0]  # "requests", "httpx" or "httpx2"
    client = __import__(name)
    if name == "requests":
        return client.ConnectionError("connection refused")
    return client.ConnectError("connection refused")
