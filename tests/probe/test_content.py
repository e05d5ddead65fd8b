"""Feature-content probes: exact where the answer is known, and they find depth in a video that shows it."""

import torch

from fourd.probe import content
from fourd.probe import run as probe_run
from fourd.probe.backbones import load_backbone
from tests.probe.test_run import DepthAsVideo, compose_probe


def test_ridge_recovers_a_linear_map_and_its_bias():
    x = torch.randn(200, 5)
    weights, bias = torch.randn(5, 3), torch.randn(3)
    fitted = content.ridge(x, x @ weights + bias, penalty=1e-6)
    torch.testing.assert_close(fitted, torch.cat([weights, bias[None]]), atol=1e-3, rtol=0)


def test_depth_in_a_video_that_shows_it_is_found_by_the_patch_ridge(tmp_path):
    cfg = compose_probe(tmp_path, "probe=depth", "backbone=pixels")
    backbone = load_backbone("pixels", {})
    splits, num_classes, identity = probe_run.probe_splits(cfg)
    splits = {name: DepthAsVideo(split) for name, split in splits.items()}
    featurize = probe_run.frozen_features(cfg, backbone, splits["test"])
    stores = probe_run.split_stores(cfg, backbone, featurize, splits, identity + "as video")
    data = {k: v.stacked(features=True) for k, v in stores.items()}
    task = probe_run.probe_task(cfg, probe_run.clip_geometry(splits["test"], num_classes, backbone.width))
    task.fit_prior(data["train"])
    prior = task.metrics(task.predict_prior(data["val"]), data["val"])["abs_rel"]
    found = content.depth_by_patch(task, data, penalty=1.0)
    assert found < 0.5 * prior, (found, prior)


def test_the_pose_regression_explains_features_that_hold_the_pose_and_not_noise():
    from fourd.probe.metrics.pose import relative_poses
    from tests.probe.tasks.test_tasks import random_poses

    torch.manual_seed(0)
    poses = random_poses(96, 4)
    last = relative_poses(poses)[:, -1, :3].flatten(1)  # (N, 12): the last frame's rotation and translation
    holding = (last[:, None, None] + 0.01 * torch.randn(96, 2, 4, 12)).contiguous()  # (N, t, tokens, D)
    for features, explained in ((holding, 0.9), (torch.randn(96, 2, 4, 12), None)):
        data = {
            "train": {"world_to_camera": poses[:64], "features": features[:64]},
            "val": {"world_to_camera": poses[64:], "features": features[64:]},
        }
        rotation, translation = content.pose_explained(data, penalty=1.0)
        if explained:
            assert rotation > explained and translation > explained
        else:
            assert rotation < 0.2 and translation < 0.2
