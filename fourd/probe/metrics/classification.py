"""Classification accuracy, single clip and multi-clip (softmax averaged over each video's clips)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def top1_accuracy(logits: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of rows of logits (N, C) whose argmax equals labels (N,)."""
    return float(np.mean(np.argmax(np.asarray(logits), axis=-1) == np.asarray(labels)))


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def multi_clip_accuracy(logits: ArrayLike, labels: ArrayLike, video_ids: ArrayLike) -> float:
    """Top-1 accuracy over videos: clip logits (N, C) -> softmax, averaged over clips sharing a video id (N,).

    All clips of a video must carry the same label (ValueError otherwise).
    """
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    videos, video_of_clip = np.unique(np.asarray(video_ids), return_inverse=True)
    video_labels = np.empty(len(videos), dtype=labels.dtype)
    video_labels[video_of_clip] = labels
    if np.any(video_labels[video_of_clip] != labels):
        raise ValueError("clips of the same video have different labels")
    probabilities = np.zeros((len(videos), logits.shape[-1]))
    np.add.at(probabilities, video_of_clip, _softmax(logits))  # summed: same argmax as the mean
    return top1_accuracy(probabilities, video_labels)
