"""Trajectory Transformer network: KV cache, padding, masks, loss, and transformers parity."""

from __future__ import annotations

import pytest
import torch

from seqagents.checkpoints.tt_convert import convert_trajectory_transformer_state_dict
from seqagents.models.kv_cache import KVBuffer
from seqagents.models.tt import TrajectoryTransformer, TTConfig, past_length
from tests._hub import foreign_tt_state_dict, tt_tiny_config

SMALL = dict(
    vocab_size=10,
    observation_dim=3,
    action_dim=2,
    transition_dim=7,
    block_size=34,
    n_layer=2,
    n_head=2,
    n_embd=16,
)


def _model(seed: int = 0, **overrides: object) -> TrajectoryTransformer:
    torch.manual_seed(seed)
    model = TrajectoryTransformer(TTConfig(**{**SMALL, **overrides})).eval()
    with torch.no_grad():  # pos_emb starts at zero; make positions matter
        model.pos_emb.normal_(0.0, 0.5)
    return model


def _tokens(model: TrajectoryTransformer, batch: int, length: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    # Stop token (vocab_size) included.
    return torch.randint(0, model.config.vocab_size + 1, (batch, length), generator=generator)


def test_config_validates_transition_dim() -> None:
    with pytest.raises(ValueError, match="observation_dim \\+ action_dim \\+ 2"):
        TTConfig(observation_dim=11, action_dim=3)  # transition_dim left at 25
    assert TTConfig.from_dict(TTConfig().to_dict()) == TTConfig()
    with pytest.raises(ValueError, match="unknown TTConfig keys"):
        TTConfig.from_dict({"n_layers": 3})


@pytest.mark.parametrize("buffered", [False, True], ids=["ConcatKV", "KVBuffer"])
def test_kv_cached_decoding_matches_full_recompute(buffered: bool) -> None:
    model = _model()
    tokens = _tokens(model, 3, 34)
    with torch.no_grad():
        full, _ = model(tokens)  # (3, 34, N + 1)
        logits, past = model(tokens[:, :9])
        if buffered:
            past = [KVBuffer.from_cache(cache, capacity=34) for cache in past]
        chunks = [logits]
        for start, end in [(9, 10), (10, 17), *((i, i + 1) for i in range(17, 34))]:
            logits, past = model(tokens[:, start:end], past=past)
            chunks.append(logits)
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, atol=1e-5, rtol=0)
    assert past_length(past) == 34


def test_left_padding_matches_unpadded_rows() -> None:
    model = _model()
    tokens = _tokens(model, 3, 28)
    pad = torch.tensor([0, 7, 21])
    with torch.no_grad():
        padded, past = model(tokens[:, :20], pad=pad)
        step, _ = model(tokens[:, 20:28], past=past, pad=pad)
        padded = torch.cat([padded, step], dim=1)
        for row in range(3):
            alone, _ = model(tokens[row : row + 1, pad[row] :])
            torch.testing.assert_close(padded[row, pad[row] :], alone[0], atol=1e-5, rtol=0)
        with pytest.raises(ValueError, match="multiple of transition_dim"):
            model(tokens, pad=torch.tensor([0, 3, 7]))


def test_value_tokens_hidden_and_attention_causal() -> None:
    model = _model()
    tokens = _tokens(model, 1, 21)
    value_position = model.config.transition_dim - 1  # first transition's value token
    changed = tokens.clone()
    changed[0, value_position] = (tokens[0, value_position] + 1) % model.config.vocab_size
    with torch.no_grad():
        before, _ = model(tokens)
        after, _ = model(changed)
    differs = (before - after).abs().amax(dim=-1)[0] > 1e-6  # (T,)
    # Only the value position's own output (its residual stream) sees the value token.
    assert differs.nonzero().flatten().tolist() == [value_position]
    changed = tokens.clone()
    changed[0, 10] = (tokens[0, 10] + 1) % model.config.vocab_size
    with torch.no_grad():
        after, _ = model(changed)
    differs = (before - after).abs().amax(dim=-1)[0] > 1e-6
    assert not differs[:10].any() and differs[10:].all()


def test_block_size_is_enforced() -> None:
    model = _model()
    with pytest.raises(ValueError, match="block_size=34"):
        model(torch.zeros(1, 35, dtype=torch.long))
    _, past = model(torch.zeros(1, 30, dtype=torch.long))
    with pytest.raises(ValueError, match="block_size=34"):
        model(torch.zeros(1, 5, dtype=torch.long), past=past)


def test_loss_weights_target_dimensions() -> None:
    model = _model(action_weight=5.0, reward_weight=2.0, value_weight=3.0)
    tokens = _tokens(model, 2, 20)
    targets = _tokens(model, 2, 20, seed=2)
    mask = torch.ones(2, 20)
    mask[1, 15:] = 0
    with torch.no_grad():
        logits, _ = model(tokens)
        per_token = torch.nn.functional.cross_entropy(
            logits.reshape(-1, 11), targets.reshape(-1), reduction="none"
        ).view(2, 20)
        # target at position i has dimension (i + 1) % 7: obs 0-2, actions 3-4, reward 5, value 6
        weight_of_dim = torch.tensor([1.0, 1, 1, 5, 5, 2, 3])
        weights = weight_of_dim[(torch.arange(20) + 1) % 7]
        expected = (per_token * weights * mask).mean()
        torch.testing.assert_close(model.loss(tokens, targets, mask), expected)


# ------------------------------------------------------------------------------------------------
# Parity with transformers' TrajectoryTransformerModel (removed in transformers 5)


def _reference_model(config_kwargs: dict) -> torch.nn.Module:
    module = pytest.importorskip("transformers.models.deprecated.trajectory_transformer")
    torch.manual_seed(0)
    config = module.TrajectoryTransformerConfig(**config_kwargs)
    model = module.TrajectoryTransformerModel(config).eval()
    with torch.no_grad():  # pos_emb, biases and LayerNorms start trivial; randomize everything
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return model


@pytest.mark.parity
@pytest.mark.parametrize(
    "config_kwargs, length",
    [
        pytest.param(
            dict(
                vocab_size=10, observation_dim=3, action_dim=2, transition_dim=7, block_size=34,
                n_layer=2, n_head=2, n_embd=16, action_weight=5, reward_weight=2, value_weight=3,
            ),
            34,
            id="small",
        ),
        pytest.param({}, 249, id="halfcheetah-defaults"),  # transformers' defaults = halfcheetah
    ],
)  # fmt: skip
def test_parity_with_transformers(config_kwargs: dict, length: int) -> None:
    reference = _reference_model(config_kwargs)
    state_dict = reference.state_dict()
    # The Hub files also hold the (persistent, in the original) attention-mask buffers.
    state_dict["blocks.0.attn.mask"] = torch.ones(1, 1, 4, 4)
    config, converted = convert_trajectory_transformer_state_dict(
        state_dict, reference.config.to_dict()
    )
    ours = TrajectoryTransformer(config).eval()
    ours.load_state_dict(converted, strict=True)
    tokens = torch.randint(0, config.vocab_size + 1, (2, length), generator=torch.Generator())
    tokens[0, 5] = config.vocab_size  # a stop token for sure
    mask = torch.ones(2, length)
    mask[1, length // 2 :] = 0
    targets = torch.randint(0, config.vocab_size + 1, (2, length))
    with torch.no_grad():
        expected = reference(tokens, targets=targets, attention_mask=mask, return_dict=True)
        logits, _ = ours(tokens)
        loss = ours.loss(tokens, targets, mask)
    torch.testing.assert_close(logits, expected.logits, atol=1e-5, rtol=0)
    if length % config.transition_dim == config.transition_dim - 1:  # their loss weights' shape
        torch.testing.assert_close(loss, expected.loss, atol=1e-5, rtol=1e-5)


def test_converter_accepts_prefix_and_names_bad_keys() -> None:
    config_dict = {**tt_tiny_config("pendulum"), **SMALL, "block_size": 34}
    state = foreign_tt_state_dict(config_dict)  # transformers' layout, made without it
    prefixed = {f"trajectory_transformer.{k}": v for k, v in state.items()}
    config, converted = convert_trajectory_transformer_state_dict(prefixed, config_dict)
    assert config.n_layer == 2 and config.transition_dim == 7

    broken = dict(state)
    del broken["blocks.1.attn.key.weight"], broken["blocks.0.ln2.bias"]
    broken["blocks.0.attn.rotary"] = torch.zeros(1)
    with pytest.raises(ValueError) as error:
        convert_trajectory_transformer_state_dict(broken, config_dict)
    message = str(error.value)
    for name in ("blocks.1.attn.key.weight", "blocks.0.ln2.bias", "blocks.0.attn.rotary"):
        assert name in message

    with pytest.raises(ValueError, match="tok_emb.weight: checkpoint"):
        convert_trajectory_transformer_state_dict(state, {**config_dict, "vocab_size": 11})
    with pytest.raises(ValueError, match="model_type"):
        convert_trajectory_transformer_state_dict(state, {**config_dict, "model_type": "gpt2"})


def test_kv_buffer_capacity_and_select() -> None:
    model = _model()
    tokens = _tokens(model, 2, 12)
    with torch.no_grad():
        _, caches = model(tokens[:, :10])
        buffers = [KVBuffer.from_cache(cache, capacity=11) for cache in caches]
        swapped = [buffer.select(torch.tensor([1, 0])) for buffer in buffers]
        expected, _ = model(tokens[[1, 0], :11])
        logits, _ = model(tokens[[1, 0], 10:11], past=swapped)
        torch.testing.assert_close(logits[:, 0], expected[:, 10], atol=1e-5, rtol=0)
        with pytest.raises(ValueError, match="KVBuffer holds 11 tokens, 12 needed"):
            model(tokens[:, 10:12], past=buffers)
