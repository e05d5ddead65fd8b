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
