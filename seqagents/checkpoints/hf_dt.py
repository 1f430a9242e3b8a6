"""Convert transformers ``DecisionTransformerModel`` weights (the edbeeching Hub repos) to ours.

Layout facts (transformers 4.18 files, docs/references.md section 5): GPT-2 ``Conv1D`` weights are
stored ``[in, out]`` (``y = x @ W + b``) while ours are ``nn.Linear`` ``[out, in]``; the legacy
buffers ``attn.bias`` / ``attn.masked_bias`` are causal-mask constants, not parameters; the encoder
adds ``wpe.weight[0]`` to every token (all-zero position ids) and never uses ``wte``.
"""

from __future__ import annotations

import torch

from seqagents.errors import CheckpointError
from seqagents.models.dt import DTConfig

__all__ = ["dt_config_from_hf", "convert_hf_dt_state_dict"]

_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
_DROPPED = (".wte.weight", ".attn.bias", ".attn.masked_bias")  # unused / mask constants


def dt_config_from_hf(config: dict, context_len: int = 20) -> DTConfig:
    """Our DTConfig from a transformers ``decision_transformer`` config.json.

    The Hub configs carry a stale ``n_embd: 768``; ``hidden_size`` is the real width. They have
    no ``max_length`` key; the DT paper's K = 20 is the default.
    """
    try:
        return DTConfig(
            state_shape=(int(config["state_dim"]),),
            act_dim=int(config["act_dim"]),
            hidden_size=int(config["hidden_size"]),
            n_layer=int(config["n_layer"]),
            n_head=int(config["n_head"]),
            n_inner=config.get("n_inner"),
            activation=config.get("activation_function", "relu"),
            dropout=float(config.get("resid_pdrop", 0.1)),
            max_ep_len=int(config["max_ep_len"]),
            context_len=int(config.get("max_length") or context_len),
            action_tanh=bool(config.get("action_tanh", True)),
            layer_norm_epsilon=float(config.get("layer_norm_epsilon", 1e-5)),
        )
    except KeyError as e:
        raise CheckpointError(f"decision_transformer config.json lacks the key {e}") from e


def convert_hf_dt_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a ``DecisionTransformerModel`` state dict onto :class:`DecisionTransformer` keys."""
    if "encoder.wpe.weight" not in state:
        raise CheckpointError(
            "not a transformers DecisionTransformerModel state dict: no encoder.wpe.weight"
        )
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(_DROPPED):
            continue
        if key == "encoder.wpe.weight":
            out["position_bias"] = value[0].clone()  # (H,): the only row the model uses
            continue
        new = key.replace("encoder.", "transformer.", 1) if key.startswith("encoder.") else key
        if key.endswith(_CONV1D):
            value = value.t().contiguous()  # Conv1D [in, out] -> Linear [out, in]
        out[new] = value
    return out
