"""Probe tasks: an output that encodes the ground truth exactly scores perfectly; queries are built right."""

import pytest
import torch
from einops import rearrange

from fourd.errors import ConfigError
from fourd.probe.metrics.pose import relative_poses
from fourd.probe.metrics.rotation import matrix_to_rotation_6d
from fourd.probe.tasks import ClipGeometry, build_task
from fourd.probe.tasks.base import features_at, features_on_grid
from fourd.probe.tasks.points import first_visible_queries

G = ClipGeometry(num_frames=4, height=16, width=16, num_points=3, num_objects=2, num_classes=5)


def random_poses(b, t):
    angles = torch.rand(b, t, 3)
    rotation = torch.linalg.matrix_exp(
        torch.stack(
            [
                torch.stack([torch.zeros_like(angles[..., 0]), -angles[..., 2], angles[..., 1]], -1),
                torch.stack([angles[..., 2], torch.zeros_like(angles[..., 0]), -angles[..., 0]], -1),
                torch.stack([-angles[..., 1], angles[..., 0], torch.zeros_like(angles[..., 0])], -1),
            ],
            -2,
        )
    )
    pose = torch.eye(4).repeat(b, t, 1, 1)
    pose[..., :3, :3], pose[..., :3, 3] = rotation, torch.randn(b, t, 3)
    return pose


def test_depth_perfect_output():
    task = build_task("depth", G, 8, output_patch=(2, 8, 8))
    depth = torch.rand(2, 4, 16, 16) * 5 + 1
    out = rearrange(depth.log(), "b (n0 p0) (n1 p1) (n2 p2) -> b (n0 n1 n2) (p0 p1 p2)", p0=2, p1=8, p2=8)
    assert task.num_queries == out.shape[1] == 8 and task.outputs_per_query == 128
    batch = {"depth": depth}
    assert task.loss(out, batch) < 1e-5
    metrics = task.metrics(task.predict(out, batch), batch)
    assert metrics["abs_rel"] < 1e-5 and metrics["delta1"] == 1.0
    # Eigen SILog (lambda 0.85): a global log-scale error s costs sqrt(0.15) * s, any other error far more
    assert build_task("depth", G, 8, loss="silog").loss(out + 0.3, batch) == pytest.approx(0.15**0.5 * 0.3, rel=1e-4)
    with pytest.raises(ValueError, match="unknown depth loss"):
        build_task("depth", G, 8, loss="l2")


def test_first_visible_queries():
    occluded = torch.tensor([[[True, False, False, True], [True, True, True, True], [False, True, True, True]]])
    tracks = torch.arange(24, dtype=torch.float32).view(1, 3, 4, 2)
    queries, usable = first_visible_queries(occluded, tracks)
    assert usable.tolist() == [[True, False, True]]
    assert queries[0, 0].tolist() == [1.0, tracks[0, 0, 1, 1], tracks[0, 0, 1, 0]]  # [t, y, x]
    assert queries[0, 2, 0] == 0


def identity(features):
    return features


def test_points_perfect_output():
    task = build_task("points", G, 8)
    tracks = torch.rand(2, 3, 4, 2) * 15
    occluded = torch.rand(2, 3, 4) < 0.3
    occluded[:, :, 0] = False
    xy = tracks / torch.tensor([16.0, 16.0])
    logits = torch.where(occluded, -10.0, 10.0)
    moves = xy - xy[:, :, :1]  # queried at frame 0: the readout predicts moves from the query point
    out = torch.cat([moves, logits[..., None]], -1).flatten(1, 2)  # one query per (track, frame)
    batch = {"tracks": tracks, "occluded": occluded}
    assert task.num_queries == 4 and task.outputs_per_query == 3 and task.per_frame
    tokens = task.query_tokens(batch, torch.zeros(2, 2, 4, 8), torch.zeros(4, 8), identity)
    assert tokens.shape == (2, 3 * 4, 8)
    metrics = task.metrics(task.predict(out, batch), batch)
    assert metrics["average_jaccard"] == pytest.approx(1.0) and metrics["occlusion_accuracy"] == pytest.approx(1.0)


def test_point_queries_carry_what_the_point_looks_like():
    task = build_task("points", G, 8)
    features = torch.zeros(1, 2, 4, 8)  # 2 token times of 2 x 2 tokens (8 x 8 pixels each)
    features[0, 0, 3] = 1.0  # the bottom-right token of the first tubelet
    tracks = torch.tensor([[[[12.0, 12.0]] * 4, [[4.0, 4.0]] * 4]])  # x, y: bottom-right, then top-left
    batch = {"tracks": tracks, "occluded": torch.zeros(1, 2, 4, dtype=torch.bool)}
    tokens = task.query_tokens(batch, features, torch.zeros(4, 8), lambda f: f * 100)
    assert (tokens[0, :4] - tokens[0, 4:]).abs().max() > 50  # the two tracks differ by what their points look like


def test_boxes_perfect_output():
    task = build_task("boxes", G, 8)
    boxes = torch.tensor([2.0, 3.0, 10.0, 12.0]).repeat(2, 2, 4, 1) + torch.arange(4.0)[:, None]  # moving right-down
    visible = torch.ones(2, 2, 4, dtype=torch.bool)
    out = ((boxes - boxes[:, :, :1]) / 16).flatten(1, 2)  # moves of the first-frame box, a query per (object, frame)
    batch = {"boxes": boxes, "box_visible": visible}
    assert task.loss(out, batch) < 1e-5
    assert task.metrics(task.predict(out, batch), batch)["mean_iou"] == pytest.approx(1.0, abs=1e-5)
    assert task.query_tokens(batch, torch.zeros(2, 2, 4, 8), torch.zeros(4, 8), identity).shape == (2, 2 * 4, 8)


def test_paper_points_perfect_output_and_visibility_needs_certainty():
    task = build_task("points", G, 8, readout="paper", num_tiles=2)  # 2 tiles of 2 frames
    tracks = torch.rand(2, 3, 4, 2) * 12 + 2
    occluded = torch.rand(2, 3, 4) < 0.3
    occluded[:, :, 0] = False
    xy = (tracks / 16).logit()  # coordinates come through a sigmoid
    visibility = torch.where(occluded, -10.0, 10.0)
    certain = torch.full_like(visibility, 10.0)
    out = torch.cat([xy, visibility[..., None], certain[..., None]], -1)  # B P T 4
    out = out.unflatten(2, (2, 2)).flatten(3).flatten(1, 2)  # one query per (track, tile): its frames' 4 values
    batch = {"tracks": tracks, "occluded": occluded}
    assert (task.num_queries, task.outputs_per_query, task.per_frame) == (2, 8, False)
    assert task.query_tokens(batch, torch.zeros(2, 2, 4, 8), torch.zeros(2, 8), identity).shape == (2, 3 * 2, 8)
    assert task.loss(out, batch) < 1e-3
    metrics = task.metrics(task.predict(out, batch), batch)
    assert metrics["average_jaccard"] == pytest.approx(1.0) and metrics["occlusion_accuracy"] == pytest.approx(1.0)
    unsure = out.unflatten(-1, (2, 4)).clone()
    unsure[..., 3] = -10.0  # visible but uncertain: sigmoid(vis) * sigmoid(cert) < 0.5, so predicted occluded
    assert task.predict(unsure.flatten(-2), batch)["occluded"].all()
    with pytest.raises(ConfigError, match="num_tiles=3 does not tile 4 frames"):
        build_task("points", G, 8, readout="paper", num_tiles=3)


def test_paper_boxes_one_query_predicts_every_frame():
    task = build_task("boxes", G, 8, readout="paper")
    boxes = torch.tensor([2.0, 3.0, 10.0, 12.0]).repeat(2, 2, 4, 1) + torch.arange(4.0)[:, None]
    batch = {"boxes": boxes, "box_visible": torch.ones(2, 2, 4, dtype=torch.bool)}
    out = ((boxes - boxes[:, :, :1]) / 16).flatten(2)  # B O (T 4): one query per object
    assert (task.num_queries, task.outputs_per_query, task.per_frame) == (1, 16, False)
    assert task.query_tokens(batch, torch.zeros(2, 2, 4, 8), torch.zeros(1, 8), identity).shape == (2, 2, 8)
    assert task.loss(out, batch) < 1e-5
    assert task.metrics(task.predict(out, batch), batch)["mean_iou"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ConfigError, match="probe task 'depth' has no paper readout"):
        build_task("depth", G, 8, readout="paper")


def test_pose_perfect_output():
    task = build_task("pose", G, 8)
    world_to_camera = random_poses(2, 4)
    rel = relative_poses(world_to_camera)
    torch.testing.assert_close(rel[:, 0], torch.eye(4).expand(2, 4, 4), atol=1e-5, rtol=0)
    moves = matrix_to_rotation_6d(rel[..., :3, :3]) - matrix_to_rotation_6d(torch.eye(3))  # from the identity
    out = torch.cat([moves, rel[..., :3, 3]], -1)
    batch = {"world_to_camera": world_to_camera}
    assert task.loss(out, batch) < 1e-5
    metrics = task.metrics(task.predict(out, batch), batch)
    assert metrics["rotation_error_deg"] < 0.1 and metrics["end_point_error"] < 1e-3


def test_classification_and_unknown_task():
    task = build_task("classification", G, 8)
    labels = torch.tensor([0, 3, 4])
    out = torch.nn.functional.one_hot(labels, 5).float()[:, None] * 10
    assert task.metrics(task.predict(out, {"label": labels}), {"label": labels})["top1"] == 1.0
    with pytest.raises(ValueError, match="unknown probe task"):
        build_task("optical_flow", G, 8)


def test_features_on_their_own_grid_are_unchanged_and_in_raster_order():
    features = torch.arange(4 * 6 * 1.0).reshape(1, 4, 6, 1)  # 4 frames of 2 x 3 tokens
    on_grid = features_on_grid(features, (4, 2, 3), image_size=(16, 24))
    torch.testing.assert_close(on_grid, features.reshape(1, 24, 1))


def test_depth_queries_carry_the_features_at_their_patch():
    geometry = ClipGeometry(num_frames=4, height=16, width=16, feature_width=8)
    task = build_task("depth", geometry, 8, output_patch=(2, 8, 8))
    learned = torch.zeros(task.num_queries, 8)
    features = torch.randn(2, 4, 4, 8)
    tokens = task.query_tokens({}, features, learned, identity)
    assert tokens.shape == (2, task.num_queries, 8)
    assert not torch.allclose(tokens[0], tokens[1])  # two clips, two sets of queries
    changed = features.clone()
    changed[:, :, 0] += 5  # only the top-left token of every frame
    moved = (task.query_tokens({}, changed, learned, identity) - tokens).abs().sum(-1)
    assert moved[0, 0] > 0 and moved[0, 3] == 0  # the top-left patch's query moved, the bottom-right one did not


def test_features_at_token_centres_are_the_tokens():
    features = torch.randn(1, 2, 6, 3)  # 2 token times (2 frames each) of 2 x 3 tokens, 8 x 8 pixels each
    points = torch.tensor([[[0.5, 4.0, 4.0], [2.5, 12.0, 20.0]]])  # (frame, y, x) at two token centres
    read = features_at(features, points, (4, 16, 24))
    torch.testing.assert_close(read[0, 0], features[0, 0, 0])
    torch.testing.assert_close(read[0, 1], features[0, 1, 5])  # second tubelet, bottom-right token


@pytest.mark.parametrize("task_name", ["depth", "points", "boxes", "pose"])
def test_an_untrained_head_predicts_the_prior(task_name):
    """Heads predict moves away from the train prior, so a new head scores exactly what `trivial` does."""
    from fourd.models.readout import ReadoutConfig
    from fourd.probe.module import ProbeHead
    from fourd.probe.readout import ProbeReadout

    geometry = ClipGeometry(num_frames=4, height=16, width=16, num_points=3, num_objects=2, feature_width=8)
    task = build_task(task_name, geometry, 8)
    b = 2
    batch = {
        "depth": torch.rand(b, 4, 16, 16) + 1,
        "tracks": torch.rand(b, 3, 4, 2) * 15,
        "occluded": torch.zeros(b, 3, 4, dtype=torch.bool),
        "boxes": torch.tensor([2.0, 3.0, 10.0, 12.0]).repeat(b, 2, 4, 1),
        "box_visible": torch.ones(b, 2, 4, dtype=torch.bool),
        "world_to_camera": random_poses(b, 4),
        "features": torch.randn(b, 2, 4, 8),
    }
    task.fit_prior(batch)
    config = ReadoutConfig(
        width=8,
        heads=2,
        num_queries=task.num_queries,
        num_classes=task.outputs_per_query,
        mlp=16,
        num_frames=2,
        encoder_width=8,
    )
    head = ProbeHead(task, ProbeReadout(config, (2, 2)))
    predicted, prior = task.predict(head(batch), batch), task.predict_prior(batch)
    key = {"depth": "depth", "points": "tracks", "boxes": "boxes", "pose": "poses"}[task_name]
    torch.testing.assert_close(predicted[key], prior[key], atol=1e-5, rtol=0)


def test_pose_queries_carry_how_each_frame_differs_from_the_first():
    task = build_task("pose", G, 8)
    still = torch.randn(1, 1, 4, 8).expand(-1, 2, -1, -1)  # 2 token times (2 frames each), identical
    learned = torch.randn(4, 8)
    torch.testing.assert_close(task.query_tokens({}, still, learned, identity), learned[None])
    moved = still.clone()
    moved[:, 1, 0] += 1.0  # one place changes in the second tubelet (frames 2 and 3)
    change = task.query_tokens({}, moved, learned, identity) - learned
    assert change[0, :2].abs().max() == 0 and (change[0, 2:].abs().sum(-1) > 0).all()
