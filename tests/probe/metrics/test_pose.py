from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fourd.probe.metrics import matrix_to_rotation_6d, pose_metrics, relative_poses, rotation_6d_to_matrix


def _pose(rotation: np.ndarray | None = None, translation=(0.0, 0.0, 0.0)) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = np.eye(3) if rotation is None else rotation
    pose[:3, 3] = translation
    return pose


def _rot_z(degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _random_poses(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    poses = np.tile(np.eye(4), (*shape, 1, 1))
    poses[..., :3, :3] = rotation_6d_to_matrix(torch.randn(*shape, 6, generator=generator, dtype=torch.float64))
    poses[..., :3, 3] = torch.randn(*shape, 3, generator=generator, dtype=torch.float64)
    return poses


def test_identical_poses_have_zero_error() -> None:
    poses = _random_poses((2, 4))
    m = pose_metrics(poses, poses[..., :3, :])  # 4x4 and 3x4 mix
    assert m["rotation_error_deg"] == pytest.approx(0.0, abs=1e-5)
    assert m["translation_angle_deg"] == pytest.approx(0.0, abs=1e-5)
    assert m["end_point_error"] == pytest.approx(0.0, abs=1e-12)


def test_90_degree_rotation() -> None:
    gt = np.stack([_pose(), _pose(), _pose()])
    pred = np.stack([_pose(_rot_z(30)), _pose(_rot_z(90)), _pose()])  # frame 0 is the reference: ignored
    m = pose_metrics(pred, gt)
    assert m["rotation_error_deg"] == pytest.approx(45.0)  # mean of 90 and 0
    assert m["translation_angle_deg"] == 0.0  # both translations zero
    # each corner (+-5, +-5, z) moves by sqrt(2) * sqrt(50) = 10 under a 90 degree turn about z
    assert m["end_point_error"] == pytest.approx(5.0)


def test_translation_offset() -> None:
    gt = np.stack([_pose(), _pose(translation=(1.0, 0.0, 0.0))])
    pred = np.stack([_pose(), _pose(translation=(4.0, 4.0, 0.0))])
    m = pose_metrics(pred, gt)
    assert m["rotation_error_deg"] == pytest.approx(0.0, abs=1e-6)
    assert m["translation_angle_deg"] == pytest.approx(45.0)
    assert m["end_point_error"] == pytest.approx(5.0)  # |(3, 4, 0)| at every corner


def test_tiny_translation_conventions() -> None:
    gt = np.stack([_pose(), _pose(), _pose(translation=(0.0, 0.0, 2.0))])
    pred = np.stack([_pose(), _pose(translation=(0.0, 1.0, 0.0)), _pose(translation=(0.0, 0.0, 1e-9))])
    assert pose_metrics(pred, gt)["translation_angle_deg"] == pytest.approx(90.0)  # one tiny norm -> 90
    assert pose_metrics(gt[:2], gt[:2])["translation_angle_deg"] == 0.0  # both tiny -> 0


def test_pose_metrics_need_a_frame_after_the_reference() -> None:
    with pytest.raises(ValueError):
        pose_metrics(np.eye(4)[None], np.eye(4)[None])


def test_relative_poses() -> None:
    w2c = np.stack([_pose(translation=(1.0, 0.0, 0.0)), _pose(_rot_z(90), (3.0, 0.0, 0.0))])
    expected = [_pose(), _pose(_rot_z(90), (3.0, -1.0, 0.0))]  # t = Rz(90) (-1, 0, 0) + (3, 0, 0)
    np.testing.assert_allclose(relative_poses(w2c[:, :3]), expected, atol=1e-12)
    w2c = _random_poses((2, 3), seed=1)
    relative = relative_poses(w2c)
    np.testing.assert_allclose(relative[:, 0], np.tile(np.eye(4), (2, 1, 1)), atol=1e-12)
    np.testing.assert_allclose(relative @ w2c[:, :1], w2c, atol=1e-12)  # maps camera-0 coordinates to camera t


def test_rotation_6d_round_trip_and_gradients() -> None:
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    rotation = rotation_6d_to_matrix(x)
    eye = torch.eye(3, dtype=torch.float64).expand(5, 3, 3)
    torch.testing.assert_close(rotation @ rotation.transpose(-1, -2), eye)
    torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(rotation_6d_to_matrix(matrix_to_rotation_6d(rotation)), rotation)
    torch.testing.assert_close(rotation_6d_to_matrix(matrix_to_rotation_6d(eye)), eye)
    rot = torch.from_numpy(_rot_z(90))
    torch.testing.assert_close(matrix_to_rotation_6d(rot), rot[:2].reshape(6))
    rotation.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
