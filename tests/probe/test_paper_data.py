"""The paper's probe datasets end to end: the `trivial` baseline on each real format scores what the benchmark's
own definition gives by hand."""

import numpy as np
import pytest

from fourd.probe.run import probe
from tests.helpers.perception_test import (
    random_tracks,
    static_baseline_average_jaccard,
    video_record,
    write_perception_test,
)
from tests.helpers.waymo import FRONT, FRONT_LEFT, moving, write_segment
from tests.probe.test_run import compose_probe


def test_trivial_points_on_perception_test_score_the_official_static_baseline(tmp_path):
    rng = np.random.default_rng(0)
    splits = {"train": ["t0", "t1", "t2"], "valid": ["v0", "v1", "v2"]}
    for split, videos in splits.items():
        records = {video: video_record(video, split, random_tracks(rng, 3 + n)) for n, video in enumerate(videos)}
        write_perception_test(tmp_path / "perception_test", split, records, videos)
    cfg = compose_probe(
        tmp_path,
        "probe=points",
        "backbone=trivial",
        "probe_data=perception_test",
        f"probe_data.root={tmp_path / 'perception_test'}",
        "probe_data.num_frames=16",
        "probe_data.stride=1",
        "probe_data.num_points=6",
        "probe_data.size=32",
        world=False,
    )
    metrics = probe(cfg, tmp_path / "run")
    expected = static_baseline_average_jaccard(records)
    assert 0.05 < expected < 0.95  # the fixture tells a static tracker from a perfect or a useless one
    assert metrics["average_jaccard"] == pytest.approx(expected, abs=1e-12)


def test_trivial_boxes_on_waymo_score_the_mean_iou_of_boxes_moving_at_known_speeds(tmp_path):
    frames = range(16)
    front = {"car": moving((40, 32, 20, 20), (2, 0), frames), "bike": moving((60, 20, 16, 16), (0, 1), frames)}
    left = {name: moving((48, 32, 20, 20), (0, 0), frames) for name in front}  # still: IoU 1 if mixed in
    for split, segment in (("training", "seg_train"), ("validation", "seg_val")):
        write_segment(tmp_path / "waymo", split, segment, {FRONT: front, FRONT_LEFT: left})
    cfg = compose_probe(
        tmp_path,
        "probe=boxes",
        "backbone=trivial",
        "probe_data=waymo",
        f"probe_data.root={tmp_path / 'waymo'}",
        "probe_data.num_frames=4",
        "probe_data.num_objects=3",
        "probe_data.size=32",
        world=False,
    )
    metrics = probe(cfg, tmp_path / "run")
    # the centred 64x64 of the 64x96 frames at half size, clip frames 2 raw frames apart: the car (10 px) moves
    # 2 px a clip frame, the bike (8 px) 1 px; a box of side w shifted d along one axis has IoU (w - d) / (w + d)
    by_hand = [(10 - 2 * k) / (10 + 2 * k) for k in (1, 2, 3)] + [(8 - k) / (8 + k) for k in (1, 2, 3)]
    assert metrics["mean_iou"] == pytest.approx(np.mean(by_hand), abs=1e-12)


@pytest.mark.parametrize("task", ["points", "boxes"])
def test_the_paper_readouts_train_evaluate_and_draw(tmp_path, task):
    tiles = ["+probe.options.num_tiles=2"] if task == "points" else []  # the tiny world's 4 frames: 2 tiles of 2
    cfg = compose_probe(tmp_path, f"probe={task}", "readout=paper", *tiles)
    metrics = probe(cfg, tmp_path / "run")
    assert 0.0 <= metrics[{"points": "average_jaccard", "boxes": "mean_iou"}[task]] <= 1.0
    assert (tmp_path / "run" / f"{task}.png").stat().st_size > 0
