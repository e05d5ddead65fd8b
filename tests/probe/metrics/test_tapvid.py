from __future__ import annotations

import numpy as np
import pytest
import torch

from fourd.data.readers.tapvid import sample_queries
from fourd.probe.metrics import rescale_query_points, rescale_tracks, tapvid_metrics
from tests.helpers.tracks import sampling_case

THRESHOLDS = (1, 2, 4, 8, 16)
T = 5


def _track(n: int = 1) -> np.ndarray:
    """(1, n, T, 2) tracks moving right along distinct rows."""
    t = np.arange(T, dtype=np.float64)
    return np.stack([np.stack([10.0 + 7.0 * t, np.full(T, 20.0 + 30.0 * i)], -1) for i in range(n)])[None]


def _queries(frames: list[int], tracks: np.ndarray) -> np.ndarray:
    return np.array([[[f, tracks[0, i, f, 1], tracks[0, i, f, 0]] for i, f in enumerate(frames)]])


def _metrics(frames, gt_occ, gt, pred_occ, pred, mode="first", trackwise=False) -> dict[str, np.ndarray]:
    return tapvid_metrics(_queries(frames, gt), gt_occ, gt, pred_occ, pred, mode, get_trackwise_metrics=trackwise)


def test_perfect_prediction_is_ideal() -> None:
    gt = _track(2)
    occ = np.zeros((1, 2, T), dtype=bool)
    occ[0, 0, 3] = True
    for mode in ("first", "strided"):
        m = _metrics([0, 1], occ, gt, occ, gt, mode)
        assert set(m) == {"occlusion_accuracy", "average_jaccard", "average_pts_within_thresh"} | {
            f"{k}_{t}" for k in ("pts_within", "jaccard") for t in THRESHOLDS
        }
        for value in m.values():
            assert value.shape == (1,)
            np.testing.assert_allclose(value, 1.0)


@pytest.mark.parametrize("offset, first_within", [(3.0, 4), (4.0, 8)])  # distances are strict: 4 px misses 4
def test_offset_counts_from_threshold(offset: float, first_within: int) -> None:
    gt = _track()
    occ = np.zeros((1, 1, T), dtype=bool)
    m = _metrics([0], occ, gt, occ, gt + np.array([0.0, offset]))
    for t in THRESHOLDS:
        assert m[f"pts_within_{t}"][0] == m[f"jaccard_{t}"][0] == float(t >= first_within)
    expected = sum(t >= first_within for t in THRESHOLDS) / 5
    np.testing.assert_allclose(m["average_pts_within_thresh"], expected)
    np.testing.assert_allclose(m["average_jaccard"], expected)


def test_visible_prediction_on_occluded_point_lowers_jaccard_only() -> None:
    gt = _track()
    gt_occ = np.zeros((1, 1, T), dtype=bool)
    gt_occ[0, 0, 4] = True
    m = _metrics([0], gt_occ, gt, np.zeros_like(gt_occ), gt)  # frames 1..4 scored; frame 4 is a false positive
    np.testing.assert_allclose(m["pts_within_1"], 1.0)
    np.testing.assert_allclose(m["jaccard_1"], 3 / 4)  # TP 3 / (gt visible 3 + FP 1)
    np.testing.assert_allclose(m["average_jaccard"], 3 / 4)
    np.testing.assert_allclose(m["occlusion_accuracy"], 3 / 4)


def test_first_and_strided_score_different_frames() -> None:
    gt = _track()
    occ = np.zeros((1, 1, T), dtype=bool)
    pred = gt.copy()
    pred[0, 0, 0] += [10.0, 0.0]  # before the query frame 2: within 16 px only
    first = _metrics([2], occ, gt, occ, pred, "first")  # scores frames 3, 4
    strided = _metrics([2], occ, gt, occ, pred, "strided")  # scores frames 0, 1, 3, 4
    for value in first.values():
        np.testing.assert_allclose(value, 1.0)
    for t in (1, 2, 4, 8):
        np.testing.assert_allclose(strided[f"pts_within_{t}"], 3 / 4)
        np.testing.assert_allclose(strided[f"jaccard_{t}"], 3 / 5)  # TP 3 / (4 + 1 false positive)
    np.testing.assert_allclose(strided["pts_within_16"], 1.0)
    np.testing.assert_allclose(strided["jaccard_16"], 1.0)
    np.testing.assert_allclose(strided["average_pts_within_thresh"], 0.8)
    np.testing.assert_allclose(strided["average_jaccard"], 0.68)
    np.testing.assert_allclose(strided["occlusion_accuracy"], 1.0)


def test_query_at_last_frame_has_nothing_to_score_in_first_mode() -> None:
    gt = _track(2)
    occ = np.zeros((1, 2, T), dtype=bool)
    pred = gt + np.array([0.0, 3.0])
    trackwise = _metrics([T - 1, 0], occ, gt, occ, pred, "first", trackwise=True)
    video = _metrics([T - 1, 0], occ, gt, occ, pred, "first")
    for name, value in trackwise.items():
        assert value.shape == (1, 2)
        assert np.isnan(value[0, 0]), name  # 0 / 0, as the reference
        np.testing.assert_allclose(value[0, 1], video[name][0])
    np.testing.assert_allclose(video["average_jaccard"], 0.6)
    assert np.isfinite(_metrics([T - 1, 0], occ, gt, occ, pred, "strided", trackwise=True)["average_jaccard"]).all()


def test_all_occluded_track() -> None:
    gt = _track(2)
    gt_occ = np.zeros((1, 2, T), dtype=bool)
    gt_occ[0, 0] = True
    pred_occ = gt_occ.copy()
    pred_occ[0, 0, 1:3] = False  # two visible predictions on a never-visible track
    trackwise = _metrics([0, 0], gt_occ, gt, pred_occ, gt, trackwise=True)
    np.testing.assert_allclose(trackwise["occlusion_accuracy"], [[2 / 4, 1.0]])
    assert np.isnan(trackwise["pts_within_4"][0, 0])  # no visible gt point: 0 / 0
    np.testing.assert_allclose(trackwise["jaccard_4"], [[0.0, 1.0]])  # 0 / (0 + 2 false positives)
    video = _metrics([0, 0], gt_occ, gt, pred_occ, gt)
    np.testing.assert_allclose(video["pts_within_4"], 1.0)
    np.testing.assert_allclose(video["jaccard_4"], 4 / 6)
    np.testing.assert_allclose(video["occlusion_accuracy"], 6 / 8)


def test_batch_of_videos_and_torch_inputs() -> None:
    gt = np.concatenate([_track(3), _track(3) + 1.0])
    occ = np.zeros((2, 3, T), dtype=bool)
    queries = np.concatenate([_queries([0, 1, 2], gt[:1]), _queries([0, 1, 2], gt[1:])])
    pred = gt.copy()
    pred[1] += [0.0, 5.0]
    m = tapvid_metrics(*(torch.from_numpy(x) for x in (queries, occ, gt, occ, pred)), query_mode="strided")
    np.testing.assert_allclose(m["pts_within_8"], [1.0, 1.0])
    np.testing.assert_allclose(m["pts_within_4"], [1.0, 0.0])
    with pytest.raises(ValueError, match="query mode"):
        tapvid_metrics(queries, occ, gt, occ, pred, "last")


def test_rescale_to_256_raster() -> None:
    from_size = (128, 512)  # (height, width)
    np.testing.assert_allclose(rescale_tracks([[512.0, 64.0], [0.0, 128.0]], from_size), [[256.0, 128.0], [0.0, 256.0]])
    np.testing.assert_allclose(rescale_query_points([3.0, 64.0, 512.0], from_size), [3.0, 128.0, 256.0])
    np.testing.assert_allclose(rescale_tracks([256.0, 256.0], (256, 256), to_size=(64, 32)), [32.0, 64.0])


@pytest.mark.parametrize("mode", ["first", "strided"])
def test_sampled_queries_score_perfect_predictions(mode: str) -> None:
    occluded, tracks = sampling_case()
    queries, index = sample_queries(occluded, tracks, mode)
    gt_occ, gt = occluded[index][None], tracks[index][None]
    m = tapvid_metrics(queries[None], gt_occ, gt, gt_occ, gt, mode)
    np.testing.assert_allclose(m["average_jaccard"], 1.0)
