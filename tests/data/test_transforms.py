"""The batched device crop gives the clips the workers would have made, for videos of different sizes in one batch."""

import pytest
import torch

from fourd.data.transforms import ClipTransform, Crop, crop_batch, pad_frames


def smooth_frames(t: int, h: int, w: int, seed: int) -> torch.Tensor:
    """uint8 (T, H, W, C) frames with structure at every scale: upsampled noise plus a diagonal ramp."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(t, 3, h // 4, w // 4, generator=generator)
    noise = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    ramp = (torch.arange(h)[:, None] / h + torch.arange(w)[None, :] / w) / 2
    return ((noise * 0.7 + ramp * 0.3) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def test_device_crops_match_the_worker_crops_of_the_same_draws():
    transform = ClipTransform(32, train=True)
    videos = [smooth_frames(4, 60, 80, seed=0), smooth_frames(4, 48, 64, seed=1)]  # two sizes in one batch
    torch.manual_seed(0)
    items = [transform.clips(frames, 3, "device") for frames in videos]
    crops = torch.stack([item["crops"] for item in items])
    assert crops.shape == (2, 3, 5) and crops[..., 4].any() and not crops[..., 4].all()  # some flipped, some not
    on_device = crop_batch(pad_frames(videos), crops, 32)
    assert on_device.dtype == torch.uint8 and on_device.shape == (6, 3, 4, 32, 32)
    in_workers = torch.stack(
        [
            transform.apply(frames.permute(0, 3, 1, 2), Crop(*crop.tolist())).permute(1, 0, 2, 3)
            for frames, item in zip(videos, items, strict=True)
            for crop in item["crops"]
        ]
    )
    difference = (on_device.float() - in_workers.float()).abs()
    assert difference.mean() < 1.5 and difference.quantile(0.99) < 8  # of 255: resampling filters, not content
    shuffled = in_workers[[1, 2, 0, 4, 5, 3]]  # each clip against another crop of the same video
    assert (on_device.float() - shuffled.float()).abs().mean() > 10


def test_crops_at_the_edge_of_a_smaller_video_never_read_the_padding():
    red = torch.zeros(2, 24, 40, 3, dtype=torch.uint8)
    red[..., 0] = 255
    blue = torch.zeros(2, 48, 64, 3, dtype=torch.uint8)
    blue[..., 2] = 255
    corner = [[12, 20, 12, 20, 1], [0, 0, 24, 40, 0]]  # the bottom right quarter (flipped), the whole frame
    crops = torch.tensor([corner, [[0, 0, 48, 64, 0], [40, 56, 8, 8, 0]]])
    clips = crop_batch(pad_frames([red, blue]), crops, 16)
    assert (clips[:2, 0] == 255).all() and (clips[:2, 1:] == 0).all()  # red only, up to its last pixel
    assert (clips[2:, 2] == 255).all() and (clips[2:, :2] == 0).all()


@pytest.mark.parametrize("flip", [0, 1])
def test_a_crop_is_the_frame_region_it_names(flip):
    frames = torch.arange(2 * 8 * 8 * 3, dtype=torch.float32).view(2, 8, 8, 3).remainder(251).to(torch.uint8)
    clip = crop_batch(frames[None], torch.tensor([[[2, 4, 4, 4, flip]]]), 4)[0]  # same size: a plain copy
    region = frames[:, 2:6, 4:8].permute(3, 0, 1, 2)  # (C, T, 4, 4)
    assert torch.equal(clip, region.flip(-1) if flip else region)


def test_eval_crop_is_the_centred_square():
    assert ClipTransform(32, train=False).draw(48, 64) == Crop(0, 8, 48, 48, False)
