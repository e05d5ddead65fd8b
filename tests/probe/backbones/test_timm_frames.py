"""The timm adapter hands the readout exactly timm's own tokens, frame by frame, at the official layer."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from einops import rearrange
from safetensors.torch import save_file
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from fourd.probe.backbones import BackboneError, load_backbone

MODEL = "vit_small_patch14_dinov2"


@pytest.fixture(scope="module")
def dinov2(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, str]:
    torch.manual_seed(0)
    model = timm.create_model(MODEL, pretrained=False, dynamic_img_size=True).eval()
    path = tmp_path_factory.mktemp("timm") / "dinov2.safetensors"
    save_file(model.state_dict(), str(path))
    return model, f"timm:{MODEL}@{path}"


def test_features_are_timms_own_block_output_on_frames_of_another_size(dinov2) -> None:
    model, spec = dinov2
    backbone = load_backbone(spec, {})
    video = torch.rand(2, 3, 4, 60, 44)  # native 518x518; rounded to 56x42 (4x3 patches of 14)
    features = backbone.features(video)

    frames = rearrange(video, "b c t h w -> (b t) c h w")
    frames = F.interpolate(frames, size=(56, 42), mode="bilinear", antialias=True, align_corners=False)
    mean, std = torch.tensor(IMAGENET_DEFAULT_MEAN), torch.tensor(IMAGENET_DEFAULT_STD)
    frames = (frames - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    with torch.no_grad():  # 12 blocks: the official list's entry int(13 * 0.95) - 1 = 11 is block 9's output
        (expected,) = model.forward_intermediates(frames, indices=[9], output_fmt="NLC", intermediates_only=True)
    assert backbone.token_grid((4, 60, 44)) == (4, 4, 3)
    assert features.shape == (2, 4, 12, 384)
    torch.testing.assert_close(features, rearrange(expected, "(b t) n d -> b t n d", b=2), atol=1e-5, rtol=1e-5)
    assert backbone.width == 384 and backbone.params == sum(p.numel() for p in model.parameters())


def test_weights_of_another_model_are_counted_and_named_in_one_line(dinov2, tmp_path) -> None:
    model, spec = dinov2
    with pytest.raises(BackboneError) as wider:
        load_backbone(spec.replace(MODEL, "vit_base_patch14_dinov2"), {})
    message = str(wider.value)
    assert "\n" not in message and len(message) < 300
    assert message.endswith(  # every one of the 174 tensors is wider in the base model
        "weights of another model: 174 of another shape (cls_token: [1, 1, 384] in the file, [1, 1, 768] in the "
        "model, ...)"
    )
    weights = {k: v for k, v in model.state_dict().items() if k != "norm.bias"} | {"head.extra": torch.zeros(2)}
    save_file(weights, str(tmp_path / "edited.safetensors"))
    with pytest.raises(BackboneError, match=r": 1 keys missing \(norm\.bias\); 1 keys unexpected \(head\.extra\)$"):
        load_backbone(f"timm:{MODEL}@{tmp_path / 'edited.safetensors'}", {})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("timm:vit_small_patch14_dinov2", "timm:MODEL_NAME@"),
        ("timm:no_such_model@{weights}", "timm has no model 'no_such_model'"),
        ("timm:vit_small_patch14_dinov2@/no/such.safetensors", "no weights file"),
    ],
)
def test_bad_specs_stop_with_one_line(dinov2, spec: str, message: str) -> None:
    weights = dinov2[1].partition("@")[2]
    with pytest.raises(BackboneError, match=message):
        load_backbone(spec.format(weights=weights), {})
