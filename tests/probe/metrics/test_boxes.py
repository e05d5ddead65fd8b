from __future__ import annotations

import numpy as np
import pytest

from fourd.probe.metrics import box_iou, box_tracking_metrics


def test_iou_of_known_boxes() -> None:
    a = np.array([0.0, 0.0, 2.0, 2.0])
    others = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [0, 0, 1, 2], [2, 0, 4, 2], [5, 5, 6, 6]], dtype=float)
    np.testing.assert_allclose(box_iou(a, others), [1 / 7, 1.0, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(box_iou(others, a), box_iou(a, others))


def test_degenerate_boxes_give_zero_not_nan() -> None:
    point = [1.0, 1.0, 1.0, 1.0]
    inverted = [2.0, 2.0, 0.0, 0.0]
    assert box_iou(point, point) == 0.0
    assert box_iou(inverted, inverted) == 0.0
    assert box_iou(inverted, [0.0, 0.0, 2.0, 2.0]) == 0.0


def test_tracking_metrics_skip_query_frame_and_invisible() -> None:
    gt = np.tile(np.array([0.0, 0.0, 2.0, 2.0]), (2, 3, 1))  # 2 tracks, 3 frames
    pred = gt.copy()
    pred[:, 0] = [10, 10, 11, 11]  # frame 0 is the given query box: not scored
    pred[0, 1] = [0, 0, 1, 2]  # IoU exactly 0.5: not a success
    pred[0, 2] = [1, 1, 3, 3]  # IoU 1/7
    pred[1, 1] = [5, 5, 6, 6]  # IoU 0
    pred[1, 2] = [5, 5, 6, 6]  # invisible: not scored
    visible = np.ones((2, 3), dtype=bool)
    visible[1, 2] = False
    m = box_tracking_metrics(pred, gt, visible)
    assert m["mean_iou"] == pytest.approx((0.5 + 1 / 7 + 0) / 3)
    assert m["success_50"] == 0.0
    assert box_tracking_metrics(gt, gt) == {"mean_iou": 1.0, "success_50": 1.0}
    with pytest.raises(ValueError):
        box_tracking_metrics(pred, gt, np.zeros_like(visible))
