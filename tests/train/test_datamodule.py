"""The data module names the unreadable videos its batches passed over, whichever worker process read them."""

from __future__ import annotations

import warnings
from collections import Counter

import pytest
import torch

from fourd.data.clips import VideoClipDataset
from fourd.errors import ConfigError
from fourd.train.datamodule import VideoDataModule
from tests.helpers.videos import write_broken_video, write_test_video


def test_batches_name_the_unreadable_videos_their_items_passed_over_in_every_epoch(tmp_path):
    empty = write_broken_video(tmp_path / "a_empty.mp4", "empty")
    text = write_broken_video(tmp_path / "b_text.mp4", "text")
    for name in ("c", "d"):
        write_test_video(tmp_path / f"{name}.mp4")
    module = VideoDataModule(VideoClipDataset(tmp_path, num_frames=2, stride=1, size=16), batch_size=2, num_workers=2)

    names, passes = Counter(), 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):  # two epochs, each loader with its own worker processes
            for batch in module.train_dataloader():
                batch = module.on_before_batch_transfer(batch, 0)
                names.update(batch["unreadable"])
                passes += batch["skipped"]

    # items 0 and 1 of each epoch read c.mp4, item 0 after a_empty.mp4 and b_text.mp4, item 1 after b_text.mp4
    assert names == {str(empty): 2, str(text): 4} and passes == 6


def test_batches_of_a_dataset_that_never_skips_name_nothing():
    module = VideoDataModule([{"video": 0, "skipped": 0}] * 2, batch_size=2)
    batch = module.on_before_batch_transfer(next(iter(module.train_dataloader())), 0)
    assert batch["unreadable"] == [] and batch["skipped"] == 0


def test_repeated_sampling_batches_hold_batch_size_clips_of_fewer_videos(tmp_path):
    for name in ("c", "d", "e", "f"):
        write_test_video(tmp_path / f"{name}.mp4", num_frames=6)
    dataset = VideoClipDataset(tmp_path, num_frames=2, stride=1, size=16, repeats=2)
    module = VideoDataModule(dataset, batch_size=4, repeated_sampling=2)
    batch = module.on_before_batch_transfer(next(iter(module.train_dataloader())), 0)
    assert batch["video"].shape == (4, 3, 2, 16, 16) and len(batch["index"]) == 2  # 2 videos, 2 clips each
    assert module.items_per_batch == 2
    with pytest.raises(ConfigError, match="batch size 3 is not a multiple of the clips per video"):
        VideoDataModule(dataset, batch_size=3, repeated_sampling=2)
    with pytest.raises(ConfigError, match="repeated_sampling=1, but the dataset"):
        VideoDataModule(dataset, batch_size=4)


def test_device_augmentation_gives_the_worker_clips_cropped_after_transfer(tmp_path):
    for name, height, width in [("c", 48, 64), ("d", 64, 80), ("e", 48, 64), ("f", 64, 96)]:  # sizes differ
        write_test_video(tmp_path / f"{name}.mp4", num_frames=6, height=height, width=width)
    batches = {}
    for augment in ("workers", "device"):
        dataset = VideoClipDataset(tmp_path, num_frames=2, stride=1, size=16, repeats=2, augment=augment)
        module = VideoDataModule(dataset, batch_size=4, repeated_sampling=2, seed=3)
        batch = module.on_before_batch_transfer(next(iter(module.train_dataloader())), 0)
        batches[augment] = module.on_after_batch_transfer(batch, 0)
    in_workers, on_device = batches["workers"], batches["device"]
    assert "frames" not in on_device and "crops" not in on_device
    assert on_device["video"].dtype == torch.uint8 and on_device["video"].shape == in_workers["video"].shape
    assert torch.equal(on_device["index"], in_workers["index"])
    difference = (on_device["video"].float() - in_workers["video"].float()).abs()
    assert difference.mean() < 2  # the same crops and flips, resampled by another filter
    with pytest.raises(ValueError, match="augment='gpu'"):
        VideoClipDataset(tmp_path, augment="gpu")
