from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fourd.probe.metrics import depth_metrics


def test_perfect_prediction_is_ideal() -> None:
    gt = np.random.default_rng(0).uniform(0.5, 10.0, size=(2, 3, 4, 5))
    m = depth_metrics(gt.copy(), gt)
    assert m == {"abs_rel": 0.0, "delta1": 1.0, "delta2": 1.0, "delta3": 1.0, "rmse": 0.0}


def test_hand_computed_single_image() -> None:
    gt = np.array([[1.0, 2.0], [4.0, 0.0]])  # gt 0 is invalid
    pred = np.array([[1.2, 3.0], [-1.0, 7.0]])  # ratios 1.2, 1.5; a negative prediction fails every delta
    m = depth_metrics(pred, gt)
    assert m["abs_rel"] == pytest.approx((0.2 + 0.5 + 5 / 4) / 3)
    assert m["delta1"] == pytest.approx(1 / 3)
    assert m["delta2"] == pytest.approx(2 / 3)
    assert m["delta3"] == pytest.approx(2 / 3)
    assert m["rmse"] == pytest.approx(math.sqrt((0.04 + 1.0 + 25.0) / 3))


def test_images_averaged_separately_and_empty_images_skipped() -> None:
    gt = np.zeros((3, 2, 2))
    pred = np.ones((3, 2, 2))
    gt[0], pred[0] = 1.0, 2.0  # 4 valid pixels, all off by 100 %
    gt[1, 0, 0], pred[1, 0, 0] = 2.0, 2.0  # 1 valid pixel, exact; image 2 has none
    m = depth_metrics(torch.from_numpy(pred), torch.from_numpy(gt))
    assert m["abs_rel"] == pytest.approx(0.5)  # pooling pixels would give 0.8
    assert m["rmse"] == pytest.approx(0.5)
    assert m["delta1"] == pytest.approx(0.5)


def test_explicit_valid_mask_and_all_invalid() -> None:
    gt = np.full((2, 2), 2.0)
    pred = np.array([[2.0, 4.0], [2.0, 2.0]])
    valid = np.array([[True, False], [True, True]])
    assert depth_metrics(pred, gt, valid)["abs_rel"] == 0.0
    with pytest.raises(ValueError, match="no valid"):
        depth_metrics(pred, gt, np.zeros_like(valid))
    with pytest.raises(ValueError, match="no valid"):
        depth_metrics(pred, np.zeros_like(gt))
