"""transformers ``trajectory_transformer`` checkpoints -> our :class:`TrajectoryTransformer`.

The ``CarlCochet/trajectory-transformer-*`` Hub repos hold a ``TrajectoryTransformerModel``
state dict (transformers <= 4.57) with the original code's names (jannerm/trajectory-transformer
``trajectory/models/transformers.py``):

==========================================  =============================================
theirs                                      ours
==========================================  =============================================
``tok_emb.weight (N*D+1, H)``               ``tok_emb.weight``
``pos_emb (1, block_size, H)``              ``pos_emb``
``blocks.{i}.ln1 / ln2``                    ``transformer.h.{i}.ln_1 / ln_2``
``blocks.{i}.attn.query / key / value``     ``transformer.h.{i}.attn.c_attn`` (q, k, v stacked)
``blocks.{i}.attn.proj``                    ``transformer.h.{i}.attn.c_proj``
``blocks.{i}.l1 / l2``                      ``transformer.h.{i}.mlp.c_fc / c_proj``
``ln_f``                                    ``transformer.ln_f``
``head.weight (D, N+1, H)``                 ``head.weight``
``blocks.{i}.attn.mask``                    dropped (a buffer; ours is built from the config)
==========================================  =============================================

All their linears are ``nn.Linear`` (``[out, in]``), like ours, so nothing is transposed. Keys may
carry a ``trajectory_transformer.`` prefix. Their config's ``layer_norm_eps`` (1e-12) is not used
by the model (its LayerNorms use torch's default 1e-5), so it is ignored here too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from seqagents.models.tt import TrajectoryTransformer, TTConfig

__all__ = ["convert_trajectory_transformer_state_dict", "tt_config_from_transformers"]

_PREFIX = "trajectory_transformer."
_BLOCK = re.compile(r"blocks\.(\d+)\.(.+)")
# Per-block parameters other than the fused attention input.
_BLOCK_RENAMES = {
    "ln1.weight": "ln_1.weight",
    "ln1.bias": "ln_1.bias",
    "ln2.weight": "ln_2.weight",
    "ln2.bias": "ln_2.bias",
    "attn.proj.weight": "attn.c_proj.weight",
    "attn.proj.bias": "attn.c_proj.bias",
    "l1.weight": "mlp.c_fc.weight",
    "l1.bias": "mlp.c_fc.bias",
    "l2.weight": "mlp.c_proj.weight",
    "l2.bias": "mlp.c_proj.bias",
}
_TOP_RENAMES = {
    "tok_emb.weight": "tok_emb.weight",
    "pos_emb": "pos_emb",
    "ln_f.weight": "transformer.ln_f.weight",
    "ln_f.bias": "transformer.ln_f.bias",
    "head.weight": "head.weight",
}


def tt_config_from_transformers(config_dict: Mapping[str, object]) -> TTConfig:
    """Our :class:`TTConfig` from a transformers ``TrajectoryTransformerConfig`` ``config.json``.

    Missing keys take transformers' defaults (which are the halfcheetah values).
    """
    model_type = config_dict.get("model_type", "trajectory_transformer")
    if model_type != "trajectory_transformer":
        raise ValueError(f"expected a trajectory_transformer config, got model_type={model_type!r}")
    get = config_dict.get
    return TTConfig(
        vocab_size=int(get("vocab_size", 100)),  # type: ignore[arg-type]
        observation_dim=int(get("observation_dim", 17)),  # type: ignore[arg-type]
        action_dim=int(get("action_dim", 6)),  # type: ignore[arg-type]
        transition_dim=int(get("transition_dim", 25)),  # type: ignore[arg-type]
        block_size=int(get("block_size", 249)),  # type: ignore[arg-type]
        n_layer=int(get("n_layer", 4)),  # type: ignore[arg-type]
        n_head=int(get("n_head", 4)),  # type: ignore[arg-type]
        n_embd=int(get("n_embd", 128)),  # type: ignore[arg-type]
        # One dropout rate for all three (the original uses 0.1 for each).
        dropout=float(get("resid_pdrop", 0.1)),  # type: ignore[arg-type]
        action_weight=float(get("action_weight", 5)),  # type: ignore[arg-type]
        reward_weight=float(get("reward_weight", 1)),  # type: ignore[arg-type]
        value_weight=float(get("value_weight", 1)),  # type: ignore[arg-type]
    )


def _their_name(key: str) -> str:
    """The checkpoint key(s) that our ``key`` comes from, for error messages."""
    for theirs, ours in _TOP_RENAMES.items():
        if key == ours:
            return theirs
    layer, name = key.removeprefix("transformer.h.").split(".", 1)
    for theirs, ours in _BLOCK_RENAMES.items():
        if name == ours:
            return f"blocks.{layer}.{theirs}"
    kind = name.rsplit(".", 1)[-1]  # c_attn weight / bias
    return f"blocks.{layer}.attn.{{query,key,value}}.{kind}"


def convert_trajectory_transformer_state_dict(
    state_dict: Mapping[str, torch.Tensor], config_dict: Mapping[str, object]
) -> tuple[TTConfig, dict[str, torch.Tensor]]:
    """Map a transformers ``TrajectoryTransformerModel`` state dict onto ours.

    Args:
        state_dict: their weights (``pytorch_model.bin`` loaded with ``weights_only=True``),
            with or without the ``trajectory_transformer.`` prefix.
        config_dict: their ``config.json``.

    Returns:
        Our config and a state dict that :meth:`TrajectoryTransformer.load_state_dict` accepts
        with ``strict=True``.

    Raises:
        ValueError: on missing, unexpected or wrongly shaped keys, naming them.
    """
    config = tt_config_from_transformers(config_dict)
    theirs = {
        (key[len(_PREFIX) :] if key.startswith(_PREFIX) else key): value
        for key, value in state_dict.items()
    }
    ours: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    qkv: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in theirs.items():
        block = _BLOCK.fullmatch(key)
        if key in _TOP_RENAMES:
            ours[_TOP_RENAMES[key]] = value
        elif block is None:
            unexpected.append(key)
        else:
            layer, name = int(block.group(1)), block.group(2)
            if name == "attn.mask":
                continue  # causal + value-column mask buffer; rebuilt from the config
            if name in _BLOCK_RENAMES:
                ours[f"transformer.h.{layer}.{_BLOCK_RENAMES[name]}"] = value
            elif name.startswith(("attn.query.", "attn.key.", "attn.value.")):
                qkv.setdefault(layer, {})[name[len("attn.") :]] = value
            else:
                unexpected.append(key)
    missing_qkv = []
    for layer, parts in sorted(qkv.items()):
        for kind in ("weight", "bias"):
            names = [f"{proj}.{kind}" for proj in ("query", "key", "value")]
            absent = [name for name in names if name not in parts]
            if absent:
                missing_qkv += [f"blocks.{layer}.attn.{name}" for name in absent]
                continue
            # Our SelfAttention splits c_attn's output into q, k, v in that order.
            fused = torch.cat([parts[name] for name in names], dim=0)  # (3H, H) or (3H,)
            ours[f"transformer.h.{layer}.attn.c_attn.{kind}"] = fused

    with torch.device("meta"):
        expected = TrajectoryTransformer(config).state_dict()
    missing = sorted(_their_name(key) for key in set(expected) - set(ours))
    unexpected += sorted(set(ours) - set(expected))
    if missing or unexpected or missing_qkv:
        raise ValueError(
            "not a trajectory_transformer state dict matching its config "
            f"(n_layer={config.n_layer}): missing {missing_qkv + missing}, "
            f"unexpected {sorted(unexpected)}"
        )
    wrong = [
        f"{key}: checkpoint {tuple(ours[key].shape)} vs config {tuple(expected[key].shape)}"
        for key in expected
        if ours[key].shape != expected[key].shape
    ]
    if wrong:
        raise ValueError(
            "trajectory_transformer weights do not match its config: " + "; ".join(wrong)
        )
    return config, ours
