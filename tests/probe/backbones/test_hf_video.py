"""The transformers adapter hands the readout exactly the model's own hidden state at the official layer, for
clips of another size than the model's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers
from einops import rearrange
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from fourd.probe.backbones import BackboneError, load_backbone

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
SMALL = {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 64}


def reference_pixels(
    video: torch.Tensor, frames: list[int], size: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """The adapter's input convention, written out: those frames, antialiased bilinear, normalised, (B, T, C, H, W)."""
    x = rearrange(video[:, :, frames], "b c t h w -> (b t) c h w")
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return rearrange(x, "(b t) c h w -> b t c h w", b=video.shape[0])


def block_input(model: torch.nn.Module, blocks: torch.nn.ModuleList, index: int, **inputs) -> torch.Tensor:
    """What block `index` receives in the library's own forward."""
    captured = []
    hook = blocks[index].register_forward_pre_hook(lambda _, args: captured.append(args[0]))
    with torch.no_grad():
        model(**inputs)
    hook.remove()
    return captured[0]


@pytest.fixture(scope="module")
def videomae(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    config = transformers.VideoMAEConfig(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, **SMALL)
    model = transformers.VideoMAEModel(config).eval()
    folder = tmp_path_factory.mktemp("hf") / "videomae"
    model.save_pretrained(folder)
    transformers.VideoMAEImageProcessor(image_mean=list(MEAN), image_std=list(STD)).save_pretrained(folder)
    return model, folder


def test_videomae_features_are_the_models_own_at_the_official_layer(videomae) -> None:
    model, folder = videomae
    backbone = load_backbone(f"hf:{folder}", {})
    video = torch.rand(2, 3, 8, 40, 48)  # native: 4 frames of 32x32
    features = backbone.features(video)
    pixels = reference_pixels(video, [0, 2, 5, 7], 32, MEAN, STD)
    # 3 blocks: the official list's entry int(4 * 0.95) - 1 = 2 is the input of block 1
    expected = block_input(model, model.encoder.layer, 1, pixel_values=pixels)
    assert backbone.token_grid((8, 40, 48)) == (2, 4, 4)
    assert features.shape == (2, 2, 16, 32)
    torch.testing.assert_close(features, rearrange(expected, "b (t n) d -> b t n d", t=2), atol=1e-5, rtol=1e-5)


def test_vjepa2_features_are_the_models_own_at_the_official_layer(tmp_path) -> None:
    torch.manual_seed(0)
    config = transformers.VJEPA2Config(
        crop_size=32, frames_per_clip=4, tubelet_size=2, patch_size=8, hidden_size=32, num_hidden_layers=3,
        num_attention_heads=2, mlp_ratio=2.0, pred_hidden_size=16, pred_num_hidden_layers=1,
        pred_num_attention_heads=2,
    )  # fmt: skip
    model = transformers.VJEPA2Model(config).eval()
    model.save_pretrained(tmp_path)  # no processor saved: ImageNet's mean and std
    backbone = load_backbone(f"hf:{tmp_path}", {})
    video = torch.rand(1, 3, 8, 24, 24)
    features = backbone.features(video)
    pixels = reference_pixels(video, [0, 2, 5, 7], 32, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    expected = block_input(model, model.encoder.layer, 1, pixel_values_videos=pixels, skip_predictor=True)
    assert features.shape == (1, 2, 16, 32)
    torch.testing.assert_close(features, rearrange(expected, "b (t n) d -> b t n d", t=2), atol=1e-5, rtol=1e-5)


def test_a_folder_without_a_model_stops_with_one_line(tmp_path) -> None:
    with pytest.raises(BackboneError, match="holds no config.json"):
        load_backbone(f"hf:{tmp_path}", {})
