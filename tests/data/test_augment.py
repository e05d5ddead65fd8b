from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from fourd.data.augment import AugmentedSplit, ProbeAugment, random_crop_flip, random_resized_box
from fourd.data.readers.geometry import (
    map_pixels,
    pixel_map_matrix,
    resize_with_geometry,
    resized_crop_with_geometry,
)
from fourd.data.sampler import SampleKey
from fourd.data.transforms import Crop
from fourd.data.world import WorldConfig, render_world_clip
from fourd.errors import ConfigError
from fourd.probe.metrics.pose import pose_metrics, relative_poses

CONFIG = WorldConfig(num_frames=4, size=48, num_points=64, num_objects=3, seed=0)
MIRROR = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))
CROPS = (Crop(6, 10, 30, 24, True), Crop(0, 20, 28, 28, False), Crop(12, 0, 36, 30, True))  # within 48 x 48


@functools.cache
def world_item(index: int = 0) -> dict:
    """A 4D-world clip as WorldDataset gives it, plus its geometry (points_world, object_id) as tensors."""
    clip = render_world_clip(CONFIG, index, return_geometry=True)
    item = {key: torch.as_tensor(value) for key, value in clip.items()}
    item["video"] = item["video"].permute(3, 0, 1, 2).contiguous()
    item["label"] = item["label"].to(torch.int64)
    return item


def synthetic_item(height: int = 20, width: int = 40) -> dict:
    generator = torch.Generator().manual_seed(0)
    return {
        "video": torch.randint(0, 256, (3, 2, height, width), dtype=torch.uint8, generator=generator),
        "depth": torch.rand(2, height, width, generator=generator) * (torch.rand(2, height, width) > 0.2),
        "intrinsics": torch.tensor([[30.0, 0.0, 20.0], [0.0, 25.0, 10.0], [0.0, 0.0, 1.0]]).expand(2, 3, 3),
        "world_to_camera": torch.linalg.matrix_exp(torch.randn(2, 4, 4, generator=generator) * 0.1),
        "tracks": torch.rand(5, 2, 2, generator=generator) * torch.tensor([width, height]),
        "occluded": torch.rand(5, 2, generator=generator) > 0.5,
        "query_points": torch.tensor([[0.0, 5.0, 10.0], [1.0, 15.5, 30.25]]),
        "boxes": torch.tensor([[[0.05, 0.15, 0.3, 0.45], [0.75, 0.05, 0.975, 0.95]]])
        * torch.tensor([width, height]).repeat(2),
        "box_visible": torch.tensor([[True, True]]),
        "label": torch.tensor(3),
        "index": torch.tensor(7),
        "skipped": 0,
    }


def assert_items_equal(a: dict, b: dict, exact: bool = True) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor) and a[key].is_floating_point() and not exact:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-4, msg=key)
        else:
            assert torch.equal(torch.as_tensor(a[key]), torch.as_tensor(b[key])), key


def bilinear(video: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Colours (P, T, C) of uint8 video (C, T, H, W) at pixel points (P, T, 2) (x, y), bilinear."""
    c, t, h, w = video.shape
    frames = video.permute(1, 0, 2, 3).float()  # T C H W
    grid = (2 * xy / torch.tensor([w, h]) - 1).transpose(0, 1)[:, :, None]  # T P 1 2
    return F.grid_sample(frames, grid, align_corners=False).squeeze(-1).permute(2, 0, 1)


def unproject(depth: torch.Tensor, intrinsics: torch.Tensor, world_to_camera: torch.Tensor) -> torch.Tensor:
    """World points (T, H, W, 3) of every pixel centre's depth (float64)."""
    t, h, w = depth.shape
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    pixels = torch.stack([xs, ys, torch.ones_like(xs)], -1).double()
    rays = pixels @ torch.linalg.inv(intrinsics.double()).transpose(-1, -2)[:, None]  # T H W 3, z = 1
    camera = torch.cat([rays * depth.double()[..., None], torch.ones(t, h, w, 1, dtype=torch.float64)], -1)
    return (camera @ torch.linalg.inv(world_to_camera.double()).transpose(-1, -2)[:, None])[..., :3]


# ----------------------------------------------------------------------------------------------- the draw


def test_box_draw_is_torchvisions_from_a_generator_and_falls_back_to_the_centre():
    for seed in range(50):
        torch.manual_seed(seed)
        expected = v2.RandomResizedCrop.get_params(torch.empty(0, 30, 50), [0.3, 1.0], [3 / 4, 4 / 3])
        assert random_resized_box(30, 50, (0.3, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(seed)) == tuple(
            expected
        )
    assert random_resized_box(20, 20, (1.0, 1.0), (2.0, 2.0), torch.Generator()) == (5, 0, 10, 20)  # never fits


def test_draw_is_reproducible_and_flips_at_the_given_rate():
    augment = ProbeAugment(flip=0.25)
    draws = [augment.draw(40, 60, torch.Generator().manual_seed(seed)) for seed in range(400)]
    assert draws == [augment.draw(40, 60, torch.Generator().manual_seed(seed)) for seed in range(400)]
    assert 0.18 < np.mean([d.flip for d in draws]) < 0.32
    assert len(set(draws)) > 300
    assert all(0 <= d.top and d.top + d.height <= 40 and 0 <= d.left and d.left + d.width <= 60 for d in draws)


def test_config_builds_the_augmentation_or_none_and_rejects_bad_settings():
    built = ProbeAugment.from_config({"scale": [0.3, 1.0], "ratio": [0.75, 1.333], "flip": 0.5})
    assert built == ProbeAugment((0.3, 1.0), (0.75, 1.333), 0.5) and isinstance(built.scale, tuple)
    assert ProbeAugment.from_config(None) is None
    for bad in ({"scale": [0.5, 0.3]}, {"scale": [0.3, 1.5]}, {"ratio": [0, 1]}, {"flip": 2}, {"crop": 1}):
        with pytest.raises(ConfigError):
            ProbeAugment.from_config(bad)


# ------------------------------------------------------------------------------------------ the geometry


def test_identity_settings_equal_the_plain_resize_exactly():
    item = synthetic_item(20, 40)
    out = random_crop_flip(item, 16, torch.Generator().manual_seed(3), scale=(1.0, 1.0), ratio=(2.0, 2.0), flip=0.0)
    assert_items_equal(out, resize_with_geometry(item, 16))
    assert torch.equal(out["video"], TF.resize(item["video"], [16, 16], antialias=True))
    assert out["label"] is item["label"] and out["index"] is item["index"] and out["skipped"] == 0


def test_flip_twice_gives_back_the_item():
    item = synthetic_item(24, 24)
    whole = Crop(0, 0, 24, 24, True)
    once = resized_crop_with_geometry(item, whole, 24)
    assert not torch.equal(once["video"], item["video"])
    assert torch.equal(once["boxes"][..., 0], 24 - item["boxes"][..., 2])  # x0 <= x1 again
    assert_items_equal(resized_crop_with_geometry(once, whole, 24), item, exact=False)


def test_tracks_land_on_the_same_colours_and_leave_the_crop_occluded():
    item = world_item()
    visible = ~item["occluded"]
    before = bilinear(item["video"], item["tracks"])
    for crop in CROPS:
        out = resized_crop_with_geometry(item, crop, 48)
        kept = visible & ~out["occluded"]
        error = (bilinear(out["video"], out["tracks"]) - before).abs().mean(-1)[kept].mean()
        unflipped = map_pixels(item["tracks"], crop._replace(flip=False), 48)
        unshifted = map_pixels(item["tracks"], crop._replace(top=0, left=0), 48)
        wrong = [(bilinear(out["video"], xy) - before).abs().mean(-1)[kept].mean() for xy in (unflipped, unshifted)]
        assert kept.sum() > 20 and error < 3 and wrong[1] > 4 * error and (not crop.flip or wrong[0] > 4 * error)
        x, y = item["tracks"].unbind(-1)
        outside = (x < crop.left) | (x >= crop.left + crop.width) | (y < crop.top) | (y >= crop.top + crop.height)
        assert torch.equal(out["occluded"], item["occluded"] | outside)


def test_cameras_reproject_the_world_into_the_crop():
    """The new intrinsics and world_to_camera project every track's world point onto its mapped track, and the
    new depth map unprojects to the world points of the original pixels it was sampled from."""
    item = world_item()
    world = torch.cat([item["points_world"], torch.ones(*item["points_world"].shape[:2], 1)], -1)  # P T 4
    for crop in CROPS:
        out = resized_crop_with_geometry(item, crop, 48)
        camera = torch.einsum("tij,ptj->pti", out["world_to_camera"].double(), world)[..., :3]
        pixels = torch.einsum("tij,ptj->pti", out["intrinsics"].double(), camera)
        in_front = camera[..., 2] > 0.1
        projected = pixels[..., :2] / pixels[..., 2:]
        torch.testing.assert_close(projected[in_front], out["tracks"].double()[in_front], rtol=0, atol=1e-3)

        new, old = (unproject(x["depth"], x["intrinsics"], x["world_to_camera"]) for x in (out, item))
        centres = torch.arange(48, dtype=torch.float64) + 0.5  # output pixel centres, back in the frame:
        back = torch.linalg.inv(pixel_map_matrix(crop, 48))
        xs = torch.floor(back[0, 0] * centres + back[0, 2]).long()
        ys = torch.floor(back[1, 1] * centres + back[1, 2]).long()
        assert torch.equal(out["depth"], item["depth"][:, ys][:, :, xs])  # nearest: the pixel holding the centre
        focal = item["intrinsics"][0].diagonal()[:2].double()
        bound = out["depth"].double() * 0.5 * (1 / focal**2).sum().sqrt() + 1e-4  # half an original pixel off
        assert ((new - old[:, ys][:, :, xs]).norm(dim=-1) <= bound).all()


def test_flip_keeps_relative_poses_rotations_and_the_pose_metric():
    item = world_item(1)
    out = resized_crop_with_geometry(item, CROPS[0], 48)
    relative = relative_poses(out["world_to_camera"].double())
    assert torch.allclose(torch.linalg.det(relative[:, :3, :3]), torch.ones(len(relative), dtype=torch.float64))
    original = relative_poses(item["world_to_camera"].double())
    flipped_back = MIRROR.double() @ relative @ MIRROR.double()
    assert torch.allclose(flipped_back, original, atol=1e-5)
    assert not torch.allclose(relative, original, atol=1e-3)  # the clip's camera moves sideways too
    noise = torch.linalg.matrix_exp(torch.randn(len(original), 4, 4, dtype=torch.float64) * 0.05)
    noise[:, 3] = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    pred = original @ noise
    in_flipped_frame = pose_metrics((MIRROR.double() @ pred @ MIRROR.double()).numpy(), relative.numpy())
    for key, value in pose_metrics(pred.numpy(), original.numpy()).items():
        assert in_flipped_frame[key] == pytest.approx(value, abs=1e-3), key


def test_boxes_keep_their_object_pixels_and_hide_when_cropped_away():
    item = world_item()
    ys, xs = torch.meshgrid(torch.arange(48) + 0.5, torch.arange(48) + 0.5, indexing="ij")
    centres = torch.stack([xs, ys], -1)
    for crop in CROPS:
        out = resized_crop_with_geometry(item, crop, 48)
        boxes = out["boxes"]
        assert (boxes[..., 0] <= boxes[..., 2]).all() and (boxes[..., 1] <= boxes[..., 3]).all()
        mapped = map_pixels(centres, crop, 48)
        inside = ((mapped >= 0) & (mapped < 48)).all(-1)
        for obj in range(len(boxes)):
            for t in range(boxes.shape[1]):
                points = mapped[(item["object_id"][t] == obj) & inside]
                x0, y0, x1, y1 = boxes[obj, t]
                contained = (points[:, 0] >= x0 - 1e-3) & (points[:, 0] <= x1 + 1e-3)
                contained &= (points[:, 1] >= y0 - 1e-3) & (points[:, 1] <= y1 + 1e-3)
                assert contained.all(), (crop, obj, t)
                if len(points):  # the object shows in the crop
                    assert out["box_visible"][obj, t], (crop, obj, t)
    item = synthetic_item(20, 40)
    out = resized_crop_with_geometry(item, Crop(0, 0, 20, 20, True), 20)  # the second box lies right of the crop
    assert out["box_visible"].tolist() == [[True, False]]
    assert torch.equal(out["boxes"][0, 0], torch.tensor([8.0, 3.0, 18.0, 9.0]))


# --------------------------------------------------------------------------------------------- the split


def test_split_redraws_crops_from_seed_epoch_and_index():
    items = [world_item(0), world_item(1)]
    split = AugmentedSplit(items, 32, ProbeAugment(), seed=5)
    first = [split[SampleKey(0, i, i)] for i in range(2)]
    again = AugmentedSplit(items, 32, ProbeAugment(), seed=5)
    assert len(again) == 2
    for a, b in zip(first, [again[SampleKey(0, 7, i)] for i in range(2)], strict=True):
        assert_items_equal({**a, "position": 0}, {**b, "position": 0})  # the place in the stream draws nothing
    assert all(not torch.equal(split[SampleKey(1, i, i)]["video"], first[i]["video"]) for i in range(2))
    assert_items_equal(split[SampleKey(0, 1, 1)], first[1])
    assert first[0]["video"].shape == (3, CONFIG.num_frames, 32, 32) and first[1]["epoch"] == 0
