from __future__ import annotations

import random
import warnings
from pathlib import Path

import lightning
import pytest
import torch
from torch.utils.data import DataLoader

from fourd.data import clips, video
from fourd.data.clips import UnreadableSourceError, VideoClipDataset, list_videos, sample_clip_indices
from fourd.data.transforms import ClipTransform
from fourd.data.video import write_video
from fourd.errors import FourdError
from tests.helpers.videos import BROKEN_KINDS, READER_BACKENDS, make_frames, write_broken_video, write_test_video

RED, GREEN, BLUE = (200, 50, 50), (50, 200, 50), (50, 50, 200)


def test_sampled_indices_are_strided_in_bounds_and_cover_every_start():
    rng = random.Random(0)
    starts = set()
    for _ in range(300):
        indices = sample_clip_indices(20, num_frames=4, stride=2, rng=rng)
        assert len(indices) == 4 and 0 <= indices[0] and indices[-1] < 20
        assert [b - a for a, b in zip(indices[:-1], indices[1:], strict=True)] == [2, 2, 2]
        starts.add(indices[0])
    assert starts == set(range(14))


def test_sampled_indices_are_centred_without_rng_and_clamped_in_short_videos():
    assert sample_clip_indices(20, num_frames=4, stride=2) == [6, 8, 10, 12]
    assert sample_clip_indices(5, num_frames=4, stride=2, rng=random.Random(0)) == [0, 2, 4, 4]
    assert sample_clip_indices(1, num_frames=3, stride=4) == [0, 0, 0]
    with pytest.raises(ValueError):
        sample_clip_indices(0, num_frames=4, stride=2)


def test_list_videos_scans_folders_recursively(tmp_path):
    for name in ["b.mp4", "a/c.MKV", "a/deep/d.webm", "e.avi", "notes.txt", "a/f.json", "._b.mp4"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()  # listing must not open anything

    found = list_videos(str(tmp_path))
    assert [path.relative_to(tmp_path).as_posix() for path in found] == [
        "a/c.MKV",
        "a/deep/d.webm",
        "b.mp4",
        "e.avi",
    ]


@pytest.mark.parametrize("header", ["", "path,label\n"])
def test_list_videos_reads_csv_paths_relative_to_the_csv(tmp_path, header):
    (tmp_path / "lists").mkdir()
    csv = tmp_path / "lists" / "train.csv"
    csv.write_text(f"{header}clips/x.mp4,3\n\n{tmp_path / 'y.mp4'},7\n")

    assert list_videos(csv) == [tmp_path / "lists" / "clips" / "x.mp4", tmp_path / "y.mp4"]


def test_list_videos_names_missing_and_empty_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_videos(tmp_path / "nowhere")
    (tmp_path / "notes.txt").touch()
    with pytest.raises(ValueError, match=r"no videos \(\.mp4.*found in .*test_list_videos"):
        list_videos(tmp_path)
    (tmp_path / "empty.csv").write_text("path\n")
    with pytest.raises(ValueError, match="empty.csv"):
        list_videos(tmp_path / "empty.csv")


def test_clip_transform_uses_one_crop_and_flip_for_all_frames():
    torch.manual_seed(0)
    frame = torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8)
    clip = frame.expand(6, -1, -1, -1).contiguous()
    transform = ClipTransform(32, train=True)

    outputs = [transform(clip) for _ in range(20)]
    for output in outputs:
        assert output.dtype == torch.uint8 and output.shape == (6, 3, 32, 32)
        assert (output == output[0]).all()
    assert len({output[0].sum().item() for output in outputs}) > 10  # yet random from call to call


def test_eval_clip_transform_resizes_the_short_side_and_centre_crops():
    clip = torch.randint(0, 256, (4, 3, 48, 64), dtype=torch.uint8)
    assert torch.equal(ClipTransform(48, train=False)(clip), clip[..., 8:56])
    transform = ClipTransform(24, train=False)
    assert torch.equal(transform(clip), transform(clip))


def write_mixed_folder(folder):
    """Broken videos sort first, so items 0, 1 and 2 skip 3, 2 and 1 of them and land on the red video."""
    for order, kind in enumerate(BROKEN_KINDS):
        write_broken_video(folder / f"{order}_{kind}.mp4", kind)
    for name, colour in [("3_red", RED), ("4_green", GREEN), ("5_blue", BLUE)]:
        write_test_video(folder / f"{name}.mp4", colour=colour)


def dominant_channels(videos: torch.Tensor) -> list[int]:
    return videos.float().mean(dim=(2, 3, 4)).argmax(dim=1).tolist()


def test_dataloader_workers_skip_broken_videos(tmp_path):
    write_mixed_folder(tmp_path)
    dataset = VideoClipDataset(tmp_path, num_frames=4, stride=2, size=32)
    loader = DataLoader(dataset, batch_size=2, num_workers=2, multiprocessing_context="spawn")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # warnings are tested in-process below
        batches = list(loader)
    assert len(batches) == 3
    for batch in batches:
        assert batch["video"].dtype == torch.uint8 and batch["video"].shape == (2, 3, 4, 32, 32)
    skipped = torch.cat([batch["skipped"] for batch in batches]).tolist()
    assert skipped == [3, 2, 1, 0, 0, 0]
    videos = torch.cat([batch["video"] for batch in batches])
    assert dominant_channels(videos) == [0, 0, 0, 0, 1, 2]  # red four times, then green, blue


@pytest.mark.parametrize("backend", READER_BACKENDS)
def test_each_broken_video_is_warned_about_once(tmp_path, backend):
    write_mixed_folder(tmp_path)
    dataset = VideoClipDataset(tmp_path, num_frames=4, stride=2, size=32, backend=backend)

    with pytest.warns(UserWarning) as caught:
        assert dataset[0]["skipped"] == 3
    messages = [str(warning.message) for warning in caught]
    for message, kind in zip(messages, BROKEN_KINDS, strict=True):
        assert f"{kind}.mp4" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dataset[1]["skipped"] == 2


def test_eval_dataset_is_deterministic(tmp_path):
    write_test_video(tmp_path / "red.mp4", colour=RED)
    dataset = VideoClipDataset(tmp_path, num_frames=3, stride=3, size=24, train=False)
    item = dataset[0]
    assert item["video"].shape == (3, 3, 24, 24) and item["skipped"] == 0
    assert torch.equal(dataset[0]["video"], item["video"])


def test_train_dataset_samples_different_clips(tmp_path):
    write_test_video(tmp_path / "red.mp4", colour=RED, num_frames=24)
    dataset = VideoClipDataset(tmp_path, num_frames=2, stride=1, size=24)

    def clip_under_seed(seed):
        torch.manual_seed(seed)  # what seed_everything does, and DataLoader does per worker and epoch
        return dataset[0]["video"]

    assert torch.equal(clip_under_seed(0), clip_under_seed(0))
    assert not torch.equal(clip_under_seed(0), clip_under_seed(1))


def test_worker_clips_change_each_epoch_and_repeat_under_seed_everything(tmp_path):
    for name, colour in [("red", RED), ("green", GREEN)]:
        write_test_video(tmp_path / f"{name}.mp4", colour=colour, num_frames=24)
    dataset = VideoClipDataset(tmp_path, num_frames=2, stride=1, size=24)
    loader = DataLoader(dataset, batch_size=2, num_workers=2, multiprocessing_context="spawn")

    def two_epochs():
        lightning.seed_everything(7, workers=True, verbose=False)
        return [torch.cat([batch["video"] for batch in loader]) for _ in range(2)]

    first, second = two_epochs()
    assert not torch.equal(first, second)
    assert all(torch.equal(a, b) for a, b in zip(two_epochs(), [first, second], strict=True))


def test_too_many_consecutive_broken_videos_raise(tmp_path):
    for kind in BROKEN_KINDS:
        write_broken_video(tmp_path / f"{kind}.mp4", kind)
    write_test_video(tmp_path / "good.mp4")
    dataset = VideoClipDataset(tmp_path, size=32, max_retries=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="2 consecutive unusable videos under .*check the dataset"):
            dataset[2]  # text.mp4, truncated.mp4


def unreadable_source(folder: Path, kind: str) -> tuple[Path, str]:
    """A source none of whose videos reads, and the reason its first video gives."""
    if kind == "missing":
        listing = folder / "videos.csv"
        listing.write_text("path\n" + "".join(f"gone/{i:04d}.mp4\n" for i in range(1000)))
        return listing, "no such file"
    for i in range(20):
        write_broken_video(folder / f"{i:04d}.mp4", kind)
    return folder, {"empty": "empty file (0 bytes)", "text": "Invalid data found"}[kind]


@pytest.mark.parametrize("backend", READER_BACKENDS)
@pytest.mark.parametrize("kind", ["empty", "text", "missing"])
def test_a_source_without_a_readable_video_stops_at_construction_in_one_line(tmp_path, kind, backend):
    source, reason = unreadable_source(tmp_path, kind)
    with pytest.raises(UnreadableSourceError) as caught:
        VideoClipDataset(source, size=32, backend=backend)

    message = str(caught.value)
    assert isinstance(caught.value, FourdError) and "\n" not in message
    listed = 1000 if kind == "missing" else 20
    assert message.startswith(f"no readable video in {source} (16 of {listed} tried): ")  # spread, not all opened
    first, second = list_videos(source)[0], list_videos(source)[listed // 16]
    assert f"{first}: " in message and f"{second}: " in message and reason in message and message.endswith("; ...")


def test_probing_stops_at_the_first_readable_video(tmp_path, monkeypatch):
    write_mixed_folder(tmp_path)
    probed = []

    def read_frames(path, indices, backend=None):
        probed.append(path.name)
        return video.read_frames(path, indices, backend)

    monkeypatch.setattr(clips, "read_frames", read_frames)
    VideoClipDataset(tmp_path, size=32)
    assert probed == ["0_empty.mp4", "1_truncated.mp4", "2_text.mp4", "3_red.mp4"]


@pytest.mark.parametrize("backend", READER_BACKENDS)
def test_items_name_the_video_read_and_the_ones_passed_over(tmp_path, backend):
    write_mixed_folder(tmp_path)
    dataset = VideoClipDataset(tmp_path, num_frames=4, stride=2, size=32, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = [dataset[index] for index in range(6)]

    assert [(item["index"], item["skipped"]) for item in items] == [(3, 3), (3, 2), (3, 1), (3, 0), (4, 0), (5, 0)]
    assert [path.name for path in dataset.passed_over(3, 2)] == ["1_truncated.mp4", "2_text.mp4"]
    assert dataset.passed_over(4, 0) == []
    assert dataset.passed_over(0, 1) == [dataset.videos[-1]]  # an item that wrapped around skipped the last video


@pytest.mark.needs_package("decord")
def test_videos_too_narrow_for_decord_are_read_and_an_empty_file_is_still_skipped(tmp_path):
    write_broken_video(tmp_path / "0_empty.mp4", "empty")
    write_video(tmp_path / "1_tiny.mp4", make_frames(num_frames=6, height=2, width=2))
    dataset = VideoClipDataset(tmp_path, num_frames=4, stride=1, size=8, backend="decord")

    with pytest.warns(UserWarning, match="0_empty.mp4"):
        item = dataset[0]
    assert (item["index"], item["skipped"]) == (1, 1) and item["video"].shape == (3, 4, 8, 8)


def test_repeated_sampling_makes_clips_of_one_decoding_each_with_its_own_crop(tmp_path):
    write_test_video(tmp_path / "red.mp4", colour=RED, num_frames=24)
    once = VideoClipDataset(tmp_path, num_frames=2, stride=1, size=24)
    repeated = VideoClipDataset(tmp_path, num_frames=2, stride=1, size=24, repeats=3, decode_short_side=32)
    torch.manual_seed(0)
    assert once[0]["video"].shape == (3, 2, 24, 24)
    torch.manual_seed(0)
    clips = repeated[0]["video"]
    assert clips.shape == (3, 3, 2, 24, 24)
    assert not torch.equal(clips[0], clips[1]) and not torch.equal(clips[1], clips[2])  # crops and flips differ
    with pytest.raises(ValueError, match="decode_short_side 16 is below the clip size 24"):
        VideoClipDataset(tmp_path, num_frames=2, size=24, decode_short_side=16)
