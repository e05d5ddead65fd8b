from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
import torch

from fourd.data.world import (
    MOTIONS,
    NUM_CLASSES,
    SPLIT_OFFSETS,
    WorldConfig,
    WorldDataset,
    generate_world,
    render_world_clip,
)
from fourd.errors import FourdError
from fourd.world import main

CONFIG = WorldConfig(num_frames=6, size=48, num_points=48, num_objects=3, seed=0)
TINY = WorldConfig(num_frames=3, size=16, num_points=6, num_objects=2, seed=1)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tensors are small: on a loaded machine a second intra-op thread makes rendering ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def clip(index: int) -> dict:
    return render_world_clip(CONFIG, index, return_geometry=True)


CLIPS = range(8)


def camera_points(item: dict) -> np.ndarray:
    """Points (P, T, 3) in camera coordinates through the stored float32 world_to_camera."""
    matrices = item["world_to_camera"].astype(np.float64)
    return np.einsum("tij,ptj->pti", matrices[:, :3, :3], item["points_world"]) + matrices[:, :3, 3]


def pixel_of(tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column and row of the pixel containing each (x, y) (pixel centres at integer + 0.5)."""
    return np.floor(tracks[..., 0]).astype(int), np.floor(tracks[..., 1]).astype(int)


def test_clip_depends_only_on_seed_and_index():
    torch.manual_seed(1)
    first = render_world_clip(TINY, 3)
    torch.manual_seed(2)
    again = render_world_clip(TINY, 3)
    assert all(np.array_equal(first[key], again[key]) for key in first)
    assert not np.array_equal(render_world_clip(TINY, 4)["video"], first["video"])
    other_seed = WorldConfig(**{**TINY.__dict__, "seed": 2})
    assert not np.array_equal(render_world_clip(other_seed, 3)["video"], first["video"])


def test_shapes_dtypes_and_positive_depth():
    item = clip(0)
    expected = {
        "video": ((6, 48, 48, 3), np.uint8),
        "depth": ((6, 48, 48), np.float32),
        "intrinsics": ((6, 3, 3), np.float32),
        "world_to_camera": ((6, 4, 4), np.float32),
        "tracks": ((48, 6, 2), np.float32),
        "occluded": ((48, 6), np.bool_),
        "boxes": ((3, 6, 4), np.float32),
        "box_visible": ((3, 6), np.bool_),
    }
    for key, (shape, dtype) in expected.items():
        assert item[key].shape == shape and item[key].dtype == dtype, key
    assert isinstance(item["label"], int) and 0 <= item["label"] < NUM_CLASSES
    for index in CLIPS:
        depth = clip(index)["depth"]
        assert np.isfinite(depth).all() and depth.min() > 0.3 and depth.max() < 20
    video = clip(0)["video"].astype(float)
    assert video.std() > 20 and np.abs(np.diff(video, axis=2)).mean() > 2  # textured, not flat


def test_intrinsics_put_the_principal_point_at_the_image_centre():
    intrinsics = clip(0)["intrinsics"]
    focal = intrinsics[0, 0, 0]
    np.testing.assert_array_equal(intrinsics[:, :2, 2], 24.0)
    assert intrinsics[0, 1, 1] == focal and 24 / math.tan(math.radians(35)) <= focal <= 24 / math.tan(math.radians(25))
    rotation = clip(0)["world_to_camera"][:, :3, :3].astype(np.float64)
    np.testing.assert_allclose(rotation @ rotation.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (6, 3, 3)), atol=1e-6)


def test_tracks_are_projections_of_surface_points_and_visible_ones_match_the_depth():
    matches, inner = 0, 0
    for index in CLIPS:
        item = clip(index)
        camera = camera_points(item)
        in_front = camera[..., 2] > 0.01
        projected = np.einsum("tij,ptj->pti", item["intrinsics"].astype(np.float64), camera)
        projected = projected[..., :2] / projected[..., 2:]
        np.testing.assert_allclose(projected[in_front], item["tracks"][in_front], atol=1e-3)
        assert item["occluded"][~in_front].all()

        visible = ~item["occluded"]
        frames = np.broadcast_to(np.arange(6), visible.shape)[visible]
        owner = np.broadcast_to(item["point_object"][:, None], visible.shape)[visible]
        tracks = item["tracks"][visible].astype(np.float64)
        columns, rows = pixel_of(tracks)
        assert ((columns >= 0) & (columns < 48) & (rows >= 0) & (rows < 48)).all()
        z = camera[..., 2][visible]
        # exact on planes: inverse depth is affine in pixel coordinates, so interpolate it between the four
        # pixel centres around the point; it may differ where those centres see other surfaces
        left, top = np.clip(np.floor(tracks - 0.5).astype(int), 0, 46).T
        dx, dy = (tracks - 0.5 - np.stack([left, top], -1)).T
        corners = [(top + i, left + j, (dy if i else 1 - dy) * (dx if j else 1 - dx)) for i in (0, 1) for j in (0, 1)]
        inverse = sum(weight / item["depth"][frames, row, column] for row, column, weight in corners)
        one_object = np.all([item["object_id"][frames, row, column] == owner for row, column, _ in corners], 0)
        matches += (np.abs(z * inverse - 1) < 0.01)[one_object].sum()
        inner += one_object.sum()
        # everywhere (depth edges, image borders) z lies within the depths of the neighbouring pixel centres,
        # widened by their spread
        padded = np.pad(item["depth"], ((0, 0), (1, 1), (1, 1)), mode="edge")
        window = np.stack([padded[frames, rows + i, columns + j] for i in range(3) for j in range(3)])
        low, high = window.min(0), window.max(0)
        assert ((low * 0.99 - (high - low) <= z) & (z <= high * 1.01 + (high - low))).all()
    assert inner > 200 and matches >= 0.95 * inner


def test_points_stay_attached_to_their_surfaces():
    for index in CLIPS:
        item = clip(index)
        points, owner = item["points_world"], item["point_object"]
        room = points[owner < 0]
        np.testing.assert_allclose(room, np.broadcast_to(room[:, :1], room.shape), atol=1e-9)
        for obj in np.unique(owner[owner >= 0]):
            on_object = points[owner == obj]  # rigid motion keeps distances
            distances = np.linalg.norm(on_object[:, None] - on_object[None], axis=-1)
            np.testing.assert_allclose(distances, np.broadcast_to(distances[..., :1], distances.shape), atol=1e-9)
        assert (owner >= 0).mean() > 0.3  # half the points are queried on objects


def test_occlusion_has_both_kinds_and_objects_hide_points_behind_them():
    occluded = np.concatenate([clip(index)["occluded"].ravel() for index in CLIPS])
    assert 0.05 < occluded.mean() < 0.95
    hidden_by_object = 0
    for index in CLIPS:
        item = clip(index)
        z = camera_points(item)[..., 2]
        columns, rows = pixel_of(item["tracks"])
        inside = (z > 0) & (columns >= 0) & (columns < 48) & (rows >= 0) & (rows < 48)
        point, frame = np.nonzero(inside & item["occluded"])
        row, column = rows[point, frame], columns[point, frame]
        in_front = item["object_id"][frame, row, column]
        deeper = z[point, frame] > 1.05 * item["depth"][frame, row, column]
        hidden_by_object += (deeper & (in_front >= 0) & (in_front != item["point_object"][point])).sum()
    assert hidden_by_object > 0


def test_boxes_contain_their_object_pixels_and_visibility_matches_the_render():
    gaps = []
    for index in CLIPS:
        item = clip(index)
        for obj, frame in np.ndindex(item["box_visible"].shape):
            rows, columns = np.nonzero(item["object_id"][frame] == obj)
            assert item["box_visible"][obj, frame] == (len(rows) > 0)
            x0, y0, x1, y1 = item["boxes"][obj, frame]
            assert 0 <= x0 <= x1 <= 48 and 0 <= y0 <= y1 <= 48
            if len(rows):
                assert x0 <= columns.min() + 0.5 and columns.max() + 0.5 <= x1
                assert y0 <= rows.min() + 0.5 and rows.max() + 0.5 <= y1
                mask_box = [columns.min(), rows.min(), columns.max() + 1, rows.max() + 1]
                gaps.append(np.abs(np.array([x0, y0, x1, y1]) - mask_box).max())
    assert np.median(gaps) <= 1.0  # boxes are tight around unoccluded objects


def test_labels_are_balanced_and_describe_the_camera_motion():
    config = WorldConfig(num_frames=4, size=8, num_points=1, num_objects=1, seed=0)
    labels = []
    for index in range(100):
        item = render_world_clip(config, index)
        matrices = item["world_to_camera"].astype(np.float64)
        eyes = -np.einsum("tji,tj->ti", matrices[:, :3, :3], matrices[:, :3, 3])
        move = matrices[0, :3, :3] @ (eyes[-1] - eyes[0])  # in the first camera's frame
        turn = math.degrees(math.acos(np.clip((np.trace(matrices[-1, :3, :3] @ matrices[0, :3, :3].T) - 1) / 2, -1, 1)))
        motion = MOTIONS[item["label"]]
        if motion == "orbit":
            assert turn > 20
        else:
            assert turn < 8
            axis, sign = {"left": (0, -1), "right": (0, 1), "forward": (2, 1), "backward": (2, -1)}[motion]
            assert sign * move[axis] > 0.6 and abs(move[axis]) > 3 * np.delete(np.abs(move), axis).max()
        labels.append(item["label"])
    assert np.bincount(labels, minlength=NUM_CLASSES).min() >= 10


def test_small_and_large_configs_render():
    empty = render_world_clip(WorldConfig(num_frames=1, size=8, num_points=1, num_objects=0), 0)
    assert empty["boxes"].shape == (0, 1, 4) and empty["tracks"].shape == (1, 1, 2)
    large = render_world_clip(WorldConfig(num_frames=2, size=224, num_points=4, num_objects=3), 0)
    assert large["video"].shape == (2, 224, 224, 3) and large["depth"].shape == (2, 224, 224)


def test_generate_world_writes_once_and_the_dataset_reads_it_back(tmp_path):
    splits = {"train": 2, "val": 1, "test": 1}
    root = generate_world(tmp_path / "world", TINY, splits, progress=False)
    files = sorted(root.glob("*/*.npz"))
    assert len(files) == 4 and json.loads((root / "world.json").read_text())["splits"] == splits
    stamps = [path.stat().st_mtime_ns for path in files]
    generate_world(root, TINY, splits, progress=False)
    assert [path.stat().st_mtime_ns for path in files] == stamps
    generate_world(root, TINY, {**splits, "train": 3}, progress=False)  # grows without rewriting
    assert [path.stat().st_mtime_ns for path in files] == stamps and len(WorldDataset(root, "train")) == 3
    assert not list(root.glob("**/*.tmp"))

    dataset = WorldDataset(root, "train")
    item = dataset[1]
    expected = render_world_clip(TINY, 1)
    assert item["video"].dtype == torch.uint8 and item["video"].shape == (3, 3, 16, 16)
    assert torch.equal(item["video"], torch.from_numpy(expected["video"]).permute(3, 0, 1, 2))
    for key in ("depth", "intrinsics", "world_to_camera", "tracks", "occluded", "boxes", "box_visible"):
        assert torch.equal(item[key], torch.from_numpy(expected[key])), key
    assert item["label"].dtype == torch.int64 and item["label"].item() == expected["label"]
    assert item["skipped"] == 0
    val = WorldDataset(root, "val")[0]["video"].permute(1, 2, 3, 0).numpy()
    assert np.array_equal(val, render_world_clip(TINY, SPLIT_OFFSETS["val"])["video"])
    with pytest.raises(IndexError):
        dataset[3]

    changed = WorldConfig(**{**TINY.__dict__, "seed": 5})
    generate_world(root, changed, splits, progress=False)
    assert json.loads((root / "world.json").read_text())["config"]["seed"] == 5
    assert not torch.equal(WorldDataset(root, "train")[1]["video"], item["video"])


def test_dataset_names_a_missing_world_or_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="fourd.world"):
        WorldDataset(tmp_path / "nowhere", "train")
    generate_world(tmp_path, TINY, {"train": 1}, progress=False)
    with pytest.raises(FileNotFoundError, match="'val'"):
        WorldDataset(tmp_path, "val")


def test_a_damaged_world_description_is_named_when_read_and_mended_by_generating_again(tmp_path):
    root = generate_world(tmp_path / "world", TINY, {"train": 1}, progress=False)
    (root / "world.json").write_text("{not json")
    with pytest.raises(FourdError, match=r"world.json is not a 4D world's description \(damaged\?\)"):
        WorldDataset(root, "train")
    generate_world(root, TINY, {"train": 1}, progress=False)  # rendered again, not a traceback
    assert len(WorldDataset(root, "train")) == 1


def test_the_default_world_is_the_probes_world():
    from dataclasses import asdict

    from tests.helpers.configs import composed

    assert asdict(WorldConfig()) == dict(composed("probe").probe_data.world)


def test_cli_writes_a_tiny_world(tmp_path, capsys):
    args = [
        "--out",
        str(tmp_path),
        "--num",
        "2",
        "--val",
        "2",
        "--test",
        "2",
        "--frames",
        "2",
        "--size",
        "16",
        "--points",
        "4",
        "--objects",
        "1",
        "--seed",
        "3",
    ]
    assert main(args) == 0
    assert "2 train" in capsys.readouterr().out
    for split in ("train", "val", "test"):
        dataset = WorldDataset(tmp_path, split)
        assert len(dataset) == 2 and dataset[1]["video"].shape == (3, 2, 16, 16)
        assert dataset[0]["tracks"].shape == (4, 2, 2) and dataset[0]["boxes"].shape == (1, 2, 4)


def test_world_cli_refuses_a_negative_clip_count(tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:
        main(["--out", str(tmp_path / "w"), "--num", "-5"])
    assert refused.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith("error: argument --num: -5 must be >= 1")
    assert not (tmp_path / "w" / "world.json").exists()


def test_world_cli_writes_into_a_folder_of_other_files_only_on_purpose(tmp_path, capsys):
    """`--out mydata` into a folder that is not a fourd world but holds train/000000.npz replaced the user's file."""
    args = ["--num", "1", "--val", "1", "--test", "1", "--frames", "2", "--size", "16", "--points", "4"]
    mine = tmp_path / "mydata" / "train" / "000000.npz"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own clip")
    assert main(["--out", str(tmp_path / "mydata"), *args]) == 1
    assert "did not write: choose another output folder, or pass --overwrite" in capsys.readouterr().err
    assert mine.read_bytes() == b"my own clip" and not (tmp_path / "mydata" / "world.json").exists()
    world = tmp_path / "world"
    assert main(["--out", str(world), *args]) == 0
    assert main(["--out", str(world), *args, "--seed", "5"]) == 0  # a world of its own: regenerated freely
    assert json.loads((world / "world.json").read_text())["config"]["seed"] == 5
    (world / "world.json").unlink()  # a generation killed before its end: resumed freely
    assert main(["--out", str(world), *args]) == 0
    assert main(["--out", str(tmp_path / "mydata"), *args, "--overwrite"]) == 0
    assert len(WorldDataset(tmp_path / "mydata", "train")) == 1
