from __future__ import annotations

import pytest
import torch

from fourd.data.synthetic import SyntheticVideoDataset


def test_clips_have_the_requested_shape_and_fill_the_value_range():
    dataset = SyntheticVideoDataset(num_clips=5, num_frames=7, size=40, num_shapes=2)
    items = [dataset[i] for i in range(len(dataset))]

    assert len(dataset) == 5
    for item in items:
        assert item["skipped"] == 0
        assert item["video"].dtype == torch.uint8 and item["video"].shape == (3, 7, 40, 40)
    values = torch.stack([item["video"] for item in items]).float()
    assert 70 < values.mean() < 190 and values.std() > 30
    assert values.min() < 40 and values.max() > 215
    with pytest.raises(IndexError):
        dataset[5]


def test_large_frames_and_no_shapes_work():
    assert SyntheticVideoDataset(num_frames=2, size=224)[0]["video"].shape == (3, 2, 224, 224)
    assert SyntheticVideoDataset(num_frames=1, size=8, num_shapes=0)[0]["video"].shape == (3, 1, 8, 8)


def test_clip_depends_only_on_seed_and_index():
    torch.manual_seed(1)
    first = SyntheticVideoDataset(seed=3)[5]["video"]
    torch.manual_seed(2)
    assert torch.equal(SyntheticVideoDataset(seed=3)[5]["video"], first)
    assert not torch.equal(SyntheticVideoDataset(seed=3)[6]["video"], first)
    assert not torch.equal(SyntheticVideoDataset(seed=4)[5]["video"], first)


def test_neighbouring_frames_are_closer_than_frames_of_other_clips():
    dataset = SyntheticVideoDataset(num_clips=8, num_frames=8, size=32)
    clips = torch.stack([dataset[i]["video"] for i in range(len(dataset))]).float()  # (N, C, T, H, W)

    between_frames = (clips[:, :, 1:] - clips[:, :, :-1]).abs().mean()
    between_clips = (clips - clips.roll(1, dims=0)).abs().mean()
    assert 0.5 < between_frames < between_clips / 3  # moving, yet strongly correlated in time
