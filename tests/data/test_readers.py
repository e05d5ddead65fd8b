from __future__ import annotations

import io
import json
import pickle
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from fourd.data.readers import (
    ActionClipDataset,
    KubricDataset,
    PerceptionTestDataset,
    RealEstate10KDataset,
    ScanNetDataset,
    TapVidDataset,
    WaymoBoxDataset,
    kinetics_list,
    kubric_record_from_arrays,
    resize_with_geometry,
    something_something_list,
)
from fourd.data.readers.actions import spread_clip_indices
from fourd.data.readers.tapvid import sample_queries
from fourd.errors import FourdError
from tests.helpers.perception_test import point_track, video_record, write_perception_test
from tests.helpers.scannet import write_scannet_scene
from tests.helpers.tracks import sampling_case
from tests.helpers.videos import make_frames, write_broken_video, write_test_video
from tests.helpers.waymo import FRONT, FRONT_LEFT, moving, timestamp, write_segment

SIZE = 16


def quiet(make):
    """Build a dataset whose construction warnings are not what the test is about."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make()


def jpeg_bytes(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_resize_with_geometry_scales_coordinates_and_keeps_depth_values():
    depth = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]).repeat(2, 1, 1)  # (T=2, 2, 4)
    item = {
        "video": torch.zeros(3, 2, 20, 40, dtype=torch.uint8),
        "depth": depth,
        "intrinsics": torch.tensor([[30.0, 0.0, 20.0], [0.0, 30.0, 10.0], [0.0, 0.0, 1.0]]).expand(2, 3, 3),
        "tracks": torch.tensor([[[40.0, 20.0], [10.0, 5.0]]]),
        "query_points": torch.tensor([[1.0, 5.0, 10.0]]),
        "label": torch.tensor(3),
    }
    resized = resize_with_geometry(item, 8)

    assert resized["video"].shape == (3, 2, 8, 8) and resized["video"].dtype == torch.uint8
    assert resized["depth"].shape == (2, 8, 8)
    assert torch.equal(resized["depth"][0, :4, ::2], torch.tensor([[1.0, 2.0, 3.0, 4.0]]).expand(4, 4))
    assert set(resized["depth"].unique().tolist()) == set(range(1, 9))  # nearest: no blended values
    assert torch.allclose(resized["intrinsics"][1], torch.tensor([[6.0, 0.0, 4.0], [0.0, 12.0, 4.0], [0, 0, 1]]))
    assert torch.allclose(resized["tracks"], torch.tensor([[[8.0, 8.0], [2.0, 2.0]]]))
    assert torch.allclose(resized["query_points"], torch.tensor([[1.0, 2.0, 2.0]]))
    assert resized["label"] is item["label"]


def davis_record(num_frames: int, height: int = 32, width: int = 48) -> dict:
    points = np.zeros((3, num_frames, 2), np.float32)
    points[0] = [0.25, 0.5]  # visible throughout
    points[1] = [0.75, 0.125]
    occluded = np.zeros((3, num_frames), bool)
    occluded[1, :2] = True  # appears at frame 2
    occluded[2] = True  # never visible: dropped in "first" mode
    return {"video": make_frames(num_frames, height, width), "points": points, "occluded": occluded}


def write_davis_pickle(path):
    good = davis_record(20)
    short = davis_record(5)
    missing_key = {key: value for key, value in davis_record(20).items() if key != "occluded"}
    mismatched = {**davis_record(19), "video": make_frames(20, 32, 48)}
    with path.open("wb") as file:
        pickle.dump({"bear": good, "car": short, "dog": missing_key, "elk": mismatched}, file)


def test_tapvid_davis_tracks_come_in_pixels_of_the_resized_frames(tmp_path):
    write_davis_pickle(tmp_path / "tapvid_davis.pkl")
    with pytest.warns(UserWarning, match=r"TapVidDataset: skipped 2 entries, kept 2 .*dog: .*needs keys"):
        dataset = TapVidDataset(tmp_path / "tapvid_davis.pkl", num_frames=8, size=SIZE)

    assert dataset.names == ["bear", "car"] and sorted(dataset.skipped) == ["dog", "elk"]
    assert "19 frames of points for 20 video frames" in dataset.skipped["elk"]
    item = dataset[0]
    assert item["video"].shape == (3, 8, SIZE, SIZE) and item["video"].dtype == torch.uint8
    assert item["tracks"].shape == (2, 8, 2) and item["occluded"].shape == (2, 8)
    assert torch.allclose(item["tracks"][0], torch.tensor([0.25 * SIZE, 0.5 * SIZE]).expand(8, 2))
    assert torch.allclose(item["tracks"][1], torch.tensor([0.75 * SIZE, 0.125 * SIZE]).expand(8, 2))
    expected_queries = [[0.0, 0.5 * SIZE, 0.25 * SIZE], [2.0, 0.125 * SIZE, 0.75 * SIZE]]  # (t, y, x)
    assert torch.allclose(item["query_points"], torch.tensor(expected_queries))
    assert item["index"].item() == 0 and item["skipped"] == 0


def test_tapvid_pads_short_videos_with_occluded_frames(tmp_path):
    write_davis_pickle(tmp_path / "davis.pkl")
    dataset = quiet(lambda: TapVidDataset(tmp_path / "davis.pkl", num_frames=8, size=SIZE))

    item = dataset[1]
    assert dataset.names[item["index"]] == "car"
    assert item["video"].shape == (3, 8, SIZE, SIZE)
    assert all(torch.equal(item["video"][:, t], item["video"][:, 4]) for t in range(5, 8))
    assert item["occluded"][:, 5:].all() and not item["occluded"][0, :5].any()
    assert torch.allclose(item["tracks"][0, 7], item["tracks"][0, 4])


def test_tapvid_strided_queries_repeat_tracks_at_every_visible_query_frame(tmp_path):
    write_davis_pickle(tmp_path / "davis.pkl")
    dataset = quiet(lambda: TapVidDataset(tmp_path / "davis.pkl", num_frames=8, size=SIZE, query_mode="strided"))

    item = dataset[0]
    # query frames 0 and 5: track 0 at both, track 1 only at 5 (occluded at 0), track 2 never
    assert item["query_points"][:, 0].tolist() == [0.0, 5.0, 5.0]
    assert item["tracks"].shape == (3, 8, 2)
    assert torch.equal(item["tracks"][0], item["tracks"][1])
    with pytest.raises(ValueError, match="unknown query mode"):
        TapVidDataset(tmp_path / "davis.pkl", query_mode="random")


def kinetics_record(num_frames: int, corrupt_frame: int | None = None, as_array: bool = True) -> dict:
    """A TAP-Vid-Kinetics record as DeepMind's generate_tapvid.py writes it: ``np.array(tuple_of_jpeg_bytes)``,
    a 1-D ``|S...`` array (or, with ``as_array=False``, a plain list of JPEG bytes)."""
    record = davis_record(num_frames)
    frames = [jpeg_bytes(frame) for frame in record["video"]]
    if corrupt_frame is not None:
        frames[corrupt_frame] = b"\xff\xd8 not a jpeg"
    record["video"] = np.array(tuple(frames)) if as_array else frames
    return record


def test_tapvid_kinetics_records_in_generate_tapvid_layout_all_read_with_their_tracks(tmp_path):
    shard = [kinetics_record(10 + n) for n in range(6)]
    assert shard[0]["video"].dtype.kind == "S" and shard[0]["video"].shape == (10,)
    with (tmp_path / "0000_of_0010.pkl").open("wb") as file:
        pickle.dump(shard, file)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped
        dataset = TapVidDataset(tmp_path, num_frames=8, size=SIZE)
        items = [dataset[i] for i in range(len(dataset))]
    assert len(dataset) == 6 and not dataset.skipped
    for item in items:
        assert item["video"].shape == (3, 8, SIZE, SIZE) and item["skipped"] == 0
        assert torch.allclose(item["tracks"][0], torch.tensor([0.25 * SIZE, 0.5 * SIZE]).expand(8, 2))
        assert item["query_points"][:, 0].tolist() == [0.0, 2.0]


@pytest.mark.parametrize("as_array", [True, False], ids=["bytes_array", "list"])
def test_tapvid_kinetics_shards_decode_jpeg_frames_and_skip_broken_ones(tmp_path, as_array):
    good, corrupt = kinetics_record(10, as_array=as_array), kinetics_record(10, corrupt_frame=3, as_array=as_array)
    shards = [[good, corrupt], [good, {"video": []}]]
    for number, shard in enumerate(shards):
        with (tmp_path / f"{number:04d}_of_0002.pkl").open("wb") as file:
            pickle.dump(shard, file)
    with pytest.warns(UserWarning, match="skipped 1 entries, kept 3"):
        dataset = TapVidDataset(tmp_path, num_frames=6, size=SIZE)
    assert dataset.names == ["0000_of_0002/0", "0000_of_0002/1", "0001_of_0002/0"]
    assert list(dataset.skipped) == ["0001_of_0002/1"]

    assert dataset[0]["skipped"] == 0
    with pytest.warns(UserWarning, match="skipping 0000_of_0002/1: cannot decode image"):
        item = dataset[1]
    assert item["skipped"] == 1 and dataset.names[item["index"]] == "0001_of_0002/0"
    assert item["video"].shape == (3, 6, SIZE, SIZE)
    assert torch.allclose(item["tracks"][0, 0], torch.tensor([0.25 * SIZE, 0.5 * SIZE]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        assert dataset[1]["skipped"] == 1
    assert "0000_of_0002/1" in dataset.skipped


def test_kubric_records_scale_pixel_tracks_and_skip_bad_files(tmp_path):
    record = davis_record(12)  # 32 x 48 frames
    pixels = record["points"] * np.array([48, 32], np.float32)
    kubric_record_from_arrays(tmp_path / "a.npz", record["video"], pixels, record["occluded"])
    kubric_record_from_arrays(tmp_path / "c.npz", record["video"], pixels, record["occluded"])
    (tmp_path / "b.npz").write_bytes(b"PK\x03\x04 truncated")
    np.savez(tmp_path / "bb.npz", video=record["video"], occluded=record["occluded"])
    with pytest.raises(ValueError, match="points must be"):
        kubric_record_from_arrays(tmp_path / "bad.npz", record["video"], pixels[..., 0], record["occluded"])

    dataset = KubricDataset(tmp_path, num_frames=12, size=SIZE)
    assert dataset.names == ["a", "b", "bb", "c"]
    item = dataset[0]
    assert item["video"].shape == (3, 12, SIZE, SIZE)
    assert torch.allclose(item["tracks"][:, 0], torch.tensor([[0.25 * SIZE, 0.5 * SIZE], [0.75 * SIZE, 0.125 * SIZE]]))
    with pytest.warns(UserWarning) as caught:
        item = dataset[1]
    assert item["skipped"] == 2 and dataset.names[item["index"]] == "c"
    assert "cannot read record" in dataset.skipped["b"] and "lacks ['target_points']" in dataset.skipped["bb"]
    assert len(caught) == 2


def test_fixed_point_counts_let_point_track_items_batch(tmp_path):
    record = davis_record(12)
    pixels = record["points"] * np.array([48, 32], np.float32)
    for name in ("a", "b", "c"):
        kubric_record_from_arrays(tmp_path / f"{name}.npz", record["video"], pixels, record["occluded"])

    padded = KubricDataset(tmp_path, num_frames=12, size=SIZE, num_points=4)[0]
    assert padded["tracks"].shape == (4, 12, 2) and padded["query_points"].shape == (4, 3)
    assert padded["occluded"][2:].all() and not padded["occluded"][0].any()  # two usable tracks, two padding
    batch = next(iter(DataLoader(KubricDataset(tmp_path, num_frames=12, size=SIZE, num_points=1), batch_size=3)))
    assert batch["tracks"].shape == (3, 1, 12, 2) and batch["index"].tolist() == [0, 1, 2]


def test_perception_test_points_are_occluded_off_their_listed_frames_and_bad_input_is_skipped(tmp_path):
    track = point_track(7, [3, 5, 9], [[0.25, 0.5], [0.5, 0.5], [0.75, 0.25]])  # (x, y) per listed frame
    everywhere = point_track(8, list(range(16)), np.full((16, 2), 0.125))
    records = {
        "good": video_record("good", "valid", [track, everywhere, point_track(9, [], np.zeros((0, 2)))]),
        "no_tracks": video_record("no_tracks", "valid", []),  # left out, not skipped
        "no_video": video_record("no_video", "valid", [track]),
        "no_frames": video_record("no_frames", "valid", [point_track(0, [], np.zeros((0, 2)))]),
        "short": video_record("short", "valid", [track], num_frames=6),
        "corrupt": video_record("corrupt", "valid", [track]),
        "malformed": {"point_tracking": [track]},
    }
    write_perception_test(tmp_path, "valid", records, ["good", "no_tracks", "short"])
    write_broken_video(tmp_path / "videos" / "corrupt.mp4", "truncated")
    with pytest.warns(UserWarning, match="PerceptionTestDataset: skipped 6 entries, kept 4") as caught:
        dataset = PerceptionTestDataset(tmp_path, "valid", num_frames=8, stride=1, size=SIZE, num_points=3)
    assert "good/track 9: no frames" in str(caught[0].message)
    assert dataset.names == ["corrupt/0", "corrupt/8", "good/0", "good/8"]
    assert dataset.skipped == {
        "good/track 9": "no frames",
        "malformed": dataset.skipped["malformed"],
        "no_frames": "none of its 1 tracks is usable",
        "no_frames/track 0": "no frames",
        "no_video": "no video videos/no_video.mp4",
        "short": "6 frames: too few",
    }
    assert "needs metadata.num_frames" in dataset.skipped["malformed"]

    with pytest.warns(UserWarning) as caught:
        item = dataset[0]
    assert [str(w.message).split(":")[1] for w in caught] == [" skipping corrupt/0", " skipping corrupt/8"]
    assert item["skipped"] == 2 and dataset.names[item["index"]] == "good/0"
    assert item["video"].shape == (3, 8, SIZE, SIZE)
    visible = [[t in (3, 5) for t in range(8)], [True] * 8, [False] * 8]  # frames 0-7; the third is padding
    assert (~item["occluded"]).tolist() == visible
    assert torch.allclose(item["tracks"][0, [3, 5]], torch.tensor([[0.25, 0.5], [0.5, 0.5]]) * SIZE)
    assert torch.allclose(item["tracks"][0, 4], torch.tensor([0.375, 0.5]) * SIZE)  # between listed frames
    assert torch.allclose(
        item["query_points"][:2], torch.tensor([[3.0, 0.5, 0.25], [0.0, 0.125, 0.125]]) * torch.tensor([1, SIZE, SIZE])
    )
    later = dataset[3]  # frames 8-15: the track is listed at 9 only, queried there
    assert (~later["occluded"][0]).nonzero().flatten().tolist() == [1]
    assert later["query_points"][0].tolist() == [1.0, 0.25 * SIZE, 0.75 * SIZE]


def test_perception_test_without_anything_usable_fails_in_one_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="point_tracking_valid.json"):
        PerceptionTestDataset(tmp_path, "valid")
    track = point_track(0, [0], [[0.5, 0.5]])
    write_perception_test(tmp_path, "valid", {"lost": video_record("lost", "valid", [track])}, [])
    with pytest.raises(FourdError, match="skipped 1 entries, kept 0 .lost: no video videos/lost.mp4"):
        PerceptionTestDataset(tmp_path, "valid")
    (tmp_path / "point_tracking_valid.json").write_text("{not json")
    with pytest.raises(FourdError, match="not JSON"):
        PerceptionTestDataset(tmp_path, "valid")


def test_waymo_clips_keep_front_objects_seen_first_and_mostly_and_skip_bad_segments(tmp_path):
    frames = range(16)
    front = {
        "car": moving((40, 32, 20, 20), (2, 0), frames),
        "tiny": moving((50, 30, 1, 1), (0, 0), frames),  # under 0.5% of the frame
        "late": moving((50, 30, 20, 20), (0, 0), range(1, 16)),  # not in a clip's first frame
        "flicker": moving((50, 30, 20, 20), (0, 0), range(0, 16, 3)),  # in under 70% of a clip's frames
    }
    left = {"car": moving((10, 10, 30, 30), (0, 0), frames), "van": moving((50, 30, 20, 20), (0, 0), frames)}
    write_segment(tmp_path, "validation", "a", {FRONT: front, FRONT_LEFT: left})
    write_segment(tmp_path, "validation", "b_left_only", {FRONT_LEFT: left}, image_cameras=(FRONT_LEFT,))
    write_segment(tmp_path, "validation", "c_corrupt", {FRONT: front}, corrupt_frame=2)
    write_segment(tmp_path, "validation", "d_no_boxes", {FRONT: front})
    (tmp_path / "validation" / "camera_box" / "d_no_boxes.parquet").unlink()
    write_segment(tmp_path, "validation", "e_no_images", {FRONT: front})
    (tmp_path / "validation" / "camera_image" / "e_no_images.parquet").unlink()
    with pytest.warns(UserWarning, match="WaymoBoxDataset: skipped 3 entries, kept 4"):
        dataset = WaymoBoxDataset(tmp_path, "validation", num_frames=4, stride=2, size=SIZE, num_objects=2)
    assert dataset.names == [f"{segment}/{timestamp(start)}" for segment in ("a", "c_corrupt") for start in (0, 7)]
    assert dataset.skipped == {
        "b_left_only": "no images of camera 1",
        "d_no_boxes": "no camera_box component (camera_box/d_no_boxes.parquet)",
        "e_no_images": "no camera_image component (camera_image/e_no_images.parquet)",
    }

    item = dataset[0]
    assert item["video"].shape == (3, 4, SIZE, SIZE) and item["video"].dtype == torch.uint8
    # 64 x 96 frames -> the centred 64 x 64 (columns 16-80) at a quarter: the car's 20 px box is 5 px, 1 px a frame
    car = torch.tensor([3.5, 5.5, 8.5, 10.5]) + torch.arange(4.0)[:, None] * torch.tensor([1.0, 0.0, 1.0, 0.0])
    assert torch.equal(item["boxes"][0], car) and torch.equal(item["boxes"][1], torch.zeros(4, 4))
    assert item["box_visible"].tolist() == [[True] * 4, [False] * 4]  # the car, and padding
    with pytest.warns(UserWarning, match="skipping c_corrupt/1557000000000000: cannot decode image"):
        item = dataset[2]
    assert item["skipped"] == 1 and dataset.names[item["index"]].startswith("c_corrupt/")


def test_waymo_without_a_usable_segment_fails_in_one_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Waymo Open camera_image or camera_box parquet files"):
        WaymoBoxDataset(tmp_path, "validation")
    write_segment(tmp_path, "validation", "s", {}, image_cameras=(FRONT_LEFT,))
    with pytest.raises(FourdError, match=r"skipped 1 entries, kept 0 \(s: no images of camera 1\)"):
        WaymoBoxDataset(tmp_path, "validation")
    write_segment(tmp_path, "validation", "s", {}, image_cameras=(FRONT,))
    (tmp_path / "validation" / "camera_box" / "s.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(FourdError, match="kept 0 .s: cannot read camera_box/s.parquet: ArrowInvalid"):
        WaymoBoxDataset(tmp_path, "validation")


def test_scannet_clips_have_metric_depth_scaled_intrinsics_and_inverted_poses(tmp_path):
    scene = write_scannet_scene(tmp_path, "scene0000_00")
    (scene / "depth" / "3.png").unlink()  # clip 2-3 unusable
    (scene / "pose" / "5.txt").write_text("-inf -inf -inf -inf\n" * 4)  # tracking lost: clip 4-5 unusable
    write_scannet_scene(tmp_path, "scene0001_00", intrinsics=False)
    with pytest.warns(UserWarning, match="ScanNetDataset: skipped 2 entries, kept 2"):
        dataset = ScanNetDataset(tmp_path, num_frames=2, stride=1, size=SIZE)
    assert dataset.names == ["scene0000_00/0", "scene0000_00/4"]
    assert "no depth or pose for frames ['3']" in dataset.skipped["scene0000_00/2"]
    assert "cannot read matrix intrinsic_color.txt" in dataset.skipped["scene0001_00"]

    item = dataset[0]
    assert item["video"].shape == (3, 2, SIZE, SIZE)
    assert item["depth"].shape == (2, SIZE, SIZE) and item["depth"].dtype == torch.float32
    assert set(item["depth"].unique().tolist()) == {0.0, 1.0, 2.5}
    assert (item["depth"][:, :, :8] == 1.0).all() and (item["depth"][:, :, 12:] == 0.0).all()
    # 32 x 24 colour -> 16 x 16; OpenCV principal point 15.5 is 16.0 in corner convention
    expected = torch.tensor([[15.0, 0.0, 8.0], [0.0, 28.0 * 16 / 24, 12.0 * 16 / 24], [0.0, 0.0, 1.0]])
    assert torch.allclose(item["intrinsics"], expected.expand(2, 3, 3))
    assert torch.allclose(item["world_to_camera"][1, :3, 3], torch.tensor([-1.0, -2.0, 1.0]))
    assert item["video"][:, 1].float().mean() > item["video"][:, 0].float().mean()

    with pytest.warns(UserWarning, match="skipping scene0000_00/4: invalid camera pose"):
        item = dataset[1]
    assert item["skipped"] == 1 and item["index"].item() == 0


def write_re10k_sequence(root, frames_root, name, timestamps, line_override=None):
    lines = [f"https://www.youtube.com/watch?v={name}"]
    for i, stamp in enumerate(timestamps):
        pose = np.hstack([np.eye(3), [[i], [0.5], [2.0]]]).reshape(-1)
        lines.append(" ".join(map(str, [stamp, 0.5, 0.8, 0.5, 0.5, 0, 0, *pose])))
    if line_override is not None:
        lines[2] = line_override
    (root / "test").mkdir(parents=True, exist_ok=True)
    (root / "test" / f"{name}.txt").write_text("\n".join(lines) + "\n")
    (frames_root / name).mkdir(parents=True)
    for stamp in timestamps:
        Image.fromarray(np.full((20, 30, 3), 128, np.uint8)).save(frames_root / name / f"{stamp}.png")


def test_realestate10k_converts_normalised_intrinsics_to_pixels(tmp_path):
    root, frames = tmp_path / "cameras", tmp_path / "frames"
    write_re10k_sequence(root, frames, "aaa", [1000, 34366, 67733, 101100])
    write_re10k_sequence(root, frames, "bbb", [5, 6, 7], line_override="6 0.5 0.8 0.5")
    write_re10k_sequence(root, frames, "ccc", [5, 6, 7])
    (frames / "ccc" / "6.png").unlink()
    with pytest.warns(UserWarning, match="RealEstate10KDataset: skipped 2 entries, kept 2"):
        dataset = RealEstate10KDataset(root, frames, num_frames=2, stride=1, size=SIZE)
    assert dataset.names == ["aaa/1000", "aaa/67733"]
    assert "line 3: 4 numbers, expected 19" in dataset.skipped["bbb"]
    assert "1 of 3 frames missing" in dataset.skipped["ccc"]

    item = dataset[1]
    assert item["video"].shape == (3, 2, SIZE, SIZE) and item["skipped"] == 0
    expected = torch.tensor([[0.5 * SIZE, 0, 0.5 * SIZE], [0, 0.8 * SIZE, 0.5 * SIZE], [0, 0, 1]])
    assert torch.allclose(item["intrinsics"], expected.expand(2, 3, 3))
    assert item["world_to_camera"].shape == (2, 4, 4)
    assert torch.allclose(item["world_to_camera"][1, :, 3], torch.tensor([3.0, 0.5, 2.0, 1.0]))
    assert torch.equal(item["world_to_camera"][:, 3, :3], torch.zeros(2, 3))


def test_kinetics_finds_videos_in_label_folders_or_flat_and_skips_the_rest(tmp_path):
    videos = tmp_path / "videos"
    (videos / "abseiling").mkdir(parents=True)
    write_test_video(videos / "abseiling" / "aaa_000010_000020.mp4")
    write_test_video(videos / "bbb_000000_000010.mp4", colour=(200, 50, 50))
    write_broken_video(videos / "ddd_000001_000011.mp4", "truncated")
    rows = ["abseiling,aaa,10,20,val", "archery,bbb,0,10,val", "archery,ccc,5,15,val", "archery,ddd,1,11,val"]
    (tmp_path / "val.csv").write_text("label,youtube_id,time_start,time_end,split\n" + "\n".join(rows) + "\n")

    actions = kinetics_list(tmp_path / "val.csv", videos)
    assert actions.classes == ["abseiling", "archery"]
    assert actions.names == ["aaa_000010_000020", "bbb_000000_000010", "ddd_000001_000011"]
    assert actions.labels == [0, 1, 1] and actions.skipped == {"ccc_000005_000015": "video file not found"}
    with pytest.raises(FourdError, match="aaa_000010_000020: label 'abseiling' is not one of the 1 classes"):
        kinetics_list(tmp_path / "val.csv", videos, classes=["archery"])

    with pytest.warns(UserWarning, match="ActionClipDataset: skipped 1 entries, kept 3"):
        dataset = ActionClipDataset(actions, num_frames=4, stride=2, size=SIZE, num_clips=2)
    assert len(dataset) == 6
    items = [dataset[i] for i in range(4)]
    assert [item["index"].item() for item in items] == [0, 0, 1, 1]
    assert [item["label"].item() for item in items] == [0, 0, 1, 1]
    assert items[0]["video"].shape == (3, 4, SIZE, SIZE) and items[0]["label"].dtype == torch.int64
    assert not torch.equal(items[0]["video"], items[1]["video"])  # two clips at different times
    with pytest.warns(UserWarning, match="skipping ddd_000001_000011: cannot read video"):
        item = dataset[4]
    assert item["skipped"] == 2 and item["index"].item() == 0  # wraps around to the first video


def test_something_something_labels_come_from_templates_without_brackets(tmp_path):
    labels = {"Holding something next to something": "1", "Pushing something from left to right": "0"}
    split = [
        {
            "id": "78687",
            "label": "holding potato next to bottle",
            "template": "Holding [something] next to [something]",
            "placeholders": ["potato", "bottle"],
        },
        {"id": "42", "label": "pushing cup", "template": "Pushing [something] from left to right"},
        {"id": "1420"},  # test split: no label
        {"label": "no id"},
    ]
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    (tmp_path / "validation.json").write_text(json.dumps(split))
    for name in ("78687", "42", "1420"):
        write_test_video(tmp_path / f"{name}.webm", num_frames=6)

    actions = something_something_list(tmp_path / "labels.json", tmp_path / "validation.json", tmp_path)
    assert actions.classes == ["Pushing something from left to right", "Holding something next to something"]
    assert actions.names == ["78687", "42"] and actions.labels == [1, 0]
    assert actions.skipped["1420"] == "no label" and "entry 3" in actions.skipped
    dataset = quiet(lambda: ActionClipDataset(actions, num_frames=3, stride=1, size=SIZE, train=True, flip=False))
    item = dataset[1]
    assert item["video"].shape == (3, 3, SIZE, SIZE) and item["label"].item() == 0
    (tmp_path / "validation.json").write_text(json.dumps([{"id": "7", "template": "Dancing with [something]"}]))
    with pytest.raises(FourdError, match="7: label 'Dancing with something' is not one of the 2 classes"):
        something_something_list(tmp_path / "labels.json", tmp_path / "validation.json", tmp_path)


def test_spread_clips_divide_the_valid_starts_evenly():
    assert spread_clip_indices(20, num_frames=4, stride=2, clip=0, num_clips=1) == [6, 8, 10, 12]  # centred
    assert [spread_clip_indices(20, 2, 1, clip, 3)[0] for clip in range(3)] == [3, 9, 15]
    assert spread_clip_indices(3, num_frames=4, stride=1, clip=1, num_clips=2) == [0, 1, 2, 2]


def test_sample_queries_first() -> None:
    occluded, tracks = sampling_case()
    queries, index = sample_queries(occluded, tracks, "first")
    np.testing.assert_array_equal(index, [0, 2])
    np.testing.assert_allclose(queries, [[2, *tracks[0, 2, ::-1]], [0, *tracks[2, 0, ::-1]]])


def test_sample_queries_strided() -> None:
    occluded, tracks = sampling_case()
    queries, index = sample_queries(occluded, tracks, "strided")  # frames 0, 5, 10, ordered by frame then track
    np.testing.assert_array_equal(index, [2, 0, 0, 2])
    np.testing.assert_array_equal(queries[:, 0], [0, 5, 10, 10])
    np.testing.assert_allclose(queries[:, 1:], tracks[index, queries[:, 0].astype(int), ::-1])
    subset, subset_index = sample_queries(occluded, tracks, "strided", np.random.default_rng(0), max_queries=2)
    assert len(subset) == 2
    assert all(any(np.array_equal(q, r) for r in queries) for q in subset)
    assert np.array_equal(subset_index, sample_queries(occluded, tracks, "strided", np.random.default_rng(0), 2)[1])
    with pytest.raises(ValueError, match="rng"):
        sample_queries(occluded, tracks, "strided", max_queries=2)
