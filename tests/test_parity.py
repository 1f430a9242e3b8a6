"""The transformers-layout files that tests/_hub.py makes without transformers are what
transformers' own models hold: they load there key for key and compute what our converted
networks compute. Runs in the parity environment (`make test-parity`, transformers 4.57)."""

from __future__ import annotations

import pytest
import torch

from seqagents.checkpoints.hf_dt import convert_hf_dt_state_dict, dt_config_from_hf
from seqagents.checkpoints.tt_convert import convert_trajectory_transformer_state_dict
from seqagents.models.dt import DecisionTransformer
from seqagents.models.tt import TrajectoryTransformer
from tests._hub import (
    edbeeching_config,
    foreign_dt_state_dict,
    foreign_tt_state_dict,
    tt_tiny_config,
)

pytestmark = pytest.mark.parity


def test_foreign_dt_files_are_a_transformers_decision_transformer():
    transformers = pytest.importorskip("transformers")
    config = edbeeching_config("halfcheetah-medium")
    state = foreign_dt_state_dict(config)
    hf_config = transformers.DecisionTransformerConfig(
        **{k: v for k, v in config.items() if not k.startswith("_")}
    )
    reference = transformers.DecisionTransformerModel(hf_config).eval()
    result = reference.load_state_dict(state, strict=False)
    assert result.missing_keys == []
    assert all(k.endswith((".attn.bias", ".attn.masked_bias")) for k in result.unexpected_keys)
    ours = DecisionTransformer(dt_config_from_hf(config)).eval()
    ours.load_state_dict(convert_hf_dt_state_dict(state))
    K = 5
    states, actions = torch.randn(1, K, 17), torch.randn(1, K, 6).clamp(-1, 1)
    rtg, timesteps = torch.randn(1, K, 1), torch.arange(K)[None]
    with torch.no_grad():
        _, expected, _ = reference(
            states=states,
            actions=actions,
            rewards=None,
            returns_to_go=rtg,
            timesteps=timesteps,
            attention_mask=torch.ones(1, K, dtype=torch.long),
            return_dict=False,
        )
        got = ours.act(states, actions, rtg, timesteps, torch.ones(1, K, dtype=torch.bool))
    torch.testing.assert_close(got, expected[:, -1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["pendulum", "halfcheetah"])
def test_foreign_tt_files_are_a_transformers_trajectory_transformer(name):
    module = pytest.importorskip("transformers.models.deprecated.trajectory_transformer")
    config = tt_tiny_config(name)
    state = foreign_tt_state_dict(config)
    kwargs = {k: v for k, v in config.items() if k not in ("model_type", "transformers_version")}
    reference = module.TrajectoryTransformerModel(module.TrajectoryTransformerConfig(**kwargs))
    reference.load_state_dict(state, strict=True)
    tt_config, converted = convert_trajectory_transformer_state_dict(state, config)
    ours = TrajectoryTransformer(tt_config).eval()
    ours.load_state_dict(converted, strict=True)
    tokens = torch.randint(0, tt_config.vocab_size, (2, tt_config.transition_dim * 2))
    with torch.no_grad():
        expected = reference.eval()(tokens, return_dict=True).logits
        logits, _ = ours(tokens)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)
