"""Tar shards in video2dataset's layout: every sample once per epoch across ranks and workers, corrupt samples
skipped and counted, and a resumed run continuing every stream from the same sample."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import webdataset as wds
from torch.utils.data import DataLoader

from fourd.data.shards import ShardClipDataset
from fourd.train.datamodule import StreamDataModule
from tests.helpers.videos import write_broken_video, write_test_video

SHARDS, PER_SHARD = 6, 3


def write_shards(folder: Path, broken: tuple[int, int] | None = None) -> str:
    """SHARDS tars of PER_SHARD samples (NNNNN.mp4 + NNNNN.json, as video2dataset writes them), each video a
    distinct colour; `broken` (shard, sample) holds a truncated file instead. Returns the brace pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    for shard in range(SHARDS):
        with wds.TarWriter(str(folder / f"{shard:05d}.tar")) as tar:
            for sample in range(PER_SHARD):
                key = f"{shard:05d}{sample:04d}"
                video = folder / f"{key}.mp4"
                if (shard, sample) == broken:
                    write_broken_video(video, "truncated")
                else:
                    write_test_video(video, num_frames=6, height=32, width=40, colour=(20 * shard, 60 * sample, 90))
                meta = {"key": key, "url": f"https://example.com/{key}.mp4", "status": "success"}
                tar.write({"__key__": key, "mp4": video.read_bytes(), "json": json.dumps(meta).encode()})
                video.unlink()
    return str(folder / f"{{00000..{SHARDS - 1:05d}}}.tar")


def dataset(urls: str, **options) -> ShardClipDataset:
    return ShardClipDataset(urls, num_frames=2, stride=1, size=16, seed=3, **options)


def read_rank(rank: int, urls: str, out: str) -> None:
    """One rank of a 2-process run: its two workers' samples, as (epoch, stream, shard position, sample)."""
    torch.set_num_threads(1)
    data = dataset(urls)
    data.distribute(rank, 2)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = DataLoader(data, batch_size=1, num_workers=2, persistent_workers=True)
        for _ in range(2):  # two epochs
            for item in loader:
                seen.append([int(item[k][0]) for k in ("epoch", "stream", "shard", "sample")])
    Path(out, f"rank{rank}.json").write_text(json.dumps(seen))


@pytest.mark.slow
def test_two_ranks_of_two_workers_read_every_sample_once_per_epoch(tmp_path):
    urls = write_shards(tmp_path / "shards")
    mp.spawn(read_rank, args=(urls, str(tmp_path)), nprocs=2)
    seen = [tuple(s) for rank in (0, 1) for s in json.loads((tmp_path / f"rank{rank}.json").read_text())]
    data = dataset(urls)
    for epoch in (0, 1):
        # which shard each (stream, position) was: the streams' lists partition the shards
        shards = {(s, p): shard for s in range(4) for p, shard in enumerate(data.shards_of(epoch, s, 4))}
        read = sorted((shards[stream, pos], sample) for e, stream, pos, sample in seen if e == epoch)
        assert read == [(shard, sample) for shard in range(SHARDS) for sample in range(PER_SHARD)]
    assert {s[1] for s in seen} == {0, 1, 2, 3}  # rank r, worker w read as stream 2r + w


def test_corrupt_samples_are_skipped_warned_and_counted(tmp_path):
    urls = write_shards(tmp_path / "shards", broken=(2, 1))
    with pytest.warns(UserWarning, match="skipping unreadable sample 000020001"):
        items = list(dataset(urls))
    assert len(items) == SHARDS * PER_SHARD - 1
    assert sum(item["skipped"] for item in items) == 1


def batches(module: StreamDataModule, count: int) -> list[torch.Tensor]:
    """`count` training batches of a fresh loader, recorded by the module as training would."""
    videos = []
    for batch in module.train_dataloader():
        videos.append(module.on_after_batch_transfer(module.on_before_batch_transfer(batch, 0), 0)["video"])
        if len(videos) == count:
            break
    return videos


@pytest.mark.slow
@pytest.mark.parametrize("repeats,augment", [(1, "workers"), (2, "workers"), (2, "device")])
def test_a_resumed_run_continues_every_stream_from_the_same_sample(tmp_path, repeats, augment):
    urls = write_shards(tmp_path / "shards")
    options = {"batch_size": 2 * repeats, "num_workers": 2, "repeated_sampling": repeats}
    whole = batches(StreamDataModule(dataset(urls, repeats=repeats, augment=augment), **options), 7)  # 9 in an epoch

    first = StreamDataModule(dataset(urls, repeats=repeats, augment=augment), **options)
    before = batches(first, 3)
    state = json.loads(json.dumps(first.state_dict()))  # as a checkpoint stores it
    resumed = StreamDataModule(dataset(urls, repeats=repeats, augment=augment), **options)
    resumed.load_state_dict(state)
    after = batches(resumed, 4)
    assert len(whole) == len(before + after) == 7
    for expected, got in zip(whole, before + after, strict=True):
        assert torch.equal(expected, got)
    assert whole[0].shape == (2 * repeats, 3, 2, 16, 16)
