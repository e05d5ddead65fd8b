import pytest
import torch

from fourd.errors import ConfigError
from fourd.models.mae import DecoderConfig, MAEConfig, MaskedAutoencoder
from fourd.models.vit import ViTConfig
from fourd.train.optim import OptimConfig, build_adamw, param_groups, scaled_lr


@pytest.fixture
def model():
    enc = ViTConfig(width=32, depth=1, heads=2, mlp=64, patch_size=(2, 8, 8), num_frames=4, image_size=32)
    return MaskedAutoencoder(MAEConfig(encoder=enc, decoder=DecoderConfig(32, 1, 2, 64)))


def test_no_weight_decay_on_norms_biases_and_embeddings(model):
    decay, no_decay = param_groups(model, 0.05, model.no_weight_decay())
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    decay_names = {names[id(p)] for p in decay["params"]}
    assert {"encoder.pos_embed", "decoder.mask_token"} <= no_decay_names
    assert all(n.endswith("bias") or "norm" in n or "embed" in n or "token" in n for n in no_decay_names)
    assert "encoder.blocks.0.attn.qkv.weight" in decay_names and "encoder.patch_embed.weight" in decay_names
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert len(decay_names) + len(no_decay_names) == len(list(model.parameters()))


def test_lr_scales_with_global_batch():
    assert scaled_lr(1.5e-4, 256) == pytest.approx(1.5e-4)
    assert scaled_lr(1.5e-4, 4096) == pytest.approx(2.4e-3)


def test_adamw_betas_and_fused_kernel_by_default(model):
    opt = build_adamw(model, OptimConfig(), lr=1e-3, no_decay_names=model.no_weight_decay())
    assert opt.defaults["betas"] == (0.9, 0.95) and opt.defaults["fused"]
    assert not build_adamw(model, OptimConfig(fused=False), 1e-3, model.no_weight_decay()).defaults["fused"]
    model(torch.rand(2, 3, 4, 32, 32)).loss.backward()
    opt.step()


@pytest.mark.parametrize(
    "field,value",
    [("base_lr", -1e-4), ("base_lr", 0.0), ("base_lr", "abc"), ("base_lr", float("nan")), ("weight_decay", -0.1)]
    + [("min_lr_ratio", 1.5), ("warmup_steps", -3), ("warmup_steps", 2.5), ("betas", (0.9, 1.0))]
    + [("betas", (0.9,)), ("fused", "banana")],
)
def test_settings_that_cannot_work_are_named_as_given(field, value):
    """The message names the optimizer key and the value the user gave (not, e.g., the batch-scaled lr)."""
    with pytest.raises(ConfigError, match=rf"^optimizer\.{field}(\[1\])?="):
        OptimConfig(**{field: value})
