"""Clip scores: a split scored batch by batch, in any order, has the metrics of the split held whole, which are
the metric functions' on all of it; and a clip's scores do not grow with its frames' pixels."""

import math

import numpy as np
import pytest
import torch

from fourd.probe.metrics import box_tracking_metrics, depth_metrics, pose_metrics, relative_poses, tapvid_metrics
from fourd.probe.metrics.classification import multi_clip_accuracy, top1_accuracy
from fourd.probe.metrics.tapvid import rescale_query_points, rescale_tracks
from fourd.probe.tasks import ClipGeometry, build_task
from fourd.probe.tasks.base import concat_scores
from tests.probe.tasks.test_tasks import random_poses

CLIPS = 7
G = ClipGeometry(num_frames=4, height=16, width=16, num_points=5, num_objects=3, num_classes=4)


def depth_split(g: ClipGeometry = G):
    depth = torch.rand(CLIPS, g.num_frames, g.height, g.width) * 5 + 0.5
    depth[depth < 1] = 0  # invalid pixels
    depth[2, 1] = 0  # a frame without a valid pixel: not scored
    preds = {"depth": depth.clamp_min(1) * (1 + 0.3 * torch.randn_like(depth))}
    return preds, {"depth": depth}, lambda: depth_metrics(preds["depth"].numpy(), depth.numpy())


def points_split():
    tracks = torch.rand(CLIPS, G.num_points, G.num_frames, 2) * 16
    occluded = torch.rand(CLIPS, G.num_points, G.num_frames) < 0.3
    occluded[3] = True  # a video without a usable track: not scored
    batch = {"tracks": tracks, "occluded": occluded}
    task = build_task("points", G, 8)
    preds = task.predict_prior(batch)
    preds["tracks"] = preds["tracks"] + torch.randn_like(tracks) * 2
    preds["occluded"] = torch.rand(occluded.shape) < 0.2

    def whole():  # TAP-Vid's metrics of each video with a usable track, then their nan-mean
        size = (G.height, G.width)
        per_video = []
        for i in range(CLIPS):
            keep = preds["usable"][i].numpy()
            if keep.any():
                per_video.append(
                    tapvid_metrics(
                        rescale_query_points(preds["query_points"][i].numpy()[keep][None], size),
                        occluded[i].numpy()[keep][None],
                        rescale_tracks(tracks[i].numpy()[keep][None], size),
                        preds["occluded"][i].numpy()[keep][None],
                        rescale_tracks(preds["tracks"][i].numpy()[keep][None], size),
                        query_mode="first",
                    )
                )
        return {k: float(np.nanmean([m[k] for m in per_video])) for k in per_video[0]}

    return preds, batch, whole


def boxes_split():
    corner = torch.rand(CLIPS, G.num_objects, G.num_frames, 2) * 8
    boxes = torch.cat([corner, corner + 2 + torch.rand_like(corner) * 6], -1)
    visible = torch.rand(CLIPS, G.num_objects, G.num_frames) < 0.7
    preds = {"boxes": boxes + torch.randn_like(boxes)}
    scored = (visible & visible[:, :, :1]).numpy()
    return preds, {"boxes": boxes, "box_visible": visible}, lambda: box_tracking_metrics(preds["boxes"], boxes, scored)


def pose_split():
    world_to_camera = random_poses(CLIPS, G.num_frames)
    preds = {"poses": relative_poses(random_poses(CLIPS, G.num_frames))}
    return (
        preds,
        {"world_to_camera": world_to_camera},
        lambda: pose_metrics(preds["poses"].numpy(), relative_poses(world_to_camera).numpy()),
    )


def classification_split():
    logits, labels = torch.randn(CLIPS, G.num_classes), torch.tensor([0, 0, 1, 1, 2, 3, 3])
    videos = torch.tensor([0, 0, 1, 1, 2, 3, 4])  # clips of one video share its label

    def whole():
        return {
            "top1": top1_accuracy(logits.numpy(), labels.numpy()),
            "top1_multi_clip": multi_clip_accuracy(logits.numpy(), labels.numpy(), videos.numpy()),
        }

    return {"logits": logits}, {"label": labels, "index": videos}, whole


SPLITS = {
    "depth": depth_split,
    "points": points_split,
    "boxes": boxes_split,
    "pose": pose_split,
    "classification": classification_split,
}


def rows(tensors: dict[str, torch.Tensor], picked: list[int]) -> dict[str, torch.Tensor]:
    return {k: v[picked] for k, v in tensors.items()}


@pytest.mark.parametrize("name", list(SPLITS))
def test_a_split_scored_in_batches_in_any_order_has_the_metrics_of_the_whole(name):
    torch.manual_seed(0)
    preds, targets, whole = SPLITS[name]()
    task = build_task(name, G, 8)
    expected = whole()
    assert task.metrics(preds, targets) == pytest.approx(expected, rel=1e-12, nan_ok=True)
    order = torch.randperm(CLIPS).tolist()
    batches = [order[:3], order[3:4], order[4:]]  # uneven, shuffled: as ranks and a last short batch give them
    parts = [task.clip_scores(rows(preds, b), rows(targets, b)) for b in batches]
    assert all(len(v) == len(b) for part, b in zip(parts, batches, strict=True) for v in part.values())
    assert task.summarize(concat_scores(parts)) == pytest.approx(expected, rel=1e-12, nan_ok=True)


def test_a_depth_clips_scores_are_per_frame_whatever_its_size():
    """A clip's scores are a few numbers per frame: 16x larger frames give scores of the same size."""
    task = build_task("depth", G, 8)
    small = task.clip_scores(*depth_split()[:2])
    large_geometry = ClipGeometry(num_frames=4, height=64, width=64)
    large = build_task("depth", large_geometry, 8).clip_scores(*depth_split(large_geometry)[:2])
    assert {k: v.shape for k, v in small.items()} == {k: v.shape for k, v in large.items()}
    assert all(v.shape == (CLIPS, G.num_frames) for v in small.values())


def test_a_split_without_a_usable_track_scores_nan_and_a_nan_depth_is_not_skipped():
    task = build_task("points", G, 8)
    preds, targets, _ = points_split()
    scores = task.clip_scores(rows(preds, [3]), rows(targets, [3]))  # every track of video 3 is occluded
    assert all(math.isnan(v) for v in task.summarize(scores).values())
    depth = build_task("depth", G, 8)
    preds, targets, _ = depth_split()
    preds["depth"][0, 0] = math.nan  # a broken prediction: its frame counts (and spoils the mean), never skipped
    assert math.isnan(depth.metrics(preds, targets)["abs_rel"])
