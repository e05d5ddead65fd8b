"""Evaluation metrics of the 4D probes: pure functions of numpy arrays (torch tensors are accepted too).

Depth (AbsRel, delta_k, RMSE), TAP-Vid point tracking, box tracking IoU, relative camera pose errors and
classification accuracy; plus the torch 6-D rotation representation the pose probe regresses.
"""

from fourd.probe.metrics.boxes import box_iou, box_tracking_metrics, pooled_box_metrics, scored_box_ious
from fourd.probe.metrics.classification import multi_clip_accuracy, top1_accuracy
from fourd.probe.metrics.depth import depth_image_metrics, depth_metrics, mean_over_images
from fourd.probe.metrics.pose import pose_errors, pose_metrics, relative_poses
from fourd.probe.metrics.rotation import matrix_to_rotation_6d, rotation_6d_to_matrix
from fourd.probe.metrics.tapvid import rescale_query_points, rescale_tracks, tapvid_metrics

__all__ = [
    "box_iou",
    "box_tracking_metrics",
    "depth_image_metrics",
    "depth_metrics",
    "matrix_to_rotation_6d",
    "mean_over_images",
    "multi_clip_accuracy",
    "pooled_box_metrics",
    "pose_errors",
    "pose_metrics",
    "relative_poses",
    "rescale_query_points",
    "rescale_tracks",
    "rotation_6d_to_matrix",
    "scored_box_ious",
    "tapvid_metrics",
    "top1_accuracy",
]
